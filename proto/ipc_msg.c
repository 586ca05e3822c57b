/*
 * Strict validation of every message body of proto/PROTOCOL.md. The stream layer runs it on
 * every frame before a handler sees it, so handlers can rely on the shapes: a bad request is
 * answered with ERROR CL_ESCHEMA naming the field, a bad reply fails its request.
 */
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cl/ipc.h"
#include "cl/json.h"

#define GET_STR(o, path, key, req)                                    \
    do {                                                              \
        const char *_s = NULL;                                        \
        int _rc = cl_json_get_str((o), (path), (key), (req), &_s, e); \
        if (_rc != 0)                                                 \
            return _rc;                                               \
    } while (0)

#define GET_INT(o, path, key, req, lo, hi)                                        \
    do {                                                                          \
        long long _v = 0;                                                         \
        int _rc = cl_json_get_int((o), (path), (key), (req), (lo), (hi), &_v, e); \
        if (_rc != 0)                                                             \
            return _rc;                                                           \
    } while (0)

#define KEYS(o, path, ...)                                   \
    do {                                                     \
        static const char *const _k[] = {__VA_ARGS__, NULL}; \
        int _rc = cl_json_check_keys((o), (path), _k, e);    \
        if (_rc != 0)                                        \
            return _rc;                                      \
    } while (0)

static int get_array(const json_t *o, const char *path, const char *key, bool req, json_t **out,
                     struct cl_jerr *e)
{
    *out = NULL;
    return cl_json_get_typed(o, path, key, req, JSON_ARRAY, out, e);
}

static int each_object(const json_t *arr, const char *path, const char *key,
                       int (*fn)(const json_t *, const char *, struct cl_jerr *), struct cl_jerr *e)
{
    char p[128];
    size_t i;
    json_t *v;
    int rc;

    json_array_foreach(arr, i, v)
    {
        snprintf(p, sizeof(p), "%s%s%s[%zu]", path, path[0] ? "." : "", key, i);
        if (!json_is_object(v))
            return cl_jerr_set(e, p, "must be an object");
        if ((rc = fn(v, p, e)) != 0)
            return rc;
    }
    return 0;
}

static int string_map(const json_t *o, const char *path, const char *key, struct cl_jerr *e)
{
    json_t *m = NULL;
    const char *k;
    json_t *v;
    char p[128];
    int rc;

    if ((rc = cl_json_get_typed(o, path, key, false, JSON_OBJECT, &m, e)) != 0)
        return rc;
    json_object_foreach(m, k, v)
    {
        if (!json_is_string(v))
            return cl_jerr_set(e, cl_json_path(p, sizeof(p), key, k), "must be a string");
    }
    return 0;
}

static int gateway(const json_t *g, const char *path, struct cl_jerr *e)
{
    KEYS(g, path, "host", "port");
    GET_STR(g, path, "host", true);
    GET_INT(g, path, "port", true, 1, 65535);
    return 0;
}

static int gateways(const json_t *o, const char *path, struct cl_jerr *e)
{
    json_t *a;
    int rc = get_array(o, path, "gateways", true, &a, e);

    return rc != 0 ? rc : each_object(a, path, "gateways", gateway, e);
}

static int peer(const json_t *p, const char *path, struct cl_jerr *e)
{
    KEYS(p, path, "name", "gateways");
    GET_STR(p, path, "name", true);
    return gateways(p, path, e);
}

static int source(const json_t *s, const char *path, struct cl_jerr *e)
{
    KEYS(s, path, "peer", "exportName", "exportNamespace");
    GET_STR(s, path, "peer", true);
    GET_STR(s, path, "exportName", true);
    GET_STR(s, path, "exportNamespace", false);
    return 0;
}

static int import(const json_t *i, const char *path, struct cl_jerr *e)
{
    json_t *a;
    int rc;

    KEYS(i, path, "name", "listenPort", "port", "sources", "lbScheme");
    GET_STR(i, path, "name", true);
    GET_INT(i, path, "listenPort", true, 0, 65535);
    GET_INT(i, path, "port", true, 1, 65535);
    GET_STR(i, path, "lbScheme", true);
    if ((rc = get_array(i, path, "sources", true, &a, e)) != 0)
        return rc;
    return each_object(a, path, "sources", source, e);
}

static int export(const json_t *x, const char *path, struct cl_jerr *e)
{
    KEYS(x, path, "name", "host", "port");
    GET_STR(x, path, "name", true);
    GET_STR(x, path, "host", true);
    GET_INT(x, path, "port", true, 1, 65535);
    return 0;
}

static int config(const json_t *b, struct cl_jerr *e)
{
    json_t *a;
    int rc;

    KEYS(b, "", "revision", "name", "peers", "imports", "exports");
    GET_INT(b, "", "revision", true, 0, INT64_MAX);
    GET_STR(b, "", "name", true);
    if ((rc = get_array(b, "", "peers", true, &a, e)) != 0 ||
        (rc = each_object(a, "", "peers", peer, e)) != 0 ||
        (rc = get_array(b, "", "imports", true, &a, e)) != 0 ||
        (rc = each_object(a, "", "imports", import, e)) != 0 ||
        (rc = get_array(b, "", "exports", true, &a, e)) != 0 ||
        (rc = each_object(a, "", "exports", export, e)) != 0)
        return rc;
    return 0;
}

static int name_list(const json_t *o, const char *path, const char *key, struct cl_jerr *e)
{
    json_t *a, *v;
    char p[128];
    size_t i;
    int rc;

    if ((rc = get_array(o, path, key, false, &a, e)) != 0)
        return rc;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v)) {
            snprintf(p, sizeof(p), "%s.%s[%zu]", path, key, i);
            return cl_jerr_set(e, p, "must be a string");
        }
    }
    return 0;
}

static int config_delta(const json_t *b, struct cl_jerr *e)
{
    json_t *up = NULL, *del = NULL, *a;
    int rc;

    KEYS(b, "", "revision", "base", "upsert", "delete");
    GET_INT(b, "", "revision", true, 1, INT64_MAX);
    GET_INT(b, "", "base", true, 0, INT64_MAX);
    if ((rc = cl_json_get_typed(b, "", "upsert", false, JSON_OBJECT, &up, e)) != 0 ||
        (rc = cl_json_get_typed(b, "", "delete", false, JSON_OBJECT, &del, e)) != 0)
        return rc;
    if (up != NULL) {
        KEYS(up, "upsert", "peers", "imports", "exports");
        if ((rc = get_array(up, "upsert", "peers", false, &a, e)) != 0 ||
            (rc = each_object(a, "upsert", "peers", peer, e)) != 0 ||
            (rc = get_array(up, "upsert", "imports", false, &a, e)) != 0 ||
            (rc = each_object(a, "upsert", "imports", import, e)) != 0 ||
            (rc = get_array(up, "upsert", "exports", false, &a, e)) != 0 ||
            (rc = each_object(a, "upsert", "exports", export, e)) != 0)
            return rc;
    }
    if (del != NULL) {
        KEYS(del, "delete", "peers", "imports", "exports");
        if ((rc = name_list(del, "delete", "peers", e)) != 0 ||
            (rc = name_list(del, "delete", "imports", e)) != 0 ||
            (rc = name_list(del, "delete", "exports", e)) != 0)
            return rc;
    }
    return 0;
}

static int candidate(const json_t *c, const char *path, struct cl_jerr *e)
{
    KEYS(c, path, "peer", "export", "namespace", "gateways");
    GET_STR(c, path, "peer", true);
    GET_STR(c, path, "export", true);
    GET_STR(c, path, "namespace", true);
    return gateways(c, path, e);
}

static int counters(const json_t *b, const char *key, struct cl_jerr *e)
{
    json_t *g = NULL;
    const char *name;
    json_t *c;
    char p[128];
    int rc;

    if ((rc = cl_json_get_typed(b, "", key, true, JSON_OBJECT, &g, e)) != 0)
        return rc;
    json_object_foreach(g, name, c)
    {
        cl_json_path(p, sizeof(p), key, name);
        if (!json_is_object(c))
            return cl_jerr_set(e, p, "must be an object");
        KEYS(c, p, "open", "total", "bytesIn", "bytesOut", "denied", "errors", "idleClosed");
        const char *const k[] = {"open",   "total",  "bytesIn",   "bytesOut",
                                 "denied", "errors", "idleClosed"};
        /* idleClosed came later: a worker of the release before it omits it (rolling upgrade) */
        for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
            GET_INT(c, p, k[i], strcmp(k[i], "idleClosed") != 0, INT64_MIN, INT64_MAX);
    }
    return 0;
}

/* STATS.certificate (version 2): what the worker's public port presents, and why replaced
 * files were refused, if they were. Absent in version 1. */
static int stats_certificate(const json_t *b, struct cl_jerr *e)
{
    json_t *c = NULL;
    int rc;

    if ((rc = cl_json_get_typed(b, "", "certificate", false, JSON_OBJECT, &c, e)) != 0 || c == NULL)
        return rc;
    KEYS(c, "certificate", "sha256", "notBefore", "notAfter", "reloadError");
    GET_STR(c, "certificate", "sha256", false);
    GET_INT(c, "certificate", "notBefore", false, INT64_MIN, INT64_MAX);
    GET_INT(c, "certificate", "notAfter", false, INT64_MIN, INT64_MAX);
    GET_STR(c, "certificate", "reloadError", true);
    return 0;
}

static int request(uint16_t type, const json_t *b, struct cl_jerr *e)
{
    json_t *a;
    int rc;

    switch (type) {
    case CL_IPC_HELLO:
        KEYS(b, "", "version", "worker", "pid");
        GET_INT(b, "", "version", true, 0, 65535);
        GET_INT(b, "", "worker", true, 0, 1000000);
        GET_INT(b, "", "pid", true, 0, INT32_MAX);
        return 0;
    case CL_IPC_CONFIG:
        return config(b, e);
    case CL_IPC_CONFIG_DELTA:
        return config_delta(b, e);
    case CL_IPC_ACK:
        KEYS(b, "", "revision");
        GET_INT(b, "", "revision", true, 0, INT64_MAX);
        return 0;
    case CL_IPC_AUTHZ_EGRESS:
        KEYS(b, "", "import", "client");
        GET_STR(b, "", "import", true);
        GET_STR(b, "", "client", true);
        return 0;
    case CL_IPC_AUTHZ_INGRESS:
        KEYS(b, "", "peer", "export", "namespace", "attrs");
        GET_STR(b, "", "peer", true);
        GET_STR(b, "", "export", true);
        GET_STR(b, "", "namespace", true);
        return string_map(b, "", "attrs", e);
    case CL_IPC_HTTP_REQUEST:
        KEYS(b, "", "method", "path", "identity", "identities", "body");
        GET_STR(b, "", "method", true);
        GET_STR(b, "", "path", true);
        GET_STR(b, "", "identity", true);
        GET_STR(b, "", "body", true);
        if ((rc = get_array(b, "", "identities", false, &a, e)) != 0)
            return rc;
        return 0;
    case CL_IPC_STATS:
        KEYS(b, "", "worker", "imports", "exports", "peers", "certificate");
        GET_INT(b, "", "worker", true, 0, 1000000);
        if ((rc = counters(b, "imports", e)) != 0 || (rc = counters(b, "exports", e)) != 0 ||
            (rc = counters(b, "peers", e)) != 0)
            return rc;
        return stats_certificate(b, e);
    case CL_IPC_PEER_EVENT:
        KEYS(b, "", "peer", "gateway", "event", "status", "error");
        GET_STR(b, "", "peer", true);
        GET_STR(b, "", "gateway", true);
        GET_STR(b, "", "event", true);
        GET_INT(b, "", "status", true, 0, 999);
        GET_STR(b, "", "error", true);
        return 0;
    case CL_IPC_RESYNC:
        KEYS(b, "", "unused");
        return 0;
    default:
        return cl_jerr_set(e, "", "%s is not a request", cl_ipc_type_name(type));
    }
}

static int reply(uint16_t type, const json_t *b, struct cl_jerr *e)
{
    json_t *a;
    bool allow = false;
    int rc;

    switch (type) {
    case CL_IPC_HELLO: /* replies to HELLO carry WELCOME's type; see cl_ipc_reply */
    case CL_IPC_WELCOME:
        KEYS(b, "", "version", "name");
        GET_INT(b, "", "version", true, 0, 65535);
        GET_STR(b, "", "name", true);
        return 0;
    case CL_IPC_AUTHZ_EGRESS:
        if ((rc = cl_json_get_bool(b, "", "allow", true, &allow, e)) != 0)
            return rc;
        if (!allow) {
            KEYS(b, "", "allow", "reason", "policy");
            GET_STR(b, "", "reason", true);
            GET_STR(b, "", "policy", true);
            return 0;
        }
        KEYS(b, "", "allow", "candidates", "attrs");
        if ((rc = get_array(b, "", "candidates", true, &a, e)) != 0 ||
            (rc = each_object(a, "", "candidates", candidate, e)) != 0)
            return rc;
        return string_map(b, "", "attrs", e);
    case CL_IPC_AUTHZ_INGRESS:
        if ((rc = cl_json_get_bool(b, "", "allow", true, &allow, e)) != 0)
            return rc;
        if (!allow) {
            KEYS(b, "", "allow", "status", "reason", "policy");
            GET_INT(b, "", "status", true, 400, 599);
            GET_STR(b, "", "reason", true);
            GET_STR(b, "", "policy", true);
            return 0;
        }
        KEYS(b, "", "allow", "backend");
        json_t *be = NULL;
        if ((rc = cl_json_get_typed(b, "", "backend", true, JSON_OBJECT, &be, e)) != 0)
            return rc;
        return gateway(be, "backend", e);
    case CL_IPC_HTTP_REQUEST:
    case CL_IPC_HTTP_RESPONSE:
        KEYS(b, "", "status", "contentType", "body");
        GET_INT(b, "", "status", true, 100, 599);
        GET_STR(b, "", "contentType", true);
        GET_STR(b, "", "body", true);
        return 0;
    default:
        return cl_jerr_set(e, "", "%s has no reply", cl_ipc_type_name(type));
    }
}

int cl_ipc_msg_validate(uint16_t type, uint16_t flags, const json_t *body, struct cl_jerr *e)
{
    if (!json_is_object(body))
        return cl_jerr_set(e, "", "body must be a JSON object");
    if (flags & CL_IPC_F_ERROR) {
        KEYS(body, "", "code", "message");
        GET_INT(body, "", "code", true, -20000, 0);
        GET_STR(body, "", "message", true);
        return 0;
    }
    return (flags & CL_IPC_F_REPLY) ? reply(type, body, e) : request(type, body, e);
}
