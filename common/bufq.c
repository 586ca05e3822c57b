#include "cl/bufq.h"

#include <stddef.h>
#include <string.h>

#include "cl/err.h"
#include "cl/mem.h"

_Static_assert(offsetof(struct cl_bufq_chunk, data) ==
                   offsetof(struct cl_bufq_chunk, headroom) + CL_BUFQ_HEADROOM,
               "the headroom lies right before the data");

/*
 * Freelists of the two standard chunk sizes, one per process: workers are single-threaded, so
 * no lock. Bounded so a burst does not pin memory forever.
 */
#ifndef CL_NO_POOL
struct pool {
    struct cl_bufq_chunk *head;
    size_t len;
    size_t max;
};

static struct pool pools[2] = {{NULL, 0, 256}, {NULL, 0, 64}};

/* The freelist for a capacity: each holds chunks of its full size, reused for any capacity in
 * (size / 2, size] (e.g. a 64 KiB queue chunk minus room for a frame header). */
static struct pool *pool_for(size_t size)
{
    if (size > CL_BUFQ_CHUNK / 2 && size <= CL_BUFQ_CHUNK)
        return &pools[0];
    if (size > CL_BUFQ_BIG_CHUNK / 2 && size <= CL_BUFQ_BIG_CHUNK)
        return &pools[1];
    return NULL;
}
#endif

static size_t alloc_size(size_t size)
{
#ifndef CL_NO_POOL
    if (pool_for(size) == &pools[0])
        return CL_BUFQ_CHUNK;
    if (pool_for(size) == &pools[1])
        return CL_BUFQ_BIG_CHUNK;
#endif
    return size;
}

static struct cl_bufq_chunk *chunk_get(size_t size)
{
    struct cl_bufq_chunk *c;

#ifndef CL_NO_POOL
    struct pool *p = pool_for(size);
    if (p != NULL && p->head != NULL) {
        c = p->head;
        p->head = c->next;
        p->len--;
        c->next = NULL;
        c->r = c->w = 0;
        c->size = size;
        return c;
    }
#endif
    if ((c = cl_malloc(sizeof(*c) + alloc_size(size))) == NULL)
        return NULL;
    c->next = NULL;
    c->r = c->w = 0;
    c->size = size;
    return c;
}

static void chunk_put(struct cl_bufq_chunk *c)
{
#ifndef CL_NO_POOL
    struct pool *p = pool_for(c->size);
    if (p != NULL && p->len < p->max) {
        c->next = p->head;
        p->head = c;
        p->len++;
        return;
    }
#endif
    cl_mem_free(c);
}

void cl_bufq_pool_drain(void)
{
#ifndef CL_NO_POOL
    for (size_t i = 0; i < 2; i++) {
        while (pools[i].head != NULL) {
            struct cl_bufq_chunk *c = pools[i].head;
            pools[i].head = c->next;
            cl_mem_free(c);
        }
        pools[i].len = 0;
    }
#endif
}

void cl_bufq_init(struct cl_bufq *q, size_t chunk_size, size_t max_chunks)
{
    memset(q, 0, sizeof(*q));
    q->chunk_size = chunk_size != 0 ? chunk_size : CL_BUFQ_CHUNK;
    q->max_chunks = max_chunks != 0 ? max_chunks : 1;
}

void cl_bufq_deinit(struct cl_bufq *q)
{
    struct cl_bufq_chunk *c, *n;

    if (q == NULL)
        return;
    for (c = q->head; c != NULL; c = n) {
        n = c->next;
        chunk_put(c);
    }
    q->head = q->tail = NULL;
    q->nchunks = 0;
    q->len = 0;
}

bool cl_bufq_is_full(const struct cl_bufq *q)
{
    return cl_bufq_space(q) == 0;
}

size_t cl_bufq_space(const struct cl_bufq *q)
{
    size_t s = (q->max_chunks - q->nchunks) * q->chunk_size;

    if (q->tail != NULL)
        s += q->tail->size - q->tail->w;
    return s;
}

size_t cl_bufq_reserve(struct cl_bufq *q, uint8_t **p)
{
    struct cl_bufq_chunk *c = q->tail;

    if (c == NULL || c->w == c->size) {
        if (q->nchunks >= q->max_chunks)
            return 0;
        if ((c = chunk_get(q->chunk_size)) == NULL)
            return 0;
        if (q->tail != NULL)
            q->tail->next = c;
        else
            q->head = c;
        q->tail = c;
        q->nchunks++;
    }
    *p = c->data + c->w;
    return c->size - c->w;
}

void cl_bufq_commit(struct cl_bufq *q, size_t n)
{
    if (n == 0)
        return;
    q->tail->w += n;
    q->len += n;
}

ssize_t cl_bufq_write(struct cl_bufq *q, const void *data, size_t len)
{
    const uint8_t *src = data;
    size_t done = 0;

    while (done < len) {
        uint8_t *p;
        size_t n = cl_bufq_reserve(q, &p);
        if (n == 0)
            break;
        if (n > len - done)
            n = len - done;
        memcpy(p, src + done, n);
        cl_bufq_commit(q, n);
        done += n;
    }
    if (done == 0 && len > 0 && q->nchunks < q->max_chunks)
        return CL_ENOMEM;
    return (ssize_t)done;
}

size_t cl_bufq_peek(const struct cl_bufq *q, const uint8_t **p)
{
    const struct cl_bufq_chunk *c = q->head;

    if (c == NULL || c->r == c->w) {
        *p = NULL;
        return 0;
    }
    *p = c->data + c->r;
    return c->w - c->r;
}

size_t cl_bufq_head(struct cl_bufq *q, uint8_t **p)
{
    struct cl_bufq_chunk *c = q->head;

    if (c == NULL || c->r == c->w) {
        *p = NULL;
        return 0;
    }
    *p = c->data + c->r; /* headroom[] lies right before data[]: a header fits in front */
    return c->w - c->r;
}

size_t cl_bufq_peek_iov(const struct cl_bufq *q, size_t skip, struct iovec *iov, size_t n)
{
    size_t i = 0;

    for (const struct cl_bufq_chunk *c = q->head; c != NULL && i < n; c = c->next) {
        size_t avail = c->w - c->r;
        if (skip >= avail) {
            skip -= avail;
            continue;
        }
        iov[i].iov_base = (void *)(c->data + c->r + skip);
        iov[i].iov_len = avail - skip;
        skip = 0;
        i++;
    }
    return i;
}

void cl_bufq_consume(struct cl_bufq *q, size_t n)
{
    while (n > 0 && q->head != NULL) {
        struct cl_bufq_chunk *c = q->head;
        size_t avail = c->w - c->r;
        size_t take = n < avail ? n : avail;
        c->r += take;
        q->len -= take;
        n -= take;
        if (c->r == c->w) { /* emptied: release at once, an idle queue holds nothing */
            q->head = c->next;
            if (q->head == NULL)
                q->tail = NULL;
            q->nchunks--;
            chunk_put(c);
        }
    }
}

size_t cl_bufq_read(struct cl_bufq *q, void *out, size_t len)
{
    uint8_t *dst = out;
    size_t done = 0;

    while (done < len) {
        const uint8_t *p;
        size_t n = cl_bufq_peek(q, &p);
        if (n == 0)
            break;
        if (n > len - done)
            n = len - done;
        memcpy(dst + done, p, n);
        cl_bufq_consume(q, n);
        done += n;
    }
    return done;
}
