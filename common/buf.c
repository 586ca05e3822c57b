#include "cl/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cl/mem.h"

void cl_buf_init(struct cl_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void cl_buf_deinit(struct cl_buf *b)
{
    if (b == NULL)
        return;
    cl_free(&b->data);
    b->off = b->len = b->cap = 0;
}

void cl_buf_reset(struct cl_buf *b)
{
    b->off = 0;
    b->len = 0;
}

uint8_t *cl_buf_reserve(struct cl_buf *b, size_t n)
{
    size_t need, ncap;
    uint8_t *p;

    if (n > b->max || b->len > b->max - n)
        return NULL;
    if (b->off + b->len + n <= b->cap)
        return b->data + b->off + b->len;
    if (b->off > 0) { /* reclaim the consumed prefix first */
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        if (b->len + n <= b->cap)
            return b->data + b->len;
    }
    need = b->len + n;
    ncap = b->cap != 0 ? b->cap : 256;
    while (ncap < need)
        ncap = ncap * 2;
    if (ncap > b->max)
        ncap = b->max;
    if ((p = cl_realloc(b->data, ncap)) == NULL)
        return NULL;
    b->data = p;
    b->cap = ncap;
    return b->data + b->len;
}

void cl_buf_commit(struct cl_buf *b, size_t n)
{
    b->len += n;
}

int cl_buf_append(struct cl_buf *b, const void *p, size_t n)
{
    uint8_t *d;

    if (n > b->max || b->len > b->max - n)
        return CL_EBUSY;
    if (n == 0)
        return 0;
    if ((d = cl_buf_reserve(b, n)) == NULL)
        return CL_ENOMEM;
    memcpy(d, p, n);
    b->len += n;
    return 0;
}

int cl_buf_append_str(struct cl_buf *b, const char *s)
{
    return cl_buf_append(b, s, strlen(s));
}

int cl_buf_printf(struct cl_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    uint8_t *d;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CL_EINVAL;
    if ((size_t)n + 1 > b->max || b->len > b->max - (size_t)n - 1)
        return CL_EBUSY;
    if ((d = cl_buf_reserve(b, (size_t)n + 1)) == NULL)
        return CL_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void cl_buf_consume(struct cl_buf *b, size_t n)
{
    if (n >= b->len) {
        b->off = 0;
        b->len = 0;
        return;
    }
    b->off += n;
    b->len -= n;
}
