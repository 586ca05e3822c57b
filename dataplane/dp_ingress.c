/*
 * The public port: mutual-TLS HTTP/2 server. CONNECT streams become tunnels to an export's
 * backend after ingress authorization; other requests are relayed to the controlplane.
 *
 * CONNECT format (docs/protocol.md): `:authority` = "<export>:<port>" where the port is
 * ignored (RFC 9113 requires host:port), header `cl-export-namespace` (optional), header
 * `cl-client-attrs` = JSON object of client attributes (checked by dp_connect_parse: 400 when
 * malformed). The caller's peer name is taken from its certificate (first DNS SAN, else CN),
 * never from a header.
 */
#include <stdio.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "cl/buf.h"
#include "cl/err.h"
#include "cl/json.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/sockaddr.h"
#include "dp.h"

#define MAX_REST_BODY        (1024 * 1024)
#define AUTHZ_TIMEOUT_MS     5000
#define REST_TIMEOUT_MS      10000
#define BACKEND_TIMEOUT_MS   5000  /* DNS + TCP connect to the export's backend */
#define HANDSHAKE_TIMEOUT_MS 10000 /* TCP accepted -> TLS and HTTP/2 preface done */

struct dp_sconn {
    struct cl_list link;
    struct cl_h2conn *c;
};

/*
 * A relayed REST request. It lives as long as its stream; the IPC reply refers to it by
 * reference (dp_ref.h), so a client that goes away before the controlplane answers leaves
 * nothing dangling.
 */
struct rest {
    struct cl_h2stream *s;
    uint64_t ref;
    struct cl_buf body;
    char method[16];
    char path[512];
    char identity[256];
};

/* A backend DNS lookup, naming its tunnel by reference. */
struct backend_dns {
    uv_getaddrinfo_t gai;
    uint64_t ref;
};

/*
 * Ingress decisions depend only on the configuration (peers, exports, policies) and on what
 * the request carries (caller identity, export, namespace, client attributes), so each worker
 * remembers them for the configuration revision they were made at: a repeated caller costs no
 * controlplane round trip, and keeps being served while the controlplane is away. Any change
 * of configuration bumps the revision and empties the cache. Bounded: at most 4,096 keys of at
 * most 1 KiB; full means emptied.
 */
#define DECISION_CACHE_MAX 4096

static json_t *decisions; /* key -> the controlplane's AUTHZ_INGRESS reply body */
static json_int_t decisions_rev = -1;

/* The key: identity, export, namespace and the attributes in canonical (sorted) form. */
static char *decision_key(const struct dp_tunnel *t)
{
    char *attrs = cl_json_dumps_flags(t->attrs, JSON_COMPACT | JSON_SORT_KEYS);
    struct cl_buf b;
    char *key = NULL;

    if (attrs == NULL)
        return NULL;
    cl_buf_init(&b, 1024); /* longer (peer-chosen attributes) is not remembered: bounded memory */
    if (cl_buf_printf(&b, "%s\n%s\n%s\n%s", t->peer, t->name, t->ns, attrs) == 0 &&
        (key = cl_malloc(b.len + 1)) != NULL) {
        memcpy(key, cl_buf_ptr(&b), b.len);
        key[b.len] = '\0';
    }
    cl_buf_deinit(&b);
    cl_mem_free(attrs);
    return key;
}

static json_t *decision_get(const struct dp_tunnel *t)
{
    char *key;
    json_t *body;

    if (decisions == NULL || decisions_rev != dp_config_revision() || dp_config_revision() < 0)
        return NULL;
    if ((key = decision_key(t)) == NULL)
        return NULL;
    body = json_object_get(decisions, key);
    cl_mem_free(key);
    return body;
}

static void decision_put(const struct dp_tunnel *t, json_t *body)
{
    json_int_t rev = dp_config_revision();
    char *key;

    if (rev < 0)
        return;
    if (decisions == NULL || decisions_rev != rev ||
        json_object_size(decisions) >= DECISION_CACHE_MAX) {
        json_decref(decisions);
        decisions = json_object();
        decisions_rev = rev;
    }
    if (decisions != NULL && (key = decision_key(t)) != NULL) {
        json_object_set_nocheck(decisions, key, body);
        cl_mem_free(key);
    }
}

static const char *identity_of(struct cl_h2conn *c)
{
    const struct cl_tls_peer *p = cl_h2conn_peer(c);

    if (p == NULL)
        return "";
    return p->ndns > 0 ? p->dns[0] : p->cn;
}

static void respond_simple(struct cl_h2stream *s, int status, const char *msg)
{
    char body[512];
    struct cl_h2_hdr h[] = {{"content-type", "application/json", 12, 16}};
    json_t *j = json_pack("{s:{s:s}}", "error", "message", msg);
    char *txt = cl_json_dumps(j);

    snprintf(body, sizeof(body), "%s", txt != NULL ? txt : "{}");
    cl_mem_free(txt);
    json_decref(j);
    if (cl_h2stream_respond(s, status, h, 1, false) == 0) {
        cl_h2stream_write(s, body, strlen(body));
        cl_h2stream_end(s);
    }
}

/* ---- REST relay ------------------------------------------------------------------------- */

/* Lets go of the stream (no more callbacks) and frees the request. */
static void rest_free(struct rest *r)
{
    if (r->s != NULL)
        cl_h2stream_set_cbs(r->s, NULL, NULL);
    dp_ref_del(&dp_w->refs, r->ref);
    cl_buf_deinit(&r->body);
    cl_mem_free(r);
}

static void rest_on_data(struct cl_h2stream *s, const uint8_t *data, size_t len, void *ud)
{
    struct rest *r = ud;

    cl_h2stream_consume(s, len);
    if (cl_buf_append(&r->body, data, len) != 0) {
        respond_simple(s, 413, "request body too large");
        rest_free(r);
    }
}

static void on_rest_reply(int err, const struct cl_ipc_msg *m, void *ud)
{
    struct rest *r = dp_ref_get(&dp_w->refs, dp_ref_of_ud(ud), DP_REF_REST);

    if (r == NULL) /* the stream is gone */
        return;
    if (err != 0 || m == NULL) {
        respond_simple(r->s, 503, "controlplane unavailable");
    } else {
        json_t *b = json_object_get(m->body, "body");
        const char *ct = json_string_value(json_object_get(m->body, "contentType"));
        int status = (int)json_integer_value(json_object_get(m->body, "status"));
        size_t blen = json_is_string(b) ? json_string_length(b) : 0;
        struct cl_h2_hdr h[] = {{"content-type", ct != NULL ? ct : "application/json", 12,
                                 strlen(ct != NULL ? ct : "application/json")}};
        if (cl_h2stream_respond(r->s, status > 0 ? status : 502, h, 1, blen == 0) == 0 &&
            blen > 0) {
            /* bodies are bounded by the relay; the send queue takes them whole */
            cl_h2stream_write(r->s, json_string_value(b), blen);
            cl_h2stream_end(r->s);
        }
    }
    rest_free(r);
}

static void rest_on_end(struct cl_h2stream *s, void *ud)
{
    struct rest *r = ud;
    json_t *req;
    int rc = CL_ECLOSED;

    (void)s;
    req = json_pack("{s:s,s:s,s:s,s:[s],s:s%}", "method", r->method, "path", r->path, "identity",
                    r->identity, "identities", r->identity, "body",
                    r->body.len ? (const char *)cl_buf_ptr(&r->body) : "", r->body.len);
    if (req != NULL && dp_w->ipc_up)
        rc = cl_ipc_request(dp_w->ipc, CL_IPC_HTTP_REQUEST, req, REST_TIMEOUT_MS, on_rest_reply,
                            dp_ref_ud(r->ref));
    json_decref(req);
    if (rc != 0) {
        respond_simple(r->s, 503, "controlplane unavailable");
        rest_free(r);
    }
}

static void rest_on_close(struct cl_h2stream *s, int err, void *ud)
{
    struct rest *r = ud;

    (void)s;
    (void)err;
    r->s = NULL; /* freed when this returns */
    rest_free(r);
}

static const struct cl_h2stream_cbs rest_cbs = {
    .on_data = rest_on_data,
    .on_end = rest_on_end,
    .on_close = rest_on_close,
};

static void start_rest(struct cl_h2conn *c, struct cl_h2stream *s, const struct cl_h2_req *req)
{
    const char *path = req->path != NULL ? req->path : "/";
    struct rest *r;

    /* refused whole rather than cut short: a shortened path could name another resource */
    if (strlen(path) >= sizeof(r->path)) {
        respond_simple(s, 414, "request path longer than 511 bytes");
        return;
    }
    if (strlen(req->method) >= sizeof(r->method)) {
        respond_simple(s, 501, "unknown method");
        return;
    }
    r = cl_calloc(1, sizeof(*r));
    if (r == NULL || (r->ref = dp_ref_new(&dp_w->refs, DP_REF_REST, r)) == 0) {
        cl_mem_free(r);
        respond_simple(s, 503, "out of memory");
        return;
    }
    r->s = s;
    cl_buf_init(&r->body, MAX_REST_BODY);
    snprintf(r->identity, sizeof(r->identity), "%s", identity_of(c));
    snprintf(r->method, sizeof(r->method), "%s", req->method);
    snprintf(r->path, sizeof(r->path), "%s", path);
    cl_h2stream_set_cbs(s, &rest_cbs, r);
}

/* ---- CONNECT ---------------------------------------------------------------------------- */

/*
 * The tunnel exists from the CONNECT on: its up side holds the stream (with the pending
 * callbacks below until 200), its down side the backend socket (connected after authz).
 * Failures answer on the stream (which ends it) and close the tunnel.
 */
static void connect_fail(struct dp_tunnel *t, int status, const char *msg)
{
    t->status = status;
    if (t->why[0] == '\0') /* a denial's own, with its policy, comes first */
        snprintf(t->why, sizeof(t->why), "%s", msg);
    if (t->h2x.s != NULL) {
        respond_simple(t->h2x.s, status, msg);
        dp_xprt_h2_release(&t->h2x, 0); /* the response ends the stream */
    }
    dp_count("exports", t->name, status == 403 ? "denied" : "errors", 1);
    dp_tunnel_abort(t, CL_ECLOSED);
}

static void on_connect_timeout(struct dp_tunnel *t)
{
    connect_fail(t, 502, "backend connect timed out");
}

static void on_backend_connect(uv_connect_t *req, int status)
{
    /* the request is the tunnel's own: libuv calls this (UV_ECANCELED) before the socket's
     * close callback, and the tunnel is freed only after that */
    struct dp_tunnel *t = CL_CONTAINER_OF(req, struct dp_tunnel, creq);

    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    if (status < 0) {
        CL_INFO("dp.ingress", "conn=%llu export=%s backend unreachable: %s",
                (unsigned long long)t->id, t->name, uv_strerror(status));
        connect_fail(t, 502, "backend unreachable");
        return;
    }
    if (cl_h2stream_respond(t->h2x.s, 200, NULL, 0, false) != 0) {
        dp_tunnel_abort(t, CL_EH2);
        return;
    }
    t->status = 200;
    dp_tunnel_start(t);
}

static void connect_backend(struct dp_tunnel *t, struct sockaddr_storage *ss)
{
    int rc;

    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(t->port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(t->port);
    if ((rc = uv_tcp_connect(&t->creq, &t->tcpx.tcp, (struct sockaddr *)ss, on_backend_connect)) !=
        0) {
        CL_INFO("dp.ingress", "conn=%llu export=%s backend unreachable: %s",
                (unsigned long long)t->id, t->name, uv_strerror(rc));
        connect_fail(t, 502, "backend unreachable");
    }
}

static void on_backend_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    struct backend_dns *d = CL_CONTAINER_OF(gai, struct backend_dns, gai);
    struct dp_tunnel *t = dp_tunnel_get(d->ref);
    struct sockaddr_storage ss;

    cl_mem_free(d);
    if (t == NULL) { /* the caller went away (reset, deadline) while we resolved */
        uv_freeaddrinfo(res);
        return;
    }
    if (status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        connect_fail(t, 502, "backend address does not resolve");
        return;
    }
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    uv_freeaddrinfo(res);
    connect_backend(t, &ss);
}

/* Acts on an AUTHZ_INGRESS reply (from the controlplane or the decision cache). */
static void apply_decision(struct dp_tunnel *t, const json_t *body)
{
    struct backend_dns *d;
    json_t *be;
    char port[8];

    if (!json_is_true(json_object_get(body, "allow"))) {
        int st = (int)json_integer_value(json_object_get(body, "status"));
        const char *why = json_string_value(json_object_get(body, "reason"));
        dp_tunnel_set_denial(t, body); /* the policy's name is for this log, not the peer */
        connect_fail(t, st == 404 ? 404 : 403, why != NULL ? why : "denied");
        return;
    }
    be = json_object_get(body, "backend");
    t->port = (uint16_t)json_integer_value(json_object_get(be, "port"));
    snprintf(port, sizeof(port), "%u", t->port);
    dp_tunnel_set_deadline(t, BACKEND_TIMEOUT_MS);
    /* an IP literal needs no lookup: skip the thread-pool hop (two wake-ups per connection) */
    const char *host = json_string_value(json_object_get(be, "host"));
    struct sockaddr_storage ss;
    if (host != NULL && cl_sockaddr_from_ip(host, t->port, &ss) == 0) {
        connect_backend(t, &ss);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if ((d = cl_calloc(1, sizeof(*d))) == NULL) {
        connect_fail(t, 503, "out of memory");
        return;
    }
    d->ref = t->ref;
    if (uv_getaddrinfo(dp_w->loop, &d->gai, on_backend_resolved, host, port, &hints) != 0) {
        cl_mem_free(d);
        connect_fail(t, 502, "backend address does not resolve");
    }
}

static void on_authz_ingress(int err, const struct cl_ipc_msg *m, void *ud)
{
    /* the caller may have reset the stream, or the deadline passed, while we waited */
    struct dp_tunnel *t = dp_tunnel_get(dp_ref_of_ud(ud));

    if (t == NULL) {
        CL_DEBUG("dp.ingress", "authorization answer for a CONNECT that is gone");
        return;
    }
    if (err != 0 || m == NULL) {
        connect_fail(t, 503, "controlplane unavailable");
        return;
    }
    decision_put(t, m->body);
    apply_decision(t, m->body);
}

static void connect_pending_close(struct cl_h2stream *s, int err, void *ud)
{
    struct dp_tunnel *t = ud;

    (void)s;
    dp_xprt_h2_set_stream(&t->h2x, NULL); /* gone */
    CL_DEBUG("dp.ingress", "conn=%llu export=%s: caller went away before the tunnel opened: %s",
             (unsigned long long)t->id, t->name, cl_strerror(err));
    dp_tunnel_abort(t, err != 0 ? err : CL_ECLOSED);
}

static const struct cl_h2stream_cbs connect_pending_cbs = {
    .on_close = connect_pending_close,
};

/* A CONNECT answered before it became a tunnel: still a line in the access log. */
static void refuse_connect(struct cl_h2conn *c, struct cl_h2stream *s, const char *name,
                           const char *ns, int status, const char *why)
{
    respond_simple(s, status, why);
    if (dp_w->o.access_log) {
        struct dp_access a = {
            .name = name, .ns = ns, .peer = identity_of(c), .status = status, .end = why};
        dp_access_log(&a);
    }
}

static void start_connect(struct cl_h2conn *c, struct cl_h2stream *s, const struct cl_h2_req *req)
{
    struct dp_connect_req cr;
    const char *why = NULL;
    char identity[256];
    struct dp_tunnel *t;
    json_t *q;
    int rc;

    if ((rc = dp_connect_parse(req, &cr, &why)) != 0) {
        refuse_connect(c, s, cr.name, cr.ns, rc == CL_ENOMEM ? 503 : 400, why);
        return;
    }
    if (dp_w->draining) {
        refuse_connect(c, s, cr.name, cr.ns, 503, "gateway is draining");
        dp_connect_req_deinit(&cr);
        return;
    }
    /* a peer name is a DNS label: a longer identity is no peer (and would not fit t->peer,
     * whose value keys the remembered decisions) */
    snprintf(identity, sizeof(identity), "%s", identity_of(c));
    if (strlen(identity) >= sizeof(t->peer)) {
        refuse_connect(c, s, cr.name, cr.ns, 403, "unknown peer");
        dp_connect_req_deinit(&cr);
        return;
    }
    if ((t = dp_tunnel_new(false)) == NULL) {
        refuse_connect(c, s, cr.name, cr.ns, 503, "out of memory");
        dp_connect_req_deinit(&cr);
        return;
    }
    _Static_assert(sizeof(t->name) == sizeof(cr.name) && sizeof(t->ns) == sizeof(cr.ns),
                   "CONNECT fields fit the tunnel's");
    memcpy(t->name, cr.name, sizeof(t->name));
    memcpy(t->ns, cr.ns, sizeof(t->ns));
    snprintf(t->peer, sizeof(t->peer), "%s", identity);
    t->attrs = cr.attrs; /* taken */
    dp_xprt_h2_init(&t->h2x);
    dp_xprt_h2_set_stream(&t->h2x, s);
    cl_h2stream_set_cbs(s, &connect_pending_cbs, t);
    dp_tunnel_attach(t, DP_UP, &t->h2x.x);
    dp_xprt_tcp_init(&t->tcpx, dp_w->loop, &dp_w->xsched);
    dp_tunnel_attach(t, DP_DOWN, &t->tcpx.x);
    t->on_timeout = on_connect_timeout;
    dp_tunnel_connecting(t, AUTHZ_TIMEOUT_MS + 1000, false); /* cannot fail without reading */
    json_t *known = decision_get(t);
    if (known != NULL) {
        CL_DEBUG("dp.ingress", "conn=%llu export=%s peer=%s: CONNECT, decided before",
                 (unsigned long long)t->id, t->name, t->peer);
        apply_decision(t, known);
        return;
    }
    CL_DEBUG("dp.ingress", "conn=%llu export=%s peer=%s: CONNECT, authorizing",
             (unsigned long long)t->id, t->name, t->peer);
    q = json_pack("{s:s,s:s,s:s,s:O}", "peer", identity, "export", t->name, "namespace", t->ns,
                  "attrs", t->attrs);
    rc = dp_w->ipc_up && q != NULL
             ? cl_ipc_request(dp_w->ipc, CL_IPC_AUTHZ_INGRESS, q, AUTHZ_TIMEOUT_MS,
                              on_authz_ingress, dp_ref_ud(t->ref))
             : CL_ECLOSED;
    json_decref(q);
    if (rc != 0)
        connect_fail(t, 503, "controlplane unavailable");
}

static void on_request(struct cl_h2conn *c, struct cl_h2stream *s, const struct cl_h2_req *req,
                       void *ud)
{
    (void)ud;
    if (strcmp(req->method, "CONNECT") == 0)
        start_connect(c, s, req);
    else
        start_rest(c, s, req);
}

static void on_sconn_close(struct cl_h2conn *c, int err, void *ud)
{
    struct dp_sconn *sc = ud;

    if (err != 0 && err != CL_EOF)
        CL_DEBUG("dp.ingress", "conn=%llu closed: %s %s", (unsigned long long)cl_h2conn_id(c),
                 cl_strerror(err), cl_h2conn_error_detail(c));
    if (err <= CL_ETLS && err >= CL_ETLS_KEY_MISMATCH)
        CL_INFO("dp.ingress", "TLS handshake failed: %s", cl_h2conn_error_detail(c));
    cl_list_remove(&sc->link);
    cl_mem_free(sc);
}

static const struct cl_h2conn_cbs server_cbs = {
    .on_request = on_request,
    .on_close = on_sconn_close,
};

void dp_ingress_on_accept(uv_stream_t *server, int status)
{
    struct cl_h2conn_opts o = {
        .server = true,
        .tls = dp_w->srv_tls,
        .handshake_timeout_ms = HANDSHAKE_TIMEOUT_MS,
        /* a peer's pooled connection, gwctl or anything else that handshakes and then sits
         * there: GOAWAY and close (peers' pools give up theirs first: dp_egress.c) */
        .idle_timeout_ms = dp_w->o.conn_idle_ms,
        .cbs = &server_cbs,
    };
    struct dp_sconn *sc;

    if (status < 0 || dp_w->draining)
        return;
    if ((sc = cl_calloc(1, sizeof(*sc))) == NULL)
        return;
    o.ud = sc;
    if (cl_h2conn_new(dp_w->loop, &o, &sc->c) != 0) {
        cl_mem_free(sc);
        return;
    }
    cl_list_insert_tail(&dp_w->servers, &sc->link);
    if (cl_h2conn_accept(sc->c, server) != 0) {
        cl_list_remove(&sc->link);
        cl_mem_free(sc);
    }
}

/* GOAWAY on the accepted connections: all of them, or only those past their handshake. */
static void goaway_servers(bool ready_only)
{
    struct cl_list *pos, *tmp;

    cl_list_foreach_safe(pos, tmp, &dp_w->servers)
    {
        struct cl_h2conn *c = CL_CONTAINER_OF(pos, struct dp_sconn, link)->c;
        if (!ready_only || cl_h2conn_is_ready(c))
            cl_h2conn_shutdown(c);
    }
}

void dp_ingress_shutdown(void)
{
    json_decref(decisions);
    decisions = NULL;
    goaway_servers(false);
}

void dp_ingress_retire(void)
{
    goaway_servers(true);
}
