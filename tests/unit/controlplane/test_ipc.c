/* The controlplane's IPC handlers, driven over its real Unix socket by a fake worker. */
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cl/ipc.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cm.h"
#include "cp.h"
#include "testutil.h"

static struct cp cp;
static char *dir;
static char sock[512];
static char *admins[] = {"gwctl.east"};
static struct cl_ipc_conn *w;
static json_t *pushed; /* CONFIG / CONFIG_DELTA bodies received, in order */
static int types[16];
static size_t npushed;
static bool wclosed;

static void on_msg(struct cl_ipc_conn *c, const struct cl_ipc_msg *m, void *ud)
{
    (void)c;
    (void)ud;
    if (npushed < 16)
        types[npushed++] = m->type;
    json_array_append(pushed, m->body);
}

static void on_close(struct cl_ipc_conn *c, int err, void *ud)
{
    (void)c;
    (void)err;
    (void)ud;
    wclosed = true;
    w = NULL;
}

static const struct cl_ipc_conn_cbs cbs = {.on_msg = on_msg, .on_close = on_close};

struct reply {
    bool done;
    int err;
    uint16_t type;
    json_t *body;
};

static void on_reply(int err, const struct cl_ipc_msg *m, void *ud)
{
    struct reply *r = ud;

    r->done = true;
    r->err = err;
    if (m != NULL) {
        r->type = m->type;
        r->body = json_incref(m->body);
    }
}

static void run_until(const bool *flag)
{
    for (int i = 0; i < 10000 && !*flag; i++)
        uv_run(cp.loop, UV_RUN_ONCE);
    assert_true(*flag);
}

static void request(uint16_t type, const char *json, struct reply *r)
{
    json_t *b = json_loads(json, 0, NULL);

    memset(r, 0, sizeof(*r));
    assert_non_null(b);
    assert_int_equal(cl_ipc_request(w, type, b, 5000, on_reply, r), 0);
    json_decref(b);
    run_until(&r->done);
}

static int setup(void **state)
{
    (void)state;
    memset(&cp, 0, sizeof(cp));
    dir = cl_test_mkdtemp("ipc");
    snprintf(sock, sizeof(sock), "%s/cp.sock", dir);
    cp.loop = cl_malloc(sizeof(uv_loop_t));
    uv_loop_init(cp.loop);
    cp.name = "east";
    cp.admins = admins;
    cp.nadmins = 1;
    pushed = json_array();
    npushed = 0;
    wclosed = false;
    if (cp_store_open(dir, CP_STORE_DEFAULT_MIB, &cp.store) != 0 || cp_state_load(&cp) != 0 ||
        cp_ipc_start(&cp, sock, &cp.ipc) != 0)
        return -1;
    assert_int_equal(cl_ipc_conn_new(cp.loop, &cbs, NULL, &w), 0);
    assert_int_equal(cl_ipc_conn_connect(w, sock), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (w != NULL)
        cl_ipc_conn_close(w, 0);
    cp_ipc_stop(cp.ipc);
    uv_run(cp.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(cp.loop), 0);
    cl_mem_free(cp.loop);
    cp_state_free(&cp);
    cp_store_close(cp.store);
    json_decref(pushed);
    cl_test_rmtree(dir);
    cl_free(&dir);
    return 0;
}

static void put(enum cp_kind k, const char *name, const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    cp_model_defaults(k, o);
    assert_int_equal(cp_state_put(&cp, k, name, o), 0);
    json_decref(o);
}

static void hello_config_and_deltas(void **state)
{
    struct reply r;
    (void)state;

    put(CP_KIND_PEER, "west",
        "{\"metadata\":{\"name\":\"west\"},\"spec\":{\"gateways\":[{\"host\":\"10.0.0.2\","
        "\"port\":443}]}}");
    request(CL_IPC_HELLO, "{\"version\":1,\"worker\":3,\"pid\":77}", &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.type, CL_IPC_WELCOME);
    assert_string_equal(json_string_value(json_object_get(r.body, "name")), "east");
    assert_int_equal(json_integer_value(json_object_get(r.body, "version")), 1); /* as offered */
    json_decref(r.body);
    bool got = false;
    for (int i = 0; i < 1000 && npushed < 1; i++)
        uv_run(cp.loop, UV_RUN_ONCE);
    got = npushed == 1;
    assert_true(got);
    assert_int_equal(types[0], CL_IPC_CONFIG);
    json_t *snap = json_array_get(pushed, 0);
    assert_int_equal(json_array_size(json_object_get(snap, "peers")), 1);
    json_int_t rev = json_integer_value(json_object_get(snap, "revision"));
    /* a change becomes a CONFIG_DELTA on top of that revision */
    put(CP_KIND_IMPORT, "web",
        "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"port\":8080,\"sources\":[{\"peer\":"
        "\"west\"}]}}");
    for (int i = 0; i < 1000 && npushed < 2; i++)
        uv_run(cp.loop, UV_RUN_ONCE);
    assert_int_equal(types[1], CL_IPC_CONFIG_DELTA);
    json_t *d = json_array_get(pushed, 1);
    assert_int_equal(json_integer_value(json_object_get(d, "base")), rev);
    assert_int_equal(json_integer_value(json_object_get(d, "revision")), rev + 1);
    json_t *imp = json_array_get(json_object_get(json_object_get(d, "upsert"), "imports"), 0);
    assert_int_equal(json_integer_value(json_object_get(imp, "listenPort")), 8080);
    assert_int_equal(cp_state_del(&cp, CP_KIND_IMPORT, "web"), 0);
    for (int i = 0; i < 1000 && npushed < 3; i++)
        uv_run(cp.loop, UV_RUN_ONCE);
    d = json_array_get(pushed, 2);
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(d, "delete"), "imports"), 0)),
                        "web");
}

static void authz_and_rest(void **state)
{
    struct reply r;
    (void)state;

    request(CL_IPC_HELLO, "{\"version\":1,\"worker\":0,\"pid\":1}", &r);
    json_decref(r.body);
    put(CP_KIND_PEER, "west",
        "{\"metadata\":{\"name\":\"west\"},\"spec\":{\"gateways\":[{\"host\":\"10.0.0.2\","
        "\"port\":443}]}}");
    put(CP_KIND_EXPORT, "db",
        "{\"metadata\":{\"name\":\"db\"},\"spec\":{\"host\":\"127.0.0.1\",\"port\":5432}}");
    put(CP_KIND_IMPORT, "web",
        "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"port\":8080,\"sources\":[{\"peer\":"
        "\"west\"}]}}");
    /* default deny on both */
    request(CL_IPC_AUTHZ_EGRESS, "{\"import\":\"web\",\"client\":\"127.0.0.1:5\"}", &r);
    assert_false(json_is_true(json_object_get(r.body, "allow")));
    json_decref(r.body);
    request(CL_IPC_AUTHZ_INGRESS,
            "{\"peer\":\"west\",\"export\":\"db\",\"namespace\":\"\",\"attrs\":{}}", &r);
    assert_int_equal(json_integer_value(json_object_get(r.body, "status")), 403);
    json_decref(r.body);
    put(CP_KIND_POLICY, "allow",
        "{\"kind\":\"AccessPolicy\",\"metadata\":{\"name\":\"allow\"},\"spec\":{\"action\":"
        "\"allow\"}}");
    request(CL_IPC_AUTHZ_EGRESS, "{\"import\":\"web\",\"client\":\"127.0.0.1:5\"}", &r);
    assert_true(json_is_true(json_object_get(r.body, "allow")));
    json_t *c0 = json_array_get(json_object_get(r.body, "candidates"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "peer")), "west");
    assert_string_equal(json_string_value(json_object_get(c0, "export")), "web");
    json_decref(r.body);
    request(CL_IPC_AUTHZ_INGRESS,
            "{\"peer\":\"west\",\"export\":\"db\",\"namespace\":\"\",\"attrs\":{}}", &r);
    json_t *be = json_object_get(r.body, "backend");
    assert_int_equal(json_integer_value(json_object_get(be, "port")), 5432);
    json_decref(r.body);
    request(CL_IPC_AUTHZ_INGRESS,
            "{\"peer\":\"west\",\"export\":\"nope\",\"namespace\":\"\",\"attrs\":{}}", &r);
    assert_int_equal(json_integer_value(json_object_get(r.body, "status")), 404);
    json_decref(r.body);
    request(CL_IPC_AUTHZ_INGRESS,
            "{\"peer\":\"stranger\",\"export\":\"db\",\"namespace\":\"\",\"attrs\":{}}", &r);
    assert_int_equal(json_integer_value(json_object_get(r.body, "status")), 403);
    json_decref(r.body);
    request(CL_IPC_HTTP_REQUEST,
            "{\"method\":\"GET\",\"path\":\"/api/v1/exports/db\",\"identity\":\"gwctl.east\","
            "\"identities\":[],\"body\":\"\"}",
            &r);
    assert_int_equal(r.type, CL_IPC_HTTP_RESPONSE);
    assert_int_equal(json_integer_value(json_object_get(r.body, "status")), 200);
    assert_non_null(strstr(json_string_value(json_object_get(r.body, "body")), "5432"));
    json_decref(r.body);
    /* an invalid request is refused with the field named, the connection stays up */
    request(CL_IPC_AUTHZ_EGRESS, "{\"import\":\"web\"}", &r);
    assert_int_equal(r.err, CL_ESCHEMA);
    json_decref(r.body);
}

/* GET /api/v1/status as the admin, through the relay: the body, parsed (new). */
static json_t *status(void)
{
    struct reply r;
    json_t *st;

    request(CL_IPC_HTTP_REQUEST,
            "{\"method\":\"GET\",\"path\":\"/api/v1/status\",\"identity\":\"gwctl.east\","
            "\"identities\":[],\"body\":\"\"}",
            &r);
    assert_int_equal(json_integer_value(json_object_get(r.body, "status")), 200);
    st = json_loads(json_string_value(json_object_get(r.body, "body")), 0, NULL);
    assert_non_null(st);
    json_decref(r.body);
    return st;
}

static void send_stats(const char *json)
{
    json_t *b = json_loads(json, 0, NULL);

    assert_non_null(b);
    assert_int_equal(cl_ipc_send(w, CL_IPC_STATS, 0, 0, b), 0);
    json_decref(b);
}

static void version_too_old_refused(void **state)
{
    struct reply r;
    (void)state;

    request(CL_IPC_HELLO, "{\"version\":0,\"worker\":0,\"pid\":1}", &r);
    assert_int_equal(r.err, CL_EVERSION);
    json_decref(r.body);
    request(CL_IPC_AUTHZ_EGRESS, "{\"import\":\"web\",\"client\":\"127.0.0.1:5\"}", &r);
    assert_int_equal(r.err, CL_EVERSION); /* HELLO first */
    json_decref(r.body);
    /* the connection stays: a worker may offer another version */
    request(CL_IPC_HELLO, "{\"version\":1,\"worker\":0,\"pid\":1}", &r);
    assert_int_equal(r.err, 0);
    json_decref(r.body);
}

/* A newer worker is answered with the newest version both speak, and its certificate (STATS,
 * version 2) shows per worker in the status. */
static void newer_worker_gets_ours_and_reports_its_certificate(void **state)
{
    struct reply r;
    json_t *st, *wk;
    (void)state;

    request(CL_IPC_HELLO, "{\"version\":9,\"worker\":4,\"pid\":1}", &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(json_integer_value(json_object_get(r.body, "version")), CL_IPC_VERSION);
    json_decref(r.body);
    send_stats("{\"worker\":4,\"imports\":{},\"exports\":{},\"peers\":{},\"certificate\":"
               "{\"sha256\":\"ab12\",\"notBefore\":0,\"notAfter\":1893456000,"
               "\"reloadError\":\"key does not match\"}}");
    st = status(); /* answered after the STATS before it, on this one connection */
    wk = json_array_get(json_object_get(st, "workers"), 0);
    assert_int_equal(json_integer_value(json_object_get(wk, "id")), 4);
    assert_int_equal(json_integer_value(json_object_get(wk, "ipcVersion")), CL_IPC_VERSION);
    json_t *c = json_object_get(wk, "certificate");
    assert_string_equal(json_string_value(json_object_get(c, "sha256")), "ab12");
    assert_string_equal(json_string_value(json_object_get(c, "notBefore")), "1970-01-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(c, "notAfter")), "2030-01-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(c, "reloadError")), "key does not match");
    json_decref(st);
    /* a version-1 worker (no certificate in its STATS) shows none */
    send_stats("{\"worker\":4,\"imports\":{},\"exports\":{},\"peers\":{}}");
    st = status();
    wk = json_array_get(json_object_get(st, "workers"), 0);
    assert_null(json_object_get(wk, "certificate"));
    json_decref(st);
    /* a malformed certificate is refused whole: the last good STATS stands */
    send_stats("{\"worker\":4,\"imports\":{},\"exports\":{},\"peers\":{},\"certificate\":"
               "{\"sha256\":1,\"reloadError\":\"\"}}");
    st = status();
    wk = json_array_get(json_object_get(st, "workers"), 0);
    assert_null(json_object_get(wk, "certificate"));
    json_decref(st);
}

/* Closes the fake worker's connection, and connects a new one (another worker process) that
 * says HELLO as worker `id` of process `pid`; returns once the controlplane has seen both. */
static void next_worker(int id, int pid, size_t connected)
{
    char hello[96];
    struct reply r;
    json_t *st = NULL;

    if (w != NULL) {
        wclosed = false;
        cl_ipc_conn_close(w, 0);
        run_until(&wclosed);
    }
    assert_int_equal(cl_ipc_conn_new(cp.loop, &cbs, NULL, &w), 0);
    assert_int_equal(cl_ipc_conn_connect(w, sock), 0);
    snprintf(hello, sizeof(hello), "{\"version\":2,\"worker\":%d,\"pid\":%d}", id, pid);
    request(CL_IPC_HELLO, hello, &r);
    assert_int_equal(r.err, 0);
    json_decref(r.body);
    for (int i = 0; i < 1000; i++) { /* the old connection's end may come after this HELLO */
        json_decref(st);
        st = status();
        if (json_array_size(json_object_get(st, "workers")) == connected)
            break;
        uv_run(cp.loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(json_array_size(json_object_get(st, "workers")), connected);
    json_decref(st);
}

static void web_stats(int id, int open, int total)
{
    char b[256];

    snprintf(b, sizeof(b),
             "{\"worker\":%d,\"imports\":{\"web\":{\"open\":%d,\"total\":%d,\"bytesIn\":%d,"
             "\"bytesOut\":0,\"denied\":0,\"errors\":0}},\"exports\":{},\"peers\":{}}",
             id, open, total, 10 * total);
    send_stats(b);
}

/* The import's counters in GET /status: open, total and bytesIn. */
static void assert_web(json_int_t open, json_int_t total)
{
    json_t *st = status();
    json_t *web =
        json_object_get(json_object_get(json_object_get(st, "counters"), "imports"), "web");

    assert_int_equal(json_integer_value(json_object_get(web, "open")), open);
    assert_int_equal(json_integer_value(json_object_get(web, "total")), total);
    assert_int_equal(json_integer_value(json_object_get(web, "bytesIn")), 10 * total);
    json_decref(st);
}

/* Totals never go down: a restarted worker (its predecessor's number, a new process) adds to
 * what the old one counted, whose tunnels are gone with it; two dataplanes' workers of the same
 * number add up; a worker that reconnects takes its own totals back rather than counting twice;
 * and workers gone long ago are folded into one sum, not forgotten. */
static void counters_survive_workers(void **state)
{
    (void)state;

    next_worker(0, 100, 1);
    web_stats(0, 2, 5);
    assert_web(2, 5);
    next_worker(0, 101, 1); /* worker 0 restarted by its master */
    assert_web(0, 5);
    web_stats(0, 1, 1);
    assert_web(1, 6);
    /* another dataplane's worker 0, beside it: the connection to 101 stays */
    struct cl_ipc_conn *w101 = w;
    w = NULL;
    next_worker(0, 200, 2);
    web_stats(0, 0, 3);
    assert_web(1, 9);
    /* process 100 comes back (its connection had dropped): its 5 are not counted twice */
    next_worker(0, 100, 2); /* closes 200's connection: 3 stay */
    assert_web(3, 9);
    web_stats(0, 2, 7);
    assert_web(3, 11);
    /* many more come and go: past the ones kept apart, the oldest are summed into one */
    for (int i = 1; i <= 70; i++) {
        next_worker(i, 1000 + i, 2);
        web_stats(i, 1, 1);
    }
    next_worker(71, 1071, 2);
    assert_web(1, 11 + 70);
    cl_ipc_conn_close(w101, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hello_config_and_deltas, setup, teardown),
        cmocka_unit_test_setup_teardown(authz_and_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(version_too_old_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(newer_worker_gets_ours_and_reports_its_certificate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(counters_survive_workers, setup, teardown),
    };
    cl_mem_install_jansson();
    cl_log_set_level(CL_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
