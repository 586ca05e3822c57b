#ifndef CL_H2CONN_H
#define CL_H2CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <uv.h>

#include "cl/tls.h"

/*
 * HTTP/2 connection core over nghttp2 1.52, bound to the sans-I/O TLS layer and a libuv TCP
 * handle. Used as a server (dataplane public port) and as a client (dataplane peer pool,
 * controlplane peer health, gwctl). One object per TCP connection; all calls and callbacks run
 * on its loop.
 *
 * Flow control is the backpressure: automatic WINDOW_UPDATE is off. Connection-level credit
 * is returned as soon as DATA is handed to on_data (the per-stream window bounds what one
 * stream can hold), stream-level credit only when the owner calls cl_h2stream_consume() —
 * typically from the write_cb of the socket the bytes went to. One slow stream therefore never
 * stalls the shared connection.
 *
 * Receive windows are auto-tuned per stream, like TCP's receive buffer: when the peer has come
 * close to running out of credit and the owner, consuming, has nearly nothing left unconsumed,
 * the window doubles, up to stream_window_max; when the owner consumes while still holding
 * more than three quarters of the window, it halves, down to stream_window. Fast streams get
 * the window their round trip needs; a slow reader keeps the initial bound.
 *
 * Outbound DATA comes from a bounded per-stream send queue (cl_bufq of 16 KiB chunks). Several
 * frames are packed into one TLS write and several TLS records into one uv_write.
 *
 * The core is testable without sockets: cl_h2conn_new_mem() makes a connection whose output
 * goes to a callback and whose input is fed with cl_h2conn_feed(), so a client and a server
 * can be wired back to back in memory.
 */

struct cl_h2conn;
struct cl_h2stream;

struct cl_h2_hdr {
    const char *name;
    const char *value;
    size_t namelen;
    size_t valuelen;
};

#define CL_H2_HDR(n, v)                    \
    {                                      \
        (n), (v), sizeof(n) - 1, strlen(v) \
    }

/* A request as the server sees it (borrowed, valid during on_request). */
struct cl_h2_req {
    const char *method;           /* ":method" */
    const char *path;             /* ":path", NULL for CONNECT */
    const char *authority;        /* ":authority" */
    const char *scheme;           /* ":scheme", NULL for CONNECT */
    const struct cl_h2_hdr *hdrs; /* regular headers, lower-case names */
    size_t nhdrs;
};

/* Per-stream callbacks; all optional except where said. `ud` is the stream's user data. */
struct cl_h2stream_cbs {
    /* client: response headers (status, headers borrowed during the call) */
    void (*on_response)(struct cl_h2stream *s, int status, const struct cl_h2_hdr *hdrs,
                        size_t nhdrs, void *ud);
    /* DATA payload (borrowed during the call). Copy it, then cl_h2stream_consume() when the
     * bytes have left (e.g. written to the backend socket). */
    void (*on_data)(struct cl_h2stream *s, const uint8_t *data, size_t len, void *ud);
    /* the DATA passed to on_data since the last call is all this stream got before the loop
     * polls for I/O again (called once per loop iteration that delivered DATA, before the
     * poll, and before on_end or a clean on_close): the moment to write it out with one
     * system call instead of one per frame */
    void (*on_data_flush)(struct cl_h2stream *s, void *ud);
    /* END_STREAM received: the peer will send no more */
    void (*on_end)(struct cl_h2stream *s, void *ud);
    /* the send queue fell to the low-water mark after having been above the high-water mark */
    void (*on_writable)(struct cl_h2stream *s, void *ud);
    /* the stream is gone (closed both ways, reset, or the connection died): err 0 for a clean
     * close, CL_EH2_RESET / CL_EH2_REFUSED / CL_EH2_GOAWAY / connection error otherwise.
     * `s` is invalid after this returns. Always called exactly once per stream. */
    void (*on_close)(struct cl_h2stream *s, int err, void *ud);
};

struct cl_h2conn_cbs {
    /* TLS handshake done, ALPN h2 agreed, preface exchanged: requests flow */
    void (*on_ready)(struct cl_h2conn *c, void *ud);
    /* server: a new request's headers are complete. The owner must set stream callbacks with
     * cl_h2stream_set_cbs() before returning, or answer (cl_h2stream_respond: what the client
     * sends on then is dropped), or reset; a stream left with none of these is refused. */
    void (*on_request)(struct cl_h2conn *c, struct cl_h2stream *s, const struct cl_h2_req *req,
                       void *ud);
    /* the connection is closed: err 0 for an orderly close, else why (CL_ETLS_* for
     * handshake failures with cl_h2conn_error_detail(), -errno for socket errors,
     * CL_ETIMEDOUT, CL_EH2...). Every stream got on_close before this. The object is freed
     * right after this returns. */
    void (*on_close)(struct cl_h2conn *c, int err, void *ud);
    /* the peer sent GOAWAY: no new streams on this connection (existing ones finish) */
    void (*on_goaway)(struct cl_h2conn *c, void *ud);
};

struct cl_h2conn_opts {
    bool server;
    struct cl_tls_ctx *tls;     /* required (a ref is taken) */
    const char *server_name;    /* client: SNI and expected certificate name */
    uint32_t stream_window;     /* initial per-stream receive window; default 2 MiB */
    uint32_t stream_window_max; /* auto-tuned up to this (see above); default 8 MiB */
    uint32_t conn_window;       /* connection receive window; default 16 MiB */
    uint32_t max_frame;         /* SETTINGS_MAX_FRAME_SIZE we accept; default 65536 */
    size_t stream_sendq;        /* per-stream send queue bound; default 256 KiB */
    uint32_t max_streams;       /* SETTINGS_MAX_CONCURRENT_STREAMS; default 10000 */
    /* TCP connect (client) plus TLS handshake and preface, from cl_h2conn_connect() or
     * cl_h2conn_accept(); on expiry on_close gets CL_ETIMEDOUT. Default 10000. */
    uint64_t handshake_timeout_ms;
    /* Once ready, no open stream for this long: GOAWAY (NO_ERROR, the last stream id), then the
     * connection closes once that is flushed (on_close with 0; CL_ETIMEDOUT if the flush takes
     * more than 5 s). Frames other than stream ones (PING, SETTINGS) do not count as use.
     * 0 = never (default). */
    uint64_t idle_timeout_ms;
    const struct cl_h2conn_cbs *cbs;
    void *ud;
};

/* Creates a connection with its own uv_tcp_t. Returns 0, CL_ENOMEM or CL_EINVAL. */
int cl_h2conn_new(uv_loop_t *loop, const struct cl_h2conn_opts *o, struct cl_h2conn **out);

/* Server: accepts from `listener` and starts the handshake. On error the object is freed
 * without on_close. Returns 0 or a libuv error. */
int cl_h2conn_accept(struct cl_h2conn *c, uv_stream_t *listener);

/* Client: connects and starts the handshake. Streams may be opened before on_ready; they are
 * sent once the handshake completes. Failures arrive through on_close. Returns 0 or an error
 * from starting the connect (then the object is freed without on_close). */
int cl_h2conn_connect(struct cl_h2conn *c, const struct sockaddr *addr);

/* In-memory variant for tests: output goes to `write_cb` (which must take the bytes), input
 * comes from cl_h2conn_feed(). Timers still use `loop`. */
typedef void (*cl_h2conn_write_cb)(struct cl_h2conn *c, const uint8_t *data, size_t len, void *wud);
int cl_h2conn_new_mem(uv_loop_t *loop, const struct cl_h2conn_opts *o, cl_h2conn_write_cb wcb,
                      void *wud, struct cl_h2conn **out);
int cl_h2conn_feed(struct cl_h2conn *c, const uint8_t *data, size_t len);
/* In-memory: the peer closed the byte stream. */
void cl_h2conn_feed_eof(struct cl_h2conn *c);

/* Graceful: GOAWAY (NO_ERROR, last stream id), no new streams; closes when the last stream
 * ends and the GOAWAY has been flushed. Before the handshake is done: closes at once. */
void cl_h2conn_shutdown(struct cl_h2conn *c);
/* Abort: resets every stream and closes (on_close follows, asynchronously). */
void cl_h2conn_close(struct cl_h2conn *c, int err);

bool cl_h2conn_is_ready(const struct cl_h2conn *c);
/* True while new streams may be opened (not going away, not closing). */
bool cl_h2conn_can_open(const struct cl_h2conn *c);
/* True when its TLS context was reloaded after the connection was made (cl_tls_is_stale): it
 * runs on certificate material since replaced. */
bool cl_h2conn_is_stale(const struct cl_h2conn *c);
size_t cl_h2conn_nstreams(const struct cl_h2conn *c);
const struct cl_tls_peer *cl_h2conn_peer(const struct cl_h2conn *c);
const char *cl_h2conn_error_detail(const struct cl_h2conn *c);
void *cl_h2conn_ud(const struct cl_h2conn *c);
void cl_h2conn_set_ud(struct cl_h2conn *c, void *ud);
uint64_t cl_h2conn_id(const struct cl_h2conn *c); /* process-unique, for logs */

/*
 * Client: opens a stream. `hdrs` must start with the pseudo-headers (:method, :authority and,
 * except for CONNECT, :scheme and :path). end_stream: no body follows. Returns the stream or
 * NULL (no more streams possible: going away, closed, out of memory).
 */
struct cl_h2stream *cl_h2conn_open(struct cl_h2conn *c, const struct cl_h2_hdr *hdrs, size_t nhdrs,
                                   bool end_stream, const struct cl_h2stream_cbs *cbs, void *ud);

/* Server: responds with :status and headers; end_stream when no body follows. */
int cl_h2stream_respond(struct cl_h2stream *s, int status, const struct cl_h2_hdr *hdrs,
                        size_t nhdrs, bool end_stream);

void cl_h2stream_set_cbs(struct cl_h2stream *s, const struct cl_h2stream_cbs *cbs, void *ud);
void *cl_h2stream_ud(const struct cl_h2stream *s);
int32_t cl_h2stream_id(const struct cl_h2stream *s);
struct cl_h2conn *cl_h2stream_conn(const struct cl_h2stream *s);

/* Outbound body, copying. Returns bytes taken (may be < len, 0 when the queue is full: wait
 * for on_writable), or CL_ECLOSED. */
ssize_t cl_h2stream_write(struct cl_h2stream *s, const void *data, size_t len);
/* Outbound body, zero-copy: writable region of the send queue (0 if full), then commit. */
size_t cl_h2stream_reserve(struct cl_h2stream *s, uint8_t **p);
void cl_h2stream_commit(struct cl_h2stream *s, size_t n);
/* Bytes that can be queued now without loss (0 when full, ended or closed). A writer that
 * reads from a socket sizes its reads with this. */
size_t cl_h2stream_space(const struct cl_h2stream *s);
/* Bytes queued and not yet handed to TLS. */
size_t cl_h2stream_sendq_len(const struct cl_h2stream *s);
/* END_STREAM after the queued bytes (half-close). */
int cl_h2stream_end(struct cl_h2stream *s);
/* Returns stream-level flow-control credit for n received bytes. */
void cl_h2stream_consume(struct cl_h2stream *s, size_t n);
/* The stream's current receive window (auto-tuned, see above). */
size_t cl_h2stream_recv_window(const struct cl_h2stream *s);
/* RST_STREAM with an HTTP/2 error code (e.g. NGHTTP2_CANCEL = 8, NGHTTP2_CONNECT_ERROR = 10);
 * on_close follows. */
void cl_h2stream_reset(struct cl_h2stream *s, uint32_t h2_error);

/*
 * Buffered request helper for REST clients (gwctl, controlplane peer calls): sends one request
 * with an optional body, collects the response body up to max_body bytes, and calls cb once:
 * err 0 with status and body, or an error (CL_ETIMEDOUT after timeout_ms, CL_EBUSY when the
 * body exceeds max_body, connection/stream errors). Returns 0 or an error (then no callback).
 */
typedef void (*cl_h2_fetch_cb)(int err, int status, const uint8_t *body, size_t len, void *ud);
int cl_h2_fetch(struct cl_h2conn *c, const char *method, const char *authority, const char *path,
                const struct cl_h2_hdr *extra, size_t nextra, const void *body, size_t bodylen,
                size_t max_body, uint64_t timeout_ms, cl_h2_fetch_cb cb, void *ud);

#endif
