#ifndef DP_XPRT_H
#define DP_XPRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "cl/bufq.h"
#include "cl/h2conn.h"
#include "cl/list.h"

/*
 * Transports: the two sides of a tunnel as the splice engine (dp_tunnel.c) sees them. A side is
 * a source of bytes (toward the other side) and a sink (for bytes from the other side). `down`
 * is the TCP socket to the client (import) or the backend (export); `up` is the HTTP/2 CONNECT
 * stream on a shared connection. The engine only calls the ops below, so a side can be swapped
 * (kernel splice(2) for TCP, fakes in tests/unit/dataplane/test_tunnel_fsm.c).
 *
 * Everything runs on the worker's loop. Ops report failures by their return value and never
 * call back into the engine before they return, except where said (shutdown, close). Upcalls
 * (dp_xprt_on_*) may close the tunnel, so an xprt must not touch the tunnel after an upcall
 * unless it checked that it is not closing.
 */

struct dp_tunnel;
struct dp_xprt;

struct dp_xprt_ops {
    const char *name; /* "tcp", "h2": for logs */

    /* ---- source: bytes toward the other side ---- */
    /* Starts delivering: dp_xprt_alloc() + dp_xprt_on_read(), dp_xprt_on_eof(), on_error.
     * Idempotent. Returns 0 or an error. */
    int (*read_start)(struct dp_xprt *x);
    /* Stops delivering (backpressure). A source that cannot stop without stalling others (an
     * HTTP/2 stream) may ignore it: its credit comes only through consume(). */
    void (*read_stop)(struct dp_xprt *x);
    /* `n` bytes this source delivered have left through the other side: flow-control credit
     * (HTTP/2 WINDOW_UPDATE). No-op for TCP. */
    void (*consume)(struct dp_xprt *x, size_t n);

    /* ---- sink: bytes from the other side ---- */
    /* Where the other side may read into: the tail of the sink's own queue (zero-copy) or a
     * scratch buffer, valid until commit() or the next reserve(); sets *p and returns its size,
     * 0 when there is no room. */
    size_t (*reserve)(struct dp_xprt *x, uint8_t **p);
    /* Queues the first n bytes of the region reserve() gave (n <= its size). Returns n or a
     * negative error. Completion: dp_xprt_on_written(). */
    ssize_t (*commit)(struct dp_xprt *x, size_t n);
    /* Queues len borrowed bytes (copied). Returns len, fewer when the sink's bound was overrun
     * (the caller aborts: a peer ignored flow control), or a negative error. The bytes may
     * wait for flush() (or shutdown()) before they are written. */
    ssize_t (*write)(struct dp_xprt *x, const uint8_t *data, size_t len);
    /* Starts writing what write() queued. Optional (NULL: write() does not wait). */
    int (*flush)(struct dp_xprt *x); /* 0, or a write error (the sink is broken) */
    /* Bytes write() can take before the sink is above its high-water mark. When it returns
     * less than a chunk, the sink owes a dp_xprt_on_writable() once it drains to its low-water
     * mark. */
    size_t (*write_room)(struct dp_xprt *x);
    /* Bytes accepted and not yet written (queue + in flight). */
    size_t (*write_queue_size)(const struct dp_xprt *x);
    /* Half-close once the queued bytes are sent; dp_xprt_on_shutdown() when done, possibly
     * before this returns (nothing left to half-close). Returns 0 or an error. */
    int (*shutdown)(struct dp_xprt *x);
    /* Closes (reset: abortively, RST / RST_STREAM). dp_xprt_on_closed() follows exactly once,
     * possibly before close returns. No other upcall after close. */
    void (*close)(struct dp_xprt *x, bool reset);
};

struct dp_xprt {
    const struct dp_xprt_ops *ops;
    struct dp_tunnel *t; /* set by dp_tunnel_attach() */
    unsigned side;       /* DP_DOWN or DP_UP */
};

/* ---- upcalls: an xprt reports to its tunnel (dp_tunnel.c) ---- */

/* A source wants a buffer to read into: the other side's reserve(), or the early-data queue
 * while the tunnel connects. Returns its size (0: no room; the source stops and calls
 * dp_xprt_on_blocked()). */
size_t dp_xprt_alloc(struct dp_xprt *x, uint8_t **p);
/* n > 0 bytes read into the region dp_xprt_alloc() gave, or borrowed `data` (HTTP/2 DATA). */
void dp_xprt_on_read(struct dp_xprt *x, const uint8_t *data, size_t n);
/* A source that delivers borrowed bytes has delivered all it has until the loop polls again:
 * the other side's sink flushes them (one write for many HTTP/2 frames). */
void dp_xprt_on_read_flush(struct dp_xprt *x);
/* The source had no buffer and stopped reading. */
void dp_xprt_on_blocked(struct dp_xprt *x);
/* The source ended (TCP FIN, END_STREAM). */
void dp_xprt_on_eof(struct dp_xprt *x);
/* The sink wrote n queued bytes. */
void dp_xprt_on_written(struct dp_xprt *x, size_t n);
/* The sink drained to its low-water mark after write_room() said it was full. */
void dp_xprt_on_writable(struct dp_xprt *x);
/* The sink's write side is closed (after shutdown()). */
void dp_xprt_on_shutdown(struct dp_xprt *x);
/* Fatal error on this side (read/write error, stream reset, connection lost). */
void dp_xprt_on_error(struct dp_xprt *x, int err);
/* close() finished: the xprt holds no handle and no request any more. */
void dp_xprt_on_closed(struct dp_xprt *x);

/* ---- TCP (dp_xprt.c) ---- */

#define DP_TCP_HIWAT   (256 * 1024) /* write_room() is 0 above this (bytes queued) */
#define DP_TCP_LOWAT   (64 * 1024)  /* dp_xprt_on_writable() at or below this */
/* bound of the queue: holds a whole HTTP/2 stream window (auto-tuned up to 8 MiB) when the
 * source is a stream, which is not stopped by read_stop but by withheld credit */
#define DP_TCP_QCHUNKS 520

/*
 * A TCP sink first tries to write at once (uv_try_write); what the socket took completes one
 * loop iteration later, like a uv_write, through this per-loop list. A uv_write that completes
 * makes libuv 1.44 drop POLLOUT from the socket's watcher, which it does with an epoll_ctl even
 * when POLLOUT was never set: one extra system call per write, a third of the gateway's system
 * calls for small requests and answers.
 */
struct dp_xprt_sched {
    uv_idle_t idle;      /* active while `done` is not empty: the loop does not block */
    struct cl_list done; /* struct dp_xprt_tcp whose whole write went out at once */
};

/* Initialises s on loop (one per loop, for every TCP xprt on it). */
void dp_xprt_sched_init(struct dp_xprt_sched *s, uv_loop_t *loop);
/* Closes its handle (cb may be NULL). Close every xprt that uses it first. */
void dp_xprt_sched_close(struct dp_xprt_sched *s, uv_close_cb cb);

struct dp_xprt_tcp {
    struct dp_xprt x;
    uv_tcp_t tcp;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct cl_bufq q; /* bytes to write; the head `inflight` bytes are written or in wreq */
    size_t inflight;
    unsigned flags;
    struct dp_xprt_sched *sched; /* NULL: uv_write only */
    struct cl_list done_link;    /* in sched->done while a write that went out at once waits */
};

/* Initialises the socket handle on `loop` (accept or connect on x->tcp next). sched: the
 * loop's (dp_xprt_sched_init), or NULL to write with uv_write only. */
void dp_xprt_tcp_init(struct dp_xprt_tcp *x, uv_loop_t *loop, struct dp_xprt_sched *sched);
bool dp_xprt_tcp_is_reading(const struct dp_xprt_tcp *x);

/* ---- HTTP/2 stream (dp_xprt.c) ---- */

struct dp_xprt_h2 {
    struct dp_xprt x;
    struct cl_h2stream *s; /* NULL once the stream is gone or released */
    bool splicing;         /* our stream callbacks are installed */
    bool eof;              /* END_STREAM received */
};

void dp_xprt_h2_init(struct dp_xprt_h2 *x);
/* Takes a stream whose callbacks the owner set (CONNECT pending); read_start() installs the
 * splice callbacks. NULL: the stream is gone (the owner saw its on_close). */
void dp_xprt_h2_set_stream(struct dp_xprt_h2 *x, struct cl_h2stream *s);
/* Lets go of the stream without closing the xprt: removes its callbacks and resets it with
 * h2_error (0: no reset, e.g. after a final response). */
void dp_xprt_h2_release(struct dp_xprt_h2 *x, uint32_t h2_error);

#endif
