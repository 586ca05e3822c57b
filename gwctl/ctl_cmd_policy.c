/*
 * Policies: `gwctl create|update policy --file F` (JSON or YAML, "-" for stdin). The document
 * is sent as is after a shape check (kind, metadata.name); the gateway validates the rest.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cl/err.h"
#include "cl/json.h"
#include "cl/mem.h"
#include "ctl.h"
#include "ctl_cmd.h"
#include "ctl_out.h"

#define POLICY_MAX_BYTES (1 << 20)
#define YAML_MAX_DEPTH   64
#define YAML_MAX_NODES   100000 // aliases can expand exponentially ("billion laughs")

const struct ctl_flag_spec ctl_flags_policy[] = {
    {"file", 'f', CTL_FLAG_STR, true, "FILE",
     "AccessPolicy or PrivilegedAccessPolicy, JSON or YAML (- for stdin)"},
    {NULL, 0, 0, false, NULL, NULL},
};

/* YAML 1.2 core schema for plain scalars; everything quoted stays a string. */
static json_t *yaml_scalar(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    char *end;

    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(s, len);
    if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
        strcmp(s, "NULL") == 0)
        return json_null();
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return json_true();
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return json_false();
    if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '-' || s[0] == '+') && len > 1)) {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno == 0 && *end == '\0')
            return json_integer(v);
        errno = 0;
        double d = strtod(s, &end);
        if (errno == 0 && *end == '\0' && strpbrk(s, "xXnN") == NULL) // no hex, inf, nan
            return json_real(d);
    }
    return json_stringn(s, len);
}

static json_t *yaml_to_json(yaml_document_t *doc, yaml_node_t *n, int depth, size_t *budget,
                            char *err, size_t errlen)
{
    json_t *j = NULL;

    if (n == NULL || depth > YAML_MAX_DEPTH) {
        snprintf(err, errlen, "YAML nested too deeply or malformed");
        return NULL;
    }
    if (*budget == 0) {
        snprintf(err, errlen, "YAML document too large (more than %d values after aliases)",
                 YAML_MAX_NODES);
        return NULL;
    }
    --*budget;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        if ((j = yaml_scalar(n)) == NULL)
            snprintf(err, errlen, "out of memory");
        return j;
    case YAML_SEQUENCE_NODE:
        if ((j = json_array()) == NULL)
            goto oom;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            json_t *v =
                yaml_to_json(doc, yaml_document_get_node(doc, *it), depth + 1, budget, err, errlen);
            if (v == NULL || json_array_append_new(j, v) != 0)
                goto fail;
        }
        return j;
    case YAML_MAPPING_NODE:
        if ((j = json_object()) == NULL)
            goto oom;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            const char *key;
            json_t *v;
            if (k == NULL || k->type != YAML_SCALAR_NODE) {
                snprintf(err, errlen, "YAML line %zu: mapping keys must be plain strings",
                         k != NULL ? k->start_mark.line + 1 : 0);
                goto fail;
            }
            key = (const char *)k->data.scalar.value;
            if (strlen(key) != k->data.scalar.length) {
                snprintf(err, errlen, "YAML line %zu: NUL in a key", k->start_mark.line + 1);
                goto fail;
            }
            if (json_object_get(j, key) != NULL) {
                snprintf(err, errlen, "YAML line %zu: duplicate key \"%s\"", k->start_mark.line + 1,
                         key);
                goto fail;
            }
            v = yaml_to_json(doc, yaml_document_get_node(doc, p->value), depth + 1, budget, err,
                             errlen);
            if (v == NULL || json_object_set_new(j, key, v) != 0)
                goto fail;
        }
        return j;
    case YAML_NO_NODE:
    default:
        snprintf(err, errlen, "YAML: unsupported node");
        return NULL;
    }
oom:
    snprintf(err, errlen, "out of memory");
fail:
    json_decref(j);
    return NULL;
}

static json_t *yaml_load(const char *text, size_t len, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    size_t budget = YAML_MAX_NODES;
    json_t *j = NULL;

    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "invalid YAML at line %zu column %zu: %s",
                 parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                 parser.problem != NULL ? parser.problem : "parse error");
        yaml_parser_delete(&parser);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        snprintf(err, errlen, "the policy file is empty");
    } else if ((j = yaml_to_json(&doc, root, 0, &budget, err, errlen)) != NULL) {
        /* exactly one document */
        if (!yaml_parser_load(&parser, &extra)) {
            snprintf(err, errlen, "invalid YAML after the first document");
            json_decref(j);
            j = NULL;
        } else {
            if (yaml_document_get_root_node(&extra) != NULL) {
                snprintf(err, errlen, "one policy per file: found a second YAML document");
                json_decref(j);
                j = NULL;
            }
            yaml_document_delete(&extra);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return j;
}

json_t *ctl_policy_parse(const char *text, size_t len, char *err, size_t errlen)
{
    size_t i = 0;
    json_t *j;
    const char *kind, *name;

    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    if (i < len && (text[i] == '{' || text[i] == '[')) {
        struct cl_jerr je;
        if ((j = ctl_json_loadb(text, len, &je)) == NULL) {
            snprintf(err, errlen, "%s", je.msg);
            return NULL;
        }
    } else if ((j = yaml_load(text, len, err, errlen)) == NULL) {
        return NULL;
    }
    if (!json_is_object(j)) {
        snprintf(err, errlen, "a policy must be an object");
        goto fail;
    }
    kind = json_string_value(json_object_get(j, "kind"));
    if (kind == NULL ||
        (strcmp(kind, "AccessPolicy") != 0 && strcmp(kind, "PrivilegedAccessPolicy") != 0)) {
        snprintf(err, errlen, "kind must be AccessPolicy or PrivilegedAccessPolicy");
        goto fail;
    }
    name = json_string_value(json_object_get(json_object_get(j, "metadata"), "name"));
    if (name == NULL || name[0] == '\0') {
        snprintf(err, errlen, "metadata.name is missing");
        goto fail;
    }
    if (!json_is_object(json_object_get(j, "spec"))) {
        snprintf(err, errlen, "spec is missing");
        goto fail;
    }
    return j;
fail:
    json_decref(j);
    return NULL;
}

static int read_stream(FILE *f, char **out, size_t *outlen)
{
    size_t cap = 4096, len = 0;
    char *buf = cl_malloc(cap);

    if (buf == NULL)
        return CL_ENOMEM;
    for (;;) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (len + 1 == cap) {
            char *nb;
            if (cap >= POLICY_MAX_BYTES || (nb = cl_realloc(buf, cap * 2)) == NULL) {
                cl_mem_free(buf);
                return cap >= POLICY_MAX_BYTES ? -EFBIG : CL_ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (ferror(f)) {
        cl_mem_free(buf);
        return -EIO;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

json_t *ctl_policy_build(struct ctl *ctl, const struct ctl_args *a, char *err, size_t errlen)
{
    const char *file = ctl_args_str(a, "file");
    bool is_stdin = strcmp(file, "-") == 0;
    FILE *f = is_stdin ? ctl->in : fopen(file, "re");
    char *text = NULL, perr[400];
    size_t len = 0;
    json_t *j;
    int rc;

    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", file, strerror(errno));
        return NULL;
    }
    rc = read_stream(f, &text, &len);
    if (!is_stdin)
        fclose(f);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read %s: %s", is_stdin ? "stdin" : file, cl_strerror(rc));
        return NULL;
    }
    j = ctl_policy_parse(text, len, perr, sizeof(perr));
    if (j == NULL)
        snprintf(err, errlen, "%s: %s", is_stdin ? "stdin" : file, perr);
    cl_mem_free(text);
    return j;
}

const struct ctl_kind ctl_kind_policy = {"policy", "policies", ctl_policy_build, ctl_out_policies};
