#ifndef CL_JSON_H
#define CL_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/*
 * Helpers for strict JSON input over jansson: every failure fills a cl_jerr with the field
 * path ("spec.gateways[1].port") and what is wrong, so APIs can answer 400 with a message a
 * person can act on.
 */
struct cl_jerr {
    char field[128];
    char msg[256];
};

/* Fills e (may be NULL) and returns CL_ESCHEMA. */
int cl_jerr_set(struct cl_jerr *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses a whole buffer: rejects duplicate keys, trailing bytes, and non-object/array roots
 * are allowed. Returns a new reference or NULL with e filled (field "" = the body). */
json_t *cl_json_loadb(const void *buf, size_t len, struct cl_jerr *e);

/* Compact serialisation (sorted keys off, order preserved); new string, free with cl_free. */
char *cl_json_dumps(const json_t *j);
/* Same with jansson flags (e.g. JSON_INDENT(2) | JSON_PRESERVE_ORDER). */
char *cl_json_dumps_flags(const json_t *j, size_t flags);

/* Joins a path and a key: "spec" + "port" -> "spec.port"; "" + "spec" -> "spec". */
const char *cl_json_path(char *out, size_t outlen, const char *path, const char *key);

/* Rejects any key of obj not in `allowed` (NULL-terminated). Returns 0 or CL_ESCHEMA. */
int cl_json_check_keys(const json_t *obj, const char *path, const char *const *allowed,
                       struct cl_jerr *e);

/*
 * Typed getters. `required`: missing key is an error; otherwise *out is left untouched and 0
 * returned. Borrowed strings are valid while obj lives. Return 0 or CL_ESCHEMA.
 */
int cl_json_get_str(const json_t *obj, const char *path, const char *key, bool required,
                    const char **out, struct cl_jerr *e);
int cl_json_get_int(const json_t *obj, const char *path, const char *key, bool required,
                    long long min, long long max, long long *out, struct cl_jerr *e);
int cl_json_get_bool(const json_t *obj, const char *path, const char *key, bool required, bool *out,
                     struct cl_jerr *e);
/* Object or array member with type check (JSON_OBJECT / JSON_ARRAY); borrowed. */
int cl_json_get_typed(const json_t *obj, const char *path, const char *key, bool required,
                      json_type type, json_t **out, struct cl_jerr *e);

#endif
