/* Workers: accept on the Unix socket, HELLO/WELCOME, CONFIG pushes, authz, REST relay, STATS. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl/err.h"
#include "cl/ipc.h"
#include "cl/list.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cp.h"

/* How many workers whose connection closed keep their totals apart, so that one that comes
 * back takes its own back; older ones are summed into one (a restart loop must not grow memory). */
#define CP_GONE_MAX 64

struct worker {
    struct cl_list link;
    int refs; /* the connection, plus one per deferred reply in flight */
    struct cp_ipc *ipc;
    struct cl_ipc_conn *conn;
    long long id;
    long long pid;
    uint64_t acked;
    uint64_t sent; /* revision of the last CONFIG / CONFIG_DELTA sent */
    int version;   /* IPC version agreed in HELLO / WELCOME */
    json_t *cert;  /* STATS.certificate as last reported (version 2), or NULL */
    json_t *stats; /* the last STATS body, or NULL before the first */
    bool hello;
};

struct cp_ipc {
    struct cp *cp;
    uv_pipe_t server;
    struct cl_list workers;
    bool stopping;
};

static void send_config(struct worker *w)
{
    json_t *snap = cp_state_snapshot(w->ipc->cp);

    if (cl_ipc_send(w->conn, CL_IPC_CONFIG, 0, 0, snap) != 0)
        CL_WARN("cp.ipc", "worker=%lld cannot send CONFIG", w->id);
    w->sent = w->ipc->cp->revision;
    json_decref(snap);
}

/* Adds one worker's counters (a STATS body, or gone_folded) into tot. The tunnels of a worker
 * that is gone are gone with it, so its "open" counts as 0; its totals stay, so that a gateway's
 * totals never go down when a worker is restarted. */
static void add_counters(json_t *tot, const json_t *ws, bool gone)
{
    static const char *const groups[] = {"imports", "exports", "peers"};
    const char *name, *key;
    json_t *obj, *val;

    for (size_t g = 0; g < 3; g++) {
        json_t *dst = json_object_get(tot, groups[g]);
        json_object_foreach(json_object_get(ws, groups[g]), name, obj)
        {
            json_t *d = json_object_get(dst, name);
            if (d == NULL) {
                d = json_object();
                json_object_set_new(dst, name, d);
            }
            json_object_foreach(obj, key, val)
            {
                json_int_t cur = json_integer_value(json_object_get(d, key));
                json_int_t add = gone && strcmp(key, "open") == 0 ? 0 : json_integer_value(val);
                json_object_set_new(d, key, json_integer(cur + add));
            }
        }
    }
}

/* cp->counters: the workers connected now, those whose connection closed, and those folded. */
static void sum_counters(struct cp *cp)
{
    json_t *tot = json_pack("{s:{},s:{},s:{}}", "imports", "exports", "peers");
    struct cl_list *pos, *tmp;
    const char *key;
    json_t *ws;

    add_counters(tot, cp->gone_folded, true);
    json_object_foreach(cp->gone_stats, key, ws)
    {
        add_counters(tot, ws, true);
    }
    if (cp->ipc != NULL) {
        cl_list_foreach_safe(pos, tmp, &cp->ipc->workers)
        {
            struct worker *w = CL_CONTAINER_OF(pos, struct worker, link);
            if (w->stats != NULL)
                add_counters(tot, w->stats, false);
        }
    }
    json_decref(cp->counters);
    cp->counters = tot;
}

/* A worker is known by its process and its number, so that two dataplanes on one socket, or a
 * restarted worker that got its predecessor's number, never take each other's counters. */
static void gone_key(const struct worker *w, char *key, size_t size)
{
    snprintf(key, size, "%lld/%lld", w->pid, w->id);
}

/* The worker's connection closed: keep its last totals. A worker that reconnects (the same
 * process) takes them back in HELLO; past CP_GONE_MAX the oldest are folded into one sum. */
static void retire_stats(struct cp *cp, struct worker *w)
{
    char key[48];

    gone_key(w, key, sizeof(key));
    json_object_set_new(cp->gone_stats, key, w->stats);
    w->stats = NULL;
    while (json_object_size(cp->gone_stats) > CP_GONE_MAX) {
        void *it = json_object_iter(cp->gone_stats); /* jansson keeps insertion order */
        add_counters(cp->gone_folded, json_object_iter_value(it), true);
        json_object_del(cp->gone_stats, json_object_iter_key(it));
    }
    sum_counters(cp);
}

static void revive_stats(struct cp *cp, struct worker *w)
{
    char key[48];

    gone_key(w, key, sizeof(key));
    json_decref(w->stats);
    w->stats = json_incref(json_object_get(cp->gone_stats, key));
    json_object_del(cp->gone_stats, key);
    sum_counters(cp);
}

static void worker_unref(struct worker *w)
{
    if (--w->refs == 0) {
        json_decref(w->cert);
        json_decref(w->stats);
        cl_mem_free(w);
    }
}

/* A REST answer that needs another gateway: the reply is sent when it arrives. */
struct deferred {
    struct worker *w;
    uint32_t req_id;
    char peer[64];
};

static void send_http(struct worker *w, uint32_t req_id, int status, const char *body)
{
    struct cl_ipc_msg req = {.type = CL_IPC_HTTP_REQUEST, .req_id = req_id};
    json_t *r = json_pack("{s:i,s:s,s:s}", "status", status, "contentType", "application/json",
                          "body", body);

    if (w->conn != NULL)
        cl_ipc_reply(w->conn, &req, CL_IPC_HTTP_RESPONSE, r);
    json_decref(r);
}

/* Replaces every byte that is not printable ASCII: text from a peer goes into an admin's
 * terminal (no escape sequences) and into JSON (no invalid UTF-8). */
static void printable(char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
    }
}

static void on_remote_exports(int err, int status, const uint8_t *body, size_t len, void *ud)
{
    struct deferred *d = ud;
    struct cl_jerr je = {{0}, {0}};
    json_t *list = NULL, *e, *said;
    char msg[640];
    char *txt;

    if (err == 0 && status == 200 && (list = cp_model_remote_exports(body, len, &je)) != NULL &&
        (txt = cl_json_dumps(list)) != NULL) {
        send_http(d->w, d->req_id, 200, txt); /* as parsed: valid JSON whatever the peer sent */
        cl_mem_free(txt);
        goto out;
    }
    if (err != 0) {
        snprintf(msg, sizeof(msg), "peer %s did not answer: %s", d->peer, cl_strerror(err));
    } else if (status == 200 && list == NULL) {
        snprintf(msg, sizeof(msg), "peer %s sent a bad list of exports: %s%s%s", d->peer, je.field,
                 je.field[0] != '\0' ? ": " : "", je.msg);
    } else if (status == 200) {
        snprintf(msg, sizeof(msg), "out of memory");
    } else { /* the peer's own error message, if it sent one (a 403: it does not know us) */
        said = cl_json_loadb(body, len, NULL);
        const char *m =
            json_string_value(json_object_get(json_object_get(said, "error"), "message"));
        snprintf(msg, sizeof(msg), "peer %s answered HTTP %d%s%.200s", d->peer, status,
                 m != NULL ? ": " : "", m != NULL ? m : "");
        json_decref(said);
    }
    printable(msg);
    e = json_pack("{s:{s:s}}", "error", "message", msg);
    txt = cl_json_dumps(e);
    send_http(d->w, d->req_id, 502, txt != NULL ? txt : "{}");
    cl_mem_free(txt);
    json_decref(e);
out:
    json_decref(list);
    worker_unref(d->w);
    cl_mem_free(d);
}

/* GET /api/v1/peers/<name>/exports: what that peer lets us reach (its policy decides). */
static bool remote_exports(struct worker *w, const struct cl_ipc_msg *m)
{
    struct cp *cp = w->ipc->cp;
    const char *method = json_string_value(json_object_get(m->body, "method"));
    const char *path = json_string_value(json_object_get(m->body, "path"));
    const char *id = json_string_value(json_object_get(m->body, "identity"));
    static const char pre[] = "/api/v1/peers/", suf[] = "/exports";
    size_t plen = strlen(path), n;
    struct deferred *d;
    bool admin = false;

    if (strcmp(method, "GET") != 0 || strncmp(path, pre, sizeof(pre) - 1) != 0 ||
        plen <= sizeof(pre) - 1 + sizeof(suf) - 1 ||
        strcmp(path + plen - (sizeof(suf) - 1), suf) != 0)
        return false;
    n = plen - (sizeof(pre) - 1) - (sizeof(suf) - 1);
    for (size_t i = 0; i < cp->nadmins; i++)
        admin |= strcmp(cp->admins[i], id) == 0;
    if (!admin || n >= 64)
        return false; /* the regular handler answers 403 / 404 */
    if ((d = cl_calloc(1, sizeof(*d))) == NULL)
        return false;
    memcpy(d->peer, path + sizeof(pre) - 1, n);
    d->peer[n] = '\0';
    if (json_object_get(cp->objs[CP_KIND_PEER], d->peer) == NULL) {
        char body[160];
        snprintf(body, sizeof(body), "{\"error\":{\"message\":\"peer %s not found\"}}", d->peer);
        send_http(w, m->req_id, 404, body);
        cl_mem_free(d);
        return true;
    }
    d->w = w;
    d->req_id = m->req_id;
    w->refs++;
    int rc = cp_peers_fetch(cp->peers, d->peer, "/api/v1/peer/exports", 5000, on_remote_exports, d);
    if (rc != 0) {
        char body[256];
        snprintf(body, sizeof(body), "{\"error\":{\"message\":\"peer %s is not reachable now\"}}",
                 d->peer);
        send_http(w, m->req_id, 503, body);
        worker_unref(w);
        cl_mem_free(d);
    }
    return true;
}

static void on_msg(struct cl_ipc_conn *c, const struct cl_ipc_msg *m, void *ud)
{
    struct worker *w = ud;
    struct cp *cp = w->ipc->cp;
    json_t *reply = NULL;

    (void)c;
    if (!w->hello && m->type != CL_IPC_HELLO) {
        cl_ipc_reply_error(w->conn, m, CL_EVERSION, "HELLO first");
        return;
    }
    switch (m->type) {
    case CL_IPC_HELLO: {
        /* The worker offers the newest version it speaks; we answer with the newest both
         * speak. A worker older than we still accept is refused, and a newer worker that
         * meets an older controlplane retries with a lower version (PROTOCOL.md). */
        json_int_t v = json_integer_value(json_object_get(m->body, "version"));
        if (v < CL_IPC_VERSION_MIN) {
            CL_WARN("cp.ipc", "worker speaks IPC version %lld, we speak %d to %d", (long long)v,
                    CL_IPC_VERSION_MIN, CL_IPC_VERSION);
            cl_ipc_reply_error(w->conn, m, CL_EVERSION, "unsupported IPC version");
            return;
        }
        w->version = v < CL_IPC_VERSION ? (int)v : CL_IPC_VERSION;
        w->hello = true;
        w->id = json_integer_value(json_object_get(m->body, "worker"));
        w->pid = json_integer_value(json_object_get(m->body, "pid"));
        revive_stats(cp, w);
        reply = json_pack("{s:i,s:s}", "version", w->version, "name", cp->name);
        cl_ipc_reply(w->conn, m, CL_IPC_WELCOME, reply);
        CL_INFO("cp.ipc", "worker=%lld pid=%lld connected (IPC version %d)", w->id, w->pid,
                w->version);
        send_config(w);
        break;
    }
    case CL_IPC_RESYNC:
        send_config(w);
        break;
    case CL_IPC_ACK:
        w->acked = (uint64_t)json_integer_value(json_object_get(m->body, "revision"));
        break;
    case CL_IPC_AUTHZ_EGRESS:
        reply = cp_authz_egress(cp, m->body);
        cl_ipc_reply(w->conn, m, CL_IPC_AUTHZ_EGRESS, reply);
        break;
    case CL_IPC_AUTHZ_INGRESS:
        reply = cp_authz_ingress(cp, m->body);
        cl_ipc_reply(w->conn, m, CL_IPC_AUTHZ_INGRESS, reply);
        break;
    case CL_IPC_HTTP_REQUEST: {
        struct cp_http_resp r = {.status = 0};
        if (remote_exports(w, m))
            break;
        json_t *b = json_object_get(m->body, "body");
        const char *method = json_string_value(json_object_get(m->body, "method"));
        const char *path = json_string_value(json_object_get(m->body, "path"));
        cp_api_handle(cp, method != NULL ? method : "", path != NULL ? path : "",
                      json_string_value(json_object_get(m->body, "identity")),
                      json_is_string(b) ? json_string_value(b) : "",
                      json_is_string(b) ? json_string_length(b) : 0, &r);
        char *txt = r.body != NULL
                        ? cl_json_dumps_flags(r.body, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
                        : NULL;
        CL_INFO("cp.api", "%s %s by %s -> %d", method, path,
                json_string_value(json_object_get(m->body, "identity")), r.status);
        reply = json_pack("{s:i,s:s,s:s}", "status", r.status, "contentType",
                          r.text != NULL ? r.content_type : "application/json", "body",
                          r.text != NULL ? r.text
                          : txt != NULL  ? txt
                                         : "");
        cl_ipc_reply(w->conn, m, CL_IPC_HTTP_RESPONSE, reply);
        cl_mem_free(txt);
        cl_mem_free(r.text);
        json_decref(r.body);
        break;
    }
    case CL_IPC_STATS:
        json_decref(w->stats);
        w->stats = json_incref(m->body);
        sum_counters(cp);
        json_decref(w->cert);
        w->cert = json_incref(json_object_get(m->body, "certificate"));
        break;
    case CL_IPC_PEER_EVENT:
        cp_peers_evidence(cp->peers, json_string_value(json_object_get(m->body, "peer")),
                          json_string_value(json_object_get(m->body, "gateway")),
                          json_string_value(json_object_get(m->body, "error")));
        CL_DEBUG("cp.ipc", "peer event: peer=%s gateway=%s event=%s",
                 json_string_value(json_object_get(m->body, "peer")),
                 json_string_value(json_object_get(m->body, "gateway")),
                 json_string_value(json_object_get(m->body, "event")));
        break;
    default:
        if (!(m->flags & CL_IPC_F_REPLY))
            cl_ipc_reply_error(w->conn, m, CL_EFRAME_BAD, "unexpected message type");
        break;
    }
    json_decref(reply);
}

static void on_close(struct cl_ipc_conn *c, int err, void *ud)
{
    struct worker *w = ud;

    (void)c;
    if (w->hello)
        CL_INFO("cp.ipc", "worker=%lld disconnected: %s", w->id, cl_strerror(err));
    cl_list_remove(&w->link);
    w->conn = NULL;
    if (w->ipc != NULL && w->stats != NULL)
        retire_stats(w->ipc->cp, w);
    worker_unref(w);
}

static const struct cl_ipc_conn_cbs worker_cbs = {
    .on_msg = on_msg,
    .on_close = on_close,
};

static void on_connection(uv_stream_t *server, int status)
{
    struct cp_ipc *ipc = CL_CONTAINER_OF((uv_pipe_t *)server, struct cp_ipc, server);
    struct worker *w;

    if (status < 0 || ipc->stopping)
        return;
    if ((w = cl_calloc(1, sizeof(*w))) == NULL)
        return;
    w->ipc = ipc;
    w->refs = 1;
    if (cl_ipc_conn_new(server->loop, &worker_cbs, w, &w->conn) != 0) {
        cl_mem_free(w);
        return;
    }
    cl_list_insert_tail(&ipc->workers, &w->link);
    if (cl_ipc_conn_accept(w->conn, server) != 0) {
        cl_list_remove(&w->link);
        cl_mem_free(w);
    }
}

int cp_ipc_start(struct cp *cp, const char *path, struct cp_ipc **out)
{
    struct cp_ipc *ipc = cl_calloc(1, sizeof(*ipc));
    int rc;

    if (ipc == NULL)
        return CL_ENOMEM;
    ipc->cp = cp;
    cl_list_init(&ipc->workers);
    uv_pipe_init(cp->loop, &ipc->server, 0);
    unlink(path); /* a stale socket from a previous run */
    /* Whoever can connect is trusted as a worker (it relays REST requests with the caller's
     * identity): owner and group only, whatever the umask, and before anyone can connect. */
    if ((rc = uv_pipe_bind(&ipc->server, path)) != 0 ||
        (rc = chmod(path, 0660) != 0 ? -errno : 0) != 0 ||
        (rc = uv_listen((uv_stream_t *)&ipc->server, 128, on_connection)) != 0) {
        CL_ERROR("cp.ipc", "cannot listen on %s: %s", path, uv_strerror(rc));
        *out = ipc; /* the caller releases it with cp_ipc_stop */
        return rc;
    }
    *out = ipc;
    return 0;
}

static void on_server_close(uv_handle_t *h)
{
    cl_mem_free(CL_CONTAINER_OF((uv_pipe_t *)h, struct cp_ipc, server));
}

void cp_ipc_stop(struct cp_ipc *ipc)
{
    struct cl_list *pos, *tmp;

    if (ipc == NULL || ipc->stopping)
        return;
    ipc->stopping = true;
    cl_list_foreach_safe(pos, tmp, &ipc->workers)
    {
        struct worker *w = CL_CONTAINER_OF(pos, struct worker, link);
        /* unlink now: the list head is freed with ipc before the workers' close callbacks */
        cl_list_remove(&w->link);
        w->ipc = NULL;
        cl_ipc_conn_close(w->conn, 0);
    }
    uv_close((uv_handle_t *)&ipc->server, on_server_close);
}

void cp_ipc_config_changed(struct cp_ipc *ipc, const json_t *delta)
{
    uint64_t base = (uint64_t)json_integer_value(json_object_get(delta, "base"));
    struct cl_list *pos, *tmp;

    cl_list_foreach_safe(pos, tmp, &ipc->workers)
    {
        struct worker *w = CL_CONTAINER_OF(pos, struct worker, link);
        if (!w->hello)
            continue;
        if (w->sent == base && cl_ipc_send(w->conn, CL_IPC_CONFIG_DELTA, 0, 0, delta) == 0)
            w->sent = base + 1;
        else
            send_config(w); /* out of step: a full snapshot */
    }
}

json_t *cp_ipc_workers(struct cp_ipc *ipc)
{
    json_t *a = json_array();
    struct cl_list *pos, *tmp;

    if (ipc == NULL)
        return a;
    cl_list_foreach_safe(pos, tmp, &ipc->workers)
    {
        struct worker *w = CL_CONTAINER_OF(pos, struct worker, link);
        if (w->hello)
            json_array_append_new(a, json_pack("{s:I,s:I,s:I,s:i,s:O*}", "id", (json_int_t)w->id,
                                               "pid", (json_int_t)w->pid, "revision",
                                               (json_int_t)w->acked, "ipcVersion", w->version,
                                               "certificate", w->cert));
    }
    return a;
}
