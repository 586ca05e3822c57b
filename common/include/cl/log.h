#ifndef CL_LOG_H
#define CL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cl_log_level {
    CL_LOG_ERROR,
    CL_LOG_WARN,
    CL_LOG_INFO,
    CL_LOG_DEBUG,
    CL_LOG_TRACE,
    CL_LOG_LEVEL_COUNT,
};

extern enum cl_log_level cl_log_level;

/* Parses "error|warn|info|debug|trace". Returns 0 or CL_EINVAL. */
int cl_log_parse_level(const char *s, enum cl_log_level *out);

void cl_log_set_level(enum cl_log_level lvl);

/* Sets the level from a --log-level value; on failure writes "<prog>: --log-level must be
 * error, warn, info, debug or trace" to `err` and leaves the level. Returns 0 or CL_EINVAL. */
int cl_log_parse_opt(FILE *err, const char *prog, const char *arg);

/* Sets a fixed "k=v" prefix added to every line (e.g. "proc=dp worker=2"); copied. */
void cl_log_set_context(const char *ctx);

/*
 * Writes one logfmt line to stderr, whatever the level filter says (CL_LOG does the filtering):
 *   ts=2026-11-24T10:00:00.123Z level=info proc=dp worker=0 mod=dp.tunnel msg="..."
 * `fmt` formats the message, which is escaped and quoted as a whole.
 */
void cl_log_write(enum cl_log_level lvl, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The same line with structured fields after the message: `fields` is written as it is
 * ("k=v k2=\"v 2\""), so the caller escapes every value it quotes with cl_log_escape and
 * quotes every value that may hold a space.
 */
void cl_log_fields(enum cl_log_level lvl, const char *mod, const char *msg, const char *fields);

/* Arguments are evaluated only when the level is enabled. */
#define CL_LOG(lvl, mod, ...)                        \
    do {                                             \
        if ((lvl) <= cl_log_level)                   \
            cl_log_write((lvl), (mod), __VA_ARGS__); \
    } while (0)

#define CL_ERROR(mod, ...) CL_LOG(CL_LOG_ERROR, mod, __VA_ARGS__)
#define CL_WARN(mod, ...)  CL_LOG(CL_LOG_WARN, mod, __VA_ARGS__)
#define CL_INFO(mod, ...)  CL_LOG(CL_LOG_INFO, mod, __VA_ARGS__)
#define CL_DEBUG(mod, ...) CL_LOG(CL_LOG_DEBUG, mod, __VA_ARGS__)
#define CL_TRACE(mod, ...) CL_LOG(CL_LOG_TRACE, mod, __VA_ARGS__)

/*
 * Escapes a peer-controlled string for a logfmt value: quotes, backslashes and control bytes
 * are escaped, output is truncated to fit. Returns `out`.
 */
const char *cl_log_escape(const char *in, char *out, size_t outlen);

/* Rate limit helper: true at most `per_sec` times per second for this state. */
struct cl_ratelimit {
    unsigned long long window_ms;
    unsigned count;
    unsigned suppressed;
};

bool cl_ratelimit_ok(struct cl_ratelimit *rl, unsigned per_sec);

/* Logs "msg" and aborts. Only during boot and in gwctl. */
_Noreturn void cl_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Always-on invariant check; prints file:line and aborts. */
#define CL_ASSERT(x)                                                          \
    do {                                                                      \
        if (!(x))                                                             \
            cl_fatal("assertion failed: %s (%s:%d)", #x, __FILE__, __LINE__); \
    } while (0)
#ifndef NDEBUG
#define CL_DASSERT(x) CL_ASSERT(x)
#else
#define CL_DASSERT(x) ((void)0)
#endif

#endif
