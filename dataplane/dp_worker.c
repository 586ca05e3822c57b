/* One worker process: IPC with the controlplane, configuration, listeners, stats, drain. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/sockaddr.h"
#include "cl/uvx.h"
#include "dp.h"

struct dp_worker *dp_w;

#define IPC_BACKOFF_MIN 50
#define IPC_BACKOFF_MAX 2000

/* ---- counters -------------------------------------------------------------------------- */

json_int_t dp_config_revision(void)
{
    return dp_w->config != NULL ? json_integer_value(json_object_get(dp_w->config, "revision"))
                                : -1;
}

json_t *dp_counter(const char *group, const char *name, const char *key)
{
    json_t *g, *o, *c;

    if (name == NULL || name[0] == '\0')
        return NULL;
    g = json_object_get(dp_w->stats, group);
    if ((o = json_object_get(g, name)) == NULL) {
        o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "open", (json_int_t)0, "total",
                      (json_int_t)0, "bytesIn", (json_int_t)0, "bytesOut", (json_int_t)0, "denied",
                      (json_int_t)0, "errors", (json_int_t)0, "idleClosed", (json_int_t)0);
        if (o == NULL || json_object_set_new(g, name, o) != 0)
            return NULL;
    }
    if ((c = json_object_get(o, key)) == NULL) {
        if (json_object_set_new(o, key, json_integer(0)) != 0)
            return NULL;
        c = json_object_get(o, key);
    }
    return c;
}

void dp_count(const char *group, const char *name, const char *key, int64_t delta)
{
    dp_counter_add(dp_counter(group, name, key), delta);
}

/* STATS.certificate: what the public port presents (its peers see the server context). */
static json_t *certificate_stats(void)
{
    const struct cl_tls_cert_info *ci = cl_tls_ctx_cert_info(dp_w->srv_tls);

    if (!ci->have)
        return json_pack("{s:s}", "reloadError", dp_w->cert_error);
    return json_pack("{s:s,s:I,s:I,s:s}", "sha256", ci->sha256, "notBefore",
                     (json_int_t)ci->not_before, "notAfter", (json_int_t)ci->not_after,
                     "reloadError", dp_w->cert_error);
}

static void on_stats_timer(uv_timer_t *t)
{
    json_t *b;

    (void)t;
    if (!dp_w->ipc_up || cl_ipc_conn_queued(dp_w->ipc) > (1u << 20))
        return;
    b = json_deep_copy(dp_w->stats);
    json_object_set_new(b, "worker", json_integer(dp_w->o.worker_id));
    if (dp_w->ipc_version >= 2)
        json_object_set_new(b, "certificate", certificate_stats());
    cl_ipc_send(dp_w->ipc, CL_IPC_STATS, 0, 0, b);
    json_decref(b);
}

void dp_peer_event(const char *peer, const char *gateway, const char *event, int status,
                   const char *error)
{
    json_t *b;

    dp_egress_forget();
    if (!dp_w->ipc_up)
        return;
    b = json_pack("{s:s,s:s,s:s,s:i,s:s}", "peer", peer, "gateway", gateway, "event", event,
                  "status", status, "error", error != NULL ? error : "");
    cl_ipc_send(dp_w->ipc, CL_IPC_PEER_EVENT, 0, 0, b);
    json_decref(b);
}

/* ---- import listeners ------------------------------------------------------------------ */

static void on_import_close(uv_handle_t *h)
{
    cl_mem_free(CL_CONTAINER_OF((uv_tcp_t *)h, struct dp_import, tcp));
}

static void import_close(struct dp_import *imp)
{
    cl_list_remove(&imp->link);
    imp->closing = true;
    uv_close((uv_handle_t *)&imp->tcp, on_import_close);
}

static void import_open(const char *name, int port)
{
    struct sockaddr_storage ss;
    struct dp_import *imp;
    int rc;

    if (cl_sockaddr_from_ip(dp_w->o.import_bind, (uint16_t)port, &ss) != 0)
        return;
    if ((imp = cl_calloc(1, sizeof(*imp))) == NULL)
        return;
    snprintf(imp->name, sizeof(imp->name), "%s", name);
    imp->port = port;
    uv_tcp_init(dp_w->loop, &imp->tcp);
    if ((rc = cl_uv_listen_reuseport(&imp->tcp, (struct sockaddr *)&ss, 1024,
                                     dp_egress_on_accept)) != 0) {
        CL_WARN("dp.worker", "import %s: cannot listen on %s:%d: %s", name, dp_w->o.import_bind,
                port, uv_strerror(rc));
        uv_close((uv_handle_t *)&imp->tcp, on_import_close);
        return;
    }
    cl_list_insert_tail(&dp_w->imports, &imp->link);
    CL_INFO("dp.worker", "import %s listening on %s:%d", name, dp_w->o.import_bind, port);
}

/* Opens listeners for new imports, closes those of removed ones; others are untouched. */
static void apply_imports(const json_t *imports)
{
    struct cl_list *pos, *tmp;
    json_t *imp;
    size_t i;

    cl_list_foreach_safe(pos, tmp, &dp_w->imports)
    {
        struct dp_import *d = CL_CONTAINER_OF(pos, struct dp_import, link);
        bool keep = false;
        json_array_foreach(imports, i, imp)
        {
            if (strcmp(json_string_value(json_object_get(imp, "name")), d->name) == 0 &&
                json_integer_value(json_object_get(imp, "listenPort")) == d->port)
                keep = true;
        }
        if (!keep) {
            CL_INFO("dp.worker", "import %s: closing listener on port %d", d->name, d->port);
            import_close(d);
        }
    }
    json_array_foreach(imports, i, imp)
    {
        const char *name = json_string_value(json_object_get(imp, "name"));
        int port = (int)json_integer_value(json_object_get(imp, "listenPort"));
        bool have = false;
        cl_list_foreach_safe(pos, tmp, &dp_w->imports)
        {
            struct dp_import *d = CL_CONTAINER_OF(pos, struct dp_import, link);
            if (strcmp(d->name, name) == 0 && d->port == port)
                have = true;
        }
        if (!have && name != NULL && port > 0 && port <= 65535 && !dp_w->draining)
            import_open(name, port);
    }
}

/* ---- IPC ------------------------------------------------------------------------------- */

static void ipc_connect(void);

/* Replaces the element named like `v` in `list`, or appends it. */
static void upsert(json_t *list, json_t *v)
{
    const char *name = json_string_value(json_object_get(v, "name"));
    size_t i;
    json_t *x;

    json_array_foreach(list, i, x)
    {
        if (strcmp(json_string_value(json_object_get(x, "name")), name) == 0) {
            json_array_set(list, i, v);
            return;
        }
    }
    json_array_append(list, v);
}

static void remove_named(json_t *list, const char *name)
{
    size_t i;
    json_t *x;

    json_array_foreach(list, i, x)
    {
        if (strcmp(json_string_value(json_object_get(x, "name")), name) == 0) {
            json_array_remove(list, i);
            return;
        }
    }
}

static void apply_delta(struct cl_ipc_conn *c, const json_t *d)
{
    static const char *const groups[] = {"peers", "imports", "exports"};
    json_int_t base = json_integer_value(json_object_get(d, "base"));
    json_t *rev = json_object_get(d, "revision"), *ack;

    if (dp_w->config == NULL ||
        json_integer_value(json_object_get(dp_w->config, "revision")) != base) {
        CL_INFO("dp.worker", "config delta for revision %lld does not follow ours: resync",
                (long long)base);
        cl_ipc_send(c, CL_IPC_RESYNC, 0, 0, NULL);
        return;
    }
    for (size_t g = 0; g < 3; g++) {
        json_t *list = json_object_get(dp_w->config, groups[g]), *v;
        size_t i;
        json_array_foreach(json_object_get(json_object_get(d, "upsert"), groups[g]), i, v)
        {
            upsert(list, v);
        }
        json_array_foreach(json_object_get(json_object_get(d, "delete"), groups[g]), i, v)
        {
            remove_named(list, json_string_value(v));
        }
    }
    json_object_set(dp_w->config, "revision", rev);
    apply_imports(json_object_get(dp_w->config, "imports"));
    CL_DEBUG("dp.worker", "applied config delta to revision %lld",
             (long long)json_integer_value(rev));
    ack = json_pack("{s:O}", "revision", rev);
    cl_ipc_send(c, CL_IPC_ACK, 0, 0, ack);
    json_decref(ack);
}

/*
 * Tells the master this worker is ready, once: when its first CONFIG is applied, or when the
 * controlplane turned out to be unreachable (the worker then serves what needs no configuration
 * and answers 503 where a decision needs the controlplane). Saying it on listening alone made a
 * freshly started gateway look ready while its REST relay still answered "controlplane
 * unavailable" for the few milliseconds the first IPC round trip takes.
 */
static void report_ready(const char *why)
{
    static bool done;

    if (done)
        return;
    done = true;
    if (write(STDOUT_FILENO, "ready\n", 6) != 6)
        CL_WARN("dp.worker", "cannot report readiness to the master");
    CL_DEBUG("dp.worker", "ready: %s", why);
}

static void on_ipc_msg(struct cl_ipc_conn *c, const struct cl_ipc_msg *m, void *ud)
{
    (void)ud;
    if (m->type == CL_IPC_CONFIG_DELTA) {
        apply_delta(c, m->body);
        return;
    }
    if (m->type == CL_IPC_CONFIG) {
        json_t *rev = json_object_get(m->body, "revision");
        json_t *imports = json_object_get(m->body, "imports");
        if (!json_is_integer(rev) || !json_is_array(imports)) {
            CL_WARN("dp.worker", "ignoring a malformed CONFIG");
            return;
        }
        json_decref(dp_w->config);
        dp_w->config = json_deep_copy(m->body); /* ours to edit with deltas */
        apply_imports(imports);
        CL_DEBUG("dp.worker", "applied config revision %lld", (long long)json_integer_value(rev));
        json_t *ack = json_pack("{s:O}", "revision", rev);
        cl_ipc_send(c, CL_IPC_ACK, 0, 0, ack);
        json_decref(ack);
        report_ready("configured");
    }
}

static void send_hello(struct cl_ipc_conn *c);

static void on_welcome(int err, const struct cl_ipc_msg *m, void *ud)
{
    (void)ud;
    if (err == CL_EVERSION && dp_w->ipc_version > CL_IPC_VERSION_MIN && dp_w->ipc != NULL) {
        /* an older controlplane (a rolling upgrade): offer the version before */
        dp_w->ipc_version--;
        CL_INFO("dp.worker", "controlplane refused IPC version %d, offering %d",
                dp_w->ipc_version + 1, dp_w->ipc_version);
        send_hello(dp_w->ipc);
        return;
    }
    if (err != 0) {
        CL_WARN("dp.worker", "controlplane refused HELLO: %s", cl_strerror(err));
        if (dp_w->ipc != NULL)
            cl_ipc_conn_close(dp_w->ipc, err);
        return;
    }
    json_int_t v = json_integer_value(json_object_get(m->body, "version"));
    if (v < CL_IPC_VERSION_MIN || v > dp_w->ipc_version) {
        CL_WARN("dp.worker", "controlplane answered HELLO with IPC version %lld, we offered %d",
                (long long)v, dp_w->ipc_version);
        cl_ipc_conn_close(dp_w->ipc, CL_EVERSION);
        return;
    }
    dp_w->ipc_version = (int)v;
    dp_w->ipc_up = true;
    dp_w->ipc_backoff = IPC_BACKOFF_MIN;
    CL_INFO("dp.worker", "connected to the controlplane (IPC version %d)", dp_w->ipc_version);
}

static void send_hello(struct cl_ipc_conn *c)
{
    json_t *hello = json_pack("{s:i,s:i,s:i}", "version", dp_w->ipc_version, "worker",
                              dp_w->o.worker_id, "pid", (int)getpid());

    cl_ipc_request(c, CL_IPC_HELLO, hello, 5000, on_welcome, NULL);
    json_decref(hello);
}

static void on_ipc_connect(struct cl_ipc_conn *c, int err, void *ud)
{
    (void)ud;
    if (err != 0)
        return;                         /* on_close follows */
    dp_w->ipc_version = CL_IPC_VERSION; /* each connection starts from the newest */
    send_hello(c);
}

static void on_ipc_timer(uv_timer_t *t)
{
    (void)t;
    ipc_connect();
}

static void on_ipc_close(struct cl_ipc_conn *c, int err, void *ud)
{
    (void)c;
    (void)ud;
    if (dp_w->ipc_up)
        CL_WARN("dp.worker",
                "controlplane connection lost (%s); serving with the last "
                "configuration",
                cl_strerror(err));
    dp_w->ipc_up = false;
    dp_w->ipc = NULL;
    report_ready("no controlplane yet");
    if (dp_w->draining)
        return;
    uv_timer_start(&dp_w->ipc_timer, on_ipc_timer, dp_w->ipc_backoff, 0);
    dp_w->ipc_backoff =
        dp_w->ipc_backoff * 2 > IPC_BACKOFF_MAX ? IPC_BACKOFF_MAX : dp_w->ipc_backoff * 2;
}

static const struct cl_ipc_conn_cbs ipc_cbs = {
    .on_connect = on_ipc_connect,
    .on_msg = on_ipc_msg,
    .on_close = on_ipc_close,
};

static void ipc_connect(void)
{
    if (cl_ipc_conn_new(dp_w->loop, &ipc_cbs, NULL, &dp_w->ipc) != 0) {
        uv_timer_start(&dp_w->ipc_timer, on_ipc_timer, IPC_BACKOFF_MAX, 0);
        return;
    }
    cl_ipc_conn_connect(dp_w->ipc, dp_w->o.socket);
}

/* ---- certificate files ------------------------------------------------------------------ */

/*
 * Picks up replaced --cert/--key/--ca files. Connections made before keep their material, but
 * take no new streams (GOAWAY, both the pool and the public port's): the tunnels they carry
 * finish, and what comes next is dialled and verified with the new files, so a CA taken out of
 * the bundle stops admitting anything new at once (a connection still in its handshake at that
 * moment finishes it with the old files, then cl_h2conn retires it as soon as it is ready,
 * see cl_tls_is_stale). A set of files that cannot be used (a
 * certificate without its matching key, mid-rotation) is reported once in the log, and in
 * STATS (so `gwctl status`) until files that can be used replace it; the old material keeps
 * serving; the next change is tried again.
 */
static void on_cert_timer(uv_timer_t *t)
{
    char serr[320] = "", cerr[320] = "";
    int s, c;

    (void)t;
    if (dp_w->draining)
        return;
    s = cl_tls_ctx_reload(dp_w->srv_tls, serr, sizeof(serr));
    c = cl_tls_ctx_reload(dp_w->cli_tls, cerr, sizeof(cerr));
    if (s < 0 || c < 0) {
        CL_WARN("dp.worker",
                "certificate files changed but cannot be used, still using the "
                "previous ones: %s",
                s < 0 ? serr : cerr);
        snprintf(dp_w->cert_error, sizeof(dp_w->cert_error), "%s", s < 0 ? serr : cerr);
    } else if (s == 1 || c == 1)
        dp_w->cert_error[0] = '\0'; /* files that can be used replace the refused ones */
    if (s == 1 || c == 1) {
        CL_INFO("dp.worker", "certificate files reloaded: new connections use them; older ones "
                             "take no new streams");
        dp_pool_retire();
        dp_ingress_retire();
    }
}

/* ---- drain ----------------------------------------------------------------------------- */

static void on_drain_timer(uv_timer_t *t)
{
    struct cl_list *pos, *tmp;

    (void)t;
    CL_INFO("dp.worker", "drain deadline: aborting the remaining tunnels");
    cl_list_foreach_safe(pos, tmp, &dp_w->tunnels)
    {
        dp_tunnel_abort(CL_CONTAINER_OF(pos, struct dp_tunnel, link), CL_ECLOSED);
    }
    exit(0);
}

static void on_drain_check(uv_timer_t *t)
{
    (void)t;
    if (cl_list_is_empty(&dp_w->tunnels)) {
        uv_stop(dp_w->loop);
    }
}

static uv_timer_t drain_check;

static void on_sigterm(uv_signal_t *s, int signum)
{
    struct cl_list *pos, *tmp;

    (void)signum;
    if (dp_w->draining)
        return;
    dp_w->draining = true;
    CL_INFO("dp.worker", "draining: no new connections");
    uv_signal_stop(s);
    uv_close((uv_handle_t *)&dp_w->public_tcp, NULL);
    cl_list_foreach_safe(pos, tmp, &dp_w->imports)
    {
        import_close(CL_CONTAINER_OF(pos, struct dp_import, link));
    }
    dp_ingress_shutdown();
    uv_timer_start(&dp_w->drain_timer, on_drain_timer, dp_w->o.drain_ms, 0);
    uv_timer_start(&drain_check, on_drain_check, 0, 50);
}

int dp_worker_run(const struct dp_opts *o)
{
    static struct dp_worker w;
    struct sockaddr_storage ss;
    char err[256];
    int rc;

    dp_w = &w;
    w.loop = uv_default_loop();
    w.o = *o;
    w.ipc_backoff = IPC_BACKOFF_MIN;
    w.stats = json_pack("{s:{},s:{},s:{}}", "imports", "exports", "peers");
    cl_list_init(&w.imports);
    cl_list_init(&w.pool);
    cl_list_init(&w.servers);
    cl_list_init(&w.tunnels);
    dp_refs_init(&w.refs);
    dp_xprt_sched_init(&w.xsched, w.loop);
    struct cl_tls_ctx_opts so = {
        .server = true, .cert_file = o->cert, .key_file = o->key, .ca_file = o->ca};
    struct cl_tls_ctx_opts co = so;
    co.server = false;
    if ((rc = cl_tls_ctx_new(&so, &w.srv_tls, err, sizeof(err))) != 0 ||
        (rc = cl_tls_ctx_new(&co, &w.cli_tls, err, sizeof(err))) != 0) {
        fprintf(stderr, "cl-dataplane: %s\n", err);
        return 1;
    }
    if (cl_sockaddr_from_ip(o->listen_host, o->listen_port, &ss) != 0) {
        fprintf(stderr, "cl-dataplane: bad listen address %s\n", o->listen_host);
        return 1;
    }
    uv_tcp_init(w.loop, &w.public_tcp);
    if ((rc = cl_uv_listen_reuseport(&w.public_tcp, (struct sockaddr *)&ss, 4096,
                                     dp_ingress_on_accept)) != 0) {
        fprintf(stderr, "cl-dataplane: cannot listen on %s:%u: %s\n", o->listen_host,
                o->listen_port, uv_strerror(rc));
        return 1;
    }
    uv_timer_init(w.loop, &w.ipc_timer);
    uv_timer_init(w.loop, &w.stats_timer);
    uv_timer_init(w.loop, &w.drain_timer);
    uv_timer_init(w.loop, &drain_check);
    uv_timer_start(&w.stats_timer, on_stats_timer, 1000, 1000);
    uv_timer_init(w.loop, &w.cert_timer);
    if (o->cert_check_ms > 0)
        uv_timer_start(&w.cert_timer, on_cert_timer, o->cert_check_ms, o->cert_check_ms);
    uv_signal_init(w.loop, &w.sigterm);
    uv_signal_start(&w.sigterm, on_sigterm, SIGTERM);
    ipc_connect(); /* report_ready() follows its outcome */
    CL_INFO("dp.worker", "listening on %s:%u", o->listen_host, o->listen_port);
    uv_run(w.loop, UV_RUN_DEFAULT);
    CL_INFO("dp.worker", "drained, exiting");
    return 0;
}
