/*
 * The two transports of a tunnel (dp_xprt.h): a TCP socket and an HTTP/2 CONNECT stream.
 *
 * TCP as a source reads straight into whatever the other side reserves (libuv calls alloc and
 * read back to back). As a sink it keeps a bounded chunk queue: bytes are appended (or were
 * read in place, zero-copy), written with one writev of several buffers (uv_try_write, then
 * uv_write for what the socket did not take), and consumed when the write is reported done
 * (tcp_write_done), which is also where the other side gets its credit back.
 *
 * HTTP/2 as a sink hands out the tail of the stream's send queue (64 KiB chunks), so a TCP
 * source reads into it in place, and the frames are encrypted from there (cl_h2stream_reserve).
 * As a source it delivers DATA (borrowed, copied once by the TCP sink) and never stops the shared
 * connection: read_stop is a no-op, credit (nghttp2_session_consume) goes back only through
 * consume(), i.e. once the bytes are written.
 */
#include "dp_xprt.h"

#include <nghttp2/nghttp2.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "dp.h"

#define MAX_IOV 64

/* ---- TCP ---------------------------------------------------------------------------------- */

#define TF_READING  0x01u
#define TF_WRITING  0x02u
#define TF_SHUT_REQ 0x04u /* shutdown() asked: after the queue drains */
#define TF_SHUTTING 0x08u /* uv_shutdown issued */
#define TF_CLOSING  0x10u
#define TF_WANT_WR  0x20u /* write_room() said full: owe on_writable */
#define TF_NODELAY  0x40u
#define TF_SHUT     0x80u /* uv_shutdown completed */

static struct dp_xprt_tcp *tcp_of(struct dp_xprt *x)
{
    return CL_CONTAINER_OF(x, struct dp_xprt_tcp, x);
}

static void on_tcp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct dp_xprt_tcp *x = CL_CONTAINER_OF((uv_tcp_t *)h, struct dp_xprt_tcp, tcp);
    uint8_t *p = NULL;
    size_t n = 0;

    (void)hint;
    if (!(x->flags & TF_CLOSING))
        n = dp_xprt_alloc(&x->x, &p);
    buf->base = (char *)p;
    buf->len = n;
}

static void on_tcp_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct dp_xprt_tcp *x = CL_CONTAINER_OF((uv_tcp_t *)st, struct dp_xprt_tcp, tcp);

    if (x->flags & TF_CLOSING)
        return;
    if (nread > 0) {
        dp_xprt_on_read(&x->x, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    if (nread == 0) /* EAGAIN: not an error */
        return;
    uv_read_stop(st);
    x->flags &= ~TF_READING;
    if (nread == UV_ENOBUFS) /* the other side had no room */
        dp_xprt_on_blocked(&x->x);
    else if (nread == UV_EOF)
        dp_xprt_on_eof(&x->x);
    else
        dp_xprt_on_error(&x->x, (int)nread);
}

static int tcp_read_start(struct dp_xprt *xp)
{
    struct dp_xprt_tcp *x = tcp_of(xp);
    int rc;

    if (x->flags & (TF_READING | TF_CLOSING))
        return 0;
    if (!(x->flags & TF_NODELAY)) {
        uv_tcp_nodelay(&x->tcp, 1);
        x->flags |= TF_NODELAY;
    }
    if ((rc = uv_read_start((uv_stream_t *)&x->tcp, on_tcp_alloc, on_tcp_read)) != 0)
        return rc;
    x->flags |= TF_READING;
    return 0;
}

static void tcp_read_stop(struct dp_xprt *xp)
{
    struct dp_xprt_tcp *x = tcp_of(xp);

    if (x->flags & TF_READING)
        uv_read_stop((uv_stream_t *)&x->tcp);
    x->flags &= ~TF_READING;
}

static void tcp_consume(struct dp_xprt *xp, size_t n)
{
    (void)xp;
    (void)n;
}

static int tcp_flush(struct dp_xprt_tcp *x);

static void on_tcp_shutdown(uv_shutdown_t *req, int status)
{
    struct dp_xprt_tcp *x = CL_CONTAINER_OF(req, struct dp_xprt_tcp, sreq);

    (void)status; /* ENOTCONN and friends: the write side is gone either way */
    x->flags |= TF_SHUT;
    if (x->flags & TF_CLOSING)
        return;
    dp_xprt_on_shutdown(&x->x);
}

static void tcp_maybe_shutdown(struct dp_xprt_tcp *x)
{
    int rc;

    if ((x->flags & (TF_SHUT_REQ | TF_SHUTTING | TF_WRITING | TF_CLOSING)) != TF_SHUT_REQ ||
        !cl_bufq_is_empty(&x->q))
        return;
    x->flags |= TF_SHUTTING;
    if ((rc = uv_shutdown(&x->sreq, (uv_stream_t *)&x->tcp, on_tcp_shutdown)) != 0)
        dp_xprt_on_shutdown(&x->x); /* ENOTCONN: nothing left to half-close (synchronous) */
}

/* The write of the head `inflight` bytes ended (uv_write's callback, or the sched for a write
 * that went out at once). */
static void tcp_write_done(struct dp_xprt_tcp *x, int status)
{
    size_t n = x->inflight;
    int rc;

    x->flags &= ~TF_WRITING;
    x->inflight = 0;
    if (x->flags & TF_CLOSING) /* UV_ECANCELED from uv_close: the queue dies with us */
        return;
    if (status < 0) {
        dp_xprt_on_error(&x->x, status);
        return;
    }
    cl_bufq_consume(&x->q, n);
    dp_xprt_on_written(&x->x, n); /* may close the tunnel */
    if (x->flags & TF_CLOSING)
        return;
    if ((rc = tcp_flush(x)) != 0) {
        dp_xprt_on_error(&x->x, rc);
        return;
    }
    if ((x->flags & TF_WANT_WR) && cl_bufq_len(&x->q) <= DP_TCP_LOWAT) {
        x->flags &= ~TF_WANT_WR;
        dp_xprt_on_writable(&x->x);
        if (x->flags & TF_CLOSING)
            return;
    }
    tcp_maybe_shutdown(x);
}

static void on_tcp_write(uv_write_t *req, int status)
{
    tcp_write_done(CL_CONTAINER_OF(req, struct dp_xprt_tcp, wreq), status);
}

static void on_sched_idle(uv_idle_t *h)
{
    struct dp_xprt_sched *s = CL_CONTAINER_OF(h, struct dp_xprt_sched, idle);
    struct cl_list *pos, *tmp, batch;

    /* the ones queued by what runs here wait for the next iteration, as a uv_write would */
    cl_list_init(&batch);
    cl_list_foreach_safe(pos, tmp, &s->done)
    {
        cl_list_remove(pos);
        cl_list_insert_tail(&batch, pos);
    }
    uv_idle_stop(h);
    while (!cl_list_is_empty(&batch)) {
        struct dp_xprt_tcp *x = CL_CONTAINER_OF(batch.next, struct dp_xprt_tcp, done_link);
        cl_list_remove(&x->done_link); /* before the upcalls, which may close x */
        tcp_write_done(x, 0);
    }
}

void dp_xprt_sched_init(struct dp_xprt_sched *s, uv_loop_t *loop)
{
    uv_idle_init(loop, &s->idle);
    cl_list_init(&s->done);
}

void dp_xprt_sched_close(struct dp_xprt_sched *s, uv_close_cb cb)
{
    CL_ASSERT(cl_list_is_empty(&s->done));
    uv_close((uv_handle_t *)&s->idle, cb);
}

/* Writes what is queued unless a write is in flight: at once as far as the socket takes it,
 * the rest with uv_write. Either way the bytes stay queued, as `inflight`, until
 * tcp_write_done(), so everything above sees one kind of write. Returns 0 or a libuv error. */
static int tcp_flush(struct dp_xprt_tcp *x)
{
    struct iovec iov[MAX_IOV];
    uv_buf_t b[MAX_IOV];
    size_t n, total = 0, first = 0;
    int rc;

    if ((x->flags & (TF_WRITING | TF_CLOSING)) || cl_bufq_is_empty(&x->q))
        return 0;
    n = cl_bufq_peek_iov(&x->q, 0, iov, MAX_IOV);
    for (size_t i = 0; i < n; i++) {
        b[i] = uv_buf_init(iov[i].iov_base, (unsigned)iov[i].iov_len);
        total += iov[i].iov_len;
    }
    x->inflight = total;
    if (x->sched != NULL) {
        /* UV_EAGAIN while connecting or when the socket is full; an error shows again, and is
         * reported as ever, through the uv_write below */
        rc = uv_try_write((uv_stream_t *)&x->tcp, b, (unsigned)n);
        if (rc > 0 && (size_t)rc == total) {
            x->flags |= TF_WRITING;
            if (cl_list_is_empty(&x->sched->done))
                uv_idle_start(&x->sched->idle, on_sched_idle);
            cl_list_insert_tail(&x->sched->done, &x->done_link);
            return 0;
        }
        for (size_t w = rc > 0 ? (size_t)rc : 0; w > 0;) { /* skip what went out */
            size_t k = w < b[first].len ? w : b[first].len;
            b[first].base += k;
            b[first].len -= k;
            w -= k;
            if (b[first].len == 0)
                first++;
        }
    }
    rc = uv_write(&x->wreq, (uv_stream_t *)&x->tcp, b + first, (unsigned)(n - first), on_tcp_write);
    if (rc != 0) {
        x->inflight = 0;
        return rc;
    }
    x->flags |= TF_WRITING;
    return 0;
}

static size_t tcp_reserve(struct dp_xprt *xp, uint8_t **p)
{
    struct dp_xprt_tcp *x = tcp_of(xp);
    size_t room = xp->ops->write_room(xp), n;

    if (x->flags & (TF_CLOSING | TF_SHUT_REQ) || room == 0 || (n = cl_bufq_reserve(&x->q, p)) == 0)
        return 0;
    return n < room ? n : room;
}

static ssize_t tcp_commit(struct dp_xprt *xp, size_t n)
{
    struct dp_xprt_tcp *x = tcp_of(xp);

    int rc;

    if (x->flags & (TF_CLOSING | TF_SHUT_REQ))
        return CL_ECLOSED;
    cl_bufq_commit(&x->q, n); /* read in place: zero-copy */
    if ((rc = tcp_flush(x)) != 0)
        return rc;
    return (ssize_t)n;
}

static ssize_t tcp_write(struct dp_xprt *xp, const uint8_t *data, size_t len)
{
    struct dp_xprt_tcp *x = tcp_of(xp);

    if (x->flags & (TF_CLOSING | TF_SHUT_REQ))
        return CL_ECLOSED;
    /* queued only: the source calls flush() once it delivered all it has (one writev for the
     * DATA frames of many TLS records instead of a write for the first and a writev later) */
    return cl_bufq_write(&x->q, data, len);
}

static int tcp_flush_op(struct dp_xprt *xp)
{
    return tcp_flush(tcp_of(xp));
}

static size_t tcp_write_queue_size(const struct dp_xprt *xp)
{
    return cl_bufq_len(&CL_CONTAINER_OF(xp, const struct dp_xprt_tcp, x)->q);
}

static size_t tcp_write_room(struct dp_xprt *xp)
{
    struct dp_xprt_tcp *x = tcp_of(xp);
    size_t queued = cl_bufq_len(&x->q), room = queued < DP_TCP_HIWAT ? DP_TCP_HIWAT - queued : 0;

    if (room < CL_BUFQ_CHUNK)
        x->flags |= TF_WANT_WR;
    return room;
}

static int tcp_shutdown(struct dp_xprt *xp)
{
    struct dp_xprt_tcp *x = tcp_of(xp);

    if (x->flags & (TF_SHUT_REQ | TF_CLOSING))
        return 0;
    int rc;

    x->flags |= TF_SHUT_REQ;
    if ((rc = tcp_flush(x)) != 0) /* what write() queued goes first */
        return rc;
    tcp_maybe_shutdown(x);
    return 0;
}

static void on_tcp_close(uv_handle_t *h)
{
    struct dp_xprt_tcp *x = CL_CONTAINER_OF((uv_tcp_t *)h, struct dp_xprt_tcp, tcp);

    cl_bufq_deinit(&x->q);
    dp_xprt_on_closed(&x->x);
}

static void tcp_close(struct dp_xprt *xp, bool reset)
{
    struct dp_xprt_tcp *x = tcp_of(xp);

    if (x->flags & TF_CLOSING)
        return;
    x->flags |= TF_CLOSING;
    cl_list_remove(&x->done_link); /* a write that went out at once is not reported */
    /* uv_tcp_close_reset() refuses, and leaves the handle open, on a socket that was never
     * connected (no fd yet, EBADF) and while a uv_shutdown() is in progress (EINVAL): close
     * normally then */
    if (reset && (x->flags & (TF_SHUTTING | TF_SHUT)) != TF_SHUTTING &&
        uv_tcp_close_reset(&x->tcp, on_tcp_close) == 0)
        return;
    uv_close((uv_handle_t *)&x->tcp, on_tcp_close);
}

static const struct dp_xprt_ops tcp_ops = {
    .name = "tcp",
    .read_start = tcp_read_start,
    .read_stop = tcp_read_stop,
    .consume = tcp_consume,
    .reserve = tcp_reserve,
    .commit = tcp_commit,
    .write = tcp_write,
    .flush = tcp_flush_op,
    .write_room = tcp_write_room,
    .write_queue_size = tcp_write_queue_size,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
};

void dp_xprt_tcp_init(struct dp_xprt_tcp *x, uv_loop_t *loop, struct dp_xprt_sched *sched)
{
    x->x.ops = &tcp_ops;
    cl_bufq_init(&x->q, CL_BUFQ_CHUNK, DP_TCP_QCHUNKS);
    x->inflight = 0;
    x->flags = 0;
    x->sched = sched;
    cl_list_init(&x->done_link);
    uv_tcp_init(loop, &x->tcp);
}

bool dp_xprt_tcp_is_reading(const struct dp_xprt_tcp *x)
{
    return (x->flags & TF_READING) != 0;
}

/* ---- HTTP/2 stream ------------------------------------------------------------------------ */

static struct dp_xprt_h2 *h2_of(struct dp_xprt *x)
{
    return CL_CONTAINER_OF(x, struct dp_xprt_h2, x);
}

static void on_stream_data(struct cl_h2stream *s, const uint8_t *data, size_t len, void *ud)
{
    (void)s;
    dp_xprt_on_read(ud, data, len);
}

static void on_stream_data_flush(struct cl_h2stream *s, void *ud)
{
    (void)s;
    dp_xprt_on_read_flush(ud);
}

static void on_stream_end(struct cl_h2stream *s, void *ud)
{
    (void)s;
    h2_of(ud)->eof = true;
    dp_xprt_on_eof(ud);
}

static void on_stream_writable(struct cl_h2stream *s, void *ud)
{
    (void)s;
    dp_xprt_on_writable(ud);
}

static void on_stream_close(struct cl_h2stream *s, int err, void *ud)
{
    struct dp_xprt_h2 *x = h2_of(ud);

    (void)s;
    x->s = NULL; /* freed when this returns */
    if (err != 0) {
        dp_xprt_on_error(&x->x, err);
        return;
    }
    /* both END_STREAMs went through (or the peer reset with NO_ERROR): the read side ended,
     * with on_end unless the peer skipped it, and so did the write side */
    if (!x->eof) {
        x->eof = true;
        dp_xprt_on_eof(&x->x);
        if (x->x.t->state == DP_TUNNEL_ST_CLOSING)
            return;
    }
    dp_xprt_on_shutdown(&x->x);
}

static const struct cl_h2stream_cbs splice_cbs = {
    .on_data = on_stream_data,
    .on_data_flush = on_stream_data_flush,
    .on_end = on_stream_end,
    .on_writable = on_stream_writable,
    .on_close = on_stream_close,
};

static int h2_read_start(struct dp_xprt *xp)
{
    struct dp_xprt_h2 *x = h2_of(xp);

    if (x->s == NULL)
        return CL_ECLOSED;
    if (!x->splicing) {
        cl_h2stream_set_cbs(x->s, &splice_cbs, &x->x);
        x->splicing = true;
    }
    return 0;
}

static void h2_read_stop(struct dp_xprt *xp)
{
    (void)xp; /* never stop the shared connection: credit is withheld instead (consume) */
}

static void h2_consume(struct dp_xprt *xp, size_t n)
{
    struct dp_xprt_h2 *x = h2_of(xp);

    if (x->s != NULL)
        cl_h2stream_consume(x->s, n); /* the stream window reopens only now: backpressure */
}

static size_t h2_reserve(struct dp_xprt *xp, uint8_t **p)
{
    struct dp_xprt_h2 *x = h2_of(xp);

    *p = NULL;
    return x->s != NULL ? cl_h2stream_reserve(x->s, p) : 0; /* the send queue's tail */
}

static ssize_t h2_commit(struct dp_xprt *xp, size_t n)
{
    struct dp_xprt_h2 *x = h2_of(xp);

    if (x->s == NULL)
        return CL_ECLOSED;
    cl_h2stream_commit(x->s, n); /* read in place: zero-copy */
    return (ssize_t)n;
}

static ssize_t h2_write(struct dp_xprt *xp, const uint8_t *data, size_t len)
{
    struct dp_xprt_h2 *x = h2_of(xp);

    if (x->s == NULL)
        return CL_ECLOSED;
    return cl_h2stream_write(x->s, data, len);
}

static size_t h2_write_room(struct dp_xprt *xp)
{
    struct dp_xprt_h2 *x = h2_of(xp);

    /* below a chunk the stream flags itself and calls on_writable once it drains */
    return x->s != NULL ? cl_h2stream_space(x->s) : 0;
}

static size_t h2_write_queue_size(const struct dp_xprt *xp)
{
    const struct dp_xprt_h2 *x = CL_CONTAINER_OF(xp, const struct dp_xprt_h2, x);

    return x->s != NULL ? cl_h2stream_sendq_len(x->s) : 0;
}

static int h2_shutdown(struct dp_xprt *xp)
{
    struct dp_xprt_h2 *x = h2_of(xp);

    /* END_STREAM after the queued bytes; done when the stream closes cleanly */
    return x->s != NULL ? cl_h2stream_end(x->s) : CL_ECLOSED;
}

static void h2_close(struct dp_xprt *xp, bool reset)
{
    dp_xprt_h2_release(h2_of(xp), reset ? NGHTTP2_CONNECT_ERROR : 0);
    dp_xprt_on_closed(xp);
}

static const struct dp_xprt_ops h2_ops = {
    .name = "h2",
    .read_start = h2_read_start,
    .read_stop = h2_read_stop,
    .consume = h2_consume,
    .reserve = h2_reserve,
    .commit = h2_commit,
    .write = h2_write,
    .write_room = h2_write_room,
    .write_queue_size = h2_write_queue_size,
    .shutdown = h2_shutdown,
    .close = h2_close,
};

void dp_xprt_h2_init(struct dp_xprt_h2 *x)
{
    x->x.ops = &h2_ops;
    x->s = NULL;
    x->splicing = false;
    x->eof = false;
}

void dp_xprt_h2_set_stream(struct dp_xprt_h2 *x, struct cl_h2stream *s)
{
    x->s = s;
    x->splicing = false;
    x->eof = false;
}

void dp_xprt_h2_release(struct dp_xprt_h2 *x, uint32_t h2_error)
{
    struct cl_h2stream *s = x->s;

    if (s == NULL)
        return;
    x->s = NULL;
    x->splicing = false;
    /* a stream we let go of may still send what it holds (END_STREAM included): it belongs to
     * its connection, which frees it; no callback reaches us any more */
    cl_h2stream_set_cbs(s, NULL, NULL);
    if (h2_error != 0)
        cl_h2stream_reset(s, h2_error);
}
