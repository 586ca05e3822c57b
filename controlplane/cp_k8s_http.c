/*
 * HTTP/1.1 response parser (RFC 9112) and line splitter for the Kubernetes API client. Pure:
 * bytes in, callbacks out. Every line of the head is assembled in a capped buffer, so input
 * can arrive split anywhere; the body is passed through without copying.
 */
#include "cp_k8s_http.h"

#include <string.h>
#include <strings.h>

#include "cl/err.h"

enum {
    ST_STATUS,
    ST_HEADER,
    ST_BODY_LEN,
    ST_BODY_EOF,
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA,
    ST_CHUNK_CRLF,
    ST_TRAILER,
    ST_ERROR,
};

#define CHUNK_LINE_MAX 4096         /* chunk-size line with extensions */
#define LEN_MAX        (1ULL << 60) /* any larger Content-Length or chunk size is nonsense */

void cp_http_parser_init(struct cp_http_parser *p, size_t max_head, uint64_t max_body,
                         const struct cp_http_cbs *cbs, void *ud)
{
    memset(p, 0, sizeof(*p));
    p->cbs = cbs;
    p->ud = ud;
    p->max_head = max_head;
    p->max_body = max_body;
    cl_buf_init(&p->line, max_head > CHUNK_LINE_MAX ? max_head : CHUNK_LINE_MAX);
    cl_buf_init(&p->hbuf, max_head + 2 * CP_HTTP_MAX_HDRS);
    p->state = ST_STATUS;
}

void cp_http_parser_deinit(struct cp_http_parser *p)
{
    if (p == NULL)
        return;
    cl_buf_deinit(&p->line);
    cl_buf_deinit(&p->hbuf);
}

bool cp_http_parser_is_idle(const struct cp_http_parser *p)
{
    return p->state == ST_STATUS && p->line.len == 0 && p->head_bytes == 0;
}

static int fail(struct cp_http_parser *p, int err)
{
    p->err = err;
    p->state = ST_ERROR;
    return err;
}

static void reset_head(struct cp_http_parser *p)
{
    cl_buf_reset(&p->hbuf);
    cl_buf_reset(&p->line);
    p->nhdrs = 0;
    p->head_bytes = 0;
    p->status = 0;
    p->close = false;
    p->chunked = false;
    p->until_eof = false;
    p->has_len = false;
    p->remaining = 0;
    p->body_len = 0;
}

/* The response is complete: back to waiting for a status line, then on_done. */
static int finish(struct cp_http_parser *p)
{
    int rc;

    reset_head(p);
    p->state = ST_STATUS;
    if (p->cbs->on_done != NULL && (rc = p->cbs->on_done(p->ud)) < 0)
        return fail(p, rc);
    return 0;
}

/*
 * Moves bytes up to and including '\n' into p->line, at most `cap` in all. Returns the bytes
 * taken (> 0) and sets *complete, or an error.
 */
static ssize_t take_line(struct cp_http_parser *p, const uint8_t *data, size_t len, size_t cap,
                         bool *complete)
{
    const uint8_t *nl = memchr(data, '\n', len);
    size_t n = nl != NULL ? (size_t)(nl - data) + 1 : len;
    int rc;

    if (p->line.len + n > cap)
        return CL_EHTTP_TOOBIG;
    if ((rc = cl_buf_append(&p->line, data, n)) != 0)
        return rc == CL_EBUSY ? CL_EHTTP_TOOBIG : rc;
    *complete = nl != NULL;
    return (ssize_t)n;
}

/* The assembled line without its "\r\n" (or bare "\n"); rejects NUL and stray CR. */
static int line_text(struct cp_http_parser *p, const char **s, size_t *len)
{
    const char *t = (const char *)cl_buf_ptr(&p->line);
    size_t n = p->line.len - 1;

    if (n > 0 && t[n - 1] == '\r')
        n--;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '\0' || t[i] == '\r')
            return CL_EHTTP;
    }
    *s = t;
    *len = n;
    return 0;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int parse_status(struct cp_http_parser *p, const char *s, size_t n)
{
    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || !is_digit(s[7]) || s[8] != ' ' ||
        !is_digit(s[9]) || !is_digit(s[10]) || !is_digit(s[11]) || (n > 12 && s[12] != ' '))
        return CL_EHTTP;
    for (size_t i = 13; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t')
            return CL_EHTTP;
        if (c == 0x7f)
            return CL_EHTTP;
    }
    p->minor = s[7] - '0';
    p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (p->status < 100 || p->status > 599)
        return CL_EHTTP;
    return 0;
}

static int store_header(struct cp_http_parser *p, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    size_t nlen, vlen;
    const char *v;
    int rc;

    if (s[0] == ' ' || s[0] == '\t') /* obsolete line folding (RFC 9112 5.2) */
        return CL_EHTTP;
    if (colon == NULL || colon == s)
        return CL_EHTTP;
    nlen = (size_t)(colon - s);
    for (size_t i = 0; i < nlen; i++) {
        if (!is_tchar((unsigned char)s[i])) /* also rejects space before the colon */
            return CL_EHTTP;
    }
    v = colon + 1;
    vlen = n - nlen - 1;
    while (vlen > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return CL_EHTTP;
    }
    if (p->nhdrs >= CP_HTTP_MAX_HDRS)
        return CL_EHTTP_TOOBIG;
    p->hoff[p->nhdrs][0] = p->hbuf.len;
    if ((rc = cl_buf_append(&p->hbuf, s, nlen)) != 0 || (rc = cl_buf_append(&p->hbuf, "", 1)) != 0)
        return rc == CL_EBUSY ? CL_EHTTP_TOOBIG : rc;
    p->hoff[p->nhdrs][1] = p->hbuf.len;
    if ((rc = cl_buf_append(&p->hbuf, v, vlen)) != 0 || (rc = cl_buf_append(&p->hbuf, "", 1)) != 0)
        return rc == CL_EBUSY ? CL_EHTTP_TOOBIG : rc;
    p->nhdrs++;
    return 0;
}

const char *cp_http_head_get(const struct cp_http_head *h, const char *name)
{
    for (size_t i = 0; i < h->nhdrs; i++) {
        if (strcasecmp(h->hdrs[i].name, name) == 0)
            return h->hdrs[i].value;
    }
    return NULL;
}

/* True when the comma-separated list `v` holds `token` (case-insensitive). */
static bool list_has(const char *v, const char *token, bool last_only)
{
    size_t tl = strlen(token);
    bool found = false;

    while (*v != '\0') {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e != '\0' && *e != ',')
            e++;
        size_t n = (size_t)(e - v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n > 0)
            found = n == tl && strncasecmp(v, token, tl) == 0 ? true : (last_only ? false : found);
        v = e;
    }
    return found;
}

/* Content-Length: every value (and every element of a list) must be the same number. */
static int parse_length(const char *v, bool *have, uint64_t *out)
{
    if (*v == '\0')
        return CL_EHTTP;
    while (*v != '\0') {
        uint64_t n = 0;
        size_t digits = 0;
        while (*v == ' ' || *v == '\t')
            v++;
        while (is_digit(*v)) {
            if (n > LEN_MAX / 10)
                return CL_EHTTP;
            n = n * 10 + (uint64_t)(*v - '0');
            v++;
            digits++;
        }
        while (*v == ' ' || *v == '\t')
            v++;
        if (digits == 0 || (*v != '\0' && *v != ',') || n > LEN_MAX)
            return CL_EHTTP;
        if (*have && *out != n)
            return CL_EHTTP;
        *have = true;
        *out = n;
        if (*v == ',')
            v++;
    }
    return 0;
}

static int end_of_head(struct cp_http_parser *p)
{
    struct cp_http_hdr hdrs[CP_HTTP_MAX_HDRS];
    struct cp_http_head h;
    const char *base = (const char *)cl_buf_ptr(&p->hbuf);
    bool te = false, conn_close = false, keep_alive = false;
    int rc;

    if (p->status == 101) /* we never ask for an upgrade */
        return CL_EHTTP;
    if (p->status < 200) { /* interim (100 Continue, 103 Early Hints): skip */
        reset_head(p);
        p->state = ST_STATUS;
        return 0;
    }
    for (size_t i = 0; i < p->nhdrs; i++) {
        hdrs[i].name = base + p->hoff[i][0];
        hdrs[i].value = base + p->hoff[i][1];
        if (strcasecmp(hdrs[i].name, "Transfer-Encoding") == 0) {
            te = true;
            p->chunked = list_has(hdrs[i].value, "chunked", true);
        } else if (strcasecmp(hdrs[i].name, "Content-Length") == 0) {
            if ((rc = parse_length(hdrs[i].value, &p->has_len, &p->remaining)) != 0)
                return rc;
        } else if (strcasecmp(hdrs[i].name, "Connection") == 0) {
            conn_close |= list_has(hdrs[i].value, "close", false);
            keep_alive |= list_has(hdrs[i].value, "keep-alive", false);
        }
    }
    p->close = conn_close || (p->minor == 0 && !keep_alive);
    if (p->status == 204 || p->status == 304) {
        p->chunked = false;
        p->has_len = true;
        p->remaining = 0;
    } else if (te) {
        /* Transfer-Encoding overrides Content-Length (RFC 9112 6.3); a final coding other
         * than chunked is delimited by the connection close */
        p->has_len = false;
        p->remaining = 0;
        if (!p->chunked) {
            p->until_eof = true;
            p->close = true;
        }
    } else if (!p->has_len) {
        p->until_eof = true;
        p->close = true;
    }
    if (p->has_len && p->max_body > 0 && p->remaining > p->max_body)
        return CL_EHTTP_TOOBIG;
    h.status = p->status;
    h.minor = p->minor;
    h.close = p->close;
    h.hdrs = hdrs;
    h.nhdrs = p->nhdrs;
    if (p->cbs->on_head != NULL && (rc = p->cbs->on_head(&h, p->ud)) < 0)
        return rc;
    cl_buf_reset(&p->hbuf); /* the names and values were only for on_head */
    p->nhdrs = 0;
    if (p->chunked)
        p->state = ST_CHUNK_SIZE;
    else if (p->until_eof)
        p->state = ST_BODY_EOF;
    else if (p->remaining > 0)
        p->state = ST_BODY_LEN;
    else
        return finish(p);
    return 0;
}

static int parse_chunk_size(struct cp_http_parser *p, const char *s, size_t n)
{
    uint64_t v = 0;
    size_t i = 0;

    for (; i < n; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            break;
        if (v > LEN_MAX / 16)
            return CL_EHTTP;
        v = v * 16 + d;
    }
    if (i == 0)
        return CL_EHTTP;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i < n && s[i] != ';') /* chunk extensions are ignored */
        return CL_EHTTP;
    p->remaining = v;
    return 0;
}

static int deliver(struct cp_http_parser *p, const uint8_t *data, size_t n)
{
    int rc;

    if (p->max_body > 0 && p->body_len + n > p->max_body)
        return CL_EHTTP_TOOBIG;
    p->body_len += n;
    if (n > 0 && p->cbs->on_body != NULL && (rc = p->cbs->on_body(data, n, p->ud)) < 0)
        return rc;
    return 0;
}

/* One step of the state machine on data[0..len); returns bytes consumed or an error. Sets
 * *done when a response completed. */
static ssize_t step(struct cp_http_parser *p, const uint8_t *data, size_t len, bool *done)
{
    const char *s = NULL;
    size_t n = 0, take;
    bool complete = false;
    ssize_t t;
    int rc;

    switch (p->state) {
    case ST_STATUS:
    case ST_HEADER:
    case ST_TRAILER:
        if (p->head_bytes >= p->max_head)
            return CL_EHTTP_TOOBIG;
        t = take_line(p, data, len, p->max_head - p->head_bytes + p->line.len, &complete);
        if (t < 0)
            return t;
        p->head_bytes += (size_t)t;
        if (!complete)
            return t;
        if ((rc = line_text(p, &s, &n)) != 0)
            return rc;
        if (p->state == ST_STATUS) {
            if ((rc = parse_status(p, s, n)) != 0)
                return rc;
            p->state = ST_HEADER;
        } else if (p->state == ST_HEADER && n > 0) {
            if ((rc = store_header(p, s, n)) != 0)
                return rc;
        } else if (p->state == ST_HEADER) {
            cl_buf_reset(&p->line);
            if ((rc = end_of_head(p)) != 0)
                return rc;
            *done = p->state == ST_STATUS; /* no body, or an interim response skipped */
            return t;
        } else if (n == 0) { /* end of the trailer section */
            cl_buf_reset(&p->line);
            if ((rc = finish(p)) != 0)
                return rc;
            *done = true;
            return t;
        } /* else: a trailer field, ignored */
        cl_buf_reset(&p->line);
        return t;
    case ST_BODY_LEN:
        take = len < p->remaining ? len : (size_t)p->remaining;
        if ((rc = deliver(p, data, take)) != 0)
            return rc;
        p->remaining -= take;
        if (p->remaining == 0) {
            if ((rc = finish(p)) != 0)
                return rc;
            *done = true;
        }
        return (ssize_t)take;
    case ST_BODY_EOF:
        if ((rc = deliver(p, data, len)) != 0)
            return rc;
        return (ssize_t)len;
    case ST_CHUNK_SIZE:
        t = take_line(p, data, len, CHUNK_LINE_MAX, &complete);
        if (t < 0)
            return t;
        if (!complete)
            return t;
        if ((rc = line_text(p, &s, &n)) != 0 || (rc = parse_chunk_size(p, s, n)) != 0)
            return rc;
        cl_buf_reset(&p->line);
        if (p->remaining == 0) {
            p->state = ST_TRAILER;
            p->head_bytes = 0;
        } else {
            p->state = ST_CHUNK_DATA;
        }
        return t;
    case ST_CHUNK_DATA:
        take = len < p->remaining ? len : (size_t)p->remaining;
        if ((rc = deliver(p, data, take)) != 0)
            return rc;
        p->remaining -= take;
        if (p->remaining == 0)
            p->state = ST_CHUNK_CRLF;
        return (ssize_t)take;
    case ST_CHUNK_CRLF:
        t = take_line(p, data, len, 2, &complete);
        if (t < 0)
            return CL_EHTTP; /* anything but CRLF after the chunk data */
        if (!complete)
            return t;
        if ((rc = line_text(p, &s, &n)) != 0)
            return rc;
        if (n != 0)
            return CL_EHTTP;
        cl_buf_reset(&p->line);
        p->state = ST_CHUNK_SIZE;
        return t;
    default:
        return p->err != 0 ? p->err : CL_EHTTP;
    }
}

ssize_t cp_http_parse(struct cp_http_parser *p, const uint8_t *data, size_t len)
{
    size_t off = 0;

    if (p->err != 0)
        return p->err;
    while (off < len) {
        bool done = false;
        ssize_t n = step(p, data + off, len - off, &done);
        if (n < 0)
            return fail(p, (int)n);
        off += (size_t)n;
        if (done)
            break;
    }
    return (ssize_t)off;
}

int cp_http_parse_eof(struct cp_http_parser *p)
{
    if (p->err != 0)
        return p->err;
    if (p->state == ST_BODY_EOF)
        return finish(p);
    if (cp_http_parser_is_idle(p))
        return 0;
    return fail(p, CL_EOF);
}

/* ---- line splitter ------------------------------------------------------------------------ */

void cp_lines_init(struct cp_lines *l, size_t max_line)
{
    cl_buf_init(&l->buf, max_line);
    l->max_line = max_line;
}

void cp_lines_deinit(struct cp_lines *l)
{
    if (l != NULL)
        cl_buf_deinit(&l->buf);
}

size_t cp_lines_pending(const struct cp_lines *l)
{
    return l->buf.len;
}

int cp_lines_feed(struct cp_lines *l, const uint8_t *data, size_t len, cp_lines_cb cb, void *ud)
{
    int rc;

    while (len > 0) {
        const uint8_t *nl = memchr(data, '\n', len);
        const char *line;
        size_t n, ll;

        if (nl == NULL) {
            if (l->buf.len + len > l->max_line)
                return CL_EHTTP_TOOBIG;
            rc = cl_buf_append(&l->buf, data, len);
            return rc == CL_EBUSY ? CL_EHTTP_TOOBIG : rc;
        }
        n = (size_t)(nl - data);
        if (l->buf.len + n > l->max_line)
            return CL_EHTTP_TOOBIG;
        if (l->buf.len == 0) { /* whole line in this piece: no copy */
            line = (const char *)data;
            ll = n;
        } else {
            if ((rc = cl_buf_append(&l->buf, data, n)) != 0)
                return rc == CL_EBUSY ? CL_EHTTP_TOOBIG : rc;
            line = (const char *)cl_buf_ptr(&l->buf);
            ll = l->buf.len;
        }
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        rc = ll > 0 ? cb(line, ll, ud) : 0;
        cl_buf_reset(&l->buf);
        if (rc < 0)
            return rc;
        data = nl + 1;
        len -= n + 1;
    }
    return 0;
}
