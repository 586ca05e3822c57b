/*
 * The splice engine (dataplane/dp_tunnel.c) driven through fake transports: no socket, no TLS.
 * A fake is a source the test feeds (TCP-like: reads into what the engine hands out and stops
 * when told; HTTP/2-like: pushes borrowed bytes, ignores stop and lives on credit) and a sink
 * that queues what it is given until the test completes the writes.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cm.h"
#include "dp.h"
#include "testutil.h"
#include "worker.h"

#define QCAP   (2u << 20) /* a fake sink's hard bound (bytes accepted, not completed) */
#define GOTCAP (8u << 20)
#define KB     1024u

struct fake {
    struct dp_xprt x;
    bool h2; /* source: ignores read_stop, bounded by `window` minus credit */
    /* source */
    bool reading;
    int read_starts, read_stops, start_err;
    size_t window, delivered, consumed;
    /* sink */
    uint8_t q[QCAP];
    size_t qlen;
    uint8_t got[GOTCAP];
    size_t got_len;
    uint8_t rsv[64 * KB];
    size_t hiwat, lowat;
    bool want_wr;
    int writable_calls, write_err;
    bool shut_req, shut_done;
    int shutdowns;
    int flushes;
    size_t flushed; /* qlen at the last flush */
    /* close */
    int closes;
    bool closed_reset, close_async, close_pending, closed;
};

static uv_loop_t loop;
static struct dp_worker w;
static struct fake fdown, fup;
static struct dp_tunnel *t;
static uint64_t tref;
static uint8_t pattern[4u << 20];

/* ---- fake ops ---- */

static struct fake *fk(struct dp_xprt *x)
{
    return CL_CONTAINER_OF(x, struct fake, x);
}

static int f_read_start(struct dp_xprt *x)
{
    struct fake *f = fk(x);

    f->read_starts++;
    if (f->start_err != 0)
        return f->start_err;
    f->reading = true;
    return 0;
}

static void f_read_stop(struct dp_xprt *x)
{
    struct fake *f = fk(x);

    f->read_stops++;
    if (!f->h2)
        f->reading = false;
}

static void f_consume(struct dp_xprt *x, size_t n)
{
    fk(x)->consumed += n;
}

static size_t f_write_room(struct dp_xprt *x)
{
    struct fake *f = fk(x);
    size_t room = f->qlen < f->hiwat ? f->hiwat - f->qlen : 0;

    if (room < CL_BUFQ_CHUNK)
        f->want_wr = true;
    return room;
}

static size_t f_reserve(struct dp_xprt *x, uint8_t **p)
{
    struct fake *f = fk(x);
    size_t room = f_write_room(x);

    *p = f->rsv;
    return room < sizeof(f->rsv) ? room : sizeof(f->rsv);
}

static ssize_t f_write(struct dp_xprt *x, const uint8_t *data, size_t len)
{
    struct fake *f = fk(x);
    size_t n = len < QCAP - f->qlen ? len : QCAP - f->qlen;

    assert_false(f->closed || f->close_pending); /* no op after close */
    assert_false(f->shut_req);                   /* nothing after shutdown */
    if (f->write_err != 0)
        return f->write_err;
    memcpy(f->q + f->qlen, data, n);
    f->qlen += n;
    return (ssize_t)n;
}

static ssize_t f_commit(struct dp_xprt *x, size_t n)
{
    struct fake *f = fk(x);

    assert_true(n <= sizeof(f->rsv));
    return f_write(x, f->rsv, n);
}

static size_t f_write_queue_size(const struct dp_xprt *x)
{
    return CL_CONTAINER_OF(x, const struct fake, x)->qlen;
}

static int f_flush(struct dp_xprt *x)
{
    struct fake *f = fk(x);

    f->flushes++;
    f->flushed = f->qlen;
    return 0;
}

static int f_shutdown(struct dp_xprt *x)
{
    struct fake *f = fk(x);

    f->shut_req = true;
    f->shutdowns++;
    return 0;
}

static void f_close(struct dp_xprt *x, bool reset)
{
    struct fake *f = fk(x);

    f->closes++;
    f->closed_reset = reset;
    if (f->close_async) {
        f->close_pending = true;
        return;
    }
    f->closed = true;
    dp_xprt_on_closed(x);
}

static const struct dp_xprt_ops fake_ops = {
    .name = "fake",
    .read_start = f_read_start,
    .read_stop = f_read_stop,
    .consume = f_consume,
    .reserve = f_reserve,
    .commit = f_commit,
    .write = f_write,
    .flush = f_flush,
    .write_room = f_write_room,
    .write_queue_size = f_write_queue_size,
    .shutdown = f_shutdown,
    .close = f_close,
};

/* ---- driving the fakes ---- */

static bool alive(void)
{
    return dp_tunnel_get(tref) != NULL;
}

/* Pushes up to n bytes from `src` as its kind of source would; returns bytes taken. */
static size_t feed(struct fake *f, const uint8_t *src, size_t n)
{
    size_t fed = 0;

    while (fed < n && alive()) {
        size_t m;
        if (!f->h2) {
            uint8_t *p;
            if (!f->reading)
                break;
            if ((m = dp_xprt_alloc(&f->x, &p)) == 0) { /* libuv: UV_ENOBUFS */
                f->reading = false;
                dp_xprt_on_blocked(&f->x);
                break;
            }
            m = m < n - fed ? m : n - fed;
            memcpy(p, src + fed, m);
            dp_xprt_on_read(&f->x, p, m);
        } else {
            size_t avail = f->window - (f->delivered - f->consumed);
            m = CL_MIN(CL_MIN(avail, (size_t)CL_BUFQ_CHUNK), n - fed);
            if (m == 0)
                break;
            f->delivered += m;
            dp_xprt_on_read(&f->x, src + fed, m);
        }
        fed += m;
    }
    return fed;
}

/* The source ends (TCP FIN / END_STREAM). */
static void eof(struct fake *f)
{
    f->reading = false;
    dp_xprt_on_eof(&f->x);
}

/* The sink writes up to n queued bytes (as a write callback would). */
static void complete(struct fake *f, size_t n)
{
    size_t m = n < f->qlen ? n : f->qlen;

    if (f->closed || f->close_pending)
        return;
    if (m > 0) {
        memcpy(f->got + f->got_len, f->q, m);
        f->got_len += m;
        memmove(f->q, f->q + m, f->qlen - m);
        f->qlen -= m;
        dp_xprt_on_written(&f->x, m);
        if (!alive())
            return;
        if (f->want_wr && f->qlen <= f->lowat) {
            f->want_wr = false;
            f->writable_calls++;
            dp_xprt_on_writable(&f->x);
            if (!alive())
                return;
        }
    }
    if (f->shut_req && !f->shut_done && f->qlen == 0) {
        f->shut_done = true;
        dp_xprt_on_shutdown(&f->x);
    }
}

/* Finishes asynchronous closes and runs the loop so the tunnel frees itself. */
static void settle(void)
{
    for (int i = 0; i < 4; i++) {
        struct fake *fs[] = {&fdown, &fup};
        for (size_t k = 0; k < 2; k++) {
            if (fs[k]->close_pending) {
                fs[k]->close_pending = false;
                fs[k]->closed = true;
                dp_xprt_on_closed(&fs[k]->x);
            }
        }
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

/* Feeds n bytes from `src` to `dst` through the tunnel, completing writes as they come. */
static void transfer(struct fake *src, struct fake *dst, const uint8_t *data, size_t n)
{
    size_t off = 0;

    for (int guard = 0; off < n && guard < 100000; guard++) {
        off += feed(src, data + off, n - off);
        complete(dst, SIZE_MAX);
        assert_true(alive());
    }
    assert_int_equal(off, n);
}

static int64_t counter(const char *key)
{
    json_t *o = json_object_get(json_object_get(w.stats, "imports"), "imp");

    return json_integer_value(json_object_get(o, key));
}

static int64_t peer_counter(const char *key)
{
    json_t *o = json_object_get(json_object_get(w.stats, "peers"), "west");

    return json_integer_value(json_object_get(o, key));
}

static void fake_init(struct fake *f, bool h2)
{
    memset(f, 0, sizeof(*f));
    f->x.ops = &fake_ops;
    f->h2 = h2;
    f->window = 1024 * KB;
    f->hiwat = 256 * KB;
    f->lowat = 64 * KB;
}

/* ---- fixture ---- */

static int setup(void **state)
{
    (void)state;
    start_worker(&w, &loop);
    fake_init(&fdown, false); /* the client's TCP socket */
    fake_init(&fup, true);    /* the CONNECT stream */
    assert_non_null(t = dp_tunnel_new(true));
    tref = t->ref;
    snprintf(t->name, sizeof(t->name), "imp");
    dp_tunnel_attach(t, DP_DOWN, &fdown.x);
    dp_tunnel_attach(t, DP_UP, &fup.x);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (alive())
        dp_tunnel_abort(t, CL_ECLOSED);
    settle();
    /* every side closed exactly once, the tunnel freed, nothing left on the loop */
    assert_int_equal(fdown.closes, 1);
    assert_int_equal(fup.closes, 1);
    assert_true(fdown.closed && fup.closed);
    stop_worker(&w, &loop); /* no tunnel, no reference, no handle left */
    return 0;
}

/* ---- tests ---- */

static void data_both_ways(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    assert_true(fdown.reading && fup.reading);
    assert_int_equal(counter("open"), 1);
    transfer(&fdown, &fup, pattern, sizeof(pattern));
    transfer(&fup, &fdown, pattern + 1, sizeof(pattern) - 1);
    assert_int_equal(fup.got_len, sizeof(pattern));
    assert_memory_equal(fup.got, pattern, sizeof(pattern));
    assert_int_equal(fdown.got_len, sizeof(pattern) - 1);
    assert_memory_equal(fdown.got, pattern + 1, sizeof(pattern) - 1);
    /* every byte the stream delivered was credited back once written */
    assert_int_equal(fup.consumed, sizeof(pattern) - 1);
    assert_int_equal(counter("bytesOut"), (int64_t)sizeof(pattern));
    assert_int_equal(counter("bytesIn"), (int64_t)sizeof(pattern) - 1);
    assert_int_equal(counter("errors"), 0);
}

/* A tunnel to a peer counts under the import and under the peer: open, and bytes each way. */
static void peer_counts_open_and_bytes(void **state)
{
    (void)state;
    snprintf(t->peer, sizeof(t->peer), "west");
    assert_int_equal(dp_tunnel_start(t), 0);
    assert_int_equal(peer_counter("open"), 1);
    transfer(&fdown, &fup, pattern, sizeof(pattern));
    transfer(&fup, &fdown, pattern + 1, 1000);
    assert_int_equal(peer_counter("bytesOut"), (int64_t)sizeof(pattern));
    assert_int_equal(peer_counter("bytesIn"), 1000);
    assert_int_equal(counter("bytesOut"), (int64_t)sizeof(pattern));
    dp_tunnel_abort(t, CL_ECLOSED);
    settle();
    assert_int_equal(peer_counter("open"), 0);
    assert_int_equal(counter("open"), 0);
}

/* A TCP source is stopped when the sink reaches its high-water mark, resumed at low water. */
static void backpressure_stops_tcp_source(void **state)
{
    size_t fed;

    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    fed = feed(&fdown, pattern, sizeof(pattern)); /* the sink never completes */
    assert_false(fdown.reading);
    assert_int_equal(fdown.read_stops, 1);
    assert_true(fup.qlen <= fup.hiwat);
    assert_true(fup.qlen > fup.hiwat - CL_BUFQ_CHUNK);
    assert_int_equal(fed, fup.qlen);
    int starts = fdown.read_starts;
    /* draining to just above low water does not resume */
    complete(&fup, fup.qlen - fup.lowat - 1);
    assert_false(fdown.reading);
    assert_int_equal(fdown.read_starts, starts);
    /* at low water it does */
    complete(&fup, 1);
    assert_int_equal(fup.writable_calls, 1);
    assert_true(fdown.reading);
    assert_int_equal(fdown.read_starts, starts + 1);
    /* and the rest flows, bytes intact */
    transfer(&fdown, &fup, pattern + fed, sizeof(pattern) - fed);
    assert_memory_equal(fup.got, pattern, sizeof(pattern));
}

/* An HTTP/2 source is never stopped: credit is withheld until the bytes are written. */
static void backpressure_withholds_h2_credit(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    fdown.hiwat = 256 * KB;
    size_t fed = feed(&fup, pattern, sizeof(pattern));
    assert_int_equal(fed, fup.window); /* the window is the bound */
    assert_int_equal(fup.consumed, 0);
    assert_int_equal(fdown.qlen, fup.window);
    complete(&fdown, 100 * KB);
    assert_int_equal(fup.consumed, 100 * KB);
    assert_int_equal(feed(&fup, pattern + fed, sizeof(pattern)), 100 * KB);
    complete(&fdown, SIZE_MAX);
    assert_int_equal(fup.consumed, fed + 100 * KB);
    assert_memory_equal(fdown.got, pattern, fed + 100 * KB);
}

/* What an HTTP/2 source delivers in one loop iteration leaves the sink in one flush. */
static void h2_batch_flushed_once(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    assert_int_equal(feed(&fup, pattern, 3 * CL_BUFQ_CHUNK), 3 * CL_BUFQ_CHUNK); /* 3 frames */
    assert_int_equal(fdown.qlen, 3 * CL_BUFQ_CHUNK);
    assert_int_equal(fdown.flushes, 0); /* queued, not yet written */
    dp_xprt_on_read_flush(&fup.x);
    assert_int_equal(fdown.flushes, 1);
    assert_int_equal(fdown.flushed, 3 * CL_BUFQ_CHUNK);
    /* a TCP source's reads are written as they come (commit): no flush involved */
    transfer(&fdown, &fup, pattern, 100 * KB);
    assert_int_equal(fup.flushes, 0);
    complete(&fdown, SIZE_MAX);
    assert_memory_equal(fdown.got, pattern, 3 * CL_BUFQ_CHUNK);
}

/* The client finishes sending first: END_STREAM up, the reply still flows down, then both. */
static void half_close_down_first(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    transfer(&fdown, &fup, pattern, 100 * KB);
    eof(&fdown);
    complete(&fup, SIZE_MAX);
    assert_true(fup.shut_req && fup.shut_done);
    assert_false(fdown.shut_req);
    transfer(&fup, &fdown, pattern, 300 * KB); /* the other direction keeps flowing */
    assert_true(alive());
    eof(&fup);
    assert_true(fdown.shut_req);
    assert_true(alive()); /* not before the shutdown completed */
    complete(&fdown, SIZE_MAX);
    assert_false(alive());
    settle();
    assert_false(fdown.closed_reset || fup.closed_reset); /* orderly */
    assert_int_equal(fdown.got_len, 300 * KB);
    assert_int_equal(counter("open"), 0);
    assert_int_equal(counter("errors"), 0);
}

/* The stream ends first; the TCP shutdown waits until the queued bytes are written. */
static void half_close_up_first_drains(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    assert_int_equal(feed(&fup, pattern, 200 * KB), 200 * KB);
    eof(&fup);
    assert_true(fdown.shut_req);
    complete(&fdown, 50 * KB);
    assert_false(fdown.shut_done);
    complete(&fdown, SIZE_MAX);
    assert_true(fdown.shut_done);
    transfer(&fdown, &fup, pattern, 500 * KB); /* still flowing up */
    eof(&fdown);
    assert_true(alive());
    complete(&fup, SIZE_MAX);
    assert_false(alive());
    settle();
    assert_false(fdown.closed_reset || fup.closed_reset);
    assert_memory_equal(fdown.got, pattern, 200 * KB);
    assert_memory_equal(fup.got, pattern, 500 * KB);
}

static void reset_from_down(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    transfer(&fdown, &fup, pattern, 10 * KB);
    dp_xprt_on_error(&fdown.x, UV_ECONNRESET);
    assert_false(alive());
    settle();
    assert_true(fdown.closed_reset && fup.closed_reset);
    assert_int_equal(counter("errors"), 1);
    assert_int_equal(counter("open"), 0);
}

/* ---- the access log (--access-log) ---- */

static FILE *cap_file;
static int saved_stderr = -1;

/* From now on what is written to fd 2 goes to a temporary file. */
static void capture_stderr(void)
{
    fflush(stderr);
    assert_non_null(cap_file = tmpfile());
    assert_true((saved_stderr = dup(2)) >= 0);
    assert_int_equal(dup2(fileno(cap_file), 2), 2);
}

/* Puts fd 2 back; returns what was written meanwhile (NUL-terminated, static). */
static const char *captured(void)
{
    static char buf[8192];
    size_t n;

    fflush(stderr);
    assert_int_equal(dup2(saved_stderr, 2), 2);
    close(saved_stderr);
    rewind(cap_file);
    n = fread(buf, 1, sizeof(buf) - 1, cap_file);
    buf[n] = '\0';
    fclose(cap_file);
    return buf;
}

static int count_lines(const char *s, const char *needle)
{
    int n = 0;

    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* An orderly tunnel: one line, its bytes each way as the client and the service sent them. */
static void access_line_when_closed(void **state)
{
    unsigned long long id = (unsigned long long)t->id;
    char want[256];
    const char *out;

    (void)state;
    w.o.access_log = true;
    snprintf(t->peer, sizeof(t->peer), "west");
    snprintf(t->client, sizeof(t->client), "127.0.0.1:5000");
    t->status = 200;
    assert_int_equal(dp_tunnel_start(t), 0);
    transfer(&fdown, &fup, pattern, 100 * KB);
    transfer(&fup, &fdown, pattern, 300 * KB);
    capture_stderr();
    eof(&fdown);
    complete(&fup, SIZE_MAX);
    eof(&fup);
    complete(&fdown, SIZE_MAX);
    assert_false(alive());
    settle();
    out = captured();
    snprintf(want, sizeof(want),
             " level=info mod=dp.access msg=\"connection\" dir=egress conn=%llu import=\"imp\" "
             "peer=\"west\" client=\"127.0.0.1:5000\" status=200 client_bytes=102400 "
             "service_bytes=307200 ms=",
             id);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, " end=\"closed\"\n"));
    assert_int_equal(count_lines(out, "mod=dp.access"), 1);
}

/* A reset says what ended it; empty fields are left out. */
static void access_line_when_reset(void **state)
{
    char want[160];
    const char *out;

    (void)state;
    w.o.access_log = true;
    assert_int_equal(dp_tunnel_start(t), 0);
    transfer(&fdown, &fup, pattern, 10 * KB);
    capture_stderr();
    dp_xprt_on_error(&fdown.x, UV_ECONNRESET);
    settle();
    out = captured();
    assert_non_null(strstr(out, " status=0 client_bytes=10240 service_bytes=0 ms="));
    snprintf(want, sizeof(want), " end=\"%s\"\n", cl_strerror(UV_ECONNRESET));
    assert_non_null(strstr(out, want));
    assert_null(strstr(out, " peer="));
    assert_null(strstr(out, " client="));
}

/* On the export side the stream (up) is the client and the backend (down) the service; what
 * came from outside (the peer's name, a reason) is escaped inside its quotes. */
static void access_line_ingress_escaped(void **state)
{
    const char *out;

    (void)state;
    w.o.access_log = true;
    t->egress = false;
    snprintf(t->name, sizeof(t->name), "exp");
    snprintf(t->peer, sizeof(t->peer), "pe\"er\n");
    snprintf(t->why, sizeof(t->why), "no \\ way");
    assert_int_equal(dp_tunnel_start(t), 0);
    transfer(&fup, &fdown, pattern, 3000);
    transfer(&fdown, &fup, pattern, 500);
    capture_stderr();
    dp_tunnel_abort(t, CL_ECLOSED);
    settle();
    out = captured();
    assert_non_null(strstr(out, " dir=ingress conn="));
    assert_non_null(strstr(out, " export=\"exp\" peer=\"pe\\\"er\\x0a\" status=0 "
                                "client_bytes=3000 service_bytes=500 ms="));
    assert_non_null(strstr(out, " end=\"no \\\\ way\"\n"));
    assert_null(strstr(out, " import="));
}

/* Off unless asked: the other tests run with it off and write no access line. */
static void no_access_line_unless_asked(void **state)
{
    (void)state;
    assert_false(w.o.access_log);
    assert_int_equal(dp_tunnel_start(t), 0);
    capture_stderr();
    dp_tunnel_abort(t, CL_ECLOSED);
    settle();
    assert_null(strstr(captured(), "dp.access"));
}

static void reset_from_up(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    eof(&fdown); /* half-closed first: a reset still resets everything */
    dp_xprt_on_error(&fup.x, CL_EH2_RESET);
    assert_false(alive());
    settle();
    assert_true(fdown.closed_reset && fup.closed_reset);
    assert_int_equal(counter("errors"), 0); /* the far side's reset: counted over there */
}

/* The stream closed "cleanly" (RST NO_ERROR) while the client still sends: reset. */
static void up_shut_under_us_resets(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    eof(&fup);
    dp_xprt_on_shutdown(&fup.x);
    assert_false(alive());
    settle();
    assert_true(fdown.closed_reset);
}

static void write_error_aborts(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    fup.write_err = UV_EPIPE;
    feed(&fdown, pattern, 1000);
    assert_false(alive());
    settle();
    assert_true(fdown.closed_reset && fup.closed_reset);
    assert_int_equal(counter("errors"), 1);
}

/* A peer that overruns the window it was given: the sink takes less than offered. */
static void overrun_aborts(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    fup.window = 4u << 20;
    feed(&fup, pattern, sizeof(pattern));
    assert_false(alive());
    settle();
    assert_true(fdown.closed_reset);
}

/* Closing with writes in flight and asynchronous closes: late upcalls are ignored, every
 * side is closed once, the tunnel is freed only after the last close (ASan checks). */
static void close_with_writes_pending(void **state)
{
    (void)state;
    fdown.close_async = fup.close_async = true;
    assert_int_equal(dp_tunnel_start(t), 0);
    feed(&fdown, pattern, 200 * KB);
    feed(&fup, pattern, 200 * KB);
    assert_true(fup.qlen > 0 && fdown.qlen > 0);
    dp_tunnel_abort(t, CL_ECLOSED);
    assert_false(alive());
    /* what a transport might still report before its close finishes */
    dp_xprt_on_written(&fup.x, 100);
    dp_xprt_on_writable(&fdown.x);
    dp_xprt_on_read(&fup.x, pattern, 10);
    dp_xprt_on_eof(&fdown.x);
    dp_xprt_on_error(&fdown.x, UV_ECANCELED);
    dp_xprt_on_shutdown(&fup.x);
    dp_tunnel_abort(t, CL_ECLOSED); /* twice: no double close */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(t->nhandles, 2); /* the timer is closed; both sides are still closing */
    assert_int_equal(fdown.closes, 1);
    assert_int_equal(fup.closes, 1);
    settle();
    assert_int_equal(fup.consumed, 0);
}

static size_t json_allocs;

static void *count_malloc(size_t n)
{
    json_allocs++;
    return malloc(n != 0 ? n : 1);
}

/* Steady state moves bytes with no allocation at all (chunk pool, counters in place). */
static void no_allocation_per_chunk(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_start(t), 0);
    transfer(&fdown, &fup, pattern, 64 * KB); /* counters exist from here */
    transfer(&fup, &fdown, pattern, 64 * KB);
    json_set_alloc_funcs(count_malloc, free);
    json_allocs = 0;
    cl_failalloc_arm(1L << 40); /* counts, never fails */
    long before = cl_failalloc_count();
    transfer(&fdown, &fup, pattern, sizeof(pattern));
    transfer(&fup, &fdown, pattern, sizeof(pattern));
    long n = cl_failalloc_count() - before;
    cl_failalloc_arm(-1);
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(n, 0);
    assert_int_equal(json_allocs, 0);
}

static void run_until_closed(uint64_t max_ms)
{
    uint64_t end = uv_now(&loop) + max_ms;

    while (alive() && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
}

static void idle_timeout_resets(void **state)
{
    (void)state;
    t->idle_ms = 40;
    w.o.access_log = true;
    assert_int_equal(dp_tunnel_start(t), 0);
    uint64_t t0 = uv_now(&loop);
    capture_stderr();
    run_until_closed(5000);
    assert_false(alive());
    assert_true(uv_now(&loop) - t0 >= 40);
    settle();
    assert_non_null(strstr(captured(), " end=\"idle timeout\"\n")); /* not a bare errno text */
    assert_true(fdown.closed_reset && fup.closed_reset);
    /* the configured end of a quiet tunnel is counted apart from failures */
    assert_int_equal(counter("idleClosed"), 1);
    assert_int_equal(counter("errors"), 0);
}

static void on_poke(uv_timer_t *tm)
{
    (void)tm;
    if (alive())
        transfer(&fdown, &fup, pattern, 100);
}

/* Traffic keeps a tunnel alive past its idle timeout; silence then closes it. */
static void busy_tunnel_outlives_idle_timeout(void **state)
{
    uv_timer_t poke;

    (void)state;
    t->idle_ms = 60;
    assert_int_equal(dp_tunnel_start(t), 0);
    uv_timer_init(&loop, &poke);
    uv_timer_start(&poke, on_poke, 15, 15);
    uint64_t t0 = uv_now(&loop);
    while (uv_now(&loop) - t0 < 300)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(alive());
    uv_timer_stop(&poke);
    uv_close((uv_handle_t *)&poke, NULL);
    run_until_closed(5000);
    assert_false(alive());
    assert_int_equal(counter("idleClosed"), 1);
    assert_int_equal(counter("errors"), 0);
}

static int timeouts_seen;

static void on_connect_timeout(struct dp_tunnel *tt)
{
    timeouts_seen++;
    dp_tunnel_abort(tt, CL_ETIMEDOUT);
}

static void connect_deadline(void **state)
{
    (void)state;
    timeouts_seen = 0;
    t->on_timeout = on_connect_timeout;
    assert_int_equal(dp_tunnel_connecting(t, 30, false), 0);
    assert_false(fdown.reading);
    run_until_closed(5000);
    assert_false(alive());
    assert_int_equal(timeouts_seen, 1);
}

/* Bytes and EOF from the client while connecting wait in one chunk, then go up in order. */
static void early_data_then_start(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_connecting(t, 0, true), 0);
    assert_true(fdown.reading);
    assert_int_equal(feed(&fdown, pattern, 100 * KB), CL_BUFQ_CHUNK); /* one chunk, then stop */
    assert_false(fdown.reading);
    assert_int_equal(fup.qlen, 0);
    assert_int_equal(dp_tunnel_start(t), 0);
    assert_int_equal(fup.qlen, CL_BUFQ_CHUNK);
    assert_true(fdown.reading);
    transfer(&fdown, &fup, pattern + CL_BUFQ_CHUNK, 100 * KB - CL_BUFQ_CHUNK);
    assert_memory_equal(fup.got, pattern, 100 * KB);
    eof(&fdown);
    complete(&fup, SIZE_MAX);
    assert_true(fup.shut_done);
}

static void early_eof_then_start(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_connecting(t, 0, true), 0);
    feed(&fdown, pattern, 10);
    eof(&fdown);
    assert_false(fup.shut_req);
    assert_int_equal(dp_tunnel_start(t), 0);
    assert_int_equal(fup.qlen, 10);
    assert_true(fup.shut_req);
    assert_false(fdown.reading);
    complete(&fup, SIZE_MAX);
    transfer(&fup, &fdown, pattern, 5000); /* the reply still comes down */
    eof(&fup);
    complete(&fdown, SIZE_MAX);
    assert_false(alive());
}

/* A client reset while the authorization is pending: the tunnel goes, the late reply's
 * reference resolves to nothing, and a new tunnel in the same slot is not mistaken for it. */
static void stale_reference_after_close(void **state)
{
    (void)state;
    assert_int_equal(dp_tunnel_connecting(t, 0, true), 0);
    uint64_t held = t->ref; /* what the IPC callback would carry */
    dp_xprt_on_error(&fdown.x, UV_ECONNRESET);
    assert_null(dp_tunnel_get(held));
    settle();
    struct dp_tunnel *t2 = dp_tunnel_new(true);
    assert_non_null(t2);
    assert_true(t2->ref != held);
    assert_null(dp_tunnel_get(held));
    assert_ptr_equal(dp_tunnel_get(t2->ref), t2);
    assert_null(dp_ref_get(&w.refs, t2->ref, DP_REF_REST)); /* kinds do not mix */
    dp_tunnel_abort(t2, CL_ECLOSED);
    settle();
}

static void read_start_failure_aborts(void **state)
{
    (void)state;
    fup.start_err = CL_ECLOSED;
    assert_int_equal(dp_tunnel_start(t), -1);
    assert_false(alive());
    settle();
    assert_true(fdown.closed_reset);
}

/* The whole life of a tunnel with the Nth allocation failing, for every N. */
static void allocation_failures(void **state)
{
    long total;

    (void)state;
    dp_tunnel_abort(t, CL_ECLOSED); /* the fixture's tunnel is not used here */
    settle();
    for (long n = -1;; n++) {
        struct dp_tunnel *tt;
        cl_failalloc_arm(n < 0 ? 1L << 40 : n);
        long before = cl_failalloc_count();
        fake_init(&fdown, false);
        fake_init(&fup, true);
        tt = dp_tunnel_new(true);
        if (tt != NULL) {
            tref = tt->ref;
            snprintf(tt->name, sizeof(tt->name), "imp");
            dp_tunnel_attach(tt, DP_DOWN, &fdown.x);
            dp_tunnel_attach(tt, DP_UP, &fup.x);
            if (dp_tunnel_connecting(tt, 1000, true) == 0) {
                feed(&fdown, pattern, 1000);
                if (alive() && dp_tunnel_start(tt) == 0) {
                    transfer(&fdown, &fup, pattern, 300 * KB);
                    transfer(&fup, &fdown, pattern, 300 * KB);
                }
            }
            if (alive())
                dp_tunnel_abort(tt, CL_ECLOSED);
            settle();
            assert_int_equal(fdown.closes, 1);
            assert_int_equal(fup.closes, 1);
        }
        long used = cl_failalloc_count() - before;
        cl_failalloc_arm(-1);
        assert_true(cl_list_is_empty(&w.tunnels));
        if (n < 0) {
            total = used;
            assert_true(total > 0);
        } else if (n >= total) {
            break;
        }
    }
    /* the fixture's teardown expects its own fakes closed once */
    fake_init(&fdown, false);
    fake_init(&fup, true);
    fdown.closes = fup.closes = 1;
    fdown.closed = fup.closed = true;
}

/* The reference table alone: growth past its first allocation, reuse, generations. */
static void ref_table(void **state)
{
    static uint64_t refs[300];
    static int objs[300];
    struct dp_refs r;

    (void)state;
    dp_refs_init(&r);
    for (int i = 0; i < 300; i++) {
        refs[i] = dp_ref_new(&r, DP_REF_TUNNEL, &objs[i]);
        assert_true(refs[i] != 0);
    }
    for (int i = 0; i < 300; i++)
        assert_ptr_equal(dp_ref_get(&r, refs[i], DP_REF_TUNNEL), &objs[i]);
    for (int i = 0; i < 300; i += 2)
        dp_ref_del(&r, refs[i]);
    dp_ref_del(&r, refs[0]); /* stale: ignored */
    dp_ref_del(&r, 0);
    assert_int_equal(r.live, 150);
    for (int i = 0; i < 300; i += 2) {
        assert_null(dp_ref_get(&r, refs[i], DP_REF_TUNNEL));
        uint64_t again = dp_ref_new(&r, DP_REF_PCONN, &objs[i]);
        assert_true(again != refs[i]);
        assert_null(dp_ref_get(&r, refs[i], DP_REF_PCONN));
        assert_ptr_equal(dp_ref_get(&r, again, DP_REF_PCONN), &objs[i]);
    }
    assert_int_equal(r.cap, 512); /* slots were reused, not added */
    assert_null(dp_ref_get(&r, 0, DP_REF_TUNNEL));
    assert_null(dp_ref_get(&r, ((uint64_t)1 << 32) | 100000, DP_REF_TUNNEL));
    cl_failalloc_arm(0); /* reusing a slot allocates nothing */
    dp_ref_del(&r, refs[1]);
    assert_true(dp_ref_new(&r, DP_REF_REST, &objs[1]) != 0);
    cl_failalloc_arm(-1);
    dp_refs_deinit(&r);
    cl_failalloc_arm(0);
    dp_refs_init(&r);
    assert_int_equal(dp_ref_new(&r, DP_REF_TUNNEL, &objs[0]), 0); /* the first needs memory */
    cl_failalloc_arm(-1);
    dp_refs_deinit(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(data_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(peer_counts_open_and_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(backpressure_stops_tcp_source, setup, teardown),
        cmocka_unit_test_setup_teardown(backpressure_withholds_h2_credit, setup, teardown),
        cmocka_unit_test_setup_teardown(h2_batch_flushed_once, setup, teardown),
        cmocka_unit_test_setup_teardown(half_close_down_first, setup, teardown),
        cmocka_unit_test_setup_teardown(half_close_up_first_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_from_down, setup, teardown),
        cmocka_unit_test_setup_teardown(access_line_when_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(access_line_when_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(access_line_ingress_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(no_access_line_unless_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_from_up, setup, teardown),
        cmocka_unit_test_setup_teardown(up_shut_under_us_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(write_error_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(overrun_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(close_with_writes_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(no_allocation_per_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(idle_timeout_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(busy_tunnel_outlives_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(connect_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(early_data_then_start, setup, teardown),
        cmocka_unit_test_setup_teardown(early_eof_then_start, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_reference_after_close, setup, teardown),
        cmocka_unit_test_setup_teardown(read_start_failure_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(allocation_failures, setup, teardown),
        cmocka_unit_test(ref_table),
    };

    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 2654435761u >> 13);
    cl_log_set_level(CL_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
