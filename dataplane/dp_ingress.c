/*
 * The public port: mutual-TLS HTTP/2 server. CONNECT streams become tunnels to an export's
 * backend after ingress authorization; other requests are relayed to the controlplane.
 *
 * CONNECT format (docs/protocol.md): `:authority` = "<export>:<port>" where the port is
 * ignored (RFC 9113 requires host:port), header `cl-export-namespace` (optional), header
 * `cl-client-attrs` = JSON object of client attributes. The caller's peer name is taken from
 * its certificate (first DNS SAN, else CN), never from a header.
 */
#include <stdio.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "cl/err.h"
#include "cl/json.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/sockaddr.h"
#include "dp.h"

#define MAX_REST_BODY    (1024 * 1024)
#define AUTHZ_TIMEOUT_MS 5000

struct dp_sconn {
    struct cl_list link;
    struct cl_h2conn *c;
};

/* An in-flight request (relayed REST call or CONNECT awaiting authz/backend). */
struct ireq {
    struct cl_h2stream *s; /* NULL once the stream is gone */
    struct dp_tunnel *t;   /* CONNECT */
    struct cl_buf body;    /* REST */
    char method[16];
    char path[512];
    char identity[256];
    char export_name[64];
    char ns[64];
    json_t *attrs;
    int refs;
    uv_getaddrinfo_t gai;
    uint16_t port;
};

static void ireq_unref(struct ireq *r)
{
    if (--r->refs > 0)
        return;
    cl_buf_deinit(&r->body);
    json_decref(r->attrs);
    cl_mem_free(r);
}

/* Detaches the request from its stream (no more callbacks) and drops the stream's ref. */
static void detach_stream(struct ireq *r)
{
    if (r->s == NULL)
        return;
    cl_h2stream_set_cbs(r->s, NULL, NULL);
    r->s = NULL;
    ireq_unref(r);
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

static void rest_on_data(struct cl_h2stream *s, const uint8_t *data, size_t len, void *ud)
{
    struct ireq *r = ud;

    cl_h2stream_consume(s, len);
    if (cl_buf_append(&r->body, data, len) != 0) {
        respond_simple(s, 413, "request body too large");
        detach_stream(r);
    }
}

static void on_rest_reply(int err, const struct cl_ipc_msg *m, void *ud)
{
    struct ireq *r = ud;

    if (r->s != NULL) {
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
        detach_stream(r);
    }
    ireq_unref(r); /* the IPC callback's ref */
}

static void rest_on_end(struct cl_h2stream *s, void *ud)
{
    struct ireq *r = ud;
    json_t *req;
    int rc = CL_ECLOSED;

    (void)s;
    req = json_pack("{s:s,s:s,s:s,s:[s],s:s%}", "method", r->method, "path", r->path, "identity",
                    r->identity, "identities", r->identity, "body",
                    r->body.len ? (const char *)cl_buf_ptr(&r->body) : "", r->body.len);
    r->refs++; /* for the IPC callback */
    if (req != NULL && dp_w->ipc_up)
        rc = cl_ipc_request(dp_w->ipc, CL_IPC_HTTP_REQUEST, req, 10000, on_rest_reply, r);
    json_decref(req);
    if (rc != 0) {
        respond_simple(r->s, 503, "controlplane unavailable");
        detach_stream(r);
        ireq_unref(r);
    }
}

static void rest_on_close(struct cl_h2stream *s, int err, void *ud)
{
    struct ireq *r = ud;

    (void)s;
    (void)err;
    r->s = NULL;
    ireq_unref(r);
}

static const struct cl_h2stream_cbs rest_cbs = {
    .on_data = rest_on_data,
    .on_end = rest_on_end,
    .on_close = rest_on_close,
};

/* ---- CONNECT ---------------------------------------------------------------------------- */

static void connect_fail(struct ireq *r, int status, const char *msg)
{
    if (r->s != NULL) {
        respond_simple(r->s, status, msg);
        detach_stream(r);
    }
    if (r->t != NULL) {
        dp_count("exports", r->t->name, status == 403 ? "denied" : "errors", 1);
        dp_tunnel_abort(r->t, CL_ECLOSED);
        r->t = NULL;
    }
}

static void on_backend_connect(uv_connect_t *req, int status)
{
    struct dp_tunnel *t = CL_CONTAINER_OF(req, struct dp_tunnel, creq);
    struct ireq *r = t->pending;

    t->pending = NULL;
    if (t->state == DP_TUNNEL_ST_CLOSING) {
        ireq_unref(r);
        return;
    }
    if (status < 0 || r->s == NULL) {
        if (r->s != NULL)
            CL_INFO("dp.ingress", "export=%s backend unreachable: %s", r->export_name,
                    uv_strerror(status));
        connect_fail(r, 502, "backend unreachable");
        ireq_unref(r);
        return;
    }
    struct cl_h2stream *s = r->s;
    detach_stream(r);
    r->t = NULL;
    if (cl_h2stream_respond(s, 200, NULL, 0, false) != 0) {
        dp_tunnel_abort(t, CL_EH2);
    } else {
        dp_tunnel_start(t, s);
    }
    ireq_unref(r);
}

static void on_backend_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    struct ireq *r = CL_CONTAINER_OF(gai, struct ireq, gai);
    struct dp_tunnel *t = r->t;

    if (status < 0 || res == NULL || r->s == NULL || t == NULL) {
        if (r->s != NULL)
            connect_fail(r, 502, "backend address does not resolve");
        else if (t != NULL)
            dp_tunnel_abort(t, CL_ECLOSED);
        uv_freeaddrinfo(res);
        ireq_unref(r);
        return;
    }
    struct sockaddr_storage ss;
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    uv_freeaddrinfo(res);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(r->port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(r->port);
    t->pending = r; /* carried to on_backend_connect (ref kept) */
    if (uv_tcp_connect(&t->creq, &t->tcp, (struct sockaddr *)&ss, on_backend_connect) != 0) {
        t->pending = NULL;
        connect_fail(r, 502, "backend unreachable");
        ireq_unref(r);
    }
}

static void on_authz_ingress(int err, const struct cl_ipc_msg *m, void *ud)
{
    struct ireq *r = ud;
    json_t *be;
    char port[8];

    if (r->s == NULL) {
        if (r->t != NULL)
            dp_tunnel_abort(r->t, CL_ECLOSED);
        r->t = NULL;
        ireq_unref(r);
        return;
    }
    if (err != 0 || m == NULL) {
        connect_fail(r, 503, "controlplane unavailable");
        ireq_unref(r);
        return;
    }
    if (!json_is_true(json_object_get(m->body, "allow"))) {
        int st = (int)json_integer_value(json_object_get(m->body, "status"));
        const char *why = json_string_value(json_object_get(m->body, "reason"));
        connect_fail(r, st == 404 ? 404 : 403, why != NULL ? why : "denied");
        ireq_unref(r);
        return;
    }
    be = json_object_get(m->body, "backend");
    r->port = (uint16_t)json_integer_value(json_object_get(be, "port"));
    snprintf(port, sizeof(port), "%u", r->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (uv_getaddrinfo(dp_w->loop, &r->gai, on_backend_resolved,
                       json_string_value(json_object_get(be, "host")), port, &hints) != 0) {
        connect_fail(r, 502, "backend address does not resolve");
        ireq_unref(r);
    }
    /* the ref passes to the resolver callback */
}

static void connect_pending_close(struct cl_h2stream *s, int err, void *ud)
{
    struct ireq *r = ud;

    (void)s;
    (void)err;
    r->s = NULL;
    ireq_unref(r);
}

static const struct cl_h2stream_cbs connect_pending_cbs = {
    .on_close = connect_pending_close,
};

static void start_connect(struct cl_h2conn *c, struct cl_h2stream *s, const struct cl_h2_req *req,
                          struct ireq *r)
{
    const char *colon;
    size_t n;
    json_t *q;

    if (dp_w->draining) {
        respond_simple(s, 503, "gateway is draining");
        ireq_unref(r);
        return;
    }
    colon = strrchr(req->authority != NULL ? req->authority : "", ':');
    n = colon != NULL ? (size_t)(colon - req->authority)
                      : strlen(req->authority ? req->authority : "");
    if (req->authority == NULL || n == 0 || n >= sizeof(r->export_name)) {
        respond_simple(s, 400, "CONNECT needs :authority <export>:<port>");
        ireq_unref(r);
        return;
    }
    memcpy(r->export_name, req->authority, n);
    r->export_name[n] = '\0';
    r->attrs = json_object();
    for (size_t i = 0; i < req->nhdrs; i++) {
        if (strcmp(req->hdrs[i].name, "cl-export-namespace") == 0)
            snprintf(r->ns, sizeof(r->ns), "%s", req->hdrs[i].value);
        else if (strcmp(req->hdrs[i].name, "cl-client-attrs") == 0) {
            json_t *a = cl_json_loadb(req->hdrs[i].value, req->hdrs[i].valuelen, NULL);
            if (json_is_object(a)) {
                json_decref(r->attrs);
                r->attrs = a;
            } else {
                json_decref(a);
            }
        }
    }
    if ((r->t = dp_tunnel_new(false)) == NULL) {
        respond_simple(s, 503, "out of memory");
        ireq_unref(r);
        return;
    }
    snprintf(r->t->name, sizeof(r->t->name), "%s", r->export_name);
    snprintf(r->t->peer, sizeof(r->t->peer), "%.63s", r->identity);
    r->t->state = DP_TUNNEL_ST_CONNECTING;
    r->refs++; /* stream */
    cl_h2stream_set_cbs(s, &connect_pending_cbs, r);
    q = json_pack("{s:s,s:s,s:s,s:O}", "peer", r->identity, "export", r->export_name, "namespace",
                  r->ns, "attrs", r->attrs);
    int rc = dp_w->ipc_up ? cl_ipc_request(dp_w->ipc, CL_IPC_AUTHZ_INGRESS, q, AUTHZ_TIMEOUT_MS,
                                           on_authz_ingress, r)
                          : CL_ECLOSED;
    json_decref(q);
    if (rc != 0) {
        connect_fail(r, 503, "controlplane unavailable");
        ireq_unref(r);
    }
    (void)c;
}

static void on_request(struct cl_h2conn *c, struct cl_h2stream *s, const struct cl_h2_req *req,
                       void *ud)
{
    struct ireq *r = cl_calloc(1, sizeof(*r));

    (void)ud;
    if (r == NULL) {
        cl_h2stream_reset(s, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    r->refs = 1;
    r->s = s;
    snprintf(r->identity, sizeof(r->identity), "%s", identity_of(c));
    if (strcmp(req->method, "CONNECT") == 0) {
        start_connect(c, s, req, r);
        return;
    }
    cl_buf_init(&r->body, MAX_REST_BODY);
    snprintf(r->method, sizeof(r->method), "%s", req->method);
    snprintf(r->path, sizeof(r->path), "%s", req->path != NULL ? req->path : "/");
    cl_h2stream_set_cbs(s, &rest_cbs, r);
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
    struct cl_h2conn_opts o = {.server = true, .tls = dp_w->srv_tls, .cbs = &server_cbs};
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

void dp_ingress_shutdown(void)
{
    struct cl_list *pos, *tmp;

    cl_list_foreach_safe(pos, tmp, &dp_w->servers)
    {
        cl_h2conn_shutdown(CL_CONTAINER_OF(pos, struct dp_sconn, link)->c);
    }
}
