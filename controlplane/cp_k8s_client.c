/*
 * Kubernetes API client: HTTP/1.1 over cl_tls (common/tls.c) over libuv TCP.
 *
 * A call waits in `pending` until a connection is free: an idle keep-alive connection, or a
 * new one while fewer than max_conns exist (watches always get a new, dedicated one). A
 * connection carries one call at a time: resolve (uv_getaddrinfo), connect, TLS handshake,
 * write the request, parse the answer (cp_http_parser), give the call its result, then go
 * idle for the next call or close (Connection: close, watches, errors). One timer per
 * connection holds the current deadline: connect + answer for a call, no-byte idle time for a
 * watch, keep-alive idle time otherwise.
 *
 * Lifetime: a connection is freed when its handles have closed and its getaddrinfo request
 * (cancelled if needed) has returned; a call is freed when it ends or is cancelled (after its
 * retry timer closed, if it had one). Callbacks of a cancelled call never run. User callbacks
 * run from the connection's read path after the parser has returned, so a callback may start
 * or cancel calls freely.
 */
#include "cp_k8s_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cl/buf.h"
#include "cl/err.h"
#include "cl/json.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/time.h"
#include "cl/tls.h"
#include "cp_k8s_http.h"

#define READ_PLAIN      (64 * 1024)
#define MAX_HEAD        (64 * 1024)
#define WATCH_LINE_MAX  (16 * 1024 * 1024) /* one watch event: an object */
#define WATCH_ERR_BODY  (256 * 1024)       /* an error answer to a watch request */
#define KEEPALIVE_IDLE  60000              /* close idle keep-alive connections after this */
#define RETRY_AFTER_MAX 60000
#define MAX_IOV         64

enum conn_state {
    CONN_RESOLVING,
    CONN_CONNECTING,
    CONN_HANDSHAKE,
    CONN_READY,
    CONN_CLOSING,
    CONN_STATE_COUNT,
};

static const char *const conn_state_names[CONN_STATE_COUNT] = {
    [CONN_RESOLVING] = "resolving", [CONN_CONNECTING] = "connecting",
    [CONN_HANDSHAKE] = "handshake", [CONN_READY] = "ready",
    [CONN_CLOSING] = "closing",
};

enum call_state {
    CALL_PENDING,
    CALL_ACTIVE,
    CALL_WAIT_RETRY,
};

struct conn;

struct cp_k8s_call {
    struct cl_list all;   /* client's calls */
    struct cl_list queue; /* client's pending queue */
    struct cp_k8s_client *c;
    enum call_state state;
    char *method;
    char *path;
    char *ctype;
    char *body;
    size_t bodylen;
    uint64_t timeout_ms;
    int max_attempts;
    int attempts;
    uint64_t started_ms;
    bool watch;
    bool urgent; /* queued at the head */
    cp_k8s_resp_cb cb;
    struct cp_k8s_watch_cbs wcbs;
    void *ud;
    struct conn *conn;
    uv_timer_t retry;
    bool retry_init;
    /* the answer of the current attempt */
    int status;
    uint64_t retry_after_ms;
    struct cl_buf in;
    struct cp_lines lines;
    bool lines_init;
    int line_err;   /* on_line's code that ended a watch */
    bool in_cb;     /* the owner's callback is running: cancel only marks */
    bool cancelled; /* marked while in_cb; freed once the callback returned */
};

struct conn {
    struct cl_list link;
    struct cp_k8s_client *c;
    uint64_t id;
    enum conn_state state;
    bool dedicated; /* a watch's own connection */
    uv_getaddrinfo_t gai;
    bool gai_busy;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_timer_t timer;
    int nhandles;
    uv_write_t wreq;
    bool writing;
    size_t wlen;
    struct cl_tls *tls;
    struct cp_http_parser parser;
    uint8_t *rbuf;
    struct cp_k8s_call *call;
    bool done;        /* the parser completed an answer */
    bool close_after; /* the server said Connection: close */
    char detail[640];
};

struct cp_k8s_client {
    uv_loop_t *loop;
    struct cp_k8s_config *cfg;
    struct cl_tls_ctx *tls;
    struct cp_k8s_client_opts o;
    struct cl_list conns;
    struct cl_list pending;
    struct cl_list calls;
    uv_timer_t kick; /* dispatches new calls from the loop */
    bool dispatching;
    bool redispatch;
    uint64_t next_id;
    uint32_t rnd;
    char authority[300];
};

static void conn_close(struct conn *k, int err);
static void dispatch(struct cp_k8s_client *c);
static void finish_call(struct cp_k8s_call *call, int err, const char *detail);

/* ---- small pure helpers --------------------------------------------------------------------- */

uint64_t cp_k8s_backoff_ms(int attempt, uint64_t base, uint64_t max, uint32_t rnd)
{
    uint64_t d = base;

    for (int i = 1; i < attempt && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    /* jitter: [0.5, 1.0) of the delay, so clients that failed together spread out */
    return d / 2 + (d / 2) * (uint64_t)rnd / ((uint64_t)UINT32_MAX + 1);
}

uint64_t cp_k8s_retry_after_ms(const char *v)
{
    uint64_t s = 0;

    if (v == NULL)
        return 0;
    while (*v == ' ')
        v++;
    if (*v < '0' || *v > '9')
        return 0; /* HTTP-date form: not used by the API server */
    while (*v >= '0' && *v <= '9') {
        s = s * 10 + (uint64_t)(*v - '0');
        if (s * 1000 > RETRY_AFTER_MAX)
            return RETRY_AFTER_MAX;
        v++;
    }
    while (*v == ' ')
        v++;
    return *v == '\0' ? s * 1000 : 0;
}

int cp_k8s_query_escape(char *out, size_t outlen, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(out);

    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        if (n + (plain ? 1 : 3) >= outlen)
            return CL_EBUSY;
        if (plain) {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
    return 0;
}

static uint32_t next_rnd(struct cp_k8s_client *c)
{
    uint32_t x = c->rnd; /* xorshift32 */

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c->rnd = x;
    return x;
}

/* ---- calls ------------------------------------------------------------------------------------
 */

static void on_call_closed(uv_handle_t *h)
{
    struct cp_k8s_call *call = CL_CONTAINER_OF((uv_timer_t *)h, struct cp_k8s_call, retry);

    cl_mem_free(call);
}

static void call_free(struct cp_k8s_call *call)
{
    cl_list_remove(&call->all);
    cl_list_remove(&call->queue);
    cl_free(&call->method);
    cl_free(&call->path);
    cl_free(&call->ctype);
    cl_free(&call->body);
    cl_buf_deinit(&call->in);
    if (call->lines_init)
        cp_lines_deinit(&call->lines);
    if (call->retry_init)
        uv_close((uv_handle_t *)&call->retry, on_call_closed);
    else
        cl_mem_free(call);
}

static struct cp_k8s_call *call_new(struct cp_k8s_client *c, const char *method, const char *path,
                                    const char *ctype, const char *body, size_t bodylen)
{
    struct cp_k8s_call *call = cl_calloc(1, sizeof(*call));

    if (call == NULL)
        return NULL;
    cl_list_init(&call->all);
    cl_list_init(&call->queue);
    call->c = c;
    cl_buf_init(&call->in, c->o.max_body);
    call->started_ms = cl_now_ms();
    if ((call->method = cl_strdup(method)) == NULL || (call->path = cl_strdup(path)) == NULL ||
        (ctype != NULL && (call->ctype = cl_strdup(ctype)) == NULL) ||
        (body != NULL && (call->body = cl_strndup(body, bodylen)) == NULL)) {
        call_free(call);
        return NULL;
    }
    call->bodylen = body != NULL ? bodylen : 0;
    cl_list_insert_tail(&c->calls, &call->all);
    return call;
}

static void enqueue(struct cp_k8s_call *call)
{
    call->state = CALL_PENDING;
    if (call->urgent)
        cl_list_insert_tail(call->c->pending.next, &call->queue); /* before the first */
    else
        cl_list_insert_tail(&call->c->pending, &call->queue);
}

static void on_retry_timer(uv_timer_t *t)
{
    struct cp_k8s_call *call = CL_CONTAINER_OF(t, struct cp_k8s_call, retry);

    enqueue(call);
    dispatch(call->c);
}

/* The attempt ended (err != 0: no answer). Retries or hands the result to the owner. */
static void finish_call(struct cp_k8s_call *call, int err, const char *detail)
{
    struct cp_k8s_client *c = call->c;
    struct cl_jerr je;
    json_t *j = NULL;

    call->conn = NULL;
    if (call->watch) {
        if (err == 0 && call->status != 200 && call->in.len > 0)
            j = cl_json_loadb(cl_buf_ptr(&call->in), call->in.len, &je);
        if (err == 0 && call->line_err != 0)
            err = call->line_err;
        CL_DEBUG("cp.k8s", "watch %s ended: status=%d %s%s%s", call->path, call->status,
                 cl_strerror(err), detail != NULL && detail[0] ? ": " : "",
                 detail != NULL ? detail : "");
        call->in_cb = true;
        call->wcbs.on_end(err, err == 0 ? call->status : 0, j, call->ud);
        json_decref(j);
        call_free(call);
        return;
    }
    bool retryable = err != 0 || call->status == 429 || call->status == 500 ||
                     call->status == 502 || call->status == 503 || call->status == 504;
    if (retryable && call->attempts < call->max_attempts) {
        uint64_t delay = call->status == 429 && call->retry_after_ms > 0
                             ? call->retry_after_ms
                             : cp_k8s_backoff_ms(call->attempts, c->o.backoff_base_ms,
                                                 c->o.backoff_max_ms, next_rnd(c));
        CL_DEBUG("cp.k8s", "%s %s: %s (attempt %d of %d), retrying in %llu ms", call->method,
                 call->path,
                 err != 0 ? cl_strerror(err) : (call->status == 429 ? "429" : "server error"),
                 call->attempts, call->max_attempts, (unsigned long long)delay);
        cl_buf_reset(&call->in);
        call->status = 0;
        if (!call->retry_init) {
            uv_timer_init(c->loop, &call->retry);
            call->retry_init = true;
        }
        call->state = CALL_WAIT_RETRY;
        uv_timer_start(&call->retry, on_retry_timer, delay, 0);
        return;
    }
    struct cp_k8s_resp r = {
        .err = err,
        .status = err == 0 ? call->status : 0,
        .body = call->in.len > 0 ? (const char *)cl_buf_ptr(&call->in) : "",
        .len = call->in.len,
        .attempts = call->attempts,
        .detail = detail != NULL ? detail : "",
    };
    if (err == 0 && call->in.len > 0)
        r.json = j = cl_json_loadb(cl_buf_ptr(&call->in), call->in.len, &je);
    CL_DEBUG("cp.k8s", "%s %s -> %d%s%s (%llu ms, %d attempt%s)", call->method, call->path,
             r.status, err != 0 ? " " : "", err != 0 ? cl_strerror(err) : "",
             (unsigned long long)(cl_now_ms() - call->started_ms), call->attempts,
             call->attempts == 1 ? "" : "s");
    call->in_cb = true;
    call->cb(&r, call->ud);
    json_decref(j);
    call_free(call);
}

/* ---- connections ----------------------------------------------------------------------------- */

static void set_state(struct conn *k, enum conn_state st)
{
    CL_TRACE("cp.k8s", "k8sconn=%llu %s -> %s", (unsigned long long)k->id,
             conn_state_names[k->state], conn_state_names[st]);
    k->state = st;
}

static void conn_maybe_free(struct conn *k)
{
    if (k->nhandles > 0 || k->gai_busy)
        return;
    cl_tls_free(k->tls);
    cp_http_parser_deinit(&k->parser);
    cl_mem_free(k->rbuf);
    cl_mem_free(k);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *k = h->data;

    k->nhandles--;
    conn_maybe_free(k);
}

static void on_conn_timer(uv_timer_t *t)
{
    struct conn *k = CL_CONTAINER_OF(t, struct conn, timer);

    if (k->state == CONN_CLOSING)
        return;
    if (k->call != NULL) {
        snprintf(k->detail, sizeof(k->detail), "%s timed out",
                 k->call->watch && k->state == CONN_READY ? "watch (no data)"
                                                          : conn_state_names[k->state]);
        conn_close(k, CL_ETIMEDOUT);
    } else {
        conn_close(k, 0); /* idle keep-alive connection */
    }
}

static void conn_arm(struct conn *k, uint64_t ms)
{
    uv_timer_start(&k->timer, on_conn_timer, ms, 0);
}

static void conn_close(struct conn *k, int err)
{
    struct cp_k8s_call *call = k->call;

    if (k->state == CONN_CLOSING)
        return;
    CL_DEBUG("cp.k8s", "k8sconn=%llu closing in state %s: %s%s%s", (unsigned long long)k->id,
             conn_state_names[k->state], cl_strerror(err), k->detail[0] ? ": " : "", k->detail);
    set_state(k, CONN_CLOSING);
    cl_list_remove(&k->link);
    k->call = NULL;
    if (k->gai_busy)
        uv_cancel((uv_req_t *)&k->gai);
    uv_close((uv_handle_t *)&k->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&k->tcp, on_conn_handle_closed);
    if (call != NULL) {
        char detail[640];
        snprintf(detail, sizeof(detail), "%s", k->detail);
        finish_call(call, err != 0 ? err : CL_ECLOSED, detail);
    }
    if (k->c != NULL)
        dispatch(k->c);
}

static void write_out(struct conn *k);

static void on_write(uv_write_t *req, int status)
{
    struct conn *k = CL_CONTAINER_OF(req, struct conn, wreq);

    k->writing = false;
    if (k->state == CONN_CLOSING)
        return;
    cl_bufq_consume(cl_tls_outq(k->tls), k->wlen);
    if (status < 0) {
        snprintf(k->detail, sizeof(k->detail), "write: %s", uv_strerror(status));
        conn_close(k, status);
        return;
    }
    write_out(k); /* more may have been queued meanwhile */
}

static void write_out(struct conn *k)
{
    struct cl_bufq *q = cl_tls_outq(k->tls);
    struct iovec iov[MAX_IOV];
    uv_buf_t bufs[MAX_IOV];
    size_t n, total = 0;
    int rc;

    if (k->writing || cl_bufq_len(q) == 0 || k->state == CONN_CLOSING)
        return;
    n = cl_bufq_peek_iov(q, 0, iov, MAX_IOV);
    for (size_t i = 0; i < n; i++) {
        bufs[i] = uv_buf_init(iov[i].iov_base, (unsigned)iov[i].iov_len);
        total += iov[i].iov_len;
    }
    if ((rc = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, bufs, (unsigned)n, on_write)) != 0) {
        snprintf(k->detail, sizeof(k->detail), "write: %s", uv_strerror(rc));
        conn_close(k, rc);
        return;
    }
    k->writing = true;
    k->wlen = total;
}

/* Writes the current call's request. */
static void send_request(struct conn *k)
{
    struct cp_k8s_client *c = k->c;
    struct cp_k8s_call *call = k->call;
    const char *token = cp_k8s_config_token(c->cfg);
    struct cl_buf b;
    int rc;

    cl_buf_init(&b, MAX_HEAD + call->bodylen);
    rc = cl_buf_printf(&b,
                       "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cl-controlplane/" CL_VERSION
                       "\r\nAccept: application/json\r\n",
                       call->method, c->cfg->prefix, call->path, c->authority);
    if (rc == 0 && token != NULL && token[0] != '\0')
        rc = cl_buf_printf(&b, "Authorization: Bearer %s\r\n", token);
    if (rc == 0 && call->body != NULL)
        rc = cl_buf_printf(&b, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                           call->ctype != NULL ? call->ctype : "application/json", call->bodylen);
    else if (rc == 0 && (strcmp(call->method, "POST") == 0 || strcmp(call->method, "PUT") == 0 ||
                         strcmp(call->method, "PATCH") == 0))
        rc = cl_buf_append_str(&b, "Content-Length: 0\r\n");
    if (rc == 0)
        rc = cl_buf_append_str(&b, "\r\n");
    if (rc == 0 && call->body != NULL)
        rc = cl_buf_append(&b, call->body, call->bodylen);
    if (rc == 0) {
        ssize_t n = cl_tls_write(k->tls, cl_buf_ptr(&b), b.len);
        if (n < 0) {
            snprintf(k->detail, sizeof(k->detail), "%s", cl_tls_error_detail(k->tls));
            rc = (int)n;
        }
    }
    cl_buf_deinit(&b);
    if (rc != 0) {
        conn_close(k, rc);
        return;
    }
    CL_TRACE("cp.k8s", "k8sconn=%llu %s %s", (unsigned long long)k->id, call->method, call->path);
    write_out(k);
}

/* ---- answers ------------------------------------------------------------------------------- */

static int on_head(const struct cp_http_head *h, void *ud)
{
    struct conn *k = ud;
    struct cp_k8s_call *call = k->call;

    if (call == NULL)
        return CL_ECLOSED;
    call->status = h->status;
    call->retry_after_ms = cp_k8s_retry_after_ms(cp_http_head_get(h, "Retry-After"));
    k->close_after = h->close;
    cl_buf_reset(&call->in);
    if (call->watch && h->status != 200)
        call->in.max = WATCH_ERR_BODY;
    return 0;
}

static int on_watch_line(const char *line, size_t len, void *ud)
{
    struct conn *k = ud;
    struct cp_k8s_call *call = k->call;
    int rc;

    if (call == NULL)
        return CL_ECLOSED;
    call->in_cb = true;
    rc = call->wcbs.on_line(line, len, call->ud);
    call->in_cb = false;
    if (call->cancelled)
        return CL_ECLOSED; /* on_body frees it */
    if (rc < 0) {
        call->line_err = rc;
        return rc;
    }
    return 0;
}

static int on_body(const uint8_t *p, size_t n, void *ud)
{
    struct conn *k = ud;
    struct cp_k8s_call *call = k->call;
    int rc;

    if (call == NULL || k->state == CONN_CLOSING)
        return CL_ECLOSED;
    if (call->watch && call->status == 200) {
        rc = cp_lines_feed(&call->lines, p, n, on_watch_line, k);
        if (call->cancelled) { /* by on_line: the connection is closing already */
            call_free(call);
            return CL_ECLOSED;
        }
        return rc;
    }
    if ((rc = cl_buf_append(&call->in, p, n)) != 0)
        return rc == CL_EBUSY ? CL_EHTTP_TOOBIG : rc;
    return 0;
}

static int on_done(void *ud)
{
    struct conn *k = ud;

    k->done = true;
    return 0;
}

static const struct cp_http_cbs http_cbs = {
    .on_head = on_head,
    .on_body = on_body,
    .on_done = on_done,
};

/* The parser completed an answer: the call ends, the connection goes idle or closes. */
static void complete(struct conn *k)
{
    struct cp_k8s_call *call = k->call;

    k->done = false;
    if (call == NULL) { /* an answer nobody asked for */
        conn_close(k, CL_EHTTP);
        return;
    }
    k->call = NULL;
    /* made with TLS files since replaced (cp_k8s_client_reload_tls): the next call dials anew */
    if (k->close_after || k->dedicated || (k->tls != NULL && cl_tls_is_stale(k->tls)))
        conn_close(k, 0);
    else
        conn_arm(k, KEEPALIVE_IDLE);
    finish_call(call, 0, NULL);
    if (k->state != CONN_CLOSING && k->c != NULL)
        dispatch(k->c);
}

static void ready(struct conn *k)
{
    set_state(k, CONN_READY);
    if (k->call != NULL) {
        conn_arm(k, k->call->timeout_ms);
        send_request(k);
    } else {
        conn_arm(k, KEEPALIVE_IDLE);
        dispatch(k->c);
    }
}

static void process_input(struct conn *k)
{
    int rc;

    if (k->state == CONN_HANDSHAKE) {
        rc = cl_tls_handshake(k->tls);
        if (rc == CL_EAGAIN) {
            write_out(k);
            return;
        }
        if (rc != 0) {
            snprintf(k->detail, sizeof(k->detail), "%s", cl_tls_error_detail(k->tls));
            CL_WARN("cp.k8s", "TLS with the API server %s failed: %s", k->c->authority, k->detail);
            conn_close(k, rc);
            return;
        }
        write_out(k);
        ready(k);
        if (k->state == CONN_CLOSING)
            return;
    }
    for (;;) {
        ssize_t n = cl_tls_read(k->tls, k->rbuf, READ_PLAIN);
        if (n == CL_EAGAIN)
            break;
        if (n == CL_EOF) {
            rc = cp_http_parse_eof(&k->parser);
            if (k->done) {
                k->close_after = true;
                complete(k);
            } else if (k->state != CONN_CLOSING) {
                snprintf(k->detail, sizeof(k->detail), "the API server closed the connection");
                conn_close(k, k->call != NULL ? (rc != 0 ? rc : CL_EOF) : 0);
            }
            return;
        }
        if (n < 0) {
            snprintf(k->detail, sizeof(k->detail), "%s", cl_tls_error_detail(k->tls));
            conn_close(k, (int)n);
            return;
        }
        if (k->call != NULL && k->call->watch)
            conn_arm(k, k->call->timeout_ms); /* a watch's deadline is its idle time */
        size_t off = 0;
        while (off < (size_t)n) {
            ssize_t r = cp_http_parse(&k->parser, k->rbuf + off, (size_t)n - off);
            if (k->state == CONN_CLOSING)
                return;
            if (r < 0) {
                snprintf(k->detail, sizeof(k->detail), "bad answer from the API server: %s",
                         cl_strerror((int)r));
                conn_close(k, (int)r);
                return;
            }
            off += (size_t)r;
            if (k->done) {
                complete(k);
                if (k->state == CONN_CLOSING)
                    return;
            }
        }
    }
    write_out(k);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *k = h->data;
    uint8_t *p = NULL;
    size_t n;

    (void)hint;
    n = k->state == CONN_CLOSING ? 0 : cl_tls_in_reserve(k->tls, &p);
    buf->base = (char *)p;
    buf->len = n;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *k = st->data;

    (void)buf;
    if (k->state == CONN_CLOSING)
        return;
    if (nread == UV_EOF) {
        /* a TCP close without close_notify: treat it as the end of the stream */
        int rc = k->state == CONN_READY ? cp_http_parse_eof(&k->parser) : CL_EOF;
        if (k->done) {
            k->close_after = true;
            complete(k);
            return;
        }
        snprintf(k->detail, sizeof(k->detail), "the API server closed the connection");
        conn_close(k, k->call != NULL ? (rc != 0 ? rc : CL_EOF) : 0);
        return;
    }
    if (nread < 0) {
        snprintf(k->detail, sizeof(k->detail), "read: %s", uv_strerror((int)nread));
        conn_close(k, (int)nread);
        return;
    }
    if (nread == 0)
        return;
    cl_tls_in_commit(k->tls, (size_t)nread);
    process_input(k);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *k = CL_CONTAINER_OF(req, struct conn, creq);
    int rc;

    if (k->state == CONN_CLOSING)
        return;
    if (status < 0) {
        snprintf(k->detail, sizeof(k->detail), "connect to %s: %s", k->c->authority,
                 uv_strerror(status));
        conn_close(k, status);
        return;
    }
    uv_tcp_nodelay(&k->tcp, 1);
    set_state(k, CONN_HANDSHAKE);
    if ((rc = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read)) != 0) {
        conn_close(k, rc);
        return;
    }
    process_input(k); /* sends the ClientHello */
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    struct conn *k = CL_CONTAINER_OF(req, struct conn, gai);
    int rc;

    k->gai_busy = false;
    if (k->state == CONN_CLOSING) {
        uv_freeaddrinfo(ai);
        conn_maybe_free(k);
        return;
    }
    if (status < 0 || ai == NULL) {
        snprintf(k->detail, sizeof(k->detail), "cannot resolve %s: %s", k->c->cfg->host,
                 uv_strerror(status < 0 ? status : UV_EAI_NONAME));
        uv_freeaddrinfo(ai);
        conn_close(k, status < 0 ? status : UV_EAI_NONAME);
        return;
    }
    set_state(k, CONN_CONNECTING);
    rc = uv_tcp_connect(&k->creq, &k->tcp, ai->ai_addr, on_connect);
    uv_freeaddrinfo(ai);
    if (rc != 0) {
        snprintf(k->detail, sizeof(k->detail), "connect to %s: %s", k->c->authority,
                 uv_strerror(rc));
        conn_close(k, rc);
    }
}

static struct conn *conn_new(struct cp_k8s_client *c, bool dedicated, uint64_t timeout_ms)
{
    struct addrinfo hints;
    char port[8];
    struct conn *k = cl_calloc(1, sizeof(*k));
    int rc;

    if (k == NULL)
        return NULL;
    k->c = c;
    k->id = ++c->next_id;
    k->dedicated = dedicated;
    cp_http_parser_init(&k->parser, MAX_HEAD, 0, &http_cbs, k);
    if ((k->rbuf = cl_malloc(READ_PLAIN)) == NULL ||
        (k->tls = cl_tls_new(c->tls, c->cfg->server_name)) == NULL) {
        cp_http_parser_deinit(&k->parser);
        cl_mem_free(k->rbuf);
        cl_mem_free(k);
        return NULL;
    }
    uv_tcp_init(c->loop, &k->tcp);
    uv_timer_init(c->loop, &k->timer);
    k->tcp.data = k;
    k->timer.data = k;
    k->nhandles = 2;
    set_state(k, CONN_RESOLVING);
    cl_list_insert_tail(&c->conns, &k->link);
    conn_arm(k, timeout_ms);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", c->cfg->port);
    if ((rc = uv_getaddrinfo(c->loop, &k->gai, on_resolved, c->cfg->host, port, &hints)) != 0) {
        snprintf(k->detail, sizeof(k->detail), "cannot resolve %s: %s", c->cfg->host,
                 uv_strerror(rc));
        k->call = NULL;
        conn_close(k, rc);
        return NULL;
    }
    k->gai_busy = true;
    return k;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static size_t request_conns(struct cp_k8s_client *c)
{
    struct cl_list *pos, *tmp;
    size_t n = 0;

    cl_list_foreach_safe(pos, tmp, &c->conns)
    {
        if (!CL_CONTAINER_OF(pos, struct conn, link)->dedicated)
            n++;
    }
    return n;
}

static struct conn *idle_conn(struct cp_k8s_client *c)
{
    struct cl_list *pos, *tmp;

    cl_list_foreach_safe(pos, tmp, &c->conns)
    {
        struct conn *k = CL_CONTAINER_OF(pos, struct conn, link);
        if (!k->dedicated && k->call == NULL && k->state == CONN_READY &&
            cp_http_parser_is_idle(&k->parser))
            return k;
    }
    return NULL;
}

/* Connections still being set up with no call: the first free one takes the next call. */
static struct conn *spare_conn(struct cp_k8s_client *c)
{
    struct cl_list *pos, *tmp;

    cl_list_foreach_safe(pos, tmp, &c->conns)
    {
        struct conn *k = CL_CONTAINER_OF(pos, struct conn, link);
        if (!k->dedicated && k->call == NULL && k->state < CONN_READY)
            return k;
    }
    return NULL;
}

static void dispatch(struct cp_k8s_client *c)
{
    if (c->dispatching) {
        c->redispatch = true;
        return;
    }
    c->dispatching = true;
    do {
        c->redispatch = false;
        while (!cl_list_is_empty(&c->pending)) {
            struct cp_k8s_call *call = NULL;
            struct conn *k = NULL;
            struct cl_list *pos, *tmp;
            /* the first pending call that can go now */
            cl_list_foreach_safe(pos, tmp, &c->pending)
            {
                struct cp_k8s_call *x = CL_CONTAINER_OF(pos, struct cp_k8s_call, queue);
                k = NULL;
                /* an urgent call (the Lease) may open one connection more than the rest */
                if (x->watch || (k = idle_conn(c)) != NULL || (k = spare_conn(c)) != NULL ||
                    request_conns(c) < c->o.max_conns + (x->urgent ? 1 : 0)) {
                    call = x;
                    break;
                }
            }
            if (call == NULL)
                break;
            cl_list_remove(&call->queue);
            call->attempts++;
            call->state = CALL_ACTIVE;
            if (k == NULL && (k = conn_new(c, call->watch, call->timeout_ms)) == NULL) {
                finish_call(call, CL_ENOMEM, "cannot open a connection");
                continue;
            }
            k->call = call;
            call->conn = k;
            if (call->watch && !call->lines_init) {
                cp_lines_init(&call->lines, WATCH_LINE_MAX);
                call->lines_init = true;
            }
            if (k->state == CONN_READY) {
                conn_arm(k, call->timeout_ms);
                send_request(k);
            }
        }
    } while (c->redispatch);
    c->dispatching = false;
}

/* ---- API ------------------------------------------------------------------------------------ */

int cp_k8s_client_new(uv_loop_t *loop, struct cp_k8s_config *cfg,
                      const struct cp_k8s_client_opts *o, struct cp_k8s_client **out, char *err,
                      size_t errlen)
{
    /*
     * The server is verified against the kubeconfig's or the pod's CA, by DNS name or (an IP
     * literal such as $KUBERNETES_SERVICE_HOST) by iPAddress SAN; a client certificate only
     * when the kubeconfig has one (tokens authenticate otherwise); ALPN offers http/1.1, and a
     * server that selects no protocol is fine (HTTP/1.1 needs no ALPN). Material that came
     * from files is given as files (they win over the PEM text), so that
     * cp_k8s_client_reload_tls can pick up replaced ones.
     */
    struct cl_tls_ctx_opts to = {.ca_file = cfg->ca_file,
                                 .cert_file = cfg->cert_file,
                                 .key_file = cfg->key_file,
                                 .ca_pem = cfg->ca_pem,
                                 .cert_pem = cfg->cert_pem,
                                 .key_pem = cfg->key_pem,
                                 .cert_optional = true,
                                 .alpn_mode = CL_TLS_ALPN_OFFER,
                                 .alpn = "http/1.1",
                                 .peer_label = "API server"};
    struct cp_k8s_client *c;
    char why[320] = "";
    int rc;

    *out = NULL;
    if ((c = cl_calloc(1, sizeof(*c))) == NULL)
        return CL_ENOMEM;
    if ((rc = cl_tls_ctx_new(&to, &c->tls, why, sizeof(why))) != 0) {
        if (err != NULL)
            snprintf(err, errlen, "API server TLS: %s", why[0] ? why : cl_strerror(rc));
        cl_mem_free(c);
        return rc;
    }
    c->loop = loop;
    c->cfg = cfg;
    if (o != NULL)
        c->o = *o;
    if (c->o.backoff_base_ms == 0)
        c->o.backoff_base_ms = 200;
    if (c->o.backoff_max_ms == 0)
        c->o.backoff_max_ms = 10000;
    if (c->o.max_conns == 0)
        c->o.max_conns = 4;
    if (c->o.max_body == 0)
        c->o.max_body = 64u << 20;
    c->rnd = (uint32_t)uv_hrtime() | 1;
    uv_timer_init(loop, &c->kick);
    cl_list_init(&c->conns);
    cl_list_init(&c->pending);
    cl_list_init(&c->calls);
    if (strchr(cfg->host, ':') != NULL)
        snprintf(c->authority, sizeof(c->authority), "[%s]:%u", cfg->host, cfg->port);
    else
        snprintf(c->authority, sizeof(c->authority), "%s:%u", cfg->host, cfg->port);
    *out = c;
    return 0;
}

static void on_client_closed(uv_handle_t *h)
{
    cl_mem_free(CL_CONTAINER_OF((uv_timer_t *)h, struct cp_k8s_client, kick));
}

void cp_k8s_client_free(struct cp_k8s_client *c)
{
    struct cl_list *pos, *tmp;

    if (c == NULL)
        return;
    cl_list_foreach_safe(pos, tmp, &c->calls)
    {
        cp_k8s_call_cancel(CL_CONTAINER_OF(pos, struct cp_k8s_call, all));
    }
    cl_list_foreach_safe(pos, tmp, &c->conns)
    {
        struct conn *k = CL_CONTAINER_OF(pos, struct conn, link);
        k->c = NULL;
        conn_close(k, 0);
    }
    cl_tls_ctx_unref(c->tls);
    uv_close((uv_handle_t *)&c->kick, on_client_closed);
}

int cp_k8s_client_reload_tls(struct cp_k8s_client *c, char *err, size_t errlen)
{
    struct cl_list *pos, *tmp;
    int rc = cl_tls_ctx_reload(c->tls, err, errlen);

    if (rc != 1)
        return rc;
    /* idle keep-alive connections were made with the old files: the next call dials anew;
     * busy ones close after their call (complete), and watches run until they end */
    cl_list_foreach_safe(pos, tmp, &c->conns)
    {
        struct conn *k = CL_CONTAINER_OF(pos, struct conn, link);
        if (!k->dedicated && k->call == NULL && k->state == CONN_READY)
            conn_close(k, 0);
    }
    return rc;
}

static void on_kick(uv_timer_t *t)
{
    dispatch(CL_CONTAINER_OF(t, struct cp_k8s_client, kick));
}

static int start(struct cp_k8s_call *call, struct cp_k8s_call **out)
{
    if (out != NULL)
        *out = call;
    enqueue(call);
    /* dispatch from the loop, not here: callbacks must not run before the caller returns */
    uv_timer_start(&call->c->kick, on_kick, 0, 0);
    return 0;
}

int cp_k8s_call(struct cp_k8s_client *c, const struct cp_k8s_req *r, cp_k8s_resp_cb cb, void *ud,
                struct cp_k8s_call **out)
{
    struct cp_k8s_call *call =
        call_new(c, r->method, r->path, r->content_type, r->body, r->bodylen);

    if (call == NULL)
        return CL_ENOMEM;
    call->timeout_ms = r->timeout_ms != 0 ? r->timeout_ms : 30000;
    call->max_attempts = r->max_attempts > 0 ? r->max_attempts : 5;
    call->urgent = r->urgent;
    call->cb = cb;
    call->ud = ud;
    return start(call, out);
}

int cp_k8s_call_json(struct cp_k8s_client *c, const struct cp_k8s_req *r, const json_t *body,
                     cp_k8s_resp_cb cb, void *ud, struct cp_k8s_call **out)
{
    struct cp_k8s_req req = *r;
    char *text = NULL;
    int rc;

    req.body = NULL;
    req.bodylen = 0;
    if (body != NULL) {
        if ((text = cl_json_dumps(body)) == NULL)
            return CL_ENOMEM;
        req.body = text;
        req.bodylen = strlen(text);
    }
    rc = cp_k8s_call(c, &req, cb, ud, out);
    cl_mem_free(text); /* the call keeps a copy */
    return rc;
}

int cp_k8s_watch(struct cp_k8s_client *c, const char *path, uint64_t idle_ms,
                 const struct cp_k8s_watch_cbs *cbs, void *ud, struct cp_k8s_call **out)
{
    struct cp_k8s_call *call = call_new(c, "GET", path, NULL, NULL, 0);

    if (call == NULL)
        return CL_ENOMEM;
    call->watch = true;
    call->timeout_ms = idle_ms != 0 ? idle_ms : 300000;
    call->max_attempts = 1;
    call->wcbs = *cbs;
    call->ud = ud;
    return start(call, out);
}

void cp_k8s_call_cancel(struct cp_k8s_call *call)
{
    struct conn *k;

    if (call == NULL || call->cancelled)
        return;
    if (call->in_cb && call->conn == NULL) { /* from its own final callback */
        call->cancelled = true;
        return;
    }
    if (call->state == CALL_ACTIVE && (k = call->conn) != NULL) {
        k->call = NULL;
        call->conn = NULL;
        /* mid-request the connection cannot carry another call; still connecting, it can */
        if (k->state == CONN_READY || k->dedicated)
            conn_close(k, 0);
    }
    if (call->retry_init)
        uv_timer_stop(&call->retry);
    if (call->in_cb) { /* from on_line: on_body frees it when the feed returns */
        call->cancelled = true;
        return;
    }
    call_free(call);
}
