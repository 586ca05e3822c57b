/*
 * GET /api/v1/metrics: the gateway's state and the workers' summed counters in the Prometheus
 * text exposition format (version 0.0.4), for a scraper holding an admin certificate. The
 * figures are the ones `gwctl status` shows; nothing here keeps state of its own.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cl/buf.h"
#include "cl/mem.h"
#include "cl/time.h"
#include "cl/tls.h"
#include "cp.h"

#define METRICS_MAX (8u << 20) /* below the IPC frame cap, with room for the JSON escaping */

/* The text being built; the first failed append (out of memory, over the bound) sticks. */
struct out {
    struct cl_buf b;
    int err;
};

static void put(struct out *o, const char *s)
{
    if (o->err == 0)
        o->err = cl_buf_append_str(&o->b, s);
}

__attribute__((format(printf, 2, 3))) static void putf(struct out *o, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    put(o, line);
}

/* A label value: backslash, double quote and line feed escaped, as the format says. */
static void put_value(struct out *o, const char *v)
{
    char one[2] = {0, 0};

    put(o, "\"");
    for (; *v != '\0'; v++) {
        one[0] = *v;
        put(o, *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : one);
    }
    put(o, "\"");
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    putf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k1="v1",...} value: `labels` holds key, value pairs and ends with NULL (or is NULL). */
static void sample(struct out *o, const char *name, const char *const *labels, long long value)
{
    size_t i = 0;

    put(o, name);
    for (; labels != NULL && labels[i] != NULL; i += 2) {
        putf(o, "%s%s=", i == 0 ? "{" : ",", labels[i]);
        put_value(o, labels[i + 1]);
    }
    putf(o, "%s %lld\n", i > 0 ? "}" : "", value);
}

static const struct {
    const char *group, *kind; /* cp->counters group, the `kind` label */
} groups[] = {{"imports", "import"}, {"exports", "export"}, {"peers", "peer"}};

static const struct {
    const char *key, *name, *type, *help;
} counters[] = {
    {"open", "clusterlink_tunnels_open", "gauge", "Tunnels open now."},
    {"total", "clusterlink_tunnels_total", "counter", "Tunnels opened (the CONNECT answered 200)."},
    {"denied", "clusterlink_connections_denied_total", "counter", "Connections refused by policy."},
    {"errors", "clusterlink_connection_errors_total", "counter",
     "Connections that failed or were reset otherwise than by policy or the idle timeout."},
    {"idleClosed", "clusterlink_tunnels_idle_closed_total", "counter",
     "Tunnels reset by the dataplane's --idle-timeout."},
};

/* One counter's samples over every import, export and peer that has counters; `dir`, when
 * not NULL, adds a direction label. */
static void group_samples(struct out *o, const json_t *tot, const char *name, const char *key,
                          const char *dir)
{
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        const char *n;
        json_t *c;
        json_object_foreach(json_object_get(tot, groups[g].group), n, c)
        {
            const char *labels[] = {
                "kind", groups[g].kind, "name", n, dir != NULL ? "direction" : NULL, dir, NULL};
            sample(o, name, labels, (long long)json_integer_value(json_object_get(c, key)));
        }
    }
}

char *cp_metrics_text(struct cp *cp)
{
    const struct cl_tls_cert_info *ci = cp->tls != NULL ? cl_tls_ctx_cert_info(cp->tls) : NULL;
    json_t *workers = cp_ipc_workers(cp->ipc), *obj, *w;
    struct out o = {.err = 0};
    const char *n;
    size_t i;
    char *txt = NULL;

    cl_buf_init(&o.b, METRICS_MAX);
    family(&o, "clusterlink_info", "gauge", "The gateway's name and version.");
    sample(&o, "clusterlink_info",
           (const char *[]){"gateway", cp->name, "version", CL_VERSION, NULL}, 1);
    family(&o, "clusterlink_uptime_seconds", "gauge", "Seconds since the controlplane started.");
    sample(&o, "clusterlink_uptime_seconds", NULL,
           (long long)((cl_now_ms() - cp->started_ms) / 1000));
    family(&o, "clusterlink_config_revision", "gauge",
           "Revision of the configuration the controlplane holds.");
    sample(&o, "clusterlink_config_revision", NULL, (long long)cp->revision);
    family(&o, "clusterlink_objects", "gauge", "Configured objects of each kind.");
    for (int k = 0; k < CP_KIND_PORT; k++) /* the kinds of the API; ports are internal */
        sample(&o, "clusterlink_objects", (const char *[]){"kind", cp_kind_name(k), NULL},
               (long long)json_object_size(cp->objs[k]));
    family(&o, "clusterlink_dataplane_workers", "gauge",
           "Dataplane workers connected to the controlplane.");
    sample(&o, "clusterlink_dataplane_workers", NULL, (long long)json_array_size(workers));
    family(&o, "clusterlink_worker_config_revision", "gauge",
           "Revision of the configuration each worker acknowledged.");
    json_array_foreach(workers, i, w)
    {
        char id[24];
        snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(w, "id")));
        sample(&o, "clusterlink_worker_config_revision", (const char *[]){"worker", id, NULL},
               (long long)json_integer_value(json_object_get(w, "revision")));
    }
    family(&o, "clusterlink_peer_reachable", "gauge",
           "1 when a gateway of the peer answers health probes, 0 when none does (absent until "
           "known).");
    json_object_foreach(cp->objs[CP_KIND_PEER], n, obj)
    {
        json_t *r = json_object_get(json_object_get(cp->peer_status, n), "reachable");
        if (json_is_boolean(r))
            sample(&o, "clusterlink_peer_reachable", (const char *[]){"peer", n, NULL},
                   json_is_true(r));
    }
    for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
        family(&o, counters[c].name, counters[c].type, counters[c].help);
        group_samples(&o, cp->counters, counters[c].name, counters[c].key, NULL);
    }
    family(&o, "clusterlink_tunnel_bytes_total", "counter",
           "Bytes through tunnels: direction out is from the client towards the service, in the "
           "way back.");
    group_samples(&o, cp->counters, "clusterlink_tunnel_bytes_total", "bytesOut", "out");
    group_samples(&o, cp->counters, "clusterlink_tunnel_bytes_total", "bytesIn", "in");
    if (ci != NULL && ci->have) {
        family(&o, "clusterlink_certificate_not_after_seconds", "gauge",
               "When the gateway's certificate expires (Unix time).");
        sample(&o, "clusterlink_certificate_not_after_seconds", NULL, (long long)ci->not_after);
    }
    json_decref(workers);
    /* after a failed append the text is short: no answer rather than a cut one */
    if (o.err == 0 && (txt = cl_malloc(o.b.len + 1)) != NULL) {
        memcpy(txt, cl_buf_ptr(&o.b), o.b.len);
        txt[o.b.len] = '\0';
    }
    cl_buf_deinit(&o.b);
    return txt;
}
