#ifndef CP_K8S_HTTP_H
#define CP_K8S_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cl/buf.h"

/*
 * Sans-I/O HTTP/1.1 pieces of the Kubernetes API client (no sockets, no libuv), so they can be
 * fed byte by byte in tests and fuzzed:
 *  - a response parser: status line, headers, framing by Content-Length, chunked transfer
 *    coding or connection close, a streaming body, caps on header and body sizes;
 *  - a line splitter for watch streams (one JSON event per line).
 */

#define CP_HTTP_MAX_HDRS 64

struct cp_http_hdr {
    const char *name; /* as received (compare case-insensitively), NUL-terminated */
    const char *value;
};

/* The response head, borrowed: valid during on_head only. */
struct cp_http_head {
    int status; /* 200..599 (interim 1xx responses are skipped) */
    int minor;  /* HTTP/1.<minor> */
    bool close; /* the server closes the connection after this response */
    const struct cp_http_hdr *hdrs;
    size_t nhdrs;
};

/*
 * Callbacks, called from cp_http_parse on the caller's stack. Each returns 0 to go on or a
 * negative code that cp_http_parse returns at once (the parser is then failed).
 *  on_head: once per response, after the headers;
 *  on_body: body bytes (chunked coding removed), in pieces of any size; borrowed for the call;
 *  on_done: the response is complete (the parser is ready for the next one on the connection).
 */
struct cp_http_cbs {
    int (*on_head)(const struct cp_http_head *h, void *ud);
    int (*on_body)(const uint8_t *p, size_t n, void *ud);
    int (*on_done)(void *ud);
};

struct cp_http_parser {
    int state;
    const struct cp_http_cbs *cbs;
    void *ud;
    size_t max_head;    /* status line + headers, bytes */
    uint64_t max_body;  /* body bytes (after dechunking); 0 = unlimited (watch streams) */
    struct cl_buf line; /* the line being assembled */
    struct cl_buf hbuf; /* stored header names and values */
    size_t hoff[CP_HTTP_MAX_HDRS][2];
    size_t nhdrs;
    size_t head_bytes;
    int status;
    int minor;
    bool close;
    bool chunked;
    bool until_eof;
    bool has_len;
    uint64_t remaining; /* of the body (Content-Length) or of the current chunk */
    uint64_t body_len;
    int err; /* sticky */
};

/*
 * Initialises a parser for the responses on one connection. max_head caps the status line
 * plus headers (e.g. 64 KiB); max_body caps each body (0: no cap). cbs and ud are borrowed for
 * the parser's life.
 */
void cp_http_parser_init(struct cp_http_parser *p, size_t max_head, uint64_t max_body,
                         const struct cp_http_cbs *cbs, void *ud);
void cp_http_parser_deinit(struct cp_http_parser *p); /* NULL-safe */

/*
 * Parses the next bytes from the connection. Returns the bytes consumed: all of len, or fewer
 * when a response completed (on_done ran) and bytes of a next one follow (call again). Errors:
 * CL_EHTTP (malformed: status line, header syntax, conflicting lengths, bad chunk framing,
 * 101 Switching Protocols), CL_EHTTP_TOOBIG (head or body over its cap), CL_ENOMEM, or a
 * callback's code. Errors are sticky.
 */
ssize_t cp_http_parse(struct cp_http_parser *p, const uint8_t *data, size_t len);

/*
 * The connection reached EOF. Completes a close-delimited body (calls on_done, returns 0).
 * Returns 0 when no response was in progress, CL_EOF when one was cut short (or a callback's
 * code).
 */
int cp_http_parse_eof(struct cp_http_parser *p);

/* True between responses (nothing of the next response seen yet). */
bool cp_http_parser_is_idle(const struct cp_http_parser *p);

/* Header lookup in a head (case-insensitive name); NULL when absent. */
const char *cp_http_head_get(const struct cp_http_head *h, const char *name);

/* ---- watch streams: newline-delimited records ---- */

typedef int (*cp_lines_cb)(const char *line, size_t len, void *ud);

struct cp_lines {
    struct cl_buf buf;
    size_t max_line;
};

void cp_lines_init(struct cp_lines *l, size_t max_line);
void cp_lines_deinit(struct cp_lines *l); /* NULL-safe */

/*
 * Feeds bytes; calls cb for each complete line (without its '\n' and a trailing '\r'; blank
 * lines are skipped). The line is borrowed for the call. Returns 0, CL_EHTTP_TOOBIG (a line
 * longer than max_line), CL_ENOMEM, or the callback's negative code (stops at once).
 */
int cp_lines_feed(struct cp_lines *l, const uint8_t *data, size_t len, cp_lines_cb cb, void *ud);

/* Bytes of an incomplete last line being held. */
size_t cp_lines_pending(const struct cp_lines *l);

#endif
