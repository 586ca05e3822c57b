/* REST handlers: management API (admins only) and the peer API (known peers only). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/time.h"
#include "cp.h"
#include "cp_k8s.h"
#include "cp_policy.h"

static void respond(struct cp_http_resp *out, int status, json_t *body)
{
    out->status = status;
    out->body = body;
}

static void error(struct cp_http_resp *out, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void error(struct cp_http_resp *out, int status, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    respond(out, status,
            field != NULL && field[0] != '\0'
                ? json_pack("{s:{s:s,s:s}}", "error", "field", field, "message", msg)
                : json_pack("{s:{s:s}}", "error", "message", msg));
}

/* A change the store refused: 507 when it is full (the admin can act on that), else 500. */
static void store_error(struct cp *cp, struct cp_http_resp *out, const char *what, int rc)
{
    if (rc == CL_ESTORE_FULL)
        error(out, 507, NULL,
              "cannot %s: the state store is full (%zu MiB); delete objects, or restart the "
              "controlplane with a larger --store-size",
              what, cp_store_max_mib(cp->store));
    else
        error(out, 500, NULL, "cannot %s: %s", what, cl_strerror(rc));
}

static bool is_admin(struct cp *cp, const char *identity)
{
    for (size_t i = 0; i < cp->nadmins; i++) {
        if (identity != NULL && strcmp(cp->admins[i], identity) == 0)
            return true;
    }
    return false;
}

/* The object as the API shows it: peers carry their status, imports in Kubernetes mode the
 * state of their Service. New reference. */
static json_t *present(struct cp *cp, enum cp_kind k, const char *name, json_t *obj)
{
    json_t *o = json_deep_copy(obj);

    if (o != NULL && k == CP_KIND_PEER) {
        json_t *st = json_object_get(cp->peer_status, name);
        /* not probed yet: reachability unknown */
        json_object_set_new(o, "status",
                            st != NULL ? json_deep_copy(st) : json_pack("{s:n}", "reachable"));
    }
    if (o != NULL && k == CP_KIND_IMPORT && cp->kube != NULL)
        json_object_set_new(o, "status",
                            json_pack("{s:o}", "service", cp_k8s_import_status(cp->kube, name)));
    return o;
}

static int kind_from(const char *s, size_t len, enum cp_kind *k)
{
    static const enum cp_kind api[] = {CP_KIND_PEER, CP_KIND_EXPORT, CP_KIND_IMPORT,
                                       CP_KIND_POLICY};

    for (size_t i = 0; i < 4; i++) {
        const char *n = cp_kind_name(api[i]);
        if (strlen(n) == len && memcmp(n, s, len) == 0) {
            *k = api[i];
            return 0;
        }
    }
    return CL_ENOTFOUND;
}

static json_int_t target_port(const json_t *imp)
{
    return json_integer_value(json_object_get(json_object_get(imp, "spec"), "targetPort"));
}

/* The import that already listens on this import's target port, or NULL. */
static const char *port_taken(struct cp *cp, const json_t *imp, const char *name)
{
    json_int_t port = target_port(imp);
    const char *n;
    json_t *o;

    json_object_foreach(cp->objs[CP_KIND_IMPORT], n, o)
    {
        if (strcmp(n, name) != 0 && target_port(o) == port)
            return n;
    }
    return NULL;
}

static bool port_free(struct cp *cp, json_int_t port, const char *name)
{
    const char *n;
    json_t *o;

    json_object_foreach(cp->objs[CP_KIND_IMPORT], n, o)
    {
        if (strcmp(n, name) != 0 && target_port(o) == port)
            return false;
    }
    return true;
}

/*
 * Sets spec.targetPort, the port the dataplane listens on. Outside Kubernetes it is the
 * import's port. In Kubernetes mode the Service maps port -> targetPort: a given targetPort is
 * used as is; 0 or none keeps the import's previous allocation, or takes the lowest free port
 * of the range, persisted before the API answers. Returns 0, or fills out (400/409/500).
 */
static int assign_target_port(struct cp *cp, json_t *obj, const char *name, json_int_t given,
                              struct cp_http_resp *out)
{
    json_t *spec = json_object_get(obj, "spec");
    json_int_t port = json_integer_value(json_object_get(spec, "port")), t = given;

    if (!cp->k8s) {
        if (given != 0 && given != port) {
            error(out, 400, "spec.targetPort",
                  "must be 0 or equal to spec.port outside Kubernetes mode (the dataplane "
                  "listens on the import's port)");
            return -1;
        }
        json_object_set_new(spec, "targetPort", json_integer(port));
        return 0;
    }
    if (t == 0) {
        json_t *prev = json_object_get(cp->objs[CP_KIND_PORT], name);
        if (prev != NULL && port_free(cp, json_integer_value(prev), name))
            t = json_integer_value(prev);
        for (json_int_t p = cp->port_lo; t == 0 && p <= cp->port_hi; p++) {
            if (port_free(cp, p, name))
                t = p;
        }
        if (t == 0) {
            error(out, 409, "spec.targetPort", "no free target port left in %u-%u", cp->port_lo,
                  cp->port_hi);
            return -1;
        }
        json_t *v = json_integer(t);
        int rc = cp_store_put(cp->store, CP_KIND_PORT, name, v);
        if (rc == 0)
            json_object_set(cp->objs[CP_KIND_PORT], name, v);
        json_decref(v);
        if (rc != 0) {
            store_error(cp, out, "store the allocated port", rc);
            return -1;
        }
    }
    json_object_set_new(spec, "targetPort", json_integer(t));
    return 0;
}

static void handle_objects(struct cp *cp, const char *method, enum cp_kind k, const char *name,
                           const char *body, size_t bodylen, struct cp_http_resp *out)
{
    json_t *all = cp->objs[k], *obj;
    struct cl_jerr e = {{0}, {0}};
    int rc;

    if (name == NULL && strcmp(method, "GET") == 0) {
        json_t *list = json_array();
        const char *n;
        json_object_foreach(all, n, obj)
        {
            json_array_append_new(list, present(cp, k, n, obj));
        }
        respond(out, 200, list);
        return;
    }
    if (name == NULL && strcmp(method, "POST") != 0) {
        error(out, 405, NULL, "method %s not allowed on /api/v1/%s", method, cp_kind_name(k));
        return;
    }
    if (name != NULL && strcmp(method, "GET") == 0) {
        if ((obj = json_object_get(all, name)) == NULL)
            error(out, 404, NULL, "%s %s not found", cp_kind_one(k), name);
        else
            respond(out, 200, present(cp, k, name, obj));
        return;
    }
    if (name != NULL && strcmp(method, "DELETE") == 0) {
        if (json_object_get(all, name) == NULL) {
            error(out, 404, NULL, "%s %s not found", cp_kind_one(k), name);
            return;
        }
        if ((rc = cp_state_del(cp, k, name)) != 0) {
            char what[96];
            snprintf(what, sizeof(what), "delete %s %s", cp_kind_one(k), name);
            store_error(cp, out, what, rc);
            return;
        }
        if (k == CP_KIND_IMPORT && json_object_get(cp->objs[CP_KIND_PORT], name) != NULL) {
            cp_store_del(cp->store, CP_KIND_PORT, name); /* its allocation is released */
            json_object_del(cp->objs[CP_KIND_PORT], name);
        }
        respond(out, 204, NULL);
        return;
    }
    if (!(name == NULL && strcmp(method, "POST") == 0) &&
        !(name != NULL && strcmp(method, "PUT") == 0)) {
        error(out, 405, NULL, "method %s not allowed here", method);
        return;
    }
    if ((obj = cl_json_loadb(body, bodylen, &e)) == NULL) {
        error(out, 400, e.field, "%s", e.msg);
        return;
    }
    if (cp_model_validate(k, obj, &e) != 0) {
        error(out, 400, e.field, "%s", e.msg);
        json_decref(obj);
        return;
    }
    const char *oname = cp_model_name(obj);
    if (name != NULL && strcmp(oname, name) != 0) {
        error(out, 400, "metadata.name", "must match the name in the path (%s)", name);
        json_decref(obj);
        return;
    }
    bool exists = json_object_get(all, oname) != NULL;
    if (name == NULL && exists) {
        error(out, 409, "metadata.name", "%s %s already exists", cp_kind_one(k), oname);
        json_decref(obj);
        return;
    }
    if (name != NULL && !exists) {
        error(out, 404, NULL, "%s %s not found", cp_kind_one(k), name);
        json_decref(obj);
        return;
    }
    json_int_t given = target_port(obj);
    cp_model_defaults(k, obj);
    const char *other;
    if (k == CP_KIND_IMPORT && assign_target_port(cp, obj, oname, given, out) != 0) {
        json_decref(obj);
        return;
    }
    if (k == CP_KIND_IMPORT && (other = port_taken(cp, obj, oname)) != NULL) {
        error(out, 409, cp->k8s ? "spec.targetPort" : "spec.port",
              "port %lld is already the listen port of import %s", (long long)target_port(obj),
              other);
        json_decref(obj);
        return;
    }
    char nm[64];
    snprintf(nm, sizeof(nm), "%s", oname);
    rc = cp_state_put(cp, k, nm, obj);
    json_decref(obj);
    if (rc != 0) {
        char what[96];
        snprintf(what, sizeof(what), "store %s %s", cp_kind_one(k), nm);
        store_error(cp, out, what, rc);
    } else
        respond(out, name == NULL ? 201 : 204, NULL);
}

/* A Unix time as RFC 3339 UTC, for any year gmtime can give. */
static void fmt_time(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, n, "%lld", (long long)t);
}

/* A certificate's status entry: its validity and fingerprint when known, and why replaced
 * files were refused ("" when they were not). */
static json_t *cert_entry(bool have, int64_t not_before, int64_t not_after, const char *sha256,
                          const char *reload_error)
{
    char nb[40], na[40];

    if (!have)
        return json_pack("{s:s}", "reloadError", reload_error);
    fmt_time(not_before, nb, sizeof(nb));
    fmt_time(not_after, na, sizeof(na));
    return json_pack("{s:s,s:s,s:s,s:s}", "notBefore", nb, "notAfter", na, "sha256", sha256,
                     "reloadError", reload_error);
}

/* The certificate the controlplane presents to peers (the same files as the dataplane's). */
static json_t *certificate_status(struct cp *cp)
{
    const struct cl_tls_cert_info *ci = cp->tls != NULL ? cl_tls_ctx_cert_info(cp->tls) : NULL;

    if (ci == NULL)
        return cert_entry(false, 0, 0, "", cp->cert_error);
    return cert_entry(ci->have, ci->not_before, ci->not_after, ci->sha256, cp->cert_error);
}

/* Each worker with the certificate its public port presents, as its last STATS had it (IPC
 * version 2; a worker of version 1 reports none), dates formatted like the controlplane's. */
static json_t *workers_status(struct cp *cp)
{
    json_t *a = cp_ipc_workers(cp->ipc), *w;
    size_t i;

    json_array_foreach(a, i, w)
    {
        json_t *c = json_object_get(w, "certificate");
        if (c == NULL)
            continue;
        const char *sha = json_string_value(json_object_get(c, "sha256"));
        json_object_set_new(
            w, "certificate",
            cert_entry(sha != NULL, json_integer_value(json_object_get(c, "notBefore")),
                       json_integer_value(json_object_get(c, "notAfter")), sha != NULL ? sha : "",
                       json_string_value(json_object_get(c, "reloadError"))));
    }
    return a;
}

static json_t *status_body(struct cp *cp)
{
    json_t *peers = json_array();
    const char *n;
    json_t *o;

    json_object_foreach(cp->objs[CP_KIND_PEER], n, o)
    {
        json_t *e = json_pack("{s:s,s:n}", "name", n, "reachable");
        json_object_update(e, json_object_get(cp->peer_status, n)); /* reachable, since, ... */
        json_array_append_new(peers, e);
    }
    json_t *b = json_pack(
        "{s:s,s:s,s:I,s:I,s:o,s:o,s:O,s:{s:i,s:i,s:i,s:i}}", "name", cp->name, "version",
        CL_VERSION, "uptimeSeconds", (json_int_t)((cl_now_ms() - cp->started_ms) / 1000),
        "revision", (json_int_t)cp->revision, "workers", workers_status(cp), "peers", peers,
        "counters", cp->counters, "objects", "peers", (int)json_object_size(cp->objs[CP_KIND_PEER]),
        "exports", (int)json_object_size(cp->objs[CP_KIND_EXPORT]), "imports",
        (int)json_object_size(cp->objs[CP_KIND_IMPORT]), "policies",
        (int)json_object_size(cp->objs[CP_KIND_POLICY]));
    if (b != NULL)
        json_object_set_new(b, "certificate", certificate_status(cp));
    if (b != NULL && cp->kube != NULL)
        json_object_set_new(b, "kubernetes", cp_k8s_summary(cp->kube));
    return b;
}

/* Exports the calling peer would be allowed to reach (ingress policy evaluated for it). */
static json_t *peer_exports(struct cp *cp, const char *peer)
{
    json_t *list = json_array(), *from = json_pack("{s:s}", CP_ATTR_PEER_NAME, peer);
    const char *n;
    json_t *o;

    json_object_foreach(cp->objs[CP_KIND_EXPORT], n, o)
    {
        struct cp_decision d;
        json_t *to = json_pack("{s:s,s:s}", CP_ATTR_EXPORT_NAME, n, CP_ATTR_EXPORT_NS, "");
        cp_policy_decide(cp->objs[CP_KIND_POLICY], from, to, &d);
        if (d.allow)
            json_array_append_new(list, json_pack("{s:{s:s}}", "metadata", "name", n));
        json_decref(to);
    }
    json_decref(from);
    return list;
}

void cp_api_handle(struct cp *cp, const char *method, const char *path, const char *identity,
                   const char *body, size_t bodylen, struct cp_http_resp *out)
{
    static const char prefix[] = "/api/v1/";
    const char *rest, *slash, *q;
    char p[512];
    enum cp_kind k;

    out->body = NULL;
    out->text = NULL;
    out->content_type = NULL;
    if (path != NULL && strlen(path) >= sizeof(p)) { /* as the dataplane: never cut short */
        error(out, 414, NULL, "request path longer than %zu bytes", sizeof(p) - 1);
        return;
    }
    snprintf(p, sizeof(p), "%s", path != NULL ? path : "");
    if ((q = strchr(p, '?')) != NULL)
        p[q - p] = '\0';
    if (strncmp(p, prefix, sizeof(prefix) - 1) != 0) {
        error(out, 404, NULL, "no such path: %s", p);
        return;
    }
    rest = p + sizeof(prefix) - 1;
    if (strncmp(rest, "peer/", 5) == 0) {
        if (identity == NULL || json_object_get(cp->objs[CP_KIND_PEER], identity) == NULL) {
            error(out, 403, NULL, "caller %s is not a known peer of %s",
                  identity != NULL ? identity : "(none)", cp->name);
            return;
        }
        if (strcmp(method, "GET") != 0) {
            error(out, 405, NULL, "method %s not allowed here", method);
        } else if (strcmp(rest, "peer/health") == 0) {
            respond(out, 200,
                    json_pack("{s:s,s:s,s:{}}", "name", cp->name, "version", CL_VERSION, "labels"));
        } else if (strcmp(rest, "peer/exports") == 0) {
            respond(out, 200, peer_exports(cp, identity));
        } else {
            error(out, 404, NULL, "no such path: %s", p);
        }
        return;
    }
    if (!is_admin(cp, identity)) {
        error(out, 403, NULL, "caller %s may not use the management API of %s",
              identity != NULL ? identity : "(none)", cp->name);
        return;
    }
    if (strcmp(rest, "status") == 0) {
        if (strcmp(method, "GET") != 0)
            error(out, 405, NULL, "method %s not allowed here", method);
        else
            respond(out, 200, status_body(cp));
        return;
    }
    if (strcmp(rest, "metrics") == 0) {
        if (strcmp(method, "GET") != 0) {
            error(out, 405, NULL, "method %s not allowed here", method);
        } else if ((out->text = cp_metrics_text(cp)) == NULL) {
            error(out, 503, NULL, "out of memory");
        } else {
            out->status = 200;
            out->content_type = "text/plain; version=0.0.4; charset=utf-8";
        }
        return;
    }
    slash = strchr(rest, '/');
    if (kind_from(rest, slash != NULL ? (size_t)(slash - rest) : strlen(rest), &k) != 0) {
        error(out, 404, NULL, "no such path: %s", p);
        return;
    }
    if (slash != NULL && (slash[1] == '\0' || strchr(slash + 1, '/') != NULL)) {
        error(out, 404, NULL, "no such path: %s", p);
        return;
    }
    handle_objects(cp, method, k, slash != NULL ? slash + 1 : NULL, body, bodylen, out);
}
