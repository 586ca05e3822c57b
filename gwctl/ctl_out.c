/* Output: aligned tables and JSON for the API objects. */
#include "ctl_out.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#include "cl/buf.h"
#include "cl/err.h"
#include "cl/json.h"
#include "cl/mem.h"
#include "ctl.h"

int ctl_seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

json_t *ctl_json_loadb(const void *buf, size_t len, struct cl_jerr *e)
{
    return cl_json_loadb(buf, len, e);
}

char *ctl_json_dumps(const json_t *j, size_t flags)
{
    return cl_json_dumps_flags(j, flags);
}

void ctl_out_printable(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            p[0] = p[1] = '?';
    }
}

void ctl_out_puts(FILE *out, const char *s)
{
    char buf[256];
    size_t n;

    while (*s != '\0') {
        n = strlen(s);
        if (n >= sizeof(buf))
            n = sizeof(buf) - 1;
        if (n > 1 && (unsigned char)s[n - 1] == 0xc2)
            n--; /* keep a two-byte sequence in one piece: its second byte decides */
        memcpy(buf, s, n);
        buf[n] = '\0';
        ctl_out_printable(buf);
        fputs(buf, out);
        s += n;
    }
}

/* A status key (from the gateway) in its 12-column field and the space after it. */
static void put_key(FILE *out, const char *key)
{
    size_t n = strlen(key);

    ctl_out_puts(out, key);
    fprintf(out, "%*s ", n < 12 ? (int)(12 - n) : 0, "");
}

void ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *hdr)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols < CTL_TABLE_MAX_COLS ? ncols : CTL_TABLE_MAX_COLS;
    for (size_t i = 0; i < t->ncols; i++)
        t->hdr[i] = hdr[i];
}

int ctl_table_add(struct ctl_table *t, const char *const *cells)
{
    size_t base = t->nrows * t->ncols;

    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        char **n = cl_realloc(t->cells, cap * t->ncols * sizeof(*n));
        if (n == NULL)
            return CL_ENOMEM;
        t->cells = n;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        const char *v = cells[i] != NULL ? cells[i] : "-";
        if ((t->cells[base + i] = cl_strdup(v)) == NULL) {
            while (i-- > 0)
                cl_free(&t->cells[base + i]);
            return CL_ENOMEM;
        }
        ctl_out_printable(t->cells[base + i]);
    }
    t->nrows++;
    return 0;
}

void ctl_table_print(const struct ctl_table *t, FILE *out)
{
    size_t w[CTL_TABLE_MAX_COLS];

    for (size_t c = 0; c < t->ncols; c++) {
        w[c] = strlen(t->hdr[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t l = strlen(t->cells[r * t->ncols + c]);
            if (l > w[c])
                w[c] = l;
        }
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *v = r == 0 ? t->hdr[c] : t->cells[(r - 1) * t->ncols + c];
            if (c + 1 == t->ncols)
                fprintf(out, "%s\n", v);
            else
                fprintf(out, "%-*s   ", (int)w[c], v);
        }
    }
}

void ctl_table_deinit(struct ctl_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        cl_free(&t->cells[i]);
    cl_free(&t->cells);
    t->nrows = t->cap = 0;
}

int ctl_out_json(FILE *out, const json_t *j)
{
    char *s = ctl_json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (s == NULL)
        return CL_ENOMEM;
    fprintf(out, "%s\n", s);
    cl_mem_free(s);
    return 0;
}

const json_t *ctl_out_items(const json_t *list)
{
    const json_t *items;

    if (json_is_array(list))
        return list;
    items = json_object_get(list, "items");
    return json_is_array(items) ? items : NULL;
}

/* Walks "a.b.c" through objects; borrowed or NULL. */
static const json_t *jget(const json_t *o, const char *path)
{
    char key[64];

    while (o != NULL && *path != '\0') {
        const char *dot = strchr(path, '.');
        size_t l = dot != NULL ? (size_t)(dot - path) : strlen(path);
        if (l >= sizeof(key))
            return NULL;
        memcpy(key, path, l);
        key[l] = '\0';
        o = json_object_get(o, key);
        path += l + (dot != NULL ? 1 : 0);
    }
    return o;
}

/* Scalar as text into buf ("-" when missing). */
static const char *jtext(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%g", json_real_value(v));
    else if (json_is_true(v))
        snprintf(buf, len, "yes");
    else if (json_is_false(v))
        snprintf(buf, len, "no");
    else
        snprintf(buf, len, "-");
    return buf;
}

/* Appends to a fixed buffer, truncating with "..." */
static void append(char *buf, size_t len, const char *sep, const char *s)
{
    size_t used = strlen(buf);

    if (used > 0 && used + strlen(sep) < len) {
        memcpy(buf + used, sep, strlen(sep) + 1);
        used += strlen(sep);
    }
    if (used + strlen(s) + 1 > len) {
        if (len > 4)
            memcpy(buf + len - 4, "...", 4);
        return;
    }
    memcpy(buf + used, s, strlen(s) + 1);
}

typedef int (*row_cb)(struct ctl_table *t, const json_t *o);

static int print_objects(FILE *out, const json_t *list, size_t ncols, const char *const *hdr,
                         row_cb row)
{
    const json_t *items = ctl_out_items(list);
    struct ctl_table t;
    int rc = 0;

    ctl_table_init(&t, ncols, hdr);
    if (items != NULL) {
        size_t i;
        const json_t *o;
        json_array_foreach(items, i, o)
        {
            if ((rc = row(&t, o)) != 0)
                break;
        }
    } else if (json_is_object(list)) {
        rc = row(&t, list);
    }
    if (rc == 0)
        ctl_table_print(&t, out);
    ctl_table_deinit(&t);
    return rc;
}

static const char *reachable_text(const json_t *st, char *buf, size_t len)
{
    const json_t *r = json_object_get(st, "reachable");

    if (json_is_boolean(r))
        return json_is_true(r) ? "yes" : "no";
    if (json_is_string(r))
        return json_string_value(r);
    return jtext(json_object_get(st, "state"), buf, len);
}

static int peer_row(struct ctl_table *t, const json_t *o)
{
    char gws[256] = "", b1[64], b2[64], b3[64];
    const json_t *arr = jget(o, "spec.gateways"), *g;
    const json_t *st = json_object_get(o, "status");
    size_t i;

    json_array_foreach(arr, i, g)
    {
        char one[300];
        snprintf(one, sizeof(one), "%s:%s", jtext(json_object_get(g, "host"), b1, sizeof(b1)),
                 jtext(json_object_get(g, "port"), b2, sizeof(b2)));
        append(gws, sizeof(gws), ",", one);
    }
    const json_t *since = json_object_get(st, "since");
    const json_t *lerr = json_object_get(st, "lastError");
    const char *cells[] = {
        jtext(jget(o, "metadata.name"), b3, sizeof(b3)),
        gws[0] ? gws : NULL,
        st != NULL ? reachable_text(st, b1, sizeof(b1)) : NULL,
        since != NULL ? jtext(since, b2, sizeof(b2)) : NULL,
        json_is_string(lerr) && json_string_length(lerr) > 0 ? json_string_value(lerr) : NULL,
    };
    return ctl_table_add(t, cells);
}

int ctl_out_peers(FILE *out, const json_t *list)
{
    static const char *const hdr[] = {"NAME", "GATEWAYS", "REACHABLE", "SINCE", "LAST ERROR"};
    return print_objects(out, list, 5, hdr, peer_row);
}

static int export_row(struct ctl_table *t, const json_t *o)
{
    char b1[64], b2[64], b3[64];
    const char *cells[] = {
        jtext(jget(o, "metadata.name"), b1, sizeof(b1)),
        jtext(jget(o, "spec.host"), b2, sizeof(b2)),
        jtext(jget(o, "spec.port"), b3, sizeof(b3)),
    };
    return ctl_table_add(t, cells);
}

int ctl_out_exports(FILE *out, const json_t *list)
{
    static const char *const hdr[] = {"NAME", "HOST", "PORT"};
    return print_objects(out, list, 3, hdr, export_row);
}

static int import_row(struct ctl_table *t, const json_t *o)
{
    char srcs[256] = "", b1[64], b2[64], b3[64], b4[64], b5[64];
    const json_t *arr = jget(o, "spec.sources"), *s;
    const json_t *tp = jget(o, "spec.targetPort");
    size_t i;

    json_array_foreach(arr, i, s)
    {
        char one[300];
        const json_t *ns = json_object_get(s, "exportNamespace");
        if (json_is_string(ns) && json_string_length(ns) > 0)
            snprintf(one, sizeof(one), "%s/%s/%s", jtext(json_object_get(s, "peer"), b1, 64),
                     json_string_value(ns), jtext(json_object_get(s, "exportName"), b2, 64));
        else
            snprintf(one, sizeof(one), "%s/%s", jtext(json_object_get(s, "peer"), b1, 64),
                     jtext(json_object_get(s, "exportName"), b2, 64));
        append(srcs, sizeof(srcs), ",", one);
    }
    const char *cells[] = {
        jtext(jget(o, "metadata.name"), b1, sizeof(b1)),
        jtext(jget(o, "spec.port"), b2, sizeof(b2)),
        json_is_integer(tp) && json_integer_value(tp) != 0 ? jtext(tp, b3, sizeof(b3)) : NULL,
        srcs[0] ? srcs : NULL,
        jtext(jget(o, "spec.lbScheme"), b4, sizeof(b4)),
        /* Kubernetes mode: the import's Service (ready, pending, conflict, error) */
        jtext(jget(o, "status.service.state"), b5, sizeof(b5)),
    };
    return ctl_table_add(t, cells);
}

/* True when any import carries a Service status (the gateway runs in Kubernetes mode). */
static bool imports_have_service(const json_t *list)
{
    const json_t *items = ctl_out_items(list), *o;
    size_t i;

    if (items == NULL)
        return json_is_object(list) && jget(list, "status.service") != NULL;
    json_array_foreach(items, i, o)
    {
        if (jget(o, "status.service") != NULL)
            return true;
    }
    return false;
}

int ctl_out_imports(FILE *out, const json_t *list)
{
    static const char *const hdr[] = {"NAME", "PORT",   "TARGET PORT", "SOURCES (PEER/EXPORT)",
                                      "LB",   "SERVICE"};
    return print_objects(out, list, imports_have_service(list) ? 6 : 5, hdr, import_row);
}

/* "3 selector(s)" is useless; show the selectors compactly, truncated. */
static void selectors_text(const json_t *arr, char *buf, size_t len)
{
    char *s;

    buf[0] = '\0';
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        snprintf(buf, len, "-");
        return;
    }
    s = ctl_json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s == NULL) {
        snprintf(buf, len, "?");
        return;
    }
    append(buf, len, "", s);
    cl_mem_free(s);
}

static int policy_row(struct ctl_table *t, const json_t *o)
{
    char b1[64], b2[64], b3[64], from[128], to[128];

    selectors_text(jget(o, "spec.from"), from, sizeof(from));
    selectors_text(jget(o, "spec.to"), to, sizeof(to));
    const char *cells[] = {
        jtext(jget(o, "metadata.name"), b1, sizeof(b1)),
        jtext(json_object_get(o, "kind"), b2, sizeof(b2)),
        jtext(jget(o, "spec.action"), b3, sizeof(b3)),
        from,
        to,
    };
    return ctl_table_add(t, cells);
}

int ctl_out_policies(FILE *out, const json_t *list)
{
    static const char *const hdr[] = {"NAME", "KIND", "ACTION", "FROM", "TO"};
    return print_objects(out, list, 5, hdr, policy_row);
}

static int status_peer_row(struct ctl_table *t, const json_t *p)
{
    char b1[64], b2[64], b3[64];
    const json_t *since = json_object_get(p, "since");
    const json_t *lerr = json_object_get(p, "lastError");
    const char *cells[] = {
        jtext(json_object_get(p, "name"), b1, sizeof(b1)),
        reachable_text(p, b2, sizeof(b2)),
        since != NULL ? jtext(since, b3, sizeof(b3)) : NULL,
        json_is_string(lerr) && json_string_length(lerr) > 0 ? json_string_value(lerr) : NULL,
    };
    return ctl_table_add(t, cells);
}

/* A worker: its id, pid, the configuration revision it applied, and the certificate its public
 * port presents (the first 16 hex digits of its SHA-256, as the controlplane's `sha256` begins;
 * "-" from a worker that does not report one) with why replaced files were refused, if so. */
static int status_worker_row(struct ctl_table *t, const json_t *w)
{
    char b[3][32], sha[20] = "-";
    const json_t *c = json_object_get(w, "certificate");
    const char *s = json_string_value(json_object_get(c, "sha256"));
    const char *err = json_string_value(json_object_get(c, "reloadError"));

    if (s != NULL)
        snprintf(sha, sizeof(sha), "%.16s", s);
    const char *cells[] = {
        jtext(json_object_get(w, "id"), b[0], sizeof(b[0])),
        jtext(json_object_get(w, "pid"), b[1], sizeof(b[1])),
        jtext(json_object_get(w, "revision"), b[2], sizeof(b[2])),
        sha,
        err != NULL && err[0] != '\0' ? err : NULL,
    };
    return ctl_table_add(t, cells);
}

/* counters: {"imports":{name:{open,total,bytesIn,bytesOut,denied,errors,idleClosed}},
 * "exports":..,"peers":..}; a counter the gateway did not send shows as "-" */
static int print_counters(FILE *out, const json_t *counters)
{
    static const char *const hdr[] = {"COUNTERS",  "NAME",   "OPEN",   "TOTAL",      "BYTES IN",
                                      "BYTES OUT", "DENIED", "ERRORS", "IDLE CLOSED"};
    static const char *const keys[] = {"open",   "total",  "bytesIn",   "bytesOut",
                                       "denied", "errors", "idleClosed"};
    struct ctl_table t;
    const char *group, *name;
    const json_t *g, *o;
    int rc = 0;

    ctl_table_init(&t, 9, hdr);
    json_object_foreach((json_t *)counters, group, g)
    {
        json_object_foreach((json_t *)g, name, o)
        {
            char b[7][32];
            const char *cells[9] = {group, name};
            for (size_t i = 0; i < 7; i++)
                cells[i + 2] = jtext(json_object_get(o, keys[i]), b[i], sizeof(b[i]));
            if ((rc = ctl_table_add(&t, cells)) != 0)
                break;
        }
    }
    if (rc == 0 && t.nrows > 0) {
        fprintf(out, "\n");
        ctl_table_print(&t, out);
    }
    ctl_table_deinit(&t);
    return rc;
}

/* The scalars of a small object (objects, kubernetes): on one line, "k v, k v", when that fits
 * STATUS_LINE columns; else one "k v" per line under the first, nothing cut short (an error
 * message or a lease holder can be long). */
#define STATUS_LINE 100

/* jtext, with "-" for an empty string (no error, say) */
static const char *scalar_text(const json_t *v, char *buf, size_t len)
{
    const char *t = jtext(v, buf, len);

    return t[0] != '\0' ? t : "-";
}

static void print_scalars(FILE *out, const char *key, const json_t *v)
{
    size_t width = 13, n = 0; /* the key column and its space */
    const char *k2;
    const json_t *v2;
    char buf[64];

    json_object_foreach((json_t *)v, k2, v2)
    {
        if (json_is_object(v2) || json_is_array(v2))
            continue;
        width += (n > 0 ? 2 : 0) + strlen(k2) + 1 + strlen(scalar_text(v2, buf, sizeof(buf)));
        n++;
    }
    if (n == 0) {
        put_key(out, key);
        fputs("-\n", out);
        return;
    }
    put_key(out, key);
    n = 0;
    json_object_foreach((json_t *)v, k2, v2)
    {
        if (json_is_object(v2) || json_is_array(v2))
            continue;
        if (n > 0)
            fputs(width <= STATUS_LINE ? ", " : "\n             ", out);
        ctl_out_puts(out, k2);
        fputc(' ', out);
        ctl_out_puts(out, scalar_text(v2, buf, sizeof(buf)));
        n++;
    }
    fputc('\n', out);
}

int ctl_out_status(FILE *out, const json_t *st)
{
    static const char *const phdr[] = {"PEER", "REACHABLE", "SINCE", "LAST ERROR"};
    static const char *const whdr[] = {"WORKER", "PID", "REVISION", "CERTIFICATE", "RELOAD ERROR"};
    const json_t *peers = json_object_get(st, "peers");
    const json_t *workers = json_object_get(st, "workers");
    const json_t *counters = json_object_get(st, "counters");
    const char *key;
    const json_t *v;
    char buf[64];
    int rc = 0;

    /* scalars first, in the order the gateway sent them */
    json_object_foreach((json_t *)st, key, v)
    {
        if (json_is_array(v)) {
            /* lists other than peers (e.g. workers as objects) show as a count */
            if (strcmp(key, "peers") != 0) {
                put_key(out, key);
                fprintf(out, "%zu\n", json_array_size(v));
            }
            continue;
        }
        if (json_is_object(v)) {
            if (strcmp(key, "counters") == 0)
                continue;
            print_scalars(out, key, v);
            continue;
        }
        if (strcmp(key, "uptimeSeconds") == 0 && json_is_integer(v)) {
            long long sec = (long long)json_integer_value(v);
            fprintf(out, "%-12s %lldh%02lldm%02llds\n", "uptime", sec / 3600, sec / 60 % 60,
                    sec % 60);
            continue;
        }
        put_key(out, key);
        ctl_out_puts(out, jtext(v, buf, sizeof(buf)));
        fputc('\n', out);
    }
    if (json_is_array(workers) && json_is_object(json_array_get(workers, 0))) {
        fprintf(out, "\n");
        rc = print_objects(out, workers, 5, whdr, status_worker_row);
    }
    if (rc == 0 && json_is_array(peers)) {
        fprintf(out, "\n");
        rc = print_objects(out, peers, 4, phdr, status_peer_row);
    }
    if (rc == 0 && json_is_object(counters))
        rc = print_counters(out, counters);
    return rc;
}
