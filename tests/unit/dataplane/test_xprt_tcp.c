/*
 * The TCP side of a tunnel (dataplane/dp_xprt.c) on real loopback sockets, spliced by the
 * engine to a fake up side: zero-copy reads, writes, half-close after the queue drains, resets,
 * and handles that are closed in every state (the loop must close empty).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cm.h"
#include "dp.h"
#include "worker.h"

#define KB 1024u

/* The fake up side: takes everything, completes at once, sends what the test gives it. */
struct up {
    struct dp_xprt x;
    uint8_t rsv[64 * KB];
    uint8_t got[4u << 20];
    size_t got_len;
    size_t consumed; /* credit the engine gave back: bytes the TCP side reported written */
    bool shut_req, closed, reset;
};

static uv_loop_t loop;
static struct dp_worker w;
static uv_tcp_t listener;
static struct up up;
static struct dp_tunnel *t;
static uint64_t tref;
static int cfd = -1; /* the client's socket (plain, non-blocking) */
static bool accepted;
static uint8_t pattern[1u << 20];

static struct up *upof(struct dp_xprt *x)
{
    return CL_CONTAINER_OF(x, struct up, x);
}

static int u_read_start(struct dp_xprt *x)
{
    (void)x;
    return 0;
}

static void u_read_stop(struct dp_xprt *x)
{
    (void)x;
}

static void u_consume(struct dp_xprt *x, size_t n)
{
    upof(x)->consumed += n;
}

static size_t u_reserve(struct dp_xprt *x, uint8_t **p)
{
    *p = upof(x)->rsv;
    return sizeof(upof(x)->rsv);
}

static ssize_t u_write(struct dp_xprt *x, const uint8_t *data, size_t len)
{
    struct up *u = upof(x);

    assert_true(u->got_len + len <= sizeof(u->got));
    memcpy(u->got + u->got_len, data, len);
    u->got_len += len;
    dp_xprt_on_written(x, len);
    return (ssize_t)len;
}

static ssize_t u_commit(struct dp_xprt *x, size_t n)
{
    return u_write(x, upof(x)->rsv, n);
}

static size_t u_room(struct dp_xprt *x)
{
    (void)x;
    return 1u << 20;
}

static size_t u_qsize(const struct dp_xprt *x)
{
    (void)x;
    return 0;
}

static int u_shutdown(struct dp_xprt *x)
{
    upof(x)->shut_req = true;
    dp_xprt_on_shutdown(x); /* nothing queued: done at once */
    return 0;
}

static void u_close(struct dp_xprt *x, bool reset)
{
    upof(x)->closed = true;
    upof(x)->reset = reset;
    dp_xprt_on_closed(x);
}

static const struct dp_xprt_ops up_ops = {
    .name = "fake-up",
    .read_start = u_read_start,
    .read_stop = u_read_stop,
    .consume = u_consume,
    .reserve = u_reserve,
    .commit = u_commit,
    .write = u_write,
    .write_room = u_room,
    .write_queue_size = u_qsize,
    .shutdown = u_shutdown,
    .close = u_close,
};

static bool alive(void)
{
    return dp_tunnel_get(tref) != NULL;
}

static void on_accept(uv_stream_t *server, int status)
{
    assert_int_equal(status, 0);
    assert_int_equal(uv_accept(server, (uv_stream_t *)&t->tcpx.tcp), 0);
    accepted = true;
}

static void spin(void)
{
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(200);
}

static int setup(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int len = sizeof(sa);

    (void)state;
    start_worker(&w, &loop);
    memset(&up, 0, sizeof(up));
    up.x.ops = &up_ops;
    assert_non_null(t = dp_tunnel_new(false));
    tref = t->ref;
    snprintf(t->name, sizeof(t->name), "exp");
    dp_xprt_tcp_init(&t->tcpx, &loop, &w.xsched);
    dp_tunnel_attach(t, DP_DOWN, &t->tcpx.x);
    dp_tunnel_attach(t, DP_UP, &up.x);
    accepted = false;
    uv_tcp_init(&loop, &listener);
    assert_int_equal(uv_tcp_bind(&listener, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 8, on_accept), 0);
    assert_int_equal(uv_tcp_getsockname(&listener, (struct sockaddr *)&sa, &len), 0);
    cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(cfd >= 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    fcntl(cfd, F_SETFL, O_NONBLOCK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (alive())
        dp_tunnel_abort(t, CL_ECLOSED);
    if (cfd >= 0)
        close(cfd);
    cfd = -1;
    uv_close((uv_handle_t *)&listener, NULL);
    for (int i = 0; i < 2000 && uv_loop_alive(&loop); i++) /* bounded: a leak must not hang */
        spin();
    assert_true(up.closed);
    stop_worker(&w, &loop); /* no tunnel, no reference, no handle (the socket's too) */
    return 0;
}

static void accept_and_start(void)
{
    for (int i = 0; i < 5000 && !accepted; i++)
        spin();
    assert_true(accepted);
    assert_int_equal(dp_tunnel_start(t), 0);
}

/* Reads what the client can get now; returns bytes, 0 at EOF, -1 when nothing yet. */
static ssize_t client_read(uint8_t *buf, size_t len)
{
    ssize_t n = recv(cfd, buf, len, 0);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return -1;
    return n;
}

/* A socket that was never connected is reset by a plain close (uv_tcp_close_reset refuses). */
static void reset_never_connected_socket(void **state)
{
    (void)state;
    dp_tunnel_abort(t, CL_ECLOSED); /* no accept happened: no fd behind the handle */
    assert_false(alive());
}

static void both_ways_and_half_close(void **state)
{
    static uint8_t got[1u << 20];
    size_t sent = 0, rcvd = 0, fed = 0;
    bool client_eof = false;

    (void)state;
    accept_and_start();
    /* client -> up: 1 MiB then FIN; up -> client: 1 MiB then END_STREAM */
    for (int i = 0; i < 200000 && (rcvd < sizeof(pattern) || !client_eof || alive()); i++) {
        if (sent < sizeof(pattern)) {
            ssize_t n = send(cfd, pattern + sent, sizeof(pattern) - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            if (sent == sizeof(pattern))
                shutdown(cfd, SHUT_WR);
        }
        if (fed < sizeof(pattern) && alive() && t->tcpx.q.len < 256 * KB) {
            size_t m = CL_MIN((size_t)(16 * KB), sizeof(pattern) - fed);
            dp_xprt_on_read(&up.x, pattern + fed, m); /* borrowed, like HTTP/2 DATA */
            dp_xprt_on_read_flush(&up.x);             /* the end of this batch: write it */
            fed += m;
            if (fed == sizeof(pattern))
                dp_xprt_on_eof(&up.x);
        }
        ssize_t n;
        while ((n = client_read(got + rcvd, sizeof(got) - rcvd)) > 0)
            rcvd += (size_t)n;
        if (n == 0)
            client_eof = true;
        spin();
    }
    assert_int_equal(up.got_len, sizeof(pattern));
    assert_memory_equal(up.got, pattern, sizeof(pattern));
    assert_true(up.shut_req);
    assert_int_equal(rcvd, sizeof(pattern));
    assert_memory_equal(got, pattern, sizeof(pattern));
    assert_true(client_eof); /* FIN after the last byte: the shutdown waited for the queue */
    assert_false(alive());   /* both directions done: closed, orderly */
    assert_false(up.reset);
}

/* The client resets: the tunnel goes, the up side is reset too. */
static void client_reset(void **state)
{
    struct linger l = {1, 0};

    (void)state;
    accept_and_start();
    setsockopt(cfd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(cfd);
    cfd = -1;
    for (int i = 0; i < 5000 && alive(); i++)
        spin();
    assert_false(alive());
    assert_true(up.reset);
}

/* Reset after our write side was shut down (uv_tcp_close_reset refuses then too). */
static void reset_after_shutdown(void **state)
{
    uint8_t b[16];

    (void)state;
    accept_and_start();
    dp_xprt_on_eof(&up.x); /* -> shutdown(SHUT_WR) on the socket */
    for (int i = 0; i < 5000 && client_read(b, sizeof(b)) != 0; i++)
        spin();
    assert_true(alive());
    dp_tunnel_abort(t, CL_ECLOSED);
    assert_false(alive());
}

/* Reset while the shutdown is still in progress. */
static void reset_while_shutting_down(void **state)
{
    (void)state;
    accept_and_start();
    dp_xprt_on_eof(&up.x); /* uv_shutdown issued, not completed before the loop runs */
    dp_tunnel_abort(t, CL_ECLOSED);
    assert_false(alive());
}

/* Aborting with bytes queued and a write in flight: the write callback (cancelled) and the
 * close callback find the tunnel still there; everything is released. */
static void abort_with_write_pending(void **state)
{
    (void)state;
    accept_and_start();
    for (size_t off = 0; off < sizeof(pattern); off += 16 * KB)
        dp_xprt_on_read(&up.x, pattern + off, 16 * KB); /* the client reads nothing */
    dp_xprt_on_read_flush(&up.x);                       /* a write in flight */
    assert_true(t->tcpx.q.len > 0);
    dp_tunnel_abort(t, CL_ECLOSED);
    assert_false(alive());
}

/* Reads what the client can get within a bounded number of loop turns, into got. */
static size_t client_drain(uint8_t *got, size_t want)
{
    size_t rcvd = 0;

    for (int i = 0; i < 20000 && rcvd < want; i++) {
        ssize_t n;
        while ((n = client_read(got + rcvd, want - rcvd)) > 0)
            rcvd += (size_t)n;
        spin();
    }
    return rcvd;
}

/* A write the socket takes whole goes out at once and is reported one loop turn later, as a
 * uv_write's would be (dp_xprt_sched); one it takes in part goes on with uv_write; closing
 * with a report pending drops it. */
static void writes_at_once_and_in_part(void **state)
{
    static uint8_t got[1u << 20];
    uint8_t small[16 * KB];

    (void)state;
    accept_and_start();
    dp_xprt_on_read(&up.x, pattern, sizeof(small));
    dp_xprt_on_read_flush(&up.x);
    /* on the wire already, no loop turn yet ... */
    assert_int_equal(recv(cfd, small, sizeof(small), MSG_WAITALL), (ssize_t)sizeof(small));
    assert_memory_equal(small, pattern, sizeof(small));
    /* ... but not reported: still queued, no credit back */
    assert_false(cl_list_is_empty(&w.xsched.done));
    assert_int_equal(cl_bufq_len(&t->tcpx.q), sizeof(small));
    assert_int_equal(up.consumed, 0);
    spin();
    assert_true(cl_list_is_empty(&w.xsched.done));
    assert_int_equal(cl_bufq_len(&t->tcpx.q), 0);
    assert_int_equal(up.consumed, sizeof(small));
    /* more than the socket takes while the client reads nothing: in part at once, the rest
     * through uv_write, in order (small buffers at both ends, so 1 MiB is more) */
    int sz = 32 * KB;
    assert_int_equal(setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
    assert_int_equal(uv_send_buffer_size((uv_handle_t *)&t->tcpx.tcp, &sz), 0);
    for (size_t off = 0; off < sizeof(pattern); off += 16 * KB)
        dp_xprt_on_read(&up.x, pattern + off, 16 * KB);
    dp_xprt_on_read_flush(&up.x);
    assert_true(cl_list_is_empty(&w.xsched.done));
    assert_true(cl_bufq_len(&t->tcpx.q) > 0);
    assert_int_equal(client_drain(got, sizeof(got)), sizeof(got));
    assert_memory_equal(got, pattern, sizeof(pattern));
    for (int i = 0; i < 100 && up.consumed < sizeof(small) + sizeof(pattern); i++)
        spin();
    assert_int_equal(up.consumed, sizeof(small) + sizeof(pattern));
    /* closed while a report is pending: it is dropped, nothing is left in the list */
    dp_xprt_on_read(&up.x, pattern, sizeof(small));
    dp_xprt_on_read_flush(&up.x);
    assert_false(cl_list_is_empty(&w.xsched.done));
    dp_tunnel_abort(t, CL_ECLOSED);
    assert_true(cl_list_is_empty(&w.xsched.done));
    assert_false(alive());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reset_never_connected_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(both_ways_and_half_close, setup, teardown),
        cmocka_unit_test_setup_teardown(writes_at_once_and_in_part, setup, teardown),
        cmocka_unit_test_setup_teardown(client_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_after_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_while_shutting_down, setup, teardown),
        cmocka_unit_test_setup_teardown(abort_with_write_pending, setup, teardown),
    };

    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 2654435761u >> 11);
    cl_log_set_level(CL_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
