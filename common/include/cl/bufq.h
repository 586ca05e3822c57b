#ifndef CL_BUFQ_H
#define CL_BUFQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/*
 * A bounded queue of fixed-size chunks (curl's bufq): bytes are written at the tail and read
 * from the head; at most `max_chunks` chunks of `chunk_size` bytes are held. Chunks are
 * allocated only while bytes are queued (an idle queue holds none) and come from per-process
 * freelists of CL_BUFQ_CHUNK (16 KiB) and CL_BUFQ_BIG_CHUNK (64 KiB) chunks unless CL_NO_POOL
 * is defined. Big chunks are for bulk byte streams (TLS ciphertext) where one socket read or
 * one encryption pass per 64 KiB saves system calls; per-tunnel queues use the small size.
 *
 * Zero-copy use: cl_bufq_reserve() hands out the writable tail (e.g. from a libuv alloc_cb),
 * cl_bufq_commit() adds what was written; cl_bufq_peek_iov() exposes the queued bytes (e.g.
 * to uv_write) and cl_bufq_consume() drops them once written.
 */
#define CL_BUFQ_CHUNK     (16 * 1024)
#define CL_BUFQ_BIG_CHUNK (64 * 1024)
#define CL_BUFQ_HEADROOM  16 /* bytes in front of every chunk's data: see cl_bufq_head() */

struct cl_bufq_chunk {
    struct cl_bufq_chunk *next;
    size_t r;    /* read offset */
    size_t w;    /* write offset */
    size_t size; /* capacity of data[] */
    uint8_t headroom[CL_BUFQ_HEADROOM];
    uint8_t data[];
};

struct cl_bufq {
    struct cl_bufq_chunk *head;
    struct cl_bufq_chunk *tail;
    size_t chunk_size;
    size_t max_chunks;
    size_t nchunks;
    size_t len; /* queued bytes */
};

/* chunk_size is the capacity of a chunk; sizes just under CL_BUFQ_CHUNK or CL_BUFQ_BIG_CHUNK
 * (more than half of it) use that size's freelist too. */
void cl_bufq_init(struct cl_bufq *q, size_t chunk_size, size_t max_chunks);
void cl_bufq_deinit(struct cl_bufq *q); /* frees all chunks */

static inline size_t cl_bufq_len(const struct cl_bufq *q)
{
    return q->len;
}

static inline bool cl_bufq_is_empty(const struct cl_bufq *q)
{
    return q->len == 0;
}

/* True when no byte can be added without consuming first. */
bool cl_bufq_is_full(const struct cl_bufq *q);

/* Free space counting chunks not yet allocated. */
size_t cl_bufq_space(const struct cl_bufq *q);

/*
 * Writable space at the tail: sets *p and returns its length (0 when full or out of memory).
 * Several calls without a commit return the same region.
 */
size_t cl_bufq_reserve(struct cl_bufq *q, uint8_t **p);

/* Adds n bytes written at the region returned by cl_bufq_reserve (n <= that length). */
void cl_bufq_commit(struct cl_bufq *q, size_t n);

/* Copies up to len bytes in; returns bytes taken (0 when full) or CL_ENOMEM. */
ssize_t cl_bufq_write(struct cl_bufq *q, const void *data, size_t len);

/* Contiguous bytes at the head: sets *p, returns their length (0 when empty). */
size_t cl_bufq_peek(const struct cl_bufq *q, const uint8_t **p);

/*
 * Like cl_bufq_peek(), writable: the contiguous bytes at the head, and the right to write up to
 * CL_BUFQ_HEADROOM bytes in front of them (chunk headroom or bytes already consumed), e.g. a
 * protocol header, so that header and bytes leave from one buffer without a copy.
 */
size_t cl_bufq_head(struct cl_bufq *q, uint8_t **p);

/* Fills up to n iovecs with queued bytes from `skip` bytes past the head; returns the count. */
size_t cl_bufq_peek_iov(const struct cl_bufq *q, size_t skip, struct iovec *iov, size_t n);

/* Copies up to len bytes out and consumes them; returns the count. */
size_t cl_bufq_read(struct cl_bufq *q, void *out, size_t len);

/* Drops n queued bytes from the head (n <= len), releasing emptied chunks. Must not be
 * called between cl_bufq_reserve() and its cl_bufq_commit(). */
void cl_bufq_consume(struct cl_bufq *q, size_t n);

/* Releases pooled free chunks (at exit, so leak checkers stay quiet). */
void cl_bufq_pool_drain(void);

#endif
