#include "cl/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl/err.h"
#include "cl/time.h"

enum cl_log_level cl_log_level = CL_LOG_INFO;
static char log_ctx[128];

static const char *const level_names[CL_LOG_LEVEL_COUNT] = {
    [CL_LOG_ERROR] = "error", [CL_LOG_WARN] = "warn",   [CL_LOG_INFO] = "info",
    [CL_LOG_DEBUG] = "debug", [CL_LOG_TRACE] = "trace",
};

int cl_log_parse_level(const char *s, enum cl_log_level *out)
{
    for (int i = 0; i < CL_LOG_LEVEL_COUNT; i++) {
        if (s != NULL && strcmp(s, level_names[i]) == 0) {
            *out = (enum cl_log_level)i;
            return 0;
        }
    }
    return CL_EINVAL;
}

void cl_log_set_level(enum cl_log_level lvl)
{
    cl_log_level = lvl;
}

int cl_log_parse_opt(FILE *err, const char *prog, const char *arg)
{
    enum cl_log_level lvl;

    if (cl_log_parse_level(arg, &lvl) != 0) {
        fprintf(err, "%s: --log-level must be error, warn, info, debug or trace\n", prog);
        return CL_EINVAL;
    }
    cl_log_set_level(lvl);
    return 0;
}

void cl_log_set_context(const char *ctx)
{
    snprintf(log_ctx, sizeof(log_ctx), "%s", ctx != NULL ? ctx : "");
}

const char *cl_log_escape(const char *in, char *out, size_t outlen)
{
    size_t o = 0;

    if (outlen == 0)
        return out;
    for (; in != NULL && *in != '\0' && o + 5 < outlen; in++) {
        unsigned char c = (unsigned char)*in;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return out;
}

static void put_line(enum cl_log_level lvl, const char *mod, const char *msg, const char *fields)
{
    char esc[2048], ts[40];
    struct timespec now;
    struct tm tm;

    if (lvl >= CL_LOG_LEVEL_COUNT)
        lvl = CL_LOG_TRACE;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    cl_log_escape(msg, esc, sizeof(esc));
    fprintf(stderr, "ts=%s.%03ldZ level=%s %s%smod=%s msg=\"%s\"%s%s\n", ts, now.tv_nsec / 1000000,
            level_names[lvl], log_ctx, log_ctx[0] != '\0' ? " " : "", mod, esc,
            fields[0] != '\0' ? " " : "", fields);
}

__attribute__((format(printf, 3, 0))) static void vwrite(enum cl_log_level lvl, const char *mod,
                                                         const char *fmt, va_list ap)
{
    char msg[1024];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    put_line(lvl, mod, msg, "");
}

void cl_log_write(enum cl_log_level lvl, const char *mod, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vwrite(lvl, mod, fmt, ap);
    va_end(ap);
}

void cl_log_fields(enum cl_log_level lvl, const char *mod, const char *msg, const char *fields)
{
    put_line(lvl, mod, msg, fields != NULL ? fields : "");
}

bool cl_ratelimit_ok(struct cl_ratelimit *rl, unsigned per_sec)
{
    unsigned long long now = cl_now_ms();

    if (now - rl->window_ms >= 1000) {
        rl->window_ms = now;
        rl->count = 0;
    }
    if (rl->count < per_sec) {
        rl->count++;
        return true;
    }
    rl->suppressed++;
    return false;
}

void cl_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vwrite(CL_LOG_ERROR, "fatal", fmt, ap);
    va_end(ap);
    abort();
}
