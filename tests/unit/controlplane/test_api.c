/* The REST handlers: every status code for every object type, validation messages, access. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cm.h"
#include "cp.h"
#include "testutil.h"

static struct cp cp;
static char *dir;
static char *admins[] = {"gwctl.east"};

static int setup(void **state)
{
    (void)state;
    memset(&cp, 0, sizeof(cp));
    dir = cl_test_mkdtemp("api");
    cp.name = "east";
    cp.admins = admins;
    cp.nadmins = 1;
    if (cp_store_open(dir, CP_STORE_DEFAULT_MIB, &cp.store) != 0 || cp_state_load(&cp) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cp_state_free(&cp);
    cp_store_close(cp.store);
    cl_test_rmtree(dir);
    cl_free(&dir);
    return 0;
}

/* Calls the handler; returns the status, and the body as compact text in out (may be NULL). */
static int call(const char *method, const char *path, const char *body, const char *who, char **out)
{
    struct cp_http_resp r = {.status = 0};

    cp_api_handle(&cp, method, path, who != NULL ? who : "gwctl.east", body,
                  body != NULL ? strlen(body) : 0, &r);
    if (out != NULL)
        *out = r.text != NULL ? cl_strdup(r.text) : r.body != NULL ? cl_json_dumps(r.body) : NULL;
    if (r.text != NULL) /* only the metrics are text, in the exposition format */
        assert_string_equal(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    cl_mem_free(r.text);
    json_decref(r.body);
    return r.status;
}

static void expect_400(const char *path, const char *body, const char *field, const char *msg)
{
    char *out = NULL;

    assert_int_equal(call("POST", path, body, NULL, &out), 400);
    assert_non_null(out);
    if (field != NULL) {
        char f[256];
        snprintf(f, sizeof(f), "\"field\":\"%s\"", field);
        if (strstr(out, f) == NULL)
            fail_msg("expected field %s in %s", field, out);
    }
    if (msg != NULL && strstr(out, msg) == NULL)
        fail_msg("expected '%s' in %s", msg, out);
    cl_free(&out);
}

static const struct {
    const char *type;
    const char *obj;
    const char *updated;
} kinds[] = {
    {"peers",
     "{\"metadata\":{\"name\":\"west\"},\"spec\":{\"gateways\":[{\"host\":\"10.0.0.2\","
     "\"port\":443}]}}",
     "{\"metadata\":{\"name\":\"west\"},\"spec\":{\"gateways\":[{\"host\":\"10.0.0.3\","
     "\"port\":8443}]}}"},
    {"exports", "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"host\":\"127.0.0.1\",\"port\":80}}",
     "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"host\":\"backend.local\",\"port\":8080}}"},
    {"imports",
     "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"port\":8080,\"sources\":[{\"peer\":\"west\"}]}}",
     "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"port\":8081,\"sources\":[{\"peer\":\"west\"},"
     "{\"peer\":\"north\"}],\"lbScheme\":\"static\"}}"},
    {"policies",
     "{\"kind\":\"AccessPolicy\",\"metadata\":{\"name\":\"allow-all\"},\"spec\":{\"action\":"
     "\"allow\",\"from\":[{\"workloadSelector\":{}}],\"to\":[{\"workloadSelector\":{}}]}}",
     "{\"kind\":\"PrivilegedAccessPolicy\",\"metadata\":{\"name\":\"allow-all\"},\"spec\":{"
     "\"action\":\"deny\"}}"},
};

static void lifecycle_every_type(void **state)
{
    (void)state;
    for (size_t k = 0; k < CL_ARRAY_SIZE(kinds); k++) {
        char path[64], one[96], *out = NULL;
        const char *name = strstr(kinds[k].obj, "\"name\":\"") + 8;
        snprintf(path, sizeof(path), "/api/v1/%s", kinds[k].type);
        snprintf(one, sizeof(one), "%s/%.*s", path, (int)(strchr(name, '"') - name), name);

        assert_int_equal(call("GET", path, NULL, NULL, &out), 200);
        assert_string_equal(out, "[]");
        cl_free(&out);
        assert_int_equal(call("GET", one, NULL, NULL, NULL), 404);
        assert_int_equal(call("PUT", one, kinds[k].obj, NULL, NULL), 404);
        assert_int_equal(call("DELETE", one, NULL, NULL, NULL), 404);
        assert_int_equal(call("POST", path, kinds[k].obj, NULL, NULL), 201);
        assert_int_equal(call("POST", path, kinds[k].obj, NULL, &out), 409);
        assert_non_null(strstr(out, "already exists"));
        cl_free(&out);
        /* get returns what was sent (plus defaults and, for peers, status) */
        assert_int_equal(call("GET", one, NULL, NULL, &out), 200);
        json_t *got = json_loads(out, 0, NULL), *sent = json_loads(kinds[k].obj, 0, NULL);
        json_object_del(got, "status");
        if (strcmp(kinds[k].type, "imports") == 0) {
            json_t *spec = json_object_get(got, "spec");
            assert_int_equal(json_integer_value(json_object_get(spec, "targetPort")), 8080);
            assert_string_equal(json_string_value(json_object_get(spec, "lbScheme")),
                                "round-robin");
            assert_string_equal(
                json_string_value(json_object_get(
                    json_array_get(json_object_get(spec, "sources"), 0), "exportName")),
                "web");
        } else {
            assert_true(json_equal(got, sent));
        }
        json_decref(got);
        json_decref(sent);
        cl_free(&out);
        assert_int_equal(call("GET", path, NULL, NULL, &out), 200);
        assert_true(out[0] == '[' && strlen(out) > 2);
        cl_free(&out);
        /* update: 204, and the body's name must match the path */
        assert_int_equal(call("PUT", one, kinds[k].updated, NULL, NULL), 204);
        char other[96];
        snprintf(other, sizeof(other), "%s/other", path);
        assert_int_equal(call("PUT", other, kinds[k].updated, NULL, &out), 400);
        assert_non_null(strstr(out, "metadata.name"));
        cl_free(&out);
        assert_int_equal(call("DELETE", one, NULL, NULL, NULL), 204);
        assert_int_equal(call("GET", one, NULL, NULL, NULL), 404);
    }
}

static void bad_bodies_name_the_field(void **state)
{
    char n64[80];
    (void)state;

    expect_400("/api/v1/exports", "{not json", NULL, "invalid JSON");
    expect_400("/api/v1/exports", "[]", NULL, "JSON object");
    expect_400("/api/v1/exports",
               "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"host\":\"h\",\"port\":1},\"x\":1}", "x",
               "unknown field");
    expect_400("/api/v1/exports",
               "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"host\":\"h\",\"port\":1,\"y\":2}}",
               "spec.y", "unknown field");
    expect_400("/api/v1/exports", "{\"metadata\":{\"name\":\"Bad_Name\"},\"spec\":{}}",
               "metadata.name", "DNS label");
    memset(n64, 'a', 64);
    n64[64] = '\0';
    char body[256];
    snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"%s\"},\"spec\":{}}", n64);
    expect_400("/api/v1/exports", body, "metadata.name", "DNS label");
    expect_400("/api/v1/exports", "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"host\":\"h\"}}",
               "spec.port", "required");
    expect_400("/api/v1/exports",
               "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"host\":\"h\",\"port\":70000}}",
               "spec.port", "between 1 and 65535");
    expect_400("/api/v1/exports",
               "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"host\":\"bad host\",\"port\":1}}",
               "spec.host", "hostname");
    expect_400("/api/v1/peers", "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"gateways\":[]}}",
               "spec.gateways", "at least one");
    expect_400("/api/v1/imports",
               "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"port\":1,\"sources\":[{\"peer\":\"p\"}],"
               "\"lbScheme\":\"fastest\"}}",
               "spec.lbScheme", "round-robin");
    expect_400(
        "/api/v1/imports",
        "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"port\":0,\"sources\":[{\"peer\":\"p\"}]}}",
        "spec.port", NULL);
    expect_400("/api/v1/policies",
               "{\"kind\":\"AccessPolicy\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"action\":"
               "\"allow\",\"from\":[{\"workloadSelector\":{\"matchExpressions\":[{\"key\":\"k\","
               "\"operator\":\"Like\"}]}}]}}",
               "spec.from[0].workloadSelector.matchExpressions[0].operator", "In, NotIn");
    expect_400("/api/v1/policies",
               "{\"kind\":\"AccessPolicy\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"action\":"
               "\"allow\",\"to\":[{\"workloadSelector\":{\"matchExpressions\":[{\"key\":\"k\","
               "\"operator\":\"In\"}]}}]}}",
               "spec.to[0].workloadSelector.matchExpressions[0].values", "non-empty");
    expect_400(
        "/api/v1/policies",
        "{\"kind\":\"Policy\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"action\":\"allow\"}}",
        "kind", "AccessPolicy");
    expect_400("/api/v1/policies",
               "{\"kind\":\"AccessPolicy\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"action\":"
               "\"maybe\"}}",
               "spec.action", "allow or deny");
    /* nothing was stored by any of them */
    char *out = NULL;
    assert_int_equal(call("GET", "/api/v1/exports", NULL, NULL, &out), 200);
    assert_string_equal(out, "[]");
    cl_free(&out);
}

static void access_and_routing(void **state)
{
    char *out = NULL;
    (void)state;

    assert_int_equal(call("GET", "/api/v1/exports", NULL, "west", &out), 403);
    assert_non_null(strstr(out, "may not use the management API"));
    cl_free(&out);
    assert_int_equal(call("GET", "/api/v1/peer/health", NULL, "west", NULL), 403);
    assert_int_equal(call("POST", "/api/v1/peers", kinds[0].obj, NULL, NULL), 201);
    assert_int_equal(call("GET", "/api/v1/peer/health", NULL, "west", &out), 200);
    assert_non_null(strstr(out, "\"name\":\"east\""));
    cl_free(&out);
    assert_int_equal(call("GET", "/api/v1/peer/exports", NULL, "west", &out), 200);
    assert_string_equal(out, "[]"); /* default deny: nothing reachable */
    cl_free(&out);
    assert_int_equal(call("GET", "/api/v1/peers", NULL, "west", NULL), 403); /* peers no admin */
    assert_int_equal(call("PATCH", "/api/v1/peers/west", NULL, NULL, NULL), 405);
    assert_int_equal(call("DELETE", "/api/v1/peers", NULL, NULL, NULL), 405);
    assert_int_equal(call("GET", "/api/v1/nothing", NULL, NULL, NULL), 404);
    assert_int_equal(call("GET", "/api/v2/peers", NULL, NULL, NULL), 404);
    assert_int_equal(call("GET", "/api/v1/peers/west/extra", NULL, NULL, NULL), 404);
    assert_int_equal(call("GET", "/api/v1/status", NULL, NULL, &out), 200);
    assert_non_null(strstr(out, "\"name\":\"east\""));
    assert_non_null(strstr(out, "\"reachable\""));
    cl_free(&out);
    /* a path that does not fit is refused whole: cut to 511 bytes it would list the peers */
    char longpath[600];
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    memcpy(longpath, "/api/v1/peers?", 14);
    assert_int_equal(call("GET", longpath, NULL, NULL, &out), 414);
    assert_non_null(strstr(out, "longer than 511 bytes"));
    cl_free(&out);
    longpath[511] = '\0'; /* 511 bytes: fits */
    assert_int_equal(call("GET", longpath, NULL, NULL, NULL), 200);
}

/* Lines of `text` that start with `prefix`; the first one's value (what follows the prefix) in
 * *value. */
static int lines_with(const char *text, const char *prefix, long long *value)
{
    int n = 0;
    size_t len = strlen(prefix);

    for (const char *l = text; l != NULL && *l != '\0'; l = strchr(l, '\n'), l = l ? l + 1 : l) {
        if (strncmp(l, prefix, len) == 0) {
            if (n++ == 0 && value != NULL)
                *value = strtoll(l + len, NULL, 10);
        }
    }
    return n;
}

static void metrics_exposition(void **state)
{
    char *out = NULL;
    long long v = -1;
    (void)state;

    assert_int_equal(call("POST", "/api/v1/peers", kinds[0].obj, NULL, NULL), 201);
    assert_int_equal(call("POST", "/api/v1/exports", kinds[1].obj, NULL, NULL), 201);
    json_object_set_new(cp.peer_status, "west", json_pack("{s:b}", "reachable", 1));
    json_decref(cp.counters);
    /* as summed from the workers' STATS: names there are the workers' word, hence escaped */
    cp.counters = json_pack("{s:{s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i}},s:{},s:{s:{s:i,s:i}}}", "imports",
                            "we\"b\\", "open", 2, "total", 7, "bytesIn", 300, "bytesOut", 1000,
                            "denied", 1, "errors", 3, "idleClosed", 4, "exports", "peers", "west",
                            "bytesOut", 1000, "total", 7);
    assert_non_null(cp.counters);
    assert_int_equal(call("GET", "/api/v1/metrics", NULL, NULL, &out), 200);
    assert_non_null(out);
    assert_int_equal(lines_with(out, "clusterlink_info{gateway=\"east\",version=\"", NULL), 1);
    assert_int_equal(lines_with(out, "clusterlink_objects{kind=\"peers\"} ", &v), 1);
    assert_int_equal(v, 1);
    assert_int_equal(lines_with(out, "clusterlink_objects{kind=\"imports\"} ", &v), 1);
    assert_int_equal(v, 0);
    assert_int_equal(lines_with(out, "clusterlink_peer_reachable{peer=\"west\"} ", &v), 1);
    assert_int_equal(v, 1);
    assert_int_equal(
        lines_with(out, "clusterlink_tunnels_open{kind=\"import\",name=\"we\\\"b\\\\\"} ", &v), 1);
    assert_int_equal(v, 2);
    lines_with(out, "clusterlink_connection_errors_total{kind=\"import\",name=\"we\\\"b\\\\\"} ",
               &v);
    assert_int_equal(v, 3);
    lines_with(out, "clusterlink_tunnels_idle_closed_total{kind=\"import\",name=\"we\\\"b\\\\\"} ",
               &v);
    assert_int_equal(v, 4);
    lines_with(
        out,
        "clusterlink_tunnel_bytes_total{kind=\"import\",name=\"we\\\"b\\\\\",direction=\"in\"} ",
        &v);
    assert_int_equal(v, 300);
    lines_with(
        out, "clusterlink_tunnel_bytes_total{kind=\"peer\",name=\"west\",direction=\"out\"} ", &v);
    assert_int_equal(v, 1000);
    assert_int_equal(lines_with(out, "clusterlink_tunnels_total{kind=\"peer\",name=\"west\"} ", &v),
                     1);
    assert_int_equal(v, 7);
    assert_int_equal(lines_with(out, "clusterlink_dataplane_workers ", &v), 1);
    assert_int_equal(v, 0); /* no IPC here */
    /* every family has its HELP and TYPE once, and every sample a family declared before it */
    assert_int_equal(lines_with(out, "# TYPE clusterlink_tunnels_total counter", NULL), 1);
    assert_int_equal(lines_with(out, "# TYPE clusterlink_tunnels_open gauge", NULL), 1);
    assert_int_equal(lines_with(out, "# TYPE ", NULL), lines_with(out, "# HELP ", NULL));
    for (const char *l = out; *l != '\0'; l = strchr(l, '\n') + 1) {
        char fam[128], decl[160];
        size_t n = strcspn(l, "{ ");
        if (l[0] == '#')
            continue;
        assert_true(n > 0 && n < sizeof(fam));
        memcpy(fam, l, n);
        fam[n] = '\0';
        snprintf(decl, sizeof(decl), "# TYPE %s ", fam);
        char *d = strstr(out, decl);
        assert_true(d != NULL && d < l);
        assert_non_null(strchr(l, '\n')); /* every line ends */
    }
    cl_free(&out);
    assert_int_equal(call("POST", "/api/v1/metrics", "{}", NULL, &out), 405);
    cl_free(&out);
    assert_int_equal(call("GET", "/api/v1/metrics", NULL, "west", &out), 403); /* peers no */
    cl_free(&out);
}

static void import_port_conflict(void **state)
{
    char *out = NULL;
    (void)state;

    assert_int_equal(call("POST", "/api/v1/imports", kinds[2].obj, NULL, NULL), 201);
    const char *other = "{\"metadata\":{\"name\":\"db\"},\"spec\":{\"port\":8080,\"sources\":[{"
                        "\"peer\":\"west\"}]}}";
    assert_int_equal(call("POST", "/api/v1/imports", other, NULL, &out), 409);
    assert_non_null(strstr(out, "spec.port"));
    cl_free(&out);
    /* updating an import to keep its own port is fine */
    assert_int_equal(call("PUT", "/api/v1/imports/web", kinds[2].obj, NULL, NULL), 204);
}

static json_int_t tport(const char *name)
{
    json_t *o = json_object_get(cp.objs[CP_KIND_IMPORT], name);
    return json_integer_value(json_object_get(json_object_get(o, "spec"), "targetPort"));
}

#define SVC                                                                  \
    "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"port\":80,%s\"sources\":[{" \
    "\"peer\":\"west\"}]}}"

static void target_ports(void **state)
{
    char body[256], *out = NULL;
    (void)state;

    /* outside Kubernetes the dataplane listens on the import's port */
    snprintf(body, sizeof(body), SVC, "a", "\"targetPort\":81,");
    assert_int_equal(call("POST", "/api/v1/imports", body, NULL, &out), 400);
    assert_non_null(strstr(out, "spec.targetPort"));
    cl_free(&out);
    /* Kubernetes mode: Service port 80 for both, target ports allocated and kept */
    cp.k8s = true;
    cp.port_lo = 20000;
    cp.port_hi = 20001;
    snprintf(body, sizeof(body), SVC, "a", "");
    assert_int_equal(call("POST", "/api/v1/imports", body, NULL, NULL), 201);
    snprintf(body, sizeof(body), SVC, "b", "\"targetPort\":0,");
    assert_int_equal(call("POST", "/api/v1/imports", body, NULL, NULL), 201);
    assert_int_equal(tport("a"), 20000);
    assert_int_equal(tport("b"), 20001);
    snprintf(body, sizeof(body), SVC, "c", "");
    assert_int_equal(call("POST", "/api/v1/imports", body, NULL, &out), 409); /* range full */
    assert_non_null(strstr(out, "no free target port"));
    cl_free(&out);
    snprintf(body, sizeof(body), SVC, "c", "\"targetPort\":20001,");
    assert_int_equal(call("POST", "/api/v1/imports", body, NULL, &out), 409); /* taken */
    assert_non_null(strstr(out, "import b"));
    cl_free(&out);
    /* the allocation survives a restart and an update */
    cp_state_free(&cp);
    assert_int_equal(cp_state_load(&cp), 0);
    snprintf(body, sizeof(body), SVC, "b", "");
    assert_int_equal(call("PUT", "/api/v1/imports/b", body, NULL, NULL), 204);
    assert_int_equal(tport("b"), 20001);
    /* deleting releases it */
    assert_int_equal(call("DELETE", "/api/v1/imports/a", NULL, NULL, NULL), 204);
    snprintf(body, sizeof(body), SVC, "c", "");
    assert_int_equal(call("POST", "/api/v1/imports", body, NULL, NULL), 201);
    assert_int_equal(tport("c"), 20000);
    cp.k8s = false;
}

/* A peer's answer to discovery: the list our own peer/exports route makes passes, anything else
 * is refused with the place of the fault. */
static void remote_exports_answer_checked(void **state)
{
    static const struct {
        const char *body, *field, *msg;
    } bad[] = {
        {"", "", ""}, /* not JSON at all: jansson's own message */
        {"{\"metadata\":{\"name\":\"a\"}}", "", "must be a JSON list of exports"},
        {"[1]", "[0]", "must be an object"},
        {"[{\"metadata\":{\"name\":\"a\"}},{}]", "[1].metadata", "required"},
        {"[{\"metadata\":{\"name\":7}}]", "[0].metadata.name", "string"},
        {"[{\"metadata\":{\"name\":\"\\u001b[2J\"}}]", "[0].metadata.name", "DNS label"},
        {"[{\"metadata\":{\"name\":\"a\",\"namespace\":\"Not_ok\"}}]", "[0].metadata.namespace",
         "DNS label"},
        {"[{\"metadata\":{\"name\":\"\xff\"}}]", "", ""}, /* not UTF-8 */
    };
    struct cl_jerr e;
    char *out = NULL;
    json_t *j;

    (void)state;
    for (size_t k = 0; k < CL_ARRAY_SIZE(kinds); k++) {
        char path[64];
        snprintf(path, sizeof(path), "/api/v1/%s", kinds[k].type);
        if (k != 2) /* peer west, export web, allow-all */
            assert_int_equal(call("POST", path, kinds[k].obj, NULL, NULL), 201);
    }
    assert_int_equal(call("GET", "/api/v1/peer/exports", NULL, "west", &out), 200);
    j = cp_model_remote_exports(out, strlen(out), &e);
    assert_non_null(j);
    assert_int_equal(json_array_size(j), 1);
    assert_string_equal(cp_model_name(json_array_get(j, 0)), "web");
    json_decref(j);
    cl_free(&out);
    /* more than we know of (a newer peer) is left alone; an empty list is a list */
    static const char newer[] = "[{\"metadata\":{\"name\":\"a\",\"namespace\":\"\"},\"spec\":{}}]";
    assert_non_null(j = cp_model_remote_exports(newer, strlen(newer), &e));
    json_decref(j);
    assert_non_null(j = cp_model_remote_exports("[]", 2, &e));
    json_decref(j);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&e, 0, sizeof(e));
        assert_null(cp_model_remote_exports(bad[i].body, strlen(bad[i].body), &e));
        assert_string_equal(e.field, bad[i].field);
        assert_true(e.msg[0] != '\0');
        assert_non_null(strstr(e.msg, bad[i].msg));
    }
}

/* Count of exports the API lists. */
static size_t nexports(void)
{
    char *out = NULL;
    json_t *j;
    size_t n;

    assert_int_equal(call("GET", "/api/v1/exports", NULL, NULL, &out), 200);
    j = cl_json_loadb(out, strlen(out), NULL);
    n = json_array_size(j);
    json_decref(j);
    cl_free(&out);
    return n;
}

static void reopen(size_t mib)
{
    cp_state_free(&cp);
    cp_store_close(cp.store);
    assert_int_equal(cp_store_open(dir, mib, &cp.store), 0);
    assert_int_equal(cp_state_load(&cp), 0);
}

/* POSTs export <prefix><i> of about 1 KiB (a 1,000-byte label); returns the status. */
static int post_padded(const char *prefix, int i, char **out)
{
    static char pad[1001];
    char body[1200];

    if (pad[0] == '\0')
        memset(pad, 'x', sizeof(pad) - 1);
    snprintf(body, sizeof(body),
             "{\"metadata\":{\"name\":\"%s%d\",\"labels\":{\"pad\":\"%s\"}},"
             "\"spec\":{\"host\":\"10.0.0.1\",\"port\":80}}",
             prefix, i, pad);
    return call("POST", "/api/v1/exports", body, NULL, out);
}

/* A full store refuses a change whole, says what to do, and loses nothing it had. */
#define NDEL 3 /* deletes before a put fits again: LMDB reuses a freed page two commits later */

static void full_store_refuses_whole(void **state)
{
    char path[64], msg[128], *out = NULL;
    int i, st = 0;
    size_t created = 0;
    (void)state;

    reopen(1); /* 1 MiB, exports of about 1 KiB each */
    for (i = 0; i < 5000; i++) {
        if ((st = post_padded("e", i, &out)) != 201)
            break;
        created++;
    }
    assert_int_equal(st, 507);
    assert_true(created > 100);
    snprintf(msg, sizeof(msg), "cannot store export e%d: the state store is full (1 MiB)", i);
    assert_non_null(strstr(out, msg));
    assert_non_null(strstr(out, "restart the controlplane with a larger --store-size"));
    cl_free(&out);
    /* nothing of the refused one, everything of the others: in memory and on disk */
    snprintf(path, sizeof(path), "/api/v1/exports/e%d", i);
    assert_int_equal(call("GET", path, NULL, NULL, NULL), 404);
    assert_int_equal(nexports(), created);
    reopen(1);
    assert_int_equal(nexports(), created);
    assert_int_equal(post_padded("e", i, NULL), 507); /* still full */
    /* deleting works in a full store, and makes room */
    for (int j = 0; j < NDEL; j++) {
        snprintf(path, sizeof(path), "/api/v1/exports/e%d", j);
        assert_int_equal(call("DELETE", path, NULL, NULL, NULL), 204);
    }
    snprintf(path, sizeof(path), "/api/v1/exports/e%d", i);
    assert_int_equal(post_padded("e", i, NULL), 201);
    assert_int_equal(call("GET", path, NULL, NULL, NULL), 200);
    /* the room a delete borrowed was given back: the limit is where it was (1 MiB more would
     * take hundreds of these) */
    int extra = 0;
    while (extra < 50 && post_padded("x", extra, NULL) == 201)
        extra++;
    assert_true(extra < NDEL + 5);
    /* and so does a larger size */
    reopen(4);
    assert_int_equal(nexports(), created - NDEL + 1 + (size_t)extra);
    for (int j = 0; j < 100; j++)
        assert_int_equal(post_padded("more", j, NULL), 201);
    assert_int_equal(nexports(), created - NDEL + 1 + (size_t)extra + 100);
    /* a size below what the files hold is raised to it: nothing is lost */
    reopen(1);
    assert_int_equal(nexports(), created - NDEL + 1 + (size_t)extra + 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(lifecycle_every_type, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_bodies_name_the_field, setup, teardown),
        cmocka_unit_test_setup_teardown(access_and_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_exposition, setup, teardown),
        cmocka_unit_test_setup_teardown(import_port_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(target_ports, setup, teardown),
        cmocka_unit_test_setup_teardown(remote_exports_answer_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(full_store_refuses_whole, setup, teardown),
    };
    cl_mem_install_jansson();
    cl_log_set_level(CL_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
