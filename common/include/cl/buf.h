#ifndef CL_BUF_H
#define CL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Contiguous growable byte buffer with a mandatory maximum. Bytes live in data[off..off+len).
 * Appends that would exceed `max` fail with CL_EBUSY and leave the buffer unchanged.
 */
struct cl_buf {
    uint8_t *data;
    size_t off; /* consumed prefix */
    size_t len; /* bytes after off */
    size_t cap;
    size_t max;
};

void cl_buf_init(struct cl_buf *b, size_t max);
void cl_buf_deinit(struct cl_buf *b);
void cl_buf_reset(struct cl_buf *b);

static inline uint8_t *cl_buf_ptr(const struct cl_buf *b)
{
    return b->data != NULL ? b->data + b->off : NULL;
}

/* Makes room for `n` more bytes at the tail; returns a pointer to them or NULL
 * (CL_ENOMEM or over max). Follow with cl_buf_commit(). */
uint8_t *cl_buf_reserve(struct cl_buf *b, size_t n);
void cl_buf_commit(struct cl_buf *b, size_t n);

/* Returns 0, CL_ENOMEM or CL_EBUSY (over max). */
int cl_buf_append(struct cl_buf *b, const void *p, size_t n);
int cl_buf_append_str(struct cl_buf *b, const char *s);
int cl_buf_printf(struct cl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Drops n bytes from the front (no memmove until the next reserve needs room). */
void cl_buf_consume(struct cl_buf *b, size_t n);

/* Big-endian helpers (explicit, no casts through unaligned pointers). */
static inline uint16_t cl_read_u16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t cl_read_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void cl_write_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void cl_write_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
