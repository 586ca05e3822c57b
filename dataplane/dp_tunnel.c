/*
 * The splice engine: one TCP socket <-> one HTTP/2 CONNECT stream.
 *
 * TCP -> stream: reads land in a 64 KiB per-process scratch buffer (libuv calls alloc and read
 * back to back, so one buffer serves every tunnel) sized to the room left in the stream's send
 * queue, and are queued on the stream in one copy; when the queue is full the socket is not read
 * until the stream reports on_writable.
 * stream -> TCP: DATA is copied once into `downq` and written with one uv_write of several
 * buffers; stream-level flow-control credit goes back only from the write callback, so the
 * remote sender's window is the backpressure and the shared connection never stalls.
 * Half-close: TCP EOF -> END_STREAM; END_STREAM -> shutdown(SHUT_WR) once downq is drained.
 */
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "dp.h"

#define SCRATCH      (64 * 1024)
#define DOWNQ_CHUNKS 72 /* > 1 MiB stream window / 16 KiB */
#define MAX_IOV      16

static uint8_t scratch[SCRATCH];
static uint64_t next_id = 1;

static const char *const state_names[DP_TUNNEL_ST_COUNT] = {
    [DP_TUNNEL_ST_INIT] = "init",
    [DP_TUNNEL_ST_CONNECTING] = "connecting",
    [DP_TUNNEL_ST_OPEN] = "open",
    [DP_TUNNEL_ST_CLOSING] = "closing",
};

static void set_state(struct dp_tunnel *t, enum dp_tunnel_state st)
{
    CL_DEBUG("dp.tunnel", "conn=%llu %s -> %s", (unsigned long long)t->id, state_names[t->state],
             state_names[st]);
    t->state = st;
}

static void on_handle_close(uv_handle_t *h)
{
    struct dp_tunnel *t = h->data;

    if (--t->nhandles > 0)
        return;
    cl_bufq_deinit(&t->downq);
    json_decref(t->cands);
    json_decref(t->attrs);
    cl_mem_free(t);
}

struct dp_tunnel *dp_tunnel_new(bool egress)
{
    struct dp_tunnel *t = cl_calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->id = next_id++;
    t->egress = egress;
    cl_bufq_init(&t->downq, CL_BUFQ_CHUNK, DOWNQ_CHUNKS);
    uv_tcp_init(dp_w->loop, &t->tcp);
    uv_timer_init(dp_w->loop, &t->timer);
    t->tcp.data = t;
    t->timer.data = t;
    cl_list_insert_tail(&dp_w->tunnels, &t->link);
    return t;
}

static void count_close(struct dp_tunnel *t)
{
    if (t->state == DP_TUNNEL_ST_OPEN)
        dp_count(t->egress ? "imports" : "exports", t->name, "open", -1);
}

static void close_all(struct dp_tunnel *t, bool reset)
{
    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    count_close(t);
    set_state(t, DP_TUNNEL_ST_CLOSING);
    cl_list_remove(&t->link);
    if (t->s != NULL) {
        struct cl_h2stream *s = t->s;
        t->s = NULL;
        cl_h2stream_set_cbs(s, NULL, NULL);
        if (reset)
            cl_h2stream_reset(s, NGHTTP2_CONNECT_ERROR);
    }
    t->nhandles = 2;
    uv_close((uv_handle_t *)&t->timer, on_handle_close);
    if (reset)
        uv_tcp_close_reset(&t->tcp, on_handle_close);
    else
        uv_close((uv_handle_t *)&t->tcp, on_handle_close);
}

void dp_tunnel_abort(struct dp_tunnel *t, int err)
{
    CL_DEBUG("dp.tunnel", "conn=%llu abort: %s", (unsigned long long)t->id, cl_strerror(err));
    close_all(t, true);
}

/* Ends the tunnel once both directions are done. */
static void maybe_finish(struct dp_tunnel *t)
{
    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    if (t->s == NULL && !t->writing && cl_bufq_is_empty(&t->downq) && (t->flags & DP_TF_TCP_SHUT) &&
        (t->flags & DP_TF_TCP_EOF))
        close_all(t, false);
}

static void on_tcp_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void on_tcp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct dp_tunnel *t = h->data;
    size_t room = t->s != NULL ? cl_h2stream_space(t->s) : 0;

    (void)hint;
    buf->base = (char *)scratch;
    buf->len = room < SCRATCH ? room : SCRATCH;
}

static void read_start(struct dp_tunnel *t)
{
    if ((t->flags & (DP_TF_READING | DP_TF_TCP_EOF)) || t->state == DP_TUNNEL_ST_CLOSING)
        return;
    if (uv_read_start((uv_stream_t *)&t->tcp, on_tcp_alloc, on_tcp_read) == 0)
        t->flags |= DP_TF_READING;
    t->flags &= ~DP_TF_PAUSED;
}

static void read_stop(struct dp_tunnel *t, bool paused)
{
    if (t->flags & DP_TF_READING)
        uv_read_stop((uv_stream_t *)&t->tcp);
    t->flags &= ~DP_TF_READING;
    if (paused)
        t->flags |= DP_TF_PAUSED;
}

static void on_tcp_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct dp_tunnel *t = st->data;

    (void)buf;
    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    if (nread == UV_ENOBUFS) { /* the stream's queue is full: wait for on_writable */
        read_stop(t, true);
        return;
    }
    if (nread == UV_EOF) {
        read_stop(t, false);
        t->flags |= DP_TF_TCP_EOF;
        if (t->s != NULL && !(t->flags & DP_TF_H2_ENDSENT)) {
            t->flags |= DP_TF_H2_ENDSENT;
            cl_h2stream_end(t->s);
        }
        maybe_finish(t);
        return;
    }
    if (nread < 0) {
        dp_count(t->egress ? "imports" : "exports", t->name, "errors", 1);
        dp_tunnel_abort(t, (int)nread);
        return;
    }
    if (nread == 0 || t->s == NULL)
        return;
    if (cl_h2stream_write(t->s, scratch, (size_t)nread) != nread) { /* sized to fit: cannot */
        dp_tunnel_abort(t, CL_EBUSY);
        return;
    }
    dp_count(t->egress ? "imports" : "exports", t->name, t->egress ? "bytesOut" : "bytesIn", nread);
    if (cl_h2stream_space(t->s) < CL_BUFQ_CHUNK)
        read_stop(t, true); /* resumed by on_writable */
}

static void flush_down(struct dp_tunnel *t);

static void on_tcp_shutdown(uv_shutdown_t *req, int status)
{
    struct dp_tunnel *t = CL_CONTAINER_OF(req, struct dp_tunnel, shut);

    (void)status;
    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    t->flags |= DP_TF_TCP_SHUT;
    maybe_finish(t);
}

static void shutdown_if_done(struct dp_tunnel *t)
{
    if ((t->flags & DP_TF_H2_EOF) && !(t->flags & DP_TF_TCP_SHUT) && !t->writing &&
        cl_bufq_is_empty(&t->downq) && t->shut.handle == NULL) {
        if (uv_shutdown(&t->shut, (uv_stream_t *)&t->tcp, on_tcp_shutdown) != 0) {
            t->flags |= DP_TF_TCP_SHUT;
            maybe_finish(t);
        }
    }
}

static void on_tcp_write(uv_write_t *req, int status)
{
    struct dp_tunnel *t = CL_CONTAINER_OF(req, struct dp_tunnel, wreq);
    size_t n = t->inflight;

    t->writing = false;
    t->inflight = 0;
    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    if (status < 0) {
        dp_count(t->egress ? "imports" : "exports", t->name, "errors", 1);
        dp_tunnel_abort(t, status);
        return;
    }
    cl_bufq_consume(&t->downq, n);
    if (t->s != NULL)
        cl_h2stream_consume(t->s, n); /* the window reopens only now: backpressure */
    flush_down(t);
    shutdown_if_done(t);
    maybe_finish(t);
}

static void flush_down(struct dp_tunnel *t)
{
    struct iovec iov[MAX_IOV];
    uv_buf_t b[MAX_IOV];
    size_t n, total = 0;

    if (t->writing || cl_bufq_is_empty(&t->downq) || t->state == DP_TUNNEL_ST_CLOSING)
        return;
    n = cl_bufq_peek_iov(&t->downq, 0, iov, MAX_IOV);
    for (size_t i = 0; i < n; i++) {
        b[i] = uv_buf_init(iov[i].iov_base, (unsigned)iov[i].iov_len);
        total += iov[i].iov_len;
    }
    if (uv_write(&t->wreq, (uv_stream_t *)&t->tcp, b, (unsigned)n, on_tcp_write) != 0) {
        dp_tunnel_abort(t, CL_ECLOSED);
        return;
    }
    t->writing = true;
    t->inflight = total;
}

static void on_stream_data(struct cl_h2stream *s, const uint8_t *data, size_t len, void *ud)
{
    struct dp_tunnel *t = ud;

    if (cl_bufq_write(&t->downq, data, len) != (ssize_t)len) {
        /* the peer overran the window we advertised: protocol violation */
        cl_h2stream_consume(s, len);
        dp_tunnel_abort(t, CL_EH2);
        return;
    }
    dp_count(t->egress ? "imports" : "exports", t->name, t->egress ? "bytesIn" : "bytesOut",
             (int64_t)len);
    flush_down(t);
}

static void on_stream_end(struct cl_h2stream *s, void *ud)
{
    struct dp_tunnel *t = ud;

    (void)s;
    t->flags |= DP_TF_H2_EOF;
    shutdown_if_done(t);
}

static void on_stream_writable(struct cl_h2stream *s, void *ud)
{
    struct dp_tunnel *t = ud;

    (void)s;
    if (t->flags & DP_TF_PAUSED)
        read_start(t);
}

static void on_stream_close(struct cl_h2stream *s, int err, void *ud)
{
    struct dp_tunnel *t = ud;

    (void)s;
    t->s = NULL;
    if (err != 0) {
        dp_tunnel_abort(t, err);
        return;
    }
    /* both END_STREAMs went through; finish writing what we hold, then close */
    t->flags |= DP_TF_H2_EOF;
    shutdown_if_done(t);
    maybe_finish(t);
}

const struct cl_h2stream_cbs dp_tunnel_stream_cbs = {
    .on_data = on_stream_data,
    .on_end = on_stream_end,
    .on_writable = on_stream_writable,
    .on_close = on_stream_close,
};

void dp_tunnel_start(struct dp_tunnel *t, struct cl_h2stream *s)
{
    t->s = s;
    cl_h2stream_set_cbs(s, &dp_tunnel_stream_cbs, t);
    uv_tcp_nodelay(&t->tcp, 1);
    set_state(t, DP_TUNNEL_ST_OPEN);
    dp_count(t->egress ? "imports" : "exports", t->name, "open", 1);
    dp_count(t->egress ? "imports" : "exports", t->name, "total", 1);
    read_start(t);
    flush_down(t);
}
