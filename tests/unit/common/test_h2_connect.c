/*
 * HTTP/2 client and server (cl_h2conn over TLS) wired back to back in memory: the bytes each
 * side writes are queued and fed to the other by the test loop, so every code path but the
 * socket runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/buf.h"
#include "cl/err.h"
#include "cl/h2conn.h"
#include "cl/mem.h"
#include "cm.h"
#include "pki.h"
#include "testutil.h"

static struct cl_test_pki pki;
static uv_loop_t loop;
static struct cl_buf to_srv, to_cli;
static struct cl_h2conn *cli, *srv;
static struct cl_tls_ctx *cctx, *sctx;
static bool cli_ready, srv_closed, cli_closed;
/* idle tests: per-connection idle timeouts for setup, what happened in which order, and a tick
 * so that the loop sleeps between pumps while timers run */
static uint64_t srv_idle_ms, cli_idle_ms;
static char events[16]; /* G: client got GOAWAY, g: server got GOAWAY, C/S: client/server closed */
static int srv_err, cli_err;
static uint64_t srv_closed_at, srv_stream_closed_at;
static bool propagate_eof; /* a side's close reaches the other as EOF once its bytes are in */
static uv_timer_t tick;

static void event(char e)
{
    size_t n = strlen(events);

    if (n + 1 < sizeof(events))
        events[n] = e;
}

/* ---- wiring ---- */

static void on_write(struct cl_h2conn *c, const uint8_t *data, size_t len, void *wud)
{
    (void)c;
    assert_int_equal(cl_buf_append(wud, data, len), 0);
}

static void pump(void)
{
    for (int i = 0; i < 4; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (to_srv.len > 0 && srv != NULL) {
            struct cl_buf b = to_srv;
            cl_buf_init(&to_srv, 64u << 20);
            cl_h2conn_feed(srv, cl_buf_ptr(&b), b.len);
            cl_buf_deinit(&b);
        }
        if (to_cli.len > 0 && cli != NULL) {
            struct cl_buf b = to_cli;
            cl_buf_init(&to_cli, 64u << 20);
            cl_h2conn_feed(cli, cl_buf_ptr(&b), b.len);
            cl_buf_deinit(&b);
        }
        if (propagate_eof && srv_closed && to_cli.len == 0 && cli != NULL)
            cl_h2conn_feed_eof(cli);
        if (propagate_eof && cli_closed && to_srv.len == 0 && srv != NULL)
            cl_h2conn_feed_eof(srv);
    }
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Pumps until cond or `ms` of loop time, sleeping a few ms between pumps so timers fire. */
#define WAIT_UNTIL(cond, ms)                          \
    do {                                              \
        uint64_t _end = uv_now(&loop) + (ms);         \
        while (!(cond) && uv_now(&loop) < _end) {     \
            pump();                                   \
            if (!(cond)) {                            \
                uv_timer_start(&tick, on_tick, 2, 0); \
                uv_run(&loop, UV_RUN_ONCE);           \
            }                                         \
        }                                             \
    } while (0)

#define PUMP_UNTIL(cond)                             \
    do {                                             \
        for (int _i = 0; _i < 2000 && !(cond); _i++) \
            pump();                                  \
        assert_true(cond);                           \
    } while (0)

/* ---- server: echo for CONNECT (optionally not consuming), fixed body for GET/POST ---- */

struct sstream {
    struct cl_h2stream *s;
    bool connect;
    bool hold; /* do not return flow-control credit */
    size_t received;
    struct cl_buf body;
    bool ended;
};

static struct sstream sstreams[8];
static size_t nsstreams;
static bool hold_next;

static void s_on_data(struct cl_h2stream *s, const uint8_t *data, size_t len, void *ud)
{
    struct sstream *ss = ud;

    ss->received += len;
    if (ss->connect) {
        if (!ss->hold) {
            assert_int_equal(cl_h2stream_write(s, data, len), (ssize_t)len);
            cl_h2stream_consume(s, len);
        }
    } else {
        cl_buf_append(&ss->body, data, len);
        cl_h2stream_consume(s, len);
    }
}

static void s_on_end(struct cl_h2stream *s, void *ud)
{
    struct sstream *ss = ud;
    char reply[256];

    ss->ended = true;
    if (ss->connect) {
        cl_h2stream_end(s); /* half-close echoed */
        return;
    }
    snprintf(reply, sizeof(reply), "got %zu bytes: %.*s", ss->body.len, (int)ss->body.len,
             (const char *)cl_buf_ptr(&ss->body));
    cl_h2stream_respond(s, 200, NULL, 0, false);
    cl_h2stream_write(s, reply, strlen(reply));
    cl_h2stream_end(s);
}

static void s_on_close(struct cl_h2stream *s, int err, void *ud)
{
    struct sstream *ss = ud;

    (void)s;
    (void)err;
    ss->s = NULL;
    cl_buf_deinit(&ss->body);
    srv_stream_closed_at = uv_now(&loop);
}

static const struct cl_h2stream_cbs s_cbs = {
    .on_data = s_on_data, .on_end = s_on_end, .on_close = s_on_close};

static void on_request(struct cl_h2conn *c, struct cl_h2stream *s, const struct cl_h2_req *req,
                       void *ud)
{
    struct sstream *ss;

    (void)c;
    (void)ud;
    if (req->path != NULL && strcmp(req->path, "/respond-only") == 0) {
        /* answered at once, no stream callbacks: as the dataplane refuses a bad request */
        assert_int_equal(cl_h2stream_respond(s, 400, NULL, 0, false), 0);
        assert_int_equal(cl_h2stream_write(s, "bad", 3), 3);
        assert_int_equal(cl_h2stream_end(s), 0);
        return;
    }
    ss = &sstreams[nsstreams++];
    memset(ss, 0, sizeof(*ss));
    ss->s = s;
    ss->connect = strcmp(req->method, "CONNECT") == 0;
    ss->hold = hold_next;
    cl_buf_init(&ss->body, 1 << 20);
    cl_h2stream_set_cbs(s, &s_cbs, ss);
    if (ss->connect) {
        assert_string_equal(req->authority, "web:443");
        assert_null(req->path);
        cl_h2stream_respond(s, 200, NULL, 0, false);
    } else {
        assert_string_equal(req->path, "/api/v1/status");
    }
}

static void srv_on_close(struct cl_h2conn *c, int err, void *ud)
{
    (void)c;
    (void)ud;
    event('S');
    srv_err = err;
    srv_closed_at = uv_now(&loop);
    srv_closed = true;
    srv = NULL;
}

static void srv_on_goaway(struct cl_h2conn *c, void *ud)
{
    (void)c;
    (void)ud;
    event('g');
}

static void cli_on_goaway(struct cl_h2conn *c, void *ud)
{
    (void)ud;
    event('G');
    assert_false(cl_h2conn_can_open(c)); /* a pool would not pick it any more */
}

static void cli_on_ready(struct cl_h2conn *c, void *ud)
{
    (void)c;
    (void)ud;
    cli_ready = true;
}

static void cli_on_close(struct cl_h2conn *c, int err, void *ud)
{
    (void)c;
    (void)ud;
    event('C');
    cli_err = err;
    cli_closed = true;
    cli = NULL;
}

static const struct cl_h2conn_cbs srv_cbs = {
    .on_request = on_request, .on_close = srv_on_close, .on_goaway = srv_on_goaway};
static const struct cl_h2conn_cbs cli_cbs = {
    .on_ready = cli_on_ready, .on_close = cli_on_close, .on_goaway = cli_on_goaway};

/* Both connections, from these contexts' options; with `until_ready`, pumped until the client
 * is ready. */
static int make_pair(const struct cl_tls_ctx_opts *so, const struct cl_tls_ctx_opts *co,
                     bool until_ready)
{
    uv_loop_init(&loop);
    cl_buf_init(&to_srv, 64u << 20);
    cl_buf_init(&to_cli, 64u << 20);
    assert_int_equal(cl_tls_ctx_new(so, &sctx, NULL, 0), 0);
    assert_int_equal(cl_tls_ctx_new(co, &cctx, NULL, 0), 0);
    struct cl_h2conn_opts s = {
        .server = true, .tls = sctx, .idle_timeout_ms = srv_idle_ms, .cbs = &srv_cbs};
    struct cl_h2conn_opts c = {.server = false,
                               .tls = cctx,
                               .server_name = "srv",
                               .idle_timeout_ms = cli_idle_ms,
                               .cbs = &cli_cbs};
    cli_ready = srv_closed = cli_closed = false;
    memset(events, 0, sizeof(events));
    srv_err = cli_err = 1;
    srv_closed_at = srv_stream_closed_at = 0;
    uv_timer_init(&loop, &tick);
    nsstreams = 0;
    hold_next = false;
    assert_int_equal(cl_h2conn_new_mem(&loop, &s, on_write, &to_cli, &srv), 0);
    assert_int_equal(cl_h2conn_new_mem(&loop, &c, on_write, &to_srv, &cli), 0);
    if (until_ready)
        PUMP_UNTIL(cli_ready);
    return 0;
}

static int setup(void **state)
{
    struct cl_tls_ctx_opts so = {
        .server = true, .cert_pem = pki.srv.cert, .key_pem = pki.srv.key, .ca_pem = pki.ca};
    struct cl_tls_ctx_opts co = {
        .server = false, .cert_pem = pki.cli.cert, .key_pem = pki.cli.key, .ca_pem = pki.ca};
    (void)state;

    return make_pair(&so, &co, true);
}

/* setup_files: where the certificate files are (srv-*.pem, cli-*.pem, ca.pem) */
static char *fdir;

/* Puts a new version of fdir/name in place, by rename (a new inode: a reload sees it). */
static void put_file(const char *name, const char *text)
{
    char path[600], tmp[620];

    snprintf(path, sizeof(path), "%s/%s", fdir, name);
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    assert_int_equal(cl_test_write_file(tmp, text, strlen(text)), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* Contexts from files, so they can be reloaded; the handshake is left to the test. */
static int setup_files(void **state)
{
    static char f[5][620];
    (void)state;

    fdir = cl_test_mkdtemp("h2reload");
    assert_non_null(fdir);
    put_file("srv-cert.pem", pki.srv.cert);
    put_file("srv-key.pem", pki.srv.key);
    put_file("cli-cert.pem", pki.cli.cert);
    put_file("cli-key.pem", pki.cli.key);
    put_file("ca.pem", pki.ca);
    const char *names[5] = {"srv-cert.pem", "srv-key.pem", "cli-cert.pem", "cli-key.pem", "ca.pem"};
    for (int i = 0; i < 5; i++)
        snprintf(f[i], sizeof(f[i]), "%s/%s", fdir, names[i]);
    struct cl_tls_ctx_opts so = {
        .server = true, .cert_file = f[0], .key_file = f[1], .ca_file = f[4]};
    struct cl_tls_ctx_opts co = {
        .server = false, .cert_file = f[2], .key_file = f[3], .ca_file = f[4]};
    return make_pair(&so, &co, false);
}

static int teardown(void **state)
{
    (void)state;
    if (cli != NULL)
        cl_h2conn_close(cli, 0);
    if (srv != NULL)
        cl_h2conn_close(srv, 0);
    uv_close((uv_handle_t *)&tick, NULL);
    for (int i = 0; i < 100 && (!cli_closed || !srv_closed); i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT); /* the tick's close */
    srv_idle_ms = cli_idle_ms = 0;
    propagate_eof = false;
    assert_true(cli_closed && srv_closed);
    cl_tls_ctx_unref(cctx);
    cl_tls_ctx_unref(sctx);
    cl_buf_deinit(&to_srv);
    cl_buf_deinit(&to_cli);
    assert_int_equal(uv_loop_close(&loop), 0); /* no leaked handles */
    return 0;
}

static int teardown_files(void **state)
{
    int rc = teardown(state);

    cl_test_rmtree(fdir);
    cl_free(&fdir);
    return rc;
}

/* ---- tests ---- */

struct fetched {
    bool done;
    int err, status;
    char body[256];
};

static void on_fetch(int err, int status, const uint8_t *body, size_t len, void *ud)
{
    struct fetched *f = ud;

    f->done = true;
    f->err = err;
    f->status = status;
    snprintf(f->body, sizeof(f->body), "%.*s", (int)len, (const char *)body);
}

static void fetch_get_and_post(void **state)
{
    struct fetched f = {0}, g = {0};
    (void)state;

    assert_int_equal(cl_h2_fetch(cli, "GET", "srv", "/api/v1/status", NULL, 0, NULL, 0, 4096, 5000,
                                 on_fetch, &f),
                     0);
    assert_int_equal(cl_h2_fetch(cli, "POST", "srv", "/api/v1/status", NULL, 0, "hello", 5, 4096,
                                 5000, on_fetch, &g),
                     0);
    PUMP_UNTIL(f.done && g.done);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.status, 200);
    assert_string_equal(f.body, "got 0 bytes: ");
    assert_int_equal(g.err, 0);
    assert_string_equal(g.body, "got 5 bytes: hello");
}

/* A server that answers from on_request without setting stream callbacks has answered: the
 * client gets that answer, not a refused stream. */
static void respond_without_callbacks(void **state)
{
    struct fetched f = {0}, g = {0};
    (void)state;

    assert_int_equal(
        cl_h2_fetch(cli, "GET", "srv", "/respond-only", NULL, 0, NULL, 0, 4096, 5000, on_fetch, &f),
        0);
    PUMP_UNTIL(f.done);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.status, 400);
    assert_string_equal(f.body, "bad");
    /* a request body sent to such a stream is dropped, and the connection goes on */
    assert_int_equal(cl_h2_fetch(cli, "POST", "srv", "/respond-only", NULL, 0, "ignored", 7, 4096,
                                 5000, on_fetch, &g),
                     0);
    PUMP_UNTIL(g.done);
    assert_int_equal(g.status, 400);
    memset(&f, 0, sizeof(f));
    assert_int_equal(cl_h2_fetch(cli, "GET", "srv", "/api/v1/status", NULL, 0, NULL, 0, 4096, 5000,
                                 on_fetch, &f),
                     0);
    PUMP_UNTIL(f.done);
    assert_int_equal(f.status, 200);
}

struct cstream {
    struct cl_h2stream *s;
    int status;
    size_t got;
    uint8_t *buf;
    size_t cap;
    bool ended, closed;
    int err;
    int datas, flushes;
    size_t flushed;      /* got at the last on_data_flush */
    bool flush_in_order; /* every flush came after new data */
};

static void c_on_response(struct cl_h2stream *s, int status, const struct cl_h2_hdr *h, size_t n,
                          void *ud)
{
    (void)s;
    (void)h;
    (void)n;
    ((struct cstream *)ud)->status = status;
}

static void c_on_data(struct cl_h2stream *s, const uint8_t *data, size_t len, void *ud)
{
    struct cstream *cs = ud;

    assert_true(cs->got + len <= cs->cap);
    memcpy(cs->buf + cs->got, data, len);
    cs->got += len;
    cs->datas++;
    cl_h2stream_consume(s, len);
}

static void c_on_data_flush(struct cl_h2stream *s, void *ud)
{
    struct cstream *cs = ud;

    (void)s;
    if (cs->got == cs->flushed)
        cs->flush_in_order = false;
    cs->flushed = cs->got;
    cs->flushes++;
}

static void c_on_end(struct cl_h2stream *s, void *ud)
{
    (void)s;
    ((struct cstream *)ud)->ended = true;
}

static bool in_owner_write; /* no stream callback may run inside the owner's own write */

static void c_on_close(struct cl_h2stream *s, int err, void *ud)
{
    struct cstream *cs = ud;

    (void)s;
    assert_false(in_owner_write);
    cs->err = err;
    cs->closed = true;
    cs->s = NULL;
}

static const struct cl_h2stream_cbs c_cbs = {
    .on_response = c_on_response, .on_data = c_on_data, .on_end = c_on_end, .on_close = c_on_close};

static const struct cl_h2stream_cbs c_flush_cbs = {.on_response = c_on_response,
                                                   .on_data = c_on_data,
                                                   .on_data_flush = c_on_data_flush,
                                                   .on_end = c_on_end,
                                                   .on_close = c_on_close};

static struct cl_h2stream *open_connect(struct cstream *cs)
{
    struct cl_h2_hdr h[] = {{":method", "CONNECT", 7, 7}, {":authority", "web:443", 10, 7}};

    return cs->s = cl_h2conn_open(cli, h, 2, false, &c_cbs, cs);
}

/* DATA fed in one go (many frames, many TLS records) is flushed once, after the last frame. */
static void data_flush_once_per_batch(void **state)
{
    size_t len = 200 * 1024;
    uint8_t *src = malloc(len);
    struct cstream cs = {.buf = malloc(len), .cap = len, .flush_in_order = true};
    struct cl_h2_hdr h[] = {{":method", "CONNECT", 7, 7}, {":authority", "web:443", 10, 7}};
    (void)state;

    for (size_t i = 0; i < len; i++)
        src[i] = (uint8_t)(i % 253);
    assert_non_null(cs.s = cl_h2conn_open(cli, h, 2, false, &c_flush_cbs, &cs));
    PUMP_UNTIL(cs.status == 200);
    assert_int_equal(cl_h2stream_write(cs.s, src, len), (ssize_t)len); /* fits the queue */
    cl_h2stream_end(cs.s);
    PUMP_UNTIL(cs.closed);
    assert_int_equal(cs.err, 0);
    assert_int_equal(cs.got, len);
    assert_memory_equal(cs.buf, src, len);
    assert_true(cs.flush_in_order);
    assert_int_equal(cs.flushed, len); /* nothing delivered without a flush after it */
    assert_true(cs.flushes >= 1);
    assert_true(cs.flushes < cs.datas); /* frames of one batch share a flush */
    free(src);
    free(cs.buf);
}

static void connect_echo_with_half_close(void **state)
{
    size_t len = 3u << 20, sent = 0;
    uint8_t *src = malloc(len);
    struct cstream cs = {.buf = malloc(len), .cap = len};
    (void)state;

    for (size_t i = 0; i < len; i++)
        src[i] = (uint8_t)(i % 251);
    assert_non_null(open_connect(&cs));
    PUMP_UNTIL(cs.status == 200);
    while (sent < len) { /* the send queue is bounded: write as room appears */
        ssize_t n = cl_h2stream_write(cs.s, src + sent, len - sent);
        assert_true(n >= 0);
        sent += (size_t)n;
        pump();
    }
    cl_h2stream_end(cs.s); /* half-close: the echo keeps flowing back */
    PUMP_UNTIL(cs.closed);
    assert_int_equal(cs.err, 0);
    assert_true(cs.ended);
    assert_int_equal(cs.got, len);
    assert_memory_equal(cs.buf, src, len);
    free(src);
    free(cs.buf);
}

static void backpressure_per_stream(void **state)
{
    static uint8_t chunk[64 * 1024];
    struct cstream slow = {.buf = malloc(1), .cap = 1},
                   fast = {.buf = malloc(1 << 20), .cap = 1 << 20};
    size_t pushed = 0;
    (void)state;

    hold_next = true; /* the first stream's server side never returns credit */
    assert_non_null(open_connect(&slow));
    PUMP_UNTIL(slow.status == 200);
    hold_next = false;
    for (int i = 0; i < 200; i++) { /* offer 12 MiB; the 2 MiB window must stop it */
        ssize_t n = cl_h2stream_write(slow.s, chunk, sizeof(chunk));
        pushed += (size_t)(n > 0 ? n : 0);
        pump();
    }
    assert_true(sstreams[0].received <= (2u << 20));
    assert_true(sstreams[0].received >= (1u << 20));
    assert_true(pushed < (3u << 20)); /* the sender's queue filled and stayed full */
    /* a second stream on the same connection still flows */
    assert_non_null(open_connect(&fast));
    PUMP_UNTIL(fast.status == 200);
    assert_int_equal(cl_h2stream_write(fast.s, "xyz", 3), 3);
    cl_h2stream_end(fast.s);
    PUMP_UNTIL(fast.closed);
    assert_int_equal(fast.err, 0);
    assert_int_equal(fast.got, 3);
    cl_h2stream_reset(slow.s, 8); /* CANCEL */
    PUMP_UNTIL(slow.closed && sstreams[0].s == NULL);
    assert_int_equal(slow.err, CL_EH2_RESET);
    free(slow.buf);
    free(fast.buf);
}

/*
 * A write that fills its stream's queue encrypts at once (the owner keeps reading), which
 * sends whatever else nghttp2 holds: a stream closed by that (here: its RST_STREAM goes out)
 * gets its on_close from the next flush, never from inside the owner's write.
 */
static void full_write_pulls_without_reentry(void **state)
{
    size_t len = 256 * 1024;
    uint8_t *src = calloc(1, len);
    struct cstream a = {.buf = malloc(16), .cap = 16}, b = {.buf = malloc(len), .cap = len};
    ssize_t n;
    (void)state;

    assert_non_null(open_connect(&a));
    assert_non_null(open_connect(&b));
    PUMP_UNTIL(a.status == 200 && b.status == 200);
    cl_h2stream_reset(a.s, 8); /* CANCEL: queued, not sent yet */
    in_owner_write = true;
    n = cl_h2stream_write(b.s, src, len);
    in_owner_write = false;
    assert_true(n >= (ssize_t)(len - 64 * 1024));        /* the queue's bound, in whole chunks */
    assert_true(cl_h2stream_sendq_len(b.s) < (size_t)n); /* encrypted at once: it drained */
    assert_false(a.closed);                              /* reported later, not under the write */
    assert_int_equal(cl_h2stream_write(a.s, "x", 1), CL_ECLOSED); /* but already unusable */
    PUMP_UNTIL(a.closed);
    assert_int_equal(a.err, CL_EH2_RESET);
    cl_h2stream_end(b.s);
    PUMP_UNTIL(b.closed);
    assert_int_equal(b.err, 0);
    assert_int_equal(b.got, (size_t)n);
    free(src);
    free(a.buf);
    free(b.buf);
}

/*
 * Receive window auto-tuning: a reader that keeps up, but returns credit with a delay (here:
 * every other pass of the test loop, as a socket write completes one loop iteration later),
 * while the sender waits for credit gets a larger window, up to the maximum; one that stops
 * consuming holds at most the window it has, which shrinks back while it falls behind.
 */
static size_t client_pending; /* delivered, not consumed yet */

static void c_on_data_later(struct cl_h2stream *s, const uint8_t *data, size_t len, void *ud)
{
    struct cstream *cs = ud;

    (void)s;
    (void)data;
    cs->got += len;
    client_pending += len;
}

static const struct cl_h2stream_cbs c_later_cbs = {.on_response = c_on_response,
                                                   .on_data = c_on_data_later,
                                                   .on_end = c_on_end,
                                                   .on_close = c_on_close};

/* The server pushes `total` bytes (or what it can in `passes` passes); every other pass the
 * client consumes what it has, or at most `slow` bytes when `slow` is set. */
static void push_from_server(struct cstream *cs, size_t total, size_t slow, int passes)
{
    static uint8_t chunk[64 * 1024];
    int pass = 0;

    for (size_t sent = 0; sent < total && pass < passes;) {
        ssize_t n = cl_h2stream_write(sstreams[0].s, chunk, CL_MIN(sizeof(chunk), total - sent));
        assert_true(n >= 0);
        sent += (size_t)n;
        if (n > 0)
            continue;
        if (++pass % 2 == 0 && client_pending > 0) {
            size_t m = slow != 0 ? CL_MIN(slow, client_pending) : client_pending;
            cl_h2stream_consume(cs->s, m);
            client_pending -= m;
        }
        pump();
        assert_true(client_pending <= (8u << 20)); /* never more than the largest window */
    }
}

static void recv_window_autotune(void **state)
{
    struct cstream cs = {.buf = NULL, .cap = 0};
    struct cl_h2_hdr h[] = {{":method", "CONNECT", 7, 7}, {":authority", "web:443", 10, 7}};
    size_t initial, grown, total;
    (void)state;

    client_pending = 0;
    assert_non_null(cs.s = cl_h2conn_open(cli, h, 2, false, &c_later_cbs, &cs));
    PUMP_UNTIL(cs.status == 200 && nsstreams == 1);
    initial = cl_h2stream_recv_window(cs.s);
    assert_int_equal(initial, 2u << 20);
    /* a reader that keeps up: the window grows, never past the maximum */
    push_from_server(&cs, 64u << 20, 0, 1 << 30);
    grown = cl_h2stream_recv_window(cs.s);
    assert_true(grown > initial);
    assert_true(grown <= (8u << 20));
    /* a slow reader (64 KiB every other pass): the window shrinks back to where it started */
    push_from_server(&cs, 64u << 20, 64 * 1024, 400);
    assert_int_equal(cl_h2stream_recv_window(cs.s), initial);
    assert_true(cl_h2stream_sendq_len(sstreams[0].s) > 0); /* the sender waits for credit */
    /* and speeds up again: everything flows */
    total = cs.got;
    cl_h2stream_consume(cs.s, client_pending);
    client_pending = 0;
    PUMP_UNTIL(cs.got > total && cl_h2stream_sendq_len(sstreams[0].s) == 0);
    cl_h2stream_reset(cs.s, 8);
    PUMP_UNTIL(cs.closed);
}

/* ---- idle connections: GOAWAY, then close ---- */

static int setup_srv_idle(void **state)
{
    srv_idle_ms = 60;
    propagate_eof = true;
    return setup(state);
}

static int setup_cli_idle(void **state)
{
    cli_idle_ms = 60;
    propagate_eof = true;
    return setup(state);
}

/* Reloads ctx, which must take the new files. */
static void reload(struct cl_tls_ctx *ctx)
{
    char err[256];

    assert_int_equal(cl_tls_ctx_reload(ctx, err, sizeof(err)), 1);
}

/* GET /api/v1/status on the client before its handshake is done (sent once it is). */
static void queue_status_fetch(struct fetched *f)
{
    assert_int_equal(
        cl_h2_fetch(cli, "GET", "srv", "/api/v1/status", NULL, 0, NULL, 0, 4096, 5000, on_fetch, f),
        0);
}

/* Connections made from contexts that are not reloaded meanwhile stay open for new streams. */
static void handshake_without_reload_stays_open(void **state)
{
    (void)state;
    PUMP_UNTIL(cli_ready);
    pump();
    assert_true(cl_h2conn_can_open(cli));
    assert_string_equal(events, "");
}

/*
 * The client's files are replaced after its connection was made, before the handshake is done:
 * the connection was made with the old material, so once ready it retires (GOAWAY) instead of
 * taking new streams; the request already queued on it is answered, then it closes.
 */
static void client_handshake_across_reload_retires(void **state)
{
    struct fetched f = {0};
    (void)state;

    queue_status_fetch(&f);
    put_file("cli-cert.pem", pki.srv.cert); /* another valid pair from the same CA */
    put_file("cli-key.pem", pki.srv.key);
    reload(cctx);
    PUMP_UNTIL(cli_ready && f.done);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.status, 200);
    assert_true(cli == NULL || !cl_h2conn_can_open(cli)); /* NULL: already closed */
    PUMP_UNTIL(strchr(events, 'g') != NULL);              /* the server heard it */
    WAIT_UNTIL(cli_closed, 3000);                         /* and, with no stream left, it ends */
    assert_true(cli_closed);
    assert_int_equal(cli_err, 0);
}

/*
 * The same on the server: its handshake, begun with the old files, ends after the reload, and
 * it says GOAWAY at once with no stream processed. The client's request, sent right behind its
 * handshake, is refused unprocessed (a dataplane retries such a stream on a new connection).
 */
static void server_handshake_across_reload_retires(void **state)
{
    struct fetched f = {0};
    (void)state;

    queue_status_fetch(&f);
    put_file("ca.pem", pki.ca); /* the same bytes, a new file: a new version all the same */
    reload(sctx);
    PUMP_UNTIL(cli_ready && f.done);
    assert_int_equal(f.err, CL_EH2_REFUSED);
    assert_int_equal(nsstreams, 0); /* the server never took it */
    assert_non_null(strchr(events, 'G'));
    assert_true(cli == NULL || !cl_h2conn_can_open(cli));
}

/* A server connection with no stream for its idle timeout says GOAWAY (the client sees it and
 * opens nothing more), then closes cleanly; the client then sees the end of the stream. */
static void server_idle_goaway_then_close(void **state)
{
    struct fetched f = {0};
    (void)state;

    assert_int_equal(cl_h2_fetch(cli, "GET", "srv", "/api/v1/status", NULL, 0, NULL, 0, 4096, 5000,
                                 on_fetch, &f),
                     0);
    PUMP_UNTIL(f.done && srv_stream_closed_at != 0);
    assert_int_equal(f.status, 200);
    WAIT_UNTIL(cli_closed, 5000);
    assert_true(srv_closed && cli_closed);
    /* the server wrote GOAWAY and closed; the client read the GOAWAY, then the end */
    assert_string_equal(events, "SGC");
    assert_int_equal(srv_err, 0); /* orderly, not a timeout or an error */
    assert_int_equal(cli_err, 0);
    assert_true(srv_closed_at - srv_stream_closed_at >= 60);
}

/* An open stream holds the connection however long it is quiet; the idle deadline starts when
 * the last stream ends, and a stream that comes and goes meanwhile starts it again. */
static void open_stream_holds_idle_connection(void **state)
{
    uint8_t buf[16];
    struct cstream cs = {.buf = buf, .cap = sizeof(buf)};
    struct fetched f = {0};
    uint64_t t0;
    (void)state;

    assert_non_null(open_connect(&cs));
    PUMP_UNTIL(cs.status == 200);
    assert_int_equal(cl_h2stream_write(cs.s, "ping", 4), 4);
    PUMP_UNTIL(cs.got == 4);
    t0 = uv_now(&loop);
    WAIT_UNTIL(srv_closed, 250); /* four idle timeouts with a quiet open stream */
    assert_true(uv_now(&loop) - t0 >= 250);
    assert_false(srv_closed || cli_closed);
    assert_string_equal(events, "");
    cl_h2stream_end(cs.s); /* the echo ends too: the stream closes */
    PUMP_UNTIL(cs.closed);
    assert_int_equal(cs.err, 0);
    /* part-way through the idle timeout, another stream comes and goes: the deadline moves */
    t0 = uv_now(&loop);
    WAIT_UNTIL(srv_closed, 30);
    assert_false(srv_closed);
    assert_int_equal(cl_h2_fetch(cli, "GET", "srv", "/api/v1/status", NULL, 0, NULL, 0, 4096, 5000,
                                 on_fetch, &f),
                     0);
    PUMP_UNTIL(f.done);
    assert_int_equal(f.status, 200);
    assert_true(srv_stream_closed_at >= t0 + 30);
    WAIT_UNTIL(cli_closed, 5000);
    assert_string_equal(events, "SGC");
    assert_int_equal(srv_err, 0);
    assert_int_equal(cli_err, 0);
    assert_true(srv_closed_at - srv_stream_closed_at >= 60);
}

/* A pooled (client) connection idle for its timeout also says GOAWAY before it closes. */
static void client_idle_goaway_then_close(void **state)
{
    uint64_t t0 = uv_now(&loop);
    (void)state;

    WAIT_UNTIL(srv_closed && cli_closed, 5000);
    assert_true(srv_closed && cli_closed);
    assert_true(uv_now(&loop) - t0 >= 50);
    assert_int_equal(cli_err, 0);
    assert_int_equal(srv_err, 0);
    assert_non_null(strchr(events, 'g'));                   /* the server got the GOAWAY */
    assert_true(strchr(events, 'g') < strchr(events, 'S')); /* before its end */
    assert_null(strchr(events, 'G'));                       /* and sent none itself */
}

/* Idle timeout 0: a connection with no stream stays. */
static void no_idle_timeout_no_close(void **state)
{
    (void)state;
    WAIT_UNTIL(srv_closed || cli_closed, 200);
    assert_false(srv_closed || cli_closed);
    assert_string_equal(events, "");
}

static bool hs_closed;
static int hs_err, hs_stream_err = 1;

static void hs_on_close(struct cl_h2conn *c, int err, void *ud)
{
    (void)c;
    (void)ud;
    hs_closed = true;
    hs_err = err;
}

static void hs_stream_close(struct cl_h2stream *s, int err, void *ud)
{
    (void)s;
    (void)ud;
    hs_stream_err = err;
}

/* A stream opened before the handshake completes does not lift the handshake deadline. */
static void early_stream_keeps_handshake_deadline(void **state)
{
    static const struct cl_h2conn_cbs cbs = {.on_close = hs_on_close};
    static const struct cl_h2stream_cbs scbs = {.on_close = hs_stream_close};
    struct cl_h2_hdr h[] = {{":method", "CONNECT", 7, 7}, {":authority", "web:443", 10, 7}};
    struct cl_h2conn_opts o = {.server = false,
                               .tls = cctx,
                               .server_name = "srv",
                               .handshake_timeout_ms = 50,
                               .idle_timeout_ms = 1000,
                               .cbs = &cbs};
    struct cl_buf sink; /* nobody answers: the ClientHello goes nowhere */
    struct cl_h2conn *c;
    uint64_t t0 = uv_now(&loop);
    (void)state;

    cl_buf_init(&sink, 1 << 20);
    hs_closed = false;
    assert_int_equal(cl_h2conn_new_mem(&loop, &o, on_write, &sink, &c), 0);
    assert_non_null(cl_h2conn_open(c, h, 2, false, &scbs, NULL));
    WAIT_UNTIL(hs_closed, 5000);
    assert_true(hs_closed);
    assert_true(uv_now(&loop) - t0 >= 50);
    assert_int_equal(hs_err, CL_ETIMEDOUT);
    assert_int_equal(hs_stream_err, CL_ETIMEDOUT);
    cl_buf_deinit(&sink);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fetch_get_and_post, setup, teardown),
        cmocka_unit_test_setup_teardown(respond_without_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(connect_echo_with_half_close, setup, teardown),
        cmocka_unit_test_setup_teardown(backpressure_per_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(data_flush_once_per_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(full_write_pulls_without_reentry, setup, teardown),
        cmocka_unit_test_setup_teardown(recv_window_autotune, setup, teardown),
        cmocka_unit_test_setup_teardown(server_idle_goaway_then_close, setup_srv_idle, teardown),
        cmocka_unit_test_setup_teardown(open_stream_holds_idle_connection, setup_srv_idle,
                                        teardown),
        cmocka_unit_test_setup_teardown(client_idle_goaway_then_close, setup_cli_idle, teardown),
        cmocka_unit_test_setup_teardown(no_idle_timeout_no_close, setup, teardown),
        cmocka_unit_test_setup_teardown(early_stream_keeps_handshake_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(handshake_without_reload_stays_open, setup_files,
                                        teardown_files),
        cmocka_unit_test_setup_teardown(client_handshake_across_reload_retires, setup_files,
                                        teardown_files),
        cmocka_unit_test_setup_teardown(server_handshake_across_reload_retires, setup_files,
                                        teardown_files),
    };
    int rc;

    cl_tls_global_init();
    if (cl_test_pki_make(&pki) != 0)
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    cl_test_pki_free(&pki);
    cl_tls_global_cleanup();
    return rc;
}
