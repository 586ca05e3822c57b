/*
 * HTTP/2 connection core: nghttp2 session + sans-I/O TLS + libuv TCP (or memory, for tests).
 *
 * Output path: API calls and nghttp2 callbacks only *queue* work (nghttp2_submit_*, stream send
 * queues) and ask for a flush; the flush runs once per loop iteration from a uv_prepare_t, so
 * everything produced in one iteration leaves in one TLS write and one uv_write. The flush pulls
 * frames with nghttp2_session_mem_send into a plaintext staging buffer (several frames), hands it
 * to TLS in one call (several full records), and writes the TLS out queue with a single
 * uv_write of several buffers. It stops pulling while more than OUT_HIWAT bytes of ciphertext
 * wait for the socket, and resumes from the write callback.
 *
 * Input path: libuv reads ciphertext straight into the TLS input queue (no copy), TLS decrypts
 * into a 64 KiB buffer, nghttp2_session_mem_recv parses it. DATA is delivered to the stream's
 * on_data; connection-level flow-control credit is returned at once, stream-level credit only
 * when the owner calls cl_h2stream_consume (automatic WINDOW_UPDATE is off).
 *
 * Lifetime: cl_h2conn_close() marks the connection closing, gives every stream its on_close,
 * deletes the session and closes the handles; the last close callback calls the owner's
 * on_close and frees. A close requested from inside an nghttp2 callback is deferred until
 * nghttp2 has returned.
 */
#include "cl/h2conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "cl/buf.h"
#include "cl/bufq.h"
#include "cl/err.h"
#include "cl/list.h"
#include "cl/log.h"
#include "cl/mem.h"

#define READ_PLAIN      (64 * 1024)
#define STAGING_MAX     (256 * 1024)
#define STAGING_HIWAT   (64 * 1024)
#define OUT_HIWAT       (1024 * 1024)
#define MAX_IOV         64
#define MAX_HDRS        64
/* Send queue chunks of streams with large queues: a DATA frame of a whole chunk plus its 9-byte
 * header (written into the chunk's headroom) is exactly four full 16 KiB TLS records. */
#define SENDQ_CHUNK     (CL_BUFQ_BIG_CHUNK - 9)
/* DATA frames of at least this many contiguous bytes are encrypted straight from the send
 * queue; smaller ones are copied into the staging buffer, packed with other frames. */
#define DIRECT_MIN      (16 * 1024)
#define HDR_BYTES       (16 * 1024)
/* After an idle GOAWAY, how long the frame (and what precedes it) may take to leave before
 * the connection is closed anyway: a peer that does not read cannot hold it open. */
#define GOAWAY_FLUSH_MS 5000
/* After our close_notify, how long the other side may take to close its end before we close
 * anyway (lingering close: see close_gracefully()). */
#define LINGER_MS       1000

enum conn_state {
    ST_INIT,
    ST_CONNECTING,
    ST_HANDSHAKE,
    ST_READY,
    ST_CLOSING,
    ST_COUNT,
};

static const char *const state_names[ST_COUNT] = {
    [ST_INIT] = "init",   [ST_CONNECTING] = "connecting", [ST_HANDSHAKE] = "handshake",
    [ST_READY] = "ready", [ST_CLOSING] = "closing",
};

struct hdrset {
    struct cl_buf store; /* NUL-terminated names and values */
    size_t off[MAX_HDRS][2];
    size_t len[MAX_HDRS][2];
    size_t n;
};

struct cl_h2stream {
    struct cl_list link;
    struct cl_list rx_link; /* in c->rx_streams: on_data_flush owed */
    struct cl_h2conn *c;
    int32_t id;
    const struct cl_h2stream_cbs *cbs;
    void *ud;
    struct cl_bufq sendq;
    size_t sendq_max;
    struct hdrset hdrs;
    bool has_provider; /* DATA may follow our HEADERS */
    bool responded;    /* server: response submitted (an owner may answer and not listen) */
    bool deferred;     /* data provider returned DEFERRED */
    bool end_queued;   /* END_STREAM after the queued bytes */
    bool above_hiwat;  /* owner saw a full queue: tell it when it drains */
    bool notify_writable;
    int32_t win;  /* our receive window for it (auto-tuned) */
    size_t held;  /* DATA delivered to the owner and not consumed yet */
    bool starved; /* the peer came close to running out of credit since the last consume */
    bool closed;  /* on_close delivered */
    bool zombie;  /* closed by nghttp2 during a pull from the owner's call: on_close owed */
    int zombie_err;
};

struct out_write {
    uv_write_t req;
    struct cl_h2conn *c;
    size_t len;
};

struct cl_h2conn {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_timer_t timer;
    uv_prepare_t prep;
    int nhandles;
    bool mem;
    cl_h2conn_write_cb wcb;
    void *wud;
    struct cl_h2conn_opts o;
    struct cl_h2conn_cbs cbs;
    void *ud;
    uint64_t id;
    enum conn_state state;
    struct cl_tls *tls;
    nghttp2_session *ng;
    struct cl_buf staging;
    uint8_t *rbuf;
    struct out_write wr;
    size_t inflight;
    bool writing;
    bool flush_scheduled;
    bool pulling; /* pull_frames() called from an owner's write: defer stream closes */
    size_t nzombies;
    int in_ng; /* depth of nghttp2 calls on the stack */
    bool close_deferred;
    int deferred_err;
    bool shutting_down; /* we sent GOAWAY: close when the last stream ends */
    bool linger;        /* close_notify sent: reading until the other side closes */
    int linger_err;     /* what the close reports once lingering ends (0: a clean end) */
    bool goaway_rcvd;
    bool eof_rcvd;
    int close_err;
    struct cl_list streams;
    struct cl_list rx_streams; /* streams that got DATA since the last flush */
    size_t nstreams;
    char detail[256];
};

static uint64_t next_conn_id = 1;

static void schedule_flush(struct cl_h2conn *c);
static int tls_push_staging(struct cl_h2conn *c);
static void conn_close_now(struct cl_h2conn *c, int err);
static void arm_timer(struct cl_h2conn *c, uint64_t ms);
static void rearm_timer(struct cl_h2conn *c);

static void set_state(struct cl_h2conn *c, enum conn_state st)
{
    CL_TRACE("h2", "conn=%llu %s -> %s", (unsigned long long)c->id, state_names[c->state],
             state_names[st]);
    c->state = st;
}

/* ---- streams ------------------------------------------------------------------------------ */

static struct cl_h2stream *stream_new(struct cl_h2conn *c, size_t sendq_max)
{
    struct cl_h2stream *s = cl_calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->c = c;
    s->id = -1;
    s->win = (int32_t)c->o.stream_window;
    s->sendq_max = sendq_max;
    /* large queues: whole SENDQ_CHUNKs within the bound; small ones (REST bodies): 16 KiB */
    if (sendq_max >= CL_BUFQ_BIG_CHUNK)
        cl_bufq_init(&s->sendq, SENDQ_CHUNK, sendq_max / SENDQ_CHUNK);
    else
        cl_bufq_init(&s->sendq, CL_BUFQ_CHUNK, (sendq_max + CL_BUFQ_CHUNK - 1) / CL_BUFQ_CHUNK);
    cl_buf_init(&s->hdrs.store, HDR_BYTES);
    cl_list_init(&s->rx_link);
    cl_list_insert_tail(&c->streams, &s->link);
    c->nstreams++;
    return s;
}

/* Closed, or closed by nghttp2 with its on_close still owed: no more API calls on it. */
static bool stream_gone(const struct cl_h2stream *s)
{
    return s->closed || s->zombie;
}

static void stream_free(struct cl_h2stream *s)
{
    cl_list_remove(&s->link);
    cl_list_remove(&s->rx_link);
    s->c->nstreams--;
    cl_bufq_deinit(&s->sendq);
    cl_buf_deinit(&s->hdrs.store);
    cl_mem_free(s);
}

static int map_h2_error(uint32_t code)
{
    switch (code) {
    case NGHTTP2_NO_ERROR:
        return 0;
    case NGHTTP2_REFUSED_STREAM:
        return CL_EH2_REFUSED;
    default:
        return CL_EH2_RESET;
    }
}

/* The on_data_flush owed for DATA delivered since the last one, if any. */
static void stream_rx_flush(struct cl_h2stream *s)
{
    if (!cl_list_is_linked(&s->rx_link))
        return;
    cl_list_remove(&s->rx_link);
    if (s->cbs != NULL && s->cbs->on_data_flush != NULL)
        s->cbs->on_data_flush(s, s->ud);
}

/* Calls on_close once and frees. */
static void stream_finish(struct cl_h2stream *s, int err)
{
    struct cl_h2conn *c = s->c;

    if (err == 0 && !s->closed)
        stream_rx_flush(s); /* the last bytes go out before the close is reported */
    if (!s->closed) {
        s->closed = true;
        if (s->cbs != NULL && s->cbs->on_close != NULL)
            s->cbs->on_close(s, err, s->ud);
    }
    stream_free(s);
    if (c->nstreams == 0)
        rearm_timer(c);
}

/* ---- nghttp2 callbacks ---------------------------------------------------------------- */

/*
 * DATA is sent without nghttp2 copying it (NGHTTP2_DATA_FLAG_NO_COPY): the read callback only
 * says how many bytes the frame carries, and send_data_cb hands them to TLS. A frame of at
 * least DIRECT_MIN bytes that lie in one chunk of the stream's queue (which the read callback
 * arranges by cutting large frames at chunk ends) gets its 9-byte header written into the
 * chunk's headroom and is encrypted from there: no copy. Smaller frames are copied into the
 * staging buffer with the other frames, so that records stay full.
 */
static ssize_t data_read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct cl_h2stream *s = src->ptr;
    size_t n = cl_bufq_len(&s->sendq), head;
    uint8_t *p;

    (void)ng;
    (void)id;
    (void)buf;
    (void)ud;
    if (n > length)
        n = length;
    head = cl_bufq_head(&s->sendq, &p);
    if (head >= DIRECT_MIN && n > head)
        n = head; /* the rest of the queue goes in the next frame */
    if (n == cl_bufq_len(&s->sendq) && s->end_queued)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (n == 0 && !s->end_queued) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n > 0)
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    return (ssize_t)n;
}

static int send_data_cb(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *ud)
{
    struct cl_h2conn *c = ud;
    struct cl_h2stream *s = src->ptr;
    uint8_t *p;

    (void)ng;
    (void)f; /* no padding is ever requested */
    /* nghttp2 may send many DATA frames within one mem_send call: keep both buffers bounded */
    if (c->staging.len >= STAGING_HIWAT && tls_push_staging(c) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (cl_bufq_len(cl_tls_outq(c->tls)) >= OUT_HIWAT)
        return NGHTTP2_ERR_WOULDBLOCK; /* called again with the same frame after a write */
    if (length >= DIRECT_MIN && cl_bufq_head(&s->sendq, &p) >= length) {
        /* the frames before this one first, then header + payload in place */
        if (tls_push_staging(c) != 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        memcpy(p - 9, framehd, 9);
        if (cl_tls_write(c->tls, p - 9, 9 + length) < 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        cl_bufq_consume(&s->sendq, length);
    } else {
        if ((p = cl_buf_reserve(&c->staging, 9 + length)) == NULL)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        memcpy(p, framehd, 9);
        if (cl_bufq_read(&s->sendq, p + 9, length) != length)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        cl_buf_commit(&c->staging, 9 + length);
    }
    if (s->above_hiwat && cl_bufq_len(&s->sendq) <= s->sendq_max / 4)
        s->notify_writable = true;
    return 0;
}

/* DATA frames as large as the peer accepts (up to 64 KiB): fewer frames, headers and calls */
static ssize_t data_len_cb(nghttp2_session *ng, uint8_t type, int32_t id, int32_t swin,
                           int32_t cwin, uint32_t remote_max_frame, void *ud)
{
    int32_t n = swin < cwin ? swin : cwin;

    (void)ng;
    (void)type;
    (void)id;
    (void)ud;
    if ((uint32_t)n > remote_max_frame)
        n = (int32_t)remote_max_frame;
    if (n > 65536)
        n = 65536;
    return n > 0 ? n : 1;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct cl_h2conn *c = ud;
    struct cl_h2stream *s;

    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (s == NULL && c->o.server && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (c->shutting_down)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        if ((s = stream_new(c, c->o.stream_sendq)) == NULL)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
        s->id = f->hd.stream_id;
        nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, s);
        rearm_timer(c); /* a stream is open: no idle deadline */
    }
    if (s != NULL) {
        cl_buf_reset(&s->hdrs.store);
        s->hdrs.n = 0;
    }
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    struct cl_h2stream *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    struct hdrset *h;

    (void)flags;
    (void)ud;
    if (s == NULL)
        return 0;
    h = &s->hdrs;
    if (h->n >= MAX_HDRS)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    h->off[h->n][0] = h->store.len;
    h->len[h->n][0] = namelen;
    if (cl_buf_append(&h->store, name, namelen) != 0 || cl_buf_append(&h->store, "", 1) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    h->off[h->n][1] = h->store.len;
    h->len[h->n][1] = valuelen;
    if (cl_buf_append(&h->store, value, valuelen) != 0 || cl_buf_append(&h->store, "", 1) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    h->n++;
    return 0;
}

/* Builds the header array (pseudo-headers separated out). */
static size_t collect_hdrs(struct cl_h2stream *s, struct cl_h2_hdr *out, struct cl_h2_req *req,
                           int *status)
{
    struct hdrset *h = &s->hdrs;
    const char *base = (const char *)cl_buf_ptr(&h->store);
    size_t n = 0;

    for (size_t i = 0; i < h->n; i++) {
        const char *name = base + h->off[i][0];
        const char *value = base + h->off[i][1];
        if (name[0] == ':') {
            if (req != NULL && strcmp(name, ":method") == 0)
                req->method = value;
            else if (req != NULL && strcmp(name, ":path") == 0)
                req->path = value;
            else if (req != NULL && strcmp(name, ":authority") == 0)
                req->authority = value;
            else if (req != NULL && strcmp(name, ":scheme") == 0)
                req->scheme = value;
            else if (status != NULL && strcmp(name, ":status") == 0)
                *status = (int)strtol(value, NULL, 10);
            continue;
        }
        out[n].name = name;
        out[n].namelen = h->len[i][0];
        out[n].value = value;
        out[n].valuelen = h->len[i][1];
        n++;
    }
    return n;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct cl_h2conn *c = ud;
    struct cl_h2stream *s = NULL;
    struct cl_h2_hdr hdrs[MAX_HDRS];

    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway_rcvd = true;
        if (c->cbs.on_goaway != NULL)
            c->cbs.on_goaway(c, c->ud);
        return 0;
    }
    if (f->hd.stream_id != 0)
        s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (s == NULL)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS) {
        if (f->headers.cat == NGHTTP2_HCAT_REQUEST && c->o.server) {
            struct cl_h2_req req = {0};
            req.hdrs = hdrs;
            req.nhdrs = collect_hdrs(s, hdrs, &req, NULL);
            if (req.method == NULL) {
                nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
                return 0;
            }
            if (c->cbs.on_request != NULL)
                c->cbs.on_request(c, s, &req, c->ud);
            /* owner neither listened nor answered: refuse */
            if (s->cbs == NULL && !s->closed && !s->responded)
                nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_REFUSED_STREAM);
        } else if (f->headers.cat == NGHTTP2_HCAT_RESPONSE && !c->o.server) {
            int status = 0;
            size_t n = collect_hdrs(s, hdrs, NULL, &status);
            if (status >= 100 && status < 200)
                return 0;       /* interim */
            if (status < 100) { /* nghttp2 takes any 3 digits; "099" is no HTTP status */
                nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
                return 0;
            }
            if (s->cbs != NULL && s->cbs->on_response != NULL)
                s->cbs->on_response(s, status, hdrs, n, s->ud);
        }
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        stream_rx_flush(s); /* the bytes before the end first */
        if (!s->closed && s->cbs != NULL && s->cbs->on_end != NULL)
            s->cbs->on_end(s, s->ud);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    struct cl_h2stream *s = nghttp2_session_get_stream_user_data(ng, id);

    (void)flags;
    (void)ud;
    /* the connection window is returned at once: each stream's own window bounds its memory */
    nghttp2_session_consume_connection(ng, len);
    if (s == NULL || s->cbs == NULL || s->cbs->on_data == NULL) {
        nghttp2_session_consume_stream(ng, id, len);
        return 0;
    }
    s->held += len;
    /* the peer has (nearly) used up its credit: it may be waiting for our WINDOW_UPDATE */
    if (nghttp2_session_get_stream_effective_recv_data_length(ng, id) >= s->win / 4 * 3)
        s->starved = true;
    if (s->cbs->on_data_flush != NULL && !cl_list_is_linked(&s->rx_link))
        cl_list_insert_tail(&s->c->rx_streams, &s->rx_link);
    s->cbs->on_data(s, data, len, s->ud);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    struct cl_h2stream *s = nghttp2_session_get_stream_user_data(ng, id);

    if (s != NULL) {
        struct cl_h2conn *c = ud;
        nghttp2_session_set_stream_user_data(ng, id, NULL);
        if (c->pulling) { /* inside the owner's write: on_close from the next flush */
            s->zombie = true;
            s->zombie_err = map_h2_error(code);
            c->nzombies++;
            schedule_flush(c);
            return 0;
        }
        stream_finish(s, map_h2_error(code));
    }
    return 0;
}

/* ---- output ------------------------------------------------------------------------------- */

static void on_out_write(uv_write_t *req, int status);

static void write_out(struct cl_h2conn *c)
{
    struct cl_bufq *q = cl_tls_outq(c->tls);
    struct iovec iov[MAX_IOV];
    uv_buf_t bufs[MAX_IOV];
    size_t n, total = 0;
    int rc;

    if (c->writing || cl_bufq_len(q) == 0)
        return;
    n = cl_bufq_peek_iov(q, 0, iov, MAX_IOV);
    if (c->mem) {
        for (size_t i = 0; i < n; i++)
            total += iov[i].iov_len;
        for (size_t i = 0; i < n; i++)
            c->wcb(c, iov[i].iov_base, iov[i].iov_len, c->wud);
        cl_bufq_consume(q, total);
        schedule_flush(c); /* as the socket's write callback does: frames may be waiting */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bufs[i] = uv_buf_init(iov[i].iov_base, (unsigned)iov[i].iov_len);
        total += iov[i].iov_len;
    }
    c->wr.c = c;
    c->wr.len = total;
    if ((rc = uv_write(&c->wr.req, (uv_stream_t *)&c->tcp, bufs, (unsigned)n, on_out_write)) != 0) {
        conn_close_now(c, rc);
        return;
    }
    c->writing = true;
    c->inflight = total;
}

static void on_out_write(uv_write_t *req, int status)
{
    struct out_write *w = CL_CONTAINER_OF(req, struct out_write, req);
    struct cl_h2conn *c = w->c;

    c->writing = false;
    if (c->state == ST_CLOSING)
        return;
    cl_bufq_consume(cl_tls_outq(c->tls), w->len);
    c->inflight = 0;
    if (status < 0) {
        snprintf(c->detail, sizeof(c->detail), "write: %s", uv_strerror(status));
        conn_close_now(c, status);
        return;
    }
    schedule_flush(c);
}

static int tls_push_staging(struct cl_h2conn *c)
{
    ssize_t n;

    if (c->staging.len == 0)
        return 0;
    n = cl_tls_write(c->tls, cl_buf_ptr(&c->staging), c->staging.len);
    cl_buf_reset(&c->staging);
    return n < 0 ? (int)n : 0;
}

static void notify_writable(struct cl_h2conn *c)
{
    struct cl_list *pos, *tmp;

    cl_list_foreach_safe(pos, tmp, &c->streams)
    {
        struct cl_h2stream *s = CL_CONTAINER_OF(pos, struct cl_h2stream, link);
        if (s->notify_writable && c->state != ST_CLOSING) {
            s->notify_writable = false;
            s->above_hiwat = false;
            if (s->cbs != NULL && s->cbs->on_writable != NULL)
                s->cbs->on_writable(s, s->ud);
        }
    }
}

/* on_data_flush for every stream that got DATA since the last flush: one write per loop
 * iteration to the socket the bytes go to, however many frames and reads brought them */
static void notify_rx(struct cl_h2conn *c)
{
    /* the callback may free its stream, or others of the list: take the head each time */
    while (!cl_list_is_empty(&c->rx_streams) && c->state != ST_CLOSING)
        stream_rx_flush(CL_CONTAINER_OF(c->rx_streams.next, struct cl_h2stream, rx_link));
}

/* Pulls frames from nghttp2 and encrypts them into the TLS out queue, until it holds
 * OUT_HIWAT bytes or nghttp2 has nothing more. Returns 0 or an error (detail set). */
static int pull_frames(struct cl_h2conn *c)
{
    int rc;

    while (cl_bufq_len(cl_tls_outq(c->tls)) < OUT_HIWAT) {
        const uint8_t *data;
        ssize_t n;
        c->in_ng++;
        n = nghttp2_session_mem_send(c->ng, &data);
        c->in_ng--;
        if (n < 0) {
            snprintf(c->detail, sizeof(c->detail), "nghttp2: %s", nghttp2_strerror((int)n));
            return CL_EH2;
        }
        if (n == 0)
            break;
        if (cl_buf_append(&c->staging, data, (size_t)n) != 0)
            return CL_ENOMEM;
        if (c->staging.len >= STAGING_HIWAT && (rc = tls_push_staging(c)) != 0)
            return rc;
    }
    return tls_push_staging(c);
}

/* on_close for the streams nghttp2 closed while pulling from an owner's write */
static void reap_zombies(struct cl_h2conn *c)
{
    while (c->nzombies > 0 && c->state != ST_CLOSING) {
        struct cl_list *pos;
        for (pos = c->streams.next; pos != &c->streams; pos = pos->next) {
            struct cl_h2stream *s = CL_CONTAINER_OF(pos, struct cl_h2stream, link);
            if (s->zombie) {
                s->zombie = false;
                c->nzombies--;
                stream_finish(s, s->zombie_err); /* may free others: start over */
                break;
            }
        }
    }
}

/*
 * A graceful end: rather than closing the socket at once, which makes the kernel answer with a
 * reset if bytes from the other side are still unread (a frame that crossed our GOAWAY, say) and
 * may then destroy what we sent last, send TLS close_notify and keep reading, processing what
 * comes, until the other side closes its end (EOF or its close_notify) or LINGER_MS pass (the
 * nginx/h2o "lingering close"). Returns true while lingering, false when the caller should close
 * now (memory mode, which has no socket to reset).
 */
static bool close_gracefully(struct cl_h2conn *c)
{
    if (c->mem)
        return false;
    if (c->linger)
        return true;
    c->linger = true;
    CL_DEBUG("h2", "conn=%llu close_notify, lingering until the other side closes",
             (unsigned long long)c->id);
    arm_timer(c, LINGER_MS); /* replaces the GOAWAY flush deadline */
    if (cl_tls_shutdown(c->tls) != 0)
        return false;
    write_out(c);
    return c->state != ST_CLOSING;
}

static void flush(struct cl_h2conn *c)
{
    int rc;

    reap_zombies(c);
    notify_rx(c);
    if (c->state == ST_CLOSING)
        return;
    /* no frame may follow our close_notify: what nghttp2 still wants to say is dropped */
    if (c->state == ST_READY && !c->linger && (rc = pull_frames(c)) != 0) {
        conn_close_now(c, rc);
        return;
    }
    write_out(c);
    if (c->state == ST_CLOSING)
        return;
    if (c->close_deferred) {
        conn_close_now(c, c->deferred_err);
        return;
    }
    if (c->linger) { /* until the other side ends (its close_notify here, EOF in on_read) */
        if (c->eof_rcvd && !c->writing && cl_bufq_len(cl_tls_outq(c->tls)) == 0)
            conn_close_now(c, c->linger_err);
        return;
    }
    notify_writable(c);
    if (c->state == ST_READY && !c->writing && cl_bufq_len(cl_tls_outq(c->tls)) == 0 &&
        ((!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng)) ||
         (c->shutting_down && c->nstreams == 0) || c->eof_rcvd)) {
        if (!c->eof_rcvd && close_gracefully(c))
            return;
        conn_close_now(c, c->eof_rcvd && c->nstreams > 0 ? CL_EOF : 0);
    }
}

static void on_prepare(uv_prepare_t *p)
{
    struct cl_h2conn *c = CL_CONTAINER_OF(p, struct cl_h2conn, prep);

    uv_prepare_stop(p);
    c->flush_scheduled = false;
    flush(c);
}

static void schedule_flush(struct cl_h2conn *c)
{
    if (c->flush_scheduled || c->state == ST_CLOSING)
        return;
    c->flush_scheduled = true;
    uv_prepare_start(&c->prep, on_prepare);
}

/* ---- input -------------------------------------------------------------------------------- */

static int session_create(struct cl_h2conn *c)
{
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    int rc;

    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return CL_ENOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_send_data_callback(cbs, send_data_cb);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, data_len_cb);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, c->o.max_streams);
    if (c->o.server)
        rc = nghttp2_session_server_new2(&c->ng, cbs, c, opt);
    else
        rc = nghttp2_session_client_new2(&c->ng, cbs, c, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rc != 0)
        return CL_ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->o.max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c->o.stream_window},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, c->o.max_frame},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    size_t niv = c->o.server ? 3 : 4;
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, niv) != 0 ||
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)c->o.conn_window) != 0)
        return CL_ENOMEM;
    return 0;
}

/*
 * A client that completed the handshake without offering any ALPN protocol most likely speaks
 * HTTP/1.1 (curl --no-alpn, old libraries): rather than a bare close, which such a client
 * reports as an empty reply, it gets an HTTP/1.1 error that says what this port speaks, then
 * close_notify and a lingering close. A client that offered other protocols got the
 * no_application_protocol alert inside the handshake instead (RFC 7301 3.2). Returns true while
 * lingering (the close reports err), false when the caller should close now.
 */
static bool answer_without_h2(struct cl_h2conn *c, int err)
{
    static const char body[] =
        "This port speaks HTTP/2 only: the client must offer h2 by TLS ALPN.\n";
    char resp[256];
    int n;

    if (!c->o.server || !cl_tls_is_open_without_alpn(c->tls))
        return false;
    n = snprintf(resp, sizeof(resp),
                 "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 sizeof(body) - 1, body);
    CL_ASSERT(n > 0 && (size_t)n < sizeof(resp));
    if (cl_tls_write(c->tls, resp, (size_t)n) < 0)
        return false;
    c->linger_err = err;
    if (close_gracefully(c))
        return true;
    write_out(c); /* memory mode: the answer still leaves */
    return false;
}

/* Lingering after answer_without_h2(): what the client still sends is read and dropped. */
static void discard_input(struct cl_h2conn *c)
{
    for (;;) {
        ssize_t n = cl_tls_read(c->tls, c->rbuf, READ_PLAIN);
        if (n == CL_EAGAIN)
            break;
        if (n < 0) { /* close_notify, EOF or an error: whichever, the other side is done */
            c->eof_rcvd = true;
            break;
        }
    }
    schedule_flush(c);
}

static void process_input(struct cl_h2conn *c)
{
    int rc;

    if (c->state == ST_HANDSHAKE && c->linger) {
        discard_input(c);
        return;
    }
    if (c->state == ST_HANDSHAKE) {
        rc = cl_tls_handshake(c->tls);
        if (rc == CL_EAGAIN) {
            write_out(c);
            return;
        }
        if (rc != 0) {
            snprintf(c->detail, sizeof(c->detail), "%s", cl_tls_error_detail(c->tls));
            if (rc == CL_ETLS_ALPN && answer_without_h2(c, rc))
                return;
            write_out(c); /* the alert, if any */
            conn_close_now(c, rc);
            return;
        }
        set_state(c, ST_READY);
        rearm_timer(c); /* the handshake deadline becomes the idle one (or none) */
        if (c->cbs.on_ready != NULL)
            c->cbs.on_ready(c, c->ud);
        if (c->state == ST_CLOSING)
            return;
        /* made before the certificate files were reloaded, and done after: the owner retired
         * its connections at the reload, before this one was ready to be, so it retires now
         * (GOAWAY: the streams already open finish, new ones go on a new connection) */
        if (cl_tls_is_stale(c->tls)) {
            CL_DEBUG("h2", "handshake done with certificate files since replaced: GOAWAY");
            cl_h2conn_shutdown(c);
        }
    }
    for (;;) {
        ssize_t n = cl_tls_read(c->tls, c->rbuf, READ_PLAIN);
        if (n == CL_EAGAIN)
            break;
        if (n == CL_EOF || n == CL_ETLS_CLOSED) {
            c->eof_rcvd = true;
            break;
        }
        if (n < 0) {
            if (c->linger) { /* we already ended cleanly: whatever this is, it is the end */
                conn_close_now(c, 0);
                return;
            }
            snprintf(c->detail, sizeof(c->detail), "%s", cl_tls_error_detail(c->tls));
            conn_close_now(c, (int)n);
            return;
        }
        c->in_ng++;
        ssize_t r = nghttp2_session_mem_recv(c->ng, c->rbuf, (size_t)n);
        c->in_ng--;
        if (c->close_deferred) {
            conn_close_now(c, c->deferred_err);
            return;
        }
        if (r < 0) {
            snprintf(c->detail, sizeof(c->detail), "nghttp2: %s", nghttp2_strerror((int)r));
            conn_close_now(c, CL_EH2);
            return;
        }
    }
    schedule_flush(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct cl_h2conn *c = CL_CONTAINER_OF((uv_tcp_t *)h, struct cl_h2conn, tcp);
    uint8_t *p = NULL;
    size_t n;

    (void)hint;
    n = c->state == ST_CLOSING ? 0 : cl_tls_in_reserve(c->tls, &p);
    buf->base = (char *)p;
    buf->len = n;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct cl_h2conn *c = CL_CONTAINER_OF((uv_tcp_t *)st, struct cl_h2conn, tcp);

    (void)buf;
    if (c->state == ST_CLOSING)
        return;
    if (nread < 0) {
        if (c->linger) { /* we already ended: whatever this is, it is the end */
            conn_close_now(c, c->linger_err);
            return;
        }
        if (nread != UV_EOF)
            snprintf(c->detail, sizeof(c->detail), "read: %s", uv_strerror((int)nread));
        else if (c->state == ST_HANDSHAKE)
            snprintf(c->detail, sizeof(c->detail), "connection closed during the TLS handshake");
        conn_close_now(c, nread == UV_EOF ? (c->state == ST_HANDSHAKE ? CL_ETLS : 0) : (int)nread);
        return;
    }
    if (nread == 0)
        return;
    cl_tls_in_commit(c->tls, (size_t)nread);
    process_input(c);
}

int cl_h2conn_feed(struct cl_h2conn *c, const uint8_t *data, size_t len)
{
    while (len > 0 && c->state != ST_CLOSING) {
        uint8_t *p;
        size_t n = cl_tls_in_reserve(c->tls, &p);
        if (n == 0)
            return CL_EBUSY;
        if (n > len)
            n = len;
        memcpy(p, data, n);
        cl_tls_in_commit(c->tls, n);
        data += n;
        len -= n;
        process_input(c);
    }
    return c->state == ST_CLOSING ? CL_ECLOSED : 0;
}

void cl_h2conn_feed_eof(struct cl_h2conn *c)
{
    if (c->state != ST_CLOSING)
        conn_close_now(c, c->state == ST_HANDSHAKE ? CL_ETLS : 0);
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static void on_handle_close(uv_handle_t *h)
{
    struct cl_h2conn *c = h->data;

    if (--c->nhandles > 0)
        return;
    if (c->cbs.on_close != NULL)
        c->cbs.on_close(c, c->close_err, c->ud);
    cl_tls_free(c->tls);
    cl_tls_ctx_unref(c->o.tls);
    cl_buf_deinit(&c->staging);
    cl_mem_free(c->rbuf);
    cl_mem_free(c);
}

static void close_handles(struct cl_h2conn *c)
{
    c->nhandles = c->mem ? 2 : 3;
    uv_close((uv_handle_t *)&c->timer, on_handle_close);
    uv_close((uv_handle_t *)&c->prep, on_handle_close);
    if (!c->mem)
        uv_close((uv_handle_t *)&c->tcp, on_handle_close);
}

static void conn_close_now(struct cl_h2conn *c, int err)
{
    struct cl_list *pos, *tmp;

    if (c->state == ST_CLOSING)
        return;
    if (c->in_ng > 0) { /* inside nghttp2: finish once it has returned */
        if (!c->close_deferred) {
            c->close_deferred = true;
            c->deferred_err = err;
        }
        return;
    }
    CL_DEBUG("h2", "conn=%llu closing: %s%s%s", (unsigned long long)c->id, cl_strerror(err),
             c->detail[0] ? ": " : "", c->detail);
    set_state(c, ST_CLOSING);
    c->close_err = err;
    cl_list_foreach_safe(pos, tmp, &c->streams)
    {
        struct cl_h2stream *s = CL_CONTAINER_OF(pos, struct cl_h2stream, link);
        if (s->id >= 0 && c->ng != NULL)
            nghttp2_session_set_stream_user_data(c->ng, s->id, NULL);
        if (s->zombie) {
            s->zombie = false;
            c->nzombies--;
            stream_finish(s, s->zombie_err);
            continue;
        }
        stream_finish(s, err != 0 ? err : CL_ECLOSED);
    }
    nghttp2_session_del(c->ng);
    c->ng = NULL;
    close_handles(c);
}

void cl_h2conn_close(struct cl_h2conn *c, int err)
{
    if (c != NULL)
        conn_close_now(c, err);
}

/* GOAWAY with NO_ERROR and the last stream we processed, no new streams from now on; the
 * flush closes the connection once it has left and the last stream has ended (RFC 9113 6.8). */
static void send_goaway(struct cl_h2conn *c)
{
    c->shutting_down = true;
    nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    rearm_timer(c);
    schedule_flush(c);
}

void cl_h2conn_shutdown(struct cl_h2conn *c)
{
    if (c->state == ST_CLOSING || c->shutting_down)
        return;
    if (c->state == ST_READY) {
        send_goaway(c);
    } else {
        c->shutting_down = true;
        conn_close_now(c, 0);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct cl_h2conn *c = CL_CONTAINER_OF(t, struct cl_h2conn, timer);

    if (c->linger) {
        conn_close_now(c, c->linger_err); /* the other side did not close in time */
    } else if (c->state == ST_HANDSHAKE || c->state == ST_CONNECTING) {
        snprintf(c->detail, sizeof(c->detail), "%s timed out",
                 c->state == ST_CONNECTING ? "connect" : "TLS handshake");
        conn_close_now(c, CL_ETIMEDOUT);
    } else if (c->state == ST_READY && c->nstreams == 0 && c->shutting_down) {
        snprintf(c->detail, sizeof(c->detail), "GOAWAY not flushed in %d ms", GOAWAY_FLUSH_MS);
        conn_close_now(c, CL_ETIMEDOUT);
    } else if (c->state == ST_READY && c->nstreams == 0) {
        CL_DEBUG("h2", "conn=%llu no stream for %llu ms: GOAWAY, closing",
                 (unsigned long long)c->id, (unsigned long long)c->o.idle_timeout_ms);
        send_goaway(c);
    }
}

static void arm_timer(struct cl_h2conn *c, uint64_t ms)
{
    if (ms > 0)
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

/*
 * The one timer carries the current deadline. CONNECTING and HANDSHAKE: the handshake deadline,
 * armed on entering them and left alone here (streams opened early must not lift it). READY:
 * none while a stream is open; with none, the idle timeout, or after our GOAWAY the time it
 * may take to leave.
 */
static void rearm_timer(struct cl_h2conn *c)
{
    if (c->state != ST_READY || c->linger) /* lingering keeps its own deadline */
        return;
    if (c->nstreams > 0)
        uv_timer_stop(&c->timer);
    else if (c->shutting_down)
        arm_timer(c, GOAWAY_FLUSH_MS);
    else if (c->o.idle_timeout_ms > 0)
        arm_timer(c, c->o.idle_timeout_ms);
    else
        uv_timer_stop(&c->timer);
}

static int conn_init(uv_loop_t *loop, const struct cl_h2conn_opts *o, struct cl_h2conn **out)
{
    struct cl_h2conn *c;
    int rc;

    if (o == NULL || o->tls == NULL || o->cbs == NULL)
        return CL_EINVAL;
    if ((c = cl_calloc(1, sizeof(*c))) == NULL)
        return CL_ENOMEM;
    c->loop = loop;
    c->o = *o;
    c->cbs = *o->cbs;
    c->ud = o->ud;
    c->o.server_name = NULL; /* not kept: only used for the TLS object below */
    if (c->o.stream_window == 0)
        c->o.stream_window = 2u << 20;
    if (c->o.stream_window_max == 0)
        c->o.stream_window_max = 8u << 20;
    if (c->o.stream_window_max < c->o.stream_window)
        c->o.stream_window_max = c->o.stream_window;
    if (c->o.conn_window == 0)
        c->o.conn_window = 16u << 20;
    if (c->o.max_frame == 0)
        c->o.max_frame = 65536;
    if (c->o.stream_sendq == 0)
        c->o.stream_sendq = 256 * 1024;
    if (c->o.max_streams == 0)
        c->o.max_streams = 10000;
    if (c->o.handshake_timeout_ms == 0)
        c->o.handshake_timeout_ms = 10000;
    c->id = next_conn_id++;
    cl_list_init(&c->streams);
    cl_list_init(&c->rx_streams);
    cl_buf_init(&c->staging, STAGING_MAX);
    if ((c->rbuf = cl_malloc(READ_PLAIN)) == NULL ||
        (c->tls = cl_tls_new(o->tls, o->server ? NULL : o->server_name)) == NULL) {
        cl_mem_free(c->rbuf);
        cl_mem_free(c);
        return CL_ENOMEM;
    }
    cl_tls_ctx_ref(o->tls);
    if ((rc = session_create(c)) != 0) {
        nghttp2_session_del(c->ng);
        cl_tls_free(c->tls);
        cl_tls_ctx_unref(o->tls);
        cl_mem_free(c->rbuf);
        cl_mem_free(c);
        return rc;
    }
    uv_timer_init(loop, &c->timer);
    uv_prepare_init(loop, &c->prep);
    c->timer.data = c;
    c->prep.data = c;
    *out = c;
    return 0;
}

int cl_h2conn_new(uv_loop_t *loop, const struct cl_h2conn_opts *o, struct cl_h2conn **out)
{
    struct cl_h2conn *c;
    int rc = conn_init(loop, o, &c);

    if (rc != 0)
        return rc;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    *out = c;
    return 0;
}

int cl_h2conn_new_mem(uv_loop_t *loop, const struct cl_h2conn_opts *o, cl_h2conn_write_cb wcb,
                      void *wud, struct cl_h2conn **out)
{
    struct cl_h2conn *c;
    int rc = conn_init(loop, o, &c);

    if (rc != 0)
        return rc;
    c->mem = true;
    c->wcb = wcb;
    c->wud = wud;
    set_state(c, ST_HANDSHAKE);
    arm_timer(c, c->o.handshake_timeout_ms);
    if (!o->server) {
        (void)cl_tls_handshake(c->tls); /* ClientHello */
        schedule_flush(c);
    }
    *out = c;
    return 0;
}

/* Frees a connection that never started (no on_close). */
static void abort_unstarted(struct cl_h2conn *c)
{
    c->cbs.on_close = NULL;
    conn_close_now(c, CL_ECLOSED);
}

static int start_io(struct cl_h2conn *c)
{
    int rc;

    uv_tcp_nodelay(&c->tcp, 1);
    if ((rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) != 0)
        return rc;
    set_state(c, ST_HANDSHAKE);
    arm_timer(c, c->o.handshake_timeout_ms);
    if (!c->o.server) {
        rc = cl_tls_handshake(c->tls);
        if (rc != CL_EAGAIN && rc != 0) {
            snprintf(c->detail, sizeof(c->detail), "%s", cl_tls_error_detail(c->tls));
            conn_close_now(c, rc);
            return 0;
        }
        write_out(c);
    }
    return 0;
}

int cl_h2conn_accept(struct cl_h2conn *c, uv_stream_t *listener)
{
    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);

    if (rc == 0)
        rc = start_io(c);
    if (rc != 0)
        abort_unstarted(c);
    return rc;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct cl_h2conn *c = CL_CONTAINER_OF(req, struct cl_h2conn, creq);

    if (c->state == ST_CLOSING)
        return;
    if (status < 0) {
        snprintf(c->detail, sizeof(c->detail), "%s", uv_strerror(status));
        conn_close_now(c, status);
        return;
    }
    if ((status = start_io(c)) != 0)
        conn_close_now(c, status);
}

int cl_h2conn_connect(struct cl_h2conn *c, const struct sockaddr *addr)
{
    int rc = uv_tcp_connect(&c->creq, &c->tcp, addr, on_connect);

    if (rc != 0) {
        abort_unstarted(c);
        return rc;
    }
    set_state(c, ST_CONNECTING);
    arm_timer(c, c->o.handshake_timeout_ms);
    return 0;
}

/* ---- accessors ---------------------------------------------------------------------------- */

bool cl_h2conn_is_ready(const struct cl_h2conn *c)
{
    return c->state == ST_READY;
}

bool cl_h2conn_is_stale(const struct cl_h2conn *c)
{
    return cl_tls_is_stale(c->tls);
}

bool cl_h2conn_can_open(const struct cl_h2conn *c)
{
    return c->state != ST_CLOSING && !c->shutting_down && !c->goaway_rcvd && !c->eof_rcvd &&
           c->ng != NULL && nghttp2_session_check_request_allowed(c->ng);
}

size_t cl_h2conn_nstreams(const struct cl_h2conn *c)
{
    return c->nstreams;
}

const struct cl_tls_peer *cl_h2conn_peer(const struct cl_h2conn *c)
{
    return cl_tls_peer(c->tls);
}

const char *cl_h2conn_error_detail(const struct cl_h2conn *c)
{
    return c->detail;
}

void *cl_h2conn_ud(const struct cl_h2conn *c)
{
    return c->ud;
}

void cl_h2conn_set_ud(struct cl_h2conn *c, void *ud)
{
    c->ud = ud;
}

uint64_t cl_h2conn_id(const struct cl_h2conn *c)
{
    return c->id;
}

/* ---- stream API --------------------------------------------------------------------------- */

static nghttp2_nv *make_nva(const struct cl_h2_hdr *hdrs, size_t n)
{
    nghttp2_nv *nva = cl_calloc(n ? n : 1, sizeof(*nva));

    if (nva == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        nva[i].name = (uint8_t *)(uintptr_t)hdrs[i].name;
        nva[i].namelen = hdrs[i].namelen;
        nva[i].value = (uint8_t *)(uintptr_t)hdrs[i].value;
        nva[i].valuelen = hdrs[i].valuelen;
        nva[i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    return nva;
}

static struct cl_h2stream *open_stream(struct cl_h2conn *c, const struct cl_h2_hdr *hdrs,
                                       size_t nhdrs, bool end_stream, size_t sendq_max,
                                       const struct cl_h2stream_cbs *cbs, void *ud)
{
    struct cl_h2stream *s;
    nghttp2_data_provider prd;
    nghttp2_nv *nva;
    int32_t id;

    if (!cl_h2conn_can_open(c))
        return NULL;
    if ((s = stream_new(c, sendq_max)) == NULL)
        return NULL;
    if ((nva = make_nva(hdrs, nhdrs)) == NULL) {
        stream_free(s);
        return NULL;
    }
    s->cbs = cbs;
    s->ud = ud;
    prd.source.ptr = s;
    prd.read_callback = data_read_cb;
    s->has_provider = !end_stream;
    id = nghttp2_submit_request(c->ng, NULL, nva, nhdrs, end_stream ? NULL : &prd, s);
    cl_mem_free(nva);
    if (id < 0) {
        stream_free(s);
        return NULL;
    }
    s->id = id;
    rearm_timer(c); /* READY: no idle deadline; before it the handshake deadline stands */
    schedule_flush(c);
    return s;
}

struct cl_h2stream *cl_h2conn_open(struct cl_h2conn *c, const struct cl_h2_hdr *hdrs, size_t nhdrs,
                                   bool end_stream, const struct cl_h2stream_cbs *cbs, void *ud)
{
    return open_stream(c, hdrs, nhdrs, end_stream, c->o.stream_sendq, cbs, ud);
}

int cl_h2stream_respond(struct cl_h2stream *s, int status, const struct cl_h2_hdr *hdrs,
                        size_t nhdrs, bool end_stream)
{
    struct cl_h2conn *c = s->c;
    nghttp2_data_provider prd;
    nghttp2_nv *nva;
    char st[8];
    int rc;

    if (c->state == ST_CLOSING || stream_gone(s))
        return CL_ECLOSED;
    if ((nva = cl_calloc(nhdrs + 1, sizeof(*nva))) == NULL)
        return CL_ENOMEM;
    snprintf(st, sizeof(st), "%d", status);
    nva[0].name = (uint8_t *)":status";
    nva[0].namelen = 7;
    nva[0].value = (uint8_t *)st;
    nva[0].valuelen = strlen(st);
    for (size_t i = 0; i < nhdrs; i++) {
        nva[i + 1].name = (uint8_t *)(uintptr_t)hdrs[i].name;
        nva[i + 1].namelen = hdrs[i].namelen;
        nva[i + 1].value = (uint8_t *)(uintptr_t)hdrs[i].value;
        nva[i + 1].valuelen = hdrs[i].valuelen;
    }
    prd.source.ptr = s;
    prd.read_callback = data_read_cb;
    s->has_provider = !end_stream;
    rc = nghttp2_submit_response(c->ng, s->id, nva, nhdrs + 1, end_stream ? NULL : &prd);
    cl_mem_free(nva);
    s->responded = rc == 0;
    schedule_flush(c);
    return rc == 0 ? 0 : CL_EH2;
}

void cl_h2stream_set_cbs(struct cl_h2stream *s, const struct cl_h2stream_cbs *cbs, void *ud)
{
    s->cbs = cbs;
    s->ud = ud;
}

void *cl_h2stream_ud(const struct cl_h2stream *s)
{
    return s->ud;
}

int32_t cl_h2stream_id(const struct cl_h2stream *s)
{
    return s->id;
}

struct cl_h2conn *cl_h2stream_conn(const struct cl_h2stream *s)
{
    return s->c;
}

static void data_available(struct cl_h2stream *s, bool may_pull)
{
    struct cl_h2conn *c = s->c;
    bool full = may_pull && cl_h2stream_space(s) < CL_BUFQ_CHUNK;
    int rc;

    if (s->deferred && c->ng != NULL && s->id > 0) {
        s->deferred = false;
        nghttp2_session_resume_data(c->ng, s->id);
    }
    schedule_flush(c);
    /*
     * A full queue is encrypted now rather than in this iteration's flush, as far as the
     * window and the TLS out queue allow: the owner keeps reading (libuv reads up to 32 times
     * per wake-up) instead of stopping its source and starting it again after the flush, and
     * the socket write of the whole batch still happens once, in the flush.
     */
    if (full && c->state == ST_READY && c->in_ng == 0 && !c->pulling && !c->close_deferred) {
        c->pulling = true; /* no callback reaches the owner from inside its own write */
        rc = pull_frames(c);
        c->pulling = false;
        if (rc != 0) {
            c->close_deferred = true; /* closed by the flush, not under the owner's feet */
            c->deferred_err = rc;
        }
    }
    /* still full (window closed, socket backed up): the owner waits for on_writable */
    if (cl_h2stream_space(s) < CL_BUFQ_CHUNK)
        s->above_hiwat = true;
}

size_t cl_h2stream_reserve(struct cl_h2stream *s, uint8_t **p)
{
    size_t n;

    if (s->c->state == ST_CLOSING || stream_gone(s) || s->end_queued)
        return 0;
    n = cl_bufq_len(&s->sendq) >= s->sendq_max ? 0 : cl_bufq_reserve(&s->sendq, p);
    if (n == 0)
        s->above_hiwat = true;
    return n;
}

void cl_h2stream_commit(struct cl_h2stream *s, size_t n)
{
    if (n == 0)
        return;
    cl_bufq_commit(&s->sendq, n);
    data_available(s, true);
}

ssize_t cl_h2stream_write(struct cl_h2stream *s, const void *data, size_t len)
{
    const uint8_t *src = data;
    size_t done = 0;

    if (s->c->state == ST_CLOSING || stream_gone(s) || s->end_queued)
        return CL_ECLOSED;
    while (done < len) {
        uint8_t *p;
        size_t n = cl_h2stream_reserve(s, &p);
        if (n == 0)
            break;
        if (n > len - done)
            n = len - done;
        memcpy(p, src + done, n);
        cl_bufq_commit(&s->sendq, n);
        done += n;
    }
    if (done > 0)
        data_available(s, true);
    return (ssize_t)done;
}

size_t cl_h2stream_space(const struct cl_h2stream *s)
{
    if (s->c->state == ST_CLOSING || stream_gone(s) || s->end_queued ||
        cl_bufq_len(&s->sendq) >= s->sendq_max)
        return 0;
    return cl_bufq_space(&s->sendq);
}

size_t cl_h2stream_sendq_len(const struct cl_h2stream *s)
{
    return cl_bufq_len(&s->sendq);
}

int cl_h2stream_end(struct cl_h2stream *s)
{
    if (s->c->state == ST_CLOSING || stream_gone(s))
        return CL_ECLOSED;
    if (!s->has_provider || s->end_queued)
        return 0;
    s->end_queued = true;
    s->deferred = true; /* make data_available resume it even if not deferred: harmless */
    data_available(s, false);
    return 0;
}

void cl_h2stream_consume(struct cl_h2stream *s, size_t n)
{
    struct cl_h2conn *c = s->c;
    int32_t win;

    if (c->state == ST_CLOSING || stream_gone(s) || c->ng == NULL || n == 0)
        return;
    s->held = s->held > n ? s->held - n : 0;
    win = s->win;
    if (s->held <= (size_t)s->win / 4 && s->starved && s->win < (int32_t)c->o.stream_window_max)
        /* the owner has written out nearly all it got while the peer waited for credit: the
         * window, not the owner, is what the stream waits for */
        win = s->win <= (int32_t)c->o.stream_window_max / 2 ? s->win * 2
                                                            : (int32_t)c->o.stream_window_max;
    else if (s->held > (size_t)s->win / 4 * 3 && s->win > (int32_t)c->o.stream_window)
        /* the owner writes out less than it holds: a large window only holds more backlog */
        win = s->win / 2 > (int32_t)c->o.stream_window ? s->win / 2 : (int32_t)c->o.stream_window;
    s->starved = false;
    if (win != s->win) {
        s->win = win;
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, s->id, win);
    }
    nghttp2_session_consume_stream(c->ng, s->id, n);
    schedule_flush(c);
}

size_t cl_h2stream_recv_window(const struct cl_h2stream *s)
{
    return (size_t)s->win;
}

void cl_h2stream_reset(struct cl_h2stream *s, uint32_t h2_error)
{
    struct cl_h2conn *c = s->c;

    if (c->state == ST_CLOSING || stream_gone(s) || c->ng == NULL)
        return;
    nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, s->id, h2_error);
    schedule_flush(c);
}

/* ---- buffered fetch ----------------------------------------------------------------------- */

struct fetch {
    uv_timer_t timer;
    struct cl_buf body;
    cl_h2_fetch_cb cb;
    void *ud;
    struct cl_h2stream *s;
    int status;
    bool done;
};

static void on_fetch_timer_close(uv_handle_t *h)
{
    struct fetch *f = CL_CONTAINER_OF((uv_timer_t *)h, struct fetch, timer);

    cl_buf_deinit(&f->body);
    cl_mem_free(f);
}

static void fetch_done(struct fetch *f, int err)
{
    if (f->done)
        return;
    f->done = true;
    uv_timer_stop(&f->timer);
    if (err == 0)
        f->cb(0, f->status, cl_buf_ptr(&f->body), f->body.len, f->ud);
    else
        f->cb(err, 0, NULL, 0, f->ud);
}

static void fetch_on_response(struct cl_h2stream *s, int status, const struct cl_h2_hdr *h,
                              size_t n, void *ud)
{
    struct fetch *f = ud;

    (void)s;
    (void)h;
    (void)n;
    f->status = status;
}

static void fetch_on_data(struct cl_h2stream *s, const uint8_t *data, size_t len, void *ud)
{
    struct fetch *f = ud;

    cl_h2stream_consume(s, len);
    if (f->done)
        return;
    if (cl_buf_append(&f->body, data, len) != 0) {
        fetch_done(f, CL_EBUSY);
        cl_h2stream_reset(s, NGHTTP2_CANCEL);
    }
}

static void fetch_on_end(struct cl_h2stream *s, void *ud)
{
    (void)s;
    fetch_done(ud, 0);
}

static void fetch_on_close(struct cl_h2stream *s, int err, void *ud)
{
    struct fetch *f = ud;

    (void)s;
    f->s = NULL;
    fetch_done(f, err != 0 ? err : CL_EH2_RESET);
    uv_close((uv_handle_t *)&f->timer, on_fetch_timer_close);
}

static void on_fetch_timeout(uv_timer_t *t)
{
    struct fetch *f = CL_CONTAINER_OF(t, struct fetch, timer);

    fetch_done(f, CL_ETIMEDOUT);
    if (f->s != NULL)
        cl_h2stream_reset(f->s, NGHTTP2_CANCEL);
}

static const struct cl_h2stream_cbs fetch_cbs = {
    .on_response = fetch_on_response,
    .on_data = fetch_on_data,
    .on_end = fetch_on_end,
    .on_close = fetch_on_close,
};

int cl_h2_fetch(struct cl_h2conn *c, const char *method, const char *authority, const char *path,
                const struct cl_h2_hdr *extra, size_t nextra, const void *body, size_t bodylen,
                size_t max_body, uint64_t timeout_ms, cl_h2_fetch_cb cb, void *ud)
{
    struct cl_h2_hdr h[4 + 16];
    struct fetch *f;
    char clen[24];
    size_t n = 0;

    if (nextra > 15)
        return CL_EINVAL;
    if ((f = cl_calloc(1, sizeof(*f))) == NULL)
        return CL_ENOMEM;
    cl_buf_init(&f->body, max_body);
    f->cb = cb;
    f->ud = ud;
    h[n++] = (struct cl_h2_hdr){":method", method, 7, strlen(method)};
    h[n++] = (struct cl_h2_hdr){":scheme", "https", 7, 5};
    h[n++] = (struct cl_h2_hdr){":authority", authority, 10, strlen(authority)};
    h[n++] = (struct cl_h2_hdr){":path", path, 5, strlen(path)};
    for (size_t i = 0; i < nextra; i++)
        h[n++] = extra[i];
    if (bodylen > 0) {
        snprintf(clen, sizeof(clen), "%zu", bodylen);
        h[n++] = (struct cl_h2_hdr){"content-length", clen, 14, strlen(clen)};
    }
    f->s = open_stream(c, h, n, bodylen == 0, bodylen + 1, &fetch_cbs, f);
    if (f->s == NULL) {
        cl_buf_deinit(&f->body);
        cl_mem_free(f);
        return c->state == ST_CLOSING ? CL_ECLOSED : CL_EH2_GOAWAY;
    }
    if (bodylen > 0) {
        cl_h2stream_write(f->s, body, bodylen);
        cl_h2stream_end(f->s);
    }
    uv_timer_init(c->loop, &f->timer);
    uv_timer_start(&f->timer, on_fetch_timeout, timeout_ms, 0);
    return 0;
}
