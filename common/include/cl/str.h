#ifndef CL_STR_H
#define CL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Copies with truncation, always NUL-terminates (when size > 0); returns strlen(src). */
size_t cl_strlcpy(char *dst, const char *src, size_t size);

/* RFC 1123 DNS label: 1..63 of [a-z0-9-], starting and ending alphanumeric. */
bool cl_str_is_dns_label(const char *s);

/* DNS-1035 label (Kubernetes Service names): as above but starts with a letter. */
bool cl_str_is_dns1035_label(const char *s);

/* RFC 1123 subdomain: dot-separated DNS labels, at most 253 characters. */
bool cl_str_is_dns_subdomain(const char *s);

/* Parses a whole decimal string within [min, max]. Returns 0 or CL_EINVAL. */
int cl_parse_long(const char *s, long min, long max, long *out);

/*
 * Parses the value of a command-line option as cl_parse_long() does. On failure writes
 * "<prog>: --<opt> must be <min>..<max>[ <unit>]" and a newline to `err` (stderr in the
 * programs, a temporary file in tests), so every option of every program says the same thing
 * the same way. `unit` may be NULL. Returns 0 or CL_EINVAL.
 */
int cl_parse_opt_long(FILE *err, const char *prog, const char *opt, const char *arg, long min,
                      long max, const char *unit, long *out);

/* Parses a TCP port 1..65535. Returns 0 or CL_EINVAL. */
int cl_parse_port(const char *s, uint16_t *out);

#endif
