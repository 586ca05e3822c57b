#include "cl/str.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cl/err.h"

size_t cl_strlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);

    if (size > 0) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

static bool is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool label_ok(const char *s, size_t len)
{
    if (len == 0 || len > 63)
        return false;
    if (!is_alnum_lower(s[0]) || !is_alnum_lower(s[len - 1]))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_alnum_lower(s[i]) && s[i] != '-')
            return false;
    }
    return true;
}

bool cl_str_is_dns_label(const char *s)
{
    return s != NULL && label_ok(s, strlen(s));
}

bool cl_str_is_dns1035_label(const char *s)
{
    return cl_str_is_dns_label(s) && s[0] >= 'a' && s[0] <= 'z';
}

bool cl_str_is_dns_subdomain(const char *s)
{
    size_t len;

    if (s == NULL || (len = strlen(s)) == 0 || len > 253)
        return false;
    while (*s != '\0') {
        const char *dot = strchr(s, '.');
        size_t l = dot != NULL ? (size_t)(dot - s) : strlen(s);
        if (!label_ok(s, l))
            return false;
        s += l;
        if (*s == '.') {
            s++;
            if (*s == '\0')
                return false;
        }
    }
    return true;
}

int cl_parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v;

    if (s == NULL || *s == '\0')
        return CL_EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return CL_EINVAL;
    *out = v;
    return 0;
}

int cl_parse_opt_long(FILE *err, const char *prog, const char *opt, const char *arg, long min,
                      long max, const char *unit, long *out)
{
    if (cl_parse_long(arg, min, max, out) == 0)
        return 0;
    fprintf(err, "%s: --%s must be %ld..%ld%s%s\n", prog, opt, min, max, unit != NULL ? " " : "",
            unit != NULL ? unit : "");
    return CL_EINVAL;
}

int cl_parse_port(const char *s, uint16_t *out)
{
    long v;
    int rc = cl_parse_long(s, 1, 65535, &v);

    if (rc == 0)
        *out = (uint16_t)v;
    return rc;
}
