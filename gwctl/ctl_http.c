/*
 * The real transport: one HTTP/2 connection over mutual TLS to the context's gateway, driven
 * by a private libuv loop until each answer arrives (gwctl is a one-shot CLI; blocking on its
 * own loop is the point). The gateway's certificate must carry the context id (sent as SNI),
 * whatever host or address reaches it.
 */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "cl/err.h"
#include "cl/h2conn.h"
#include "cl/mem.h"
#include "cl/tls.h"
#include "ctl.h"
#include "ctl_config.h"

#define MAX_BODY   (16u << 20)
#define TIMEOUT_MS 30000

struct http {
    uv_loop_t loop;
    struct cl_tls_ctx *tls;
    struct cl_h2conn *conn;
    char where[300]; /* "host:port" */
    char authority[300];
    char id[256];
    bool ready;
    bool closed;
    int close_err;
    char detail[256];
    /* the request in flight */
    bool done;
    int err;
    int status;
    char *body;
    size_t len;
};

static int tls_ctx(const struct ctl_context *ctx, struct cl_tls_ctx **out, char *err, size_t errlen)
{
    struct cl_tls_ctx_opts o = {
        .server = false, .cert_file = ctx->cert, .key_file = ctx->key, .ca_file = ctx->ca};
    char why[400] = "";
    int rc;

    if ((rc = cl_tls_global_init()) != 0)
        return ctl_seterr(err, errlen, rc, "cannot initialise TLS: %s", cl_strerror(rc));
    rc = cl_tls_ctx_new(&o, out, why, sizeof(why));
    if (rc != 0)
        return ctl_seterr(err, errlen, rc, "context \"%s\": %s", ctx->id,
                          why[0] ? why : cl_strerror(rc));
    return 0;
}

static int http_check(const struct ctl_context *ctx, char *err, size_t errlen)
{
    struct cl_tls_ctx *t = NULL;
    int rc = tls_ctx(ctx, &t, err, errlen);

    cl_tls_ctx_unref(t);
    return rc;
}

/* One line naming the problem: certificates as such, everything else as unreachable. */
static int conn_error(struct http *h, int e, char *err, size_t errlen)
{
    const char *d = h->detail[0] ? h->detail : cl_strerror(e);

    switch (e) {
    case CL_ETLS_UNKNOWN_CA:
        return ctl_seterr(err, errlen, e,
                          "certificate problem: the gateway at %s presented a certificate not "
                          "signed by the context's CA (%s)",
                          h->where, d);
    case CL_ETLS_NAME:
        return ctl_seterr(err, errlen, e,
                          "certificate problem: the gateway at %s is not \"%s\" (its certificate "
                          "does not carry that name)",
                          h->where, h->id);
    case CL_ETLS_EXPIRED:
        return ctl_seterr(err, errlen, e,
                          "certificate problem: the gateway's certificate at %s has expired or is "
                          "not yet valid (%s)",
                          h->where, d);
    case CL_ETLS_NO_CERT:
        return ctl_seterr(err, errlen, e,
                          "certificate problem: the gateway at %s presented no certificate",
                          h->where);
    case CL_ETLS_ALPN:
        return ctl_seterr(err, errlen, e, "the server at %s does not speak HTTP/2 (no ALPN h2)",
                          h->where);
    case CL_ETLS:
    case CL_ETLS_CLOSED:
        return ctl_seterr(err, errlen, e,
                          "TLS handshake with the gateway at %s failed (certificate rejected?): %s",
                          h->where, d);
    default:
        return ctl_seterr(err, errlen, e, "cannot reach gateway at %s: %s", h->where, d);
    }
}

static void on_ready(struct cl_h2conn *c, void *ud)
{
    struct http *h = ud;
    (void)c;
    h->ready = true;
}

static void on_close(struct cl_h2conn *c, int err, void *ud)
{
    struct http *h = ud;
    const char *d = cl_h2conn_error_detail(c);

    h->closed = true;
    h->close_err = err;
    if (d != NULL && h->detail[0] == '\0')
        snprintf(h->detail, sizeof(h->detail), "%s", d);
    h->conn = NULL; // freed right after this returns
}

static const struct cl_h2conn_cbs conn_cbs = {
    .on_ready = on_ready,
    .on_close = on_close,
};

static void http_free(struct http *h)
{
    if (h == NULL)
        return;
    if (h->conn != NULL && !h->closed)
        cl_h2conn_close(h->conn, 0);
    /* let every handle close; on_close runs from here */
    while (uv_run(&h->loop, UV_RUN_DEFAULT) != 0) {
    }
    uv_loop_close(&h->loop);
    cl_tls_ctx_unref(h->tls);
    cl_free(&h->body);
    cl_mem_free(h);
}

static int http_open(const struct ctl_context *ctx, void **out, char *err, size_t errlen)
{
    struct http *h = cl_calloc(1, sizeof(*h));
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    uv_getaddrinfo_t gai;
    char port[8];
    int rc;

    if (h == NULL)
        return ctl_seterr(err, errlen, CL_ENOMEM, "out of memory");
    if ((rc = uv_loop_init(&h->loop)) != 0) {
        cl_mem_free(h);
        return ctl_seterr(err, errlen, rc, "cannot start: %s", uv_strerror(rc));
    }
    if (strchr(ctx->host, ':') != NULL)
        snprintf(h->where, sizeof(h->where), "[%s]:%u", ctx->host, (unsigned)ctx->port);
    else
        snprintf(h->where, sizeof(h->where), "%s:%u", ctx->host, (unsigned)ctx->port);
    snprintf(h->authority, sizeof(h->authority), "%s", h->where);
    snprintf(h->id, sizeof(h->id), "%s", ctx->id);
    if ((rc = tls_ctx(ctx, &h->tls, err, errlen)) != 0)
        goto fail;
    snprintf(port, sizeof(port), "%u", (unsigned)ctx->port);
    /* NULL callback: resolves synchronously, which is what a CLI wants */
    rc = uv_getaddrinfo(&h->loop, &gai, NULL, ctx->host, port, &hints);
    if (rc != 0) {
        ctl_seterr(err, errlen, rc, "cannot reach gateway at %s: cannot resolve %s: %s", h->where,
                   ctx->host, uv_strerror(rc));
        goto fail;
    }
    struct cl_h2conn_opts o = {
        .server = false,
        .tls = h->tls,
        .server_name = ctx->id,
        .cbs = &conn_cbs,
        .ud = h,
    };
    /* every address in turn ("localhost" may be ::1 and 127.0.0.1), but a TLS failure means
     * the gateway was reached and said no: stop there */
    int last = CL_ECLOSED;
    for (struct addrinfo *ai = gai.addrinfo; ai != NULL; ai = ai->ai_next) {
        h->ready = h->closed = false;
        h->close_err = 0;
        h->detail[0] = '\0';
        if ((rc = cl_h2conn_new(&h->loop, &o, &h->conn)) != 0) {
            h->conn = NULL;
            last = rc;
            break;
        }
        if ((rc = cl_h2conn_connect(h->conn, ai->ai_addr)) != 0) {
            h->conn = NULL; // freed by connect on failure
            last = rc;
            continue;
        }
        while (!h->ready && !h->closed)
            uv_run(&h->loop, UV_RUN_ONCE);
        if (h->ready)
            break;
        last = h->close_err != 0 ? h->close_err : CL_ECLOSED;
        if (last <= CL_ETLS && last >= CL_ETLS_KEY_MISMATCH)
            break;
    }
    uv_freeaddrinfo(gai.addrinfo);
    if (!h->ready) {
        rc = conn_error(h, last, err, errlen);
        goto fail;
    }
    *out = h;
    return 0;
fail:
    http_free(h);
    return rc;
}

static void on_fetch(int err, int status, const uint8_t *body, size_t len, void *ud)
{
    struct http *h = ud;

    h->done = true;
    h->err = err;
    h->status = status;
    if (err == 0) {
        h->body = cl_malloc(len + 1);
        if (h->body == NULL) {
            h->err = CL_ENOMEM;
            return;
        }
        if (len > 0)
            memcpy(h->body, body, len);
        h->body[len] = '\0';
        h->len = len;
    }
}

static int http_request(void *conn, const char *method, const char *path, const char *body,
                        size_t len, struct ctl_resp *r, char *err, size_t errlen)
{
    struct http *h = conn;
    struct cl_h2_hdr json_hdrs[] = {
        CL_H2_HDR("content-type", "application/json"),
        CL_H2_HDR("accept", "application/json"),
    };
    int rc;

    memset(r, 0, sizeof(*r));
    if (h->closed)
        return conn_error(h, h->close_err != 0 ? h->close_err : CL_ECLOSED, err, errlen);
    h->done = false;
    h->err = 0;
    h->status = 0;
    cl_free(&h->body);
    h->len = 0;
    rc = cl_h2_fetch(h->conn, method, h->authority, path, body != NULL ? json_hdrs : json_hdrs + 1,
                     body != NULL ? 2 : 1, body, len, MAX_BODY, TIMEOUT_MS, on_fetch, h);
    if (rc != 0)
        return conn_error(h, rc, err, errlen);
    while (!h->done)
        uv_run(&h->loop, UV_RUN_ONCE);
    if (h->err == CL_ETIMEDOUT)
        return ctl_seterr(err, errlen, h->err, "the gateway at %s did not answer %s %s within %d s",
                          h->where, method, path, TIMEOUT_MS / 1000);
    if (h->err == CL_EBUSY)
        return ctl_seterr(err, errlen, h->err, "the gateway's answer to %s %s is too large", method,
                          path);
    if (h->err != 0)
        return conn_error(h, h->err, err, errlen);
    r->status = h->status;
    r->body = h->body;
    r->len = h->len;
    h->body = NULL;
    h->len = 0;
    return 0;
}

static void http_close(void *conn)
{
    http_free(conn);
}

const struct ctl_transport ctl_http_transport = {
    .check = http_check,
    .open = http_open,
    .request = http_request,
    .close = http_close,
};
