#include "cl/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cl/buf.h"
#include "cl/err.h"
#include "cl/mem.h"

int cl_jerr_set(struct cl_jerr *e, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return CL_ESCHEMA;
    snprintf(e->field, sizeof(e->field), "%s", field != NULL ? field : "");
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return CL_ESCHEMA;
}

/* jansson 2.14's lexer ignores a failed buffer append and hands back a document with a
 * truncated key or string (seen with tests/support failalloc); parse with an allocator that
 * remembers any failure and drop such a document. */
static json_malloc_t parse_malloc;
static bool parse_failed;

static void *sticky_malloc(size_t n)
{
    void *p = parse_malloc(n);

    if (p == NULL)
        parse_failed = true;
    return p;
}

json_t *cl_json_loadb(const void *buf, size_t len, struct cl_jerr *e)
{
    json_error_t je;
    json_free_t f;
    json_t *j;

    json_get_alloc_funcs(&parse_malloc, &f);
    json_set_alloc_funcs(sticky_malloc, f);
    parse_failed = false;
    j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    json_set_alloc_funcs(parse_malloc, f);
    if (parse_failed) {
        json_decref(j);
        cl_jerr_set(e, "", "out of memory");
        return NULL;
    }
    if (j == NULL)
        cl_jerr_set(e, "", "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
    return j;
}

#define DUMP_MAX (64u << 20)

struct dump_state {
    struct cl_buf b;
    bool failed;
};

/* jansson 2.14 ignores the dump callback's result for object keys (dump.c), so a failed
 * append must stick here or the output would silently lose a key. */
static int dump_cb(const char *buf, size_t size, void *data)
{
    struct dump_state *d = data;

    if (d->failed || cl_buf_append(&d->b, buf, size) != 0) {
        d->failed = true;
        return -1;
    }
    return 0;
}

char *cl_json_dumps_flags(const json_t *j, size_t flags)
{
    struct dump_state d = {.failed = false};
    char *s = NULL;

    cl_buf_init(&d.b, DUMP_MAX);
    if (json_dump_callback(j, dump_cb, &d, flags | JSON_ENCODE_ANY) == 0 && !d.failed &&
        cl_buf_append(&d.b, "", 1) == 0 && (s = cl_malloc(d.b.len)) != NULL)
        memcpy(s, cl_buf_ptr(&d.b), d.b.len);
    cl_buf_deinit(&d.b);
    return s;
}

char *cl_json_dumps(const json_t *j)
{
    return cl_json_dumps_flags(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

const char *cl_json_path(char *out, size_t outlen, const char *path, const char *key)
{
    if (path == NULL || path[0] == '\0')
        snprintf(out, outlen, "%s", key);
    else if (key[0] == '[')
        snprintf(out, outlen, "%s%s", path, key);
    else
        snprintf(out, outlen, "%s.%s", path, key);
    return out;
}

int cl_json_check_keys(const json_t *obj, const char *path, const char *const *allowed,
                       struct cl_jerr *e)
{
    const char *key;
    json_t *v;
    char p[128];

    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        (void)v;
        for (size_t i = 0; allowed[i] != NULL; i++) {
            if (strcmp(key, allowed[i]) == 0) {
                ok = true;
                break;
            }
        }
        if (!ok)
            return cl_jerr_set(e, cl_json_path(p, sizeof(p), path, key), "unknown field");
    }
    return 0;
}

static const char *type_name(json_type t)
{
    switch (t) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

static int lookup(const json_t *obj, const char *path, const char *key, bool required, json_t **v,
                  char *p, size_t plen, struct cl_jerr *e)
{
    cl_json_path(p, plen, path, key);
    *v = json_object_get(obj, key);
    if (*v == NULL || json_is_null(*v)) {
        *v = NULL;
        if (required)
            return cl_jerr_set(e, p, "required field is missing");
    }
    return 0;
}

int cl_json_get_str(const json_t *obj, const char *path, const char *key, bool required,
                    const char **out, struct cl_jerr *e)
{
    json_t *v;
    char p[128];
    int rc;

    if ((rc = lookup(obj, path, key, required, &v, p, sizeof(p), e)) != 0 || v == NULL)
        return rc;
    if (!json_is_string(v))
        return cl_jerr_set(e, p, "must be a string, not %s", type_name(json_typeof(v)));
    if (strlen(json_string_value(v)) != json_string_length(v))
        return cl_jerr_set(e, p, "must not contain NUL bytes");
    *out = json_string_value(v);
    return 0;
}

int cl_json_get_int(const json_t *obj, const char *path, const char *key, bool required,
                    long long min, long long max, long long *out, struct cl_jerr *e)
{
    json_t *v;
    char p[128];
    int rc;

    if ((rc = lookup(obj, path, key, required, &v, p, sizeof(p), e)) != 0 || v == NULL)
        return rc;
    if (!json_is_integer(v))
        return cl_jerr_set(e, p, "must be an integer, not %s", type_name(json_typeof(v)));
    if (json_integer_value(v) < min || json_integer_value(v) > max)
        return cl_jerr_set(e, p, "must be between %lld and %lld", min, max);
    *out = json_integer_value(v);
    return 0;
}

int cl_json_get_bool(const json_t *obj, const char *path, const char *key, bool required, bool *out,
                     struct cl_jerr *e)
{
    json_t *v;
    char p[128];
    int rc;

    if ((rc = lookup(obj, path, key, required, &v, p, sizeof(p), e)) != 0 || v == NULL)
        return rc;
    if (!json_is_boolean(v))
        return cl_jerr_set(e, p, "must be a boolean, not %s", type_name(json_typeof(v)));
    *out = json_is_true(v);
    return 0;
}

int cl_json_get_typed(const json_t *obj, const char *path, const char *key, bool required,
                      json_type type, json_t **out, struct cl_jerr *e)
{
    json_t *v;
    char p[128];
    int rc;

    if ((rc = lookup(obj, path, key, required, &v, p, sizeof(p), e)) != 0 || v == NULL)
        return rc;
    if (json_typeof(v) != type)
        return cl_jerr_set(e, p, "must be %s, not %s", type_name(type), type_name(json_typeof(v)));
    *out = v;
    return 0;
}
