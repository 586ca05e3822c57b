/* gwctl argument parsing, the request each verb sends, and how failures are reported. */
#include <stdio.h>
#include <string.h>

#include "cl/mem.h"
#include "cm.h"
#include "ctl.h"
#include "ctl_cmd.h"
#include "fake.h"
#include "rows.h"
#include "testutil.h"

struct fx {
    char *dir; /* first, for group_new and group_free (fake.h) */
    char cfg[512];
};

static int setup(void **state)
{
    struct fx *f = group_new(sizeof(*f), "gwctl-args");

    if (f == NULL)
        return -1;
    snprintf(f->cfg, sizeof(f->cfg), "%s/config.json", f->dir);
    write_two_contexts(f->cfg);
    cl_mem_install_jansson();
    *state = f;
    return 0;
}

static int per_test(void **state)
{
    (void)state;
    fake_reset();
    return 0;
}

static int parse(struct ctl_args *a, char *err, size_t errlen, const char *const *args)
{
    char *argv[32];
    int argc = 0;

    argv[argc++] = (char *)"gwctl";
    for (; *args != NULL; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    return ctl_args_parse(argc, argv, a, err, errlen);
}

#define PARSE_OK(a, ...)                              \
    do {                                              \
        const char *const v_[] = {__VA_ARGS__, NULL}; \
        char e_[256];                                 \
        int rc_ = parse((a), e_, sizeof(e_), v_);     \
        if (rc_ != 0)                                 \
            fail_msg("parse failed: %s", e_);         \
    } while (0)

/* Expects a usage error whose message contains `needle`. */
static void parse_err(const char *needle, const char *const *args)
{
    struct ctl_args a;
    char err[256];

    assert_int_equal(parse(&a, err, sizeof(err), args), CL_EINVAL);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
}

#define PARSE_ERR(needle, ...)                        \
    do {                                              \
        const char *const v_[] = {__VA_ARGS__, NULL}; \
        parse_err((needle), v_);                      \
    } while (0)

static void parse_flags_and_forms(void **state)
{
    struct ctl_args a;
    const char *const *v;
    (void)state;

    PARSE_OK(&a, "create", "peer", "--name", "p1", "--host", "h1", "--port", "1", "--host=h2",
             "--port=2");
    assert_string_equal(a.cmd->verb, "create");
    assert_string_equal(a.cmd->type, "peer");
    assert_string_equal(ctl_args_str(&a, "name"), "p1");
    assert_int_equal(ctl_args_multi(&a, "host", &v), 2);
    assert_string_equal(v[0], "h1");
    assert_string_equal(v[1], "h2");
    assert_int_equal(ctl_args_multi(&a, "port", &v), 2);
    assert_string_equal(v[1], "2");
    assert_null(a.context);

    PARSE_OK(&a, "--context", "west", "get", "import", "-o", "json");
    assert_string_equal(a.context, "west");
    assert_string_equal(ctl_args_str(&a, "output"), "json");
    assert_null(ctl_args_str(&a, "name"));

    PARSE_OK(&a, "get", "peer", "-ojson", "--context=east", "--name", "x");
    assert_string_equal(ctl_args_str(&a, "output"), "json");
    assert_string_equal(a.context, "east");

    PARSE_OK(&a, "status");
    assert_string_equal(a.cmd->verb, "status");
    assert_null(a.cmd->type);

    PARSE_OK(&a, "config", "use-context", "west");
    assert_int_equal(a.npos, 1);
    assert_string_equal(a.pos[0], "west");

    PARSE_OK(&a, "create", "policy", "--file", "-");
    assert_string_equal(ctl_args_str(&a, "file"), "-");
    PARSE_OK(&a, "create", "policy", "-f", "p.yaml");
    assert_string_equal(ctl_args_str(&a, "file"), "p.yaml");

    PARSE_OK(&a, "create", "import", "--name", "i", "--port", "80", "--peer", "a", "--peer", "b",
             "--lb", "static", "--export-name", "e", "--export-namespace", "ns", "--target-port",
             "9000");
    assert_int_equal(ctl_args_multi(&a, "peer", &v), 2);
    assert_string_equal(ctl_args_str(&a, "target-port"), "9000");

    PARSE_OK(&a, "create", "fabric", "--name", "f", "--dir", "/tmp", "--days", "10");
    PARSE_OK(&a, "create", "peer-cert", "--name", "p", "--fabric", "/tmp/f");
    PARSE_OK(&a, "init", "--id", "p", "--host", "h", "--port", "1", "--ca", "c", "--cert", "c",
             "--key", "k");
    PARSE_OK(&a, "delete", "export", "--name", "e");
    PARSE_OK(&a, "get", "all");
    PARSE_OK(&a, "get", "remote-exports", "--peer", "p");
    PARSE_OK(&a, "config", "current-context");
    PARSE_OK(&a, "--context", "west", "config", "current-context");
    assert_string_equal(a.context, "west");
    PARSE_OK(&a, "config", "get-contexts");
    PARSE_OK(&a, "version");
    /* a value may start with a single dash */
    PARSE_OK(&a, "create", "export", "--name", "-x", "--port", "1");
    assert_string_equal(ctl_args_str(&a, "name"), "-x");
}

static void parse_help(void **state)
{
    struct ctl_args a;
    (void)state;

    PARSE_OK(&a, "--help");
    assert_true(a.help);
    assert_null(a.cmd);
    PARSE_OK(&a, "create", "--help");
    assert_true(a.help);
    assert_string_equal(a.verb, "create");
    assert_null(a.cmd);
    PARSE_OK(&a, "create", "import", "-h");
    assert_true(a.help);
    assert_string_equal(a.cmd->type, "import");
    /* --help wins over missing flags and even bad ones */
    PARSE_OK(&a, "create", "import", "--bogus", "--help");
    assert_true(a.help);
}

static void parse_errors(void **state)
{
    (void)state;
    {
        struct ctl_args a;
        char err[256];
        const char *const none[] = {NULL};
        assert_int_equal(parse(&a, err, sizeof(err), none), CL_EINVAL);
        assert_non_null(strstr(err, "no command"));
    }
    PARSE_ERR("unknown command \"frobnicate\"", "frobnicate");
    PARSE_ERR("\"create\" needs a type: fabric, peer-cert, peer, export, import, policy", "create");
    PARSE_ERR("unknown type \"peers\" for \"get\"", "get", "peers");
    PARSE_ERR("unknown flag --bogus for \"create peer\"", "create", "peer", "--name", "x",
              "--bogus", "1");
    PARSE_ERR("unknown flag -x", "get", "peer", "-x", "1");
    PARSE_ERR("missing --name", "create", "peer", "--host", "h");
    PARSE_ERR("missing --host", "create", "peer", "--name", "p");
    PARSE_ERR("missing --peer", "create", "import", "--name", "i", "--port", "1");
    PARSE_ERR("--name given more than once", "delete", "peer", "--name", "a", "--name", "b");
    PARSE_ERR("--name needs a value", "delete", "peer", "--name");
    PARSE_ERR("--name needs a value", "delete", "peer", "--name", "--context", "x");
    PARSE_ERR("--context needs a value", "status", "--context");
    PARSE_ERR("unexpected argument \"extra\"", "status", "extra");
    PARSE_ERR("missing ID", "config", "use-context");
    PARSE_ERR("flags follow the command", "--name", "x", "create", "peer");
    PARSE_ERR("comes before the type", "create", "--name", "x", "peer");
    /* --context only where a context is used: elsewhere it would be silently ignored */
    PARSE_ERR("--context does not apply to \"version\"", "--context", "x", "version");
    PARSE_ERR("--context does not apply to \"init\"", "init", "--id", "p", "--host", "h", "--port",
              "1", "--ca", "c", "--cert", "c", "--key", "k", "--context", "x");
    PARSE_ERR("--context does not apply to \"create fabric\"", "create", "fabric", "--name", "f",
              "--context=x");
    PARSE_ERR("--context does not apply to \"config use-context\"", "config", "use-context", "a",
              "--context", "b");
    PARSE_ERR("--context does not apply to \"config get-contexts\"", "--context", "x", "config",
              "get-contexts");
}

static void req_is(int i, const char *method, const char *path, const char *body)
{
    assert_true(fake.nreq > i);
    assert_string_equal(fake.req[i].method, method);
    assert_string_equal(fake.req[i].path, path);
    if (body == NULL)
        assert_null(fake.req[i].body);
    else
        assert_string_equal(fake.req[i].body, body);
}

static void create_peer_request(void **state)
{
    struct fx *f = *state;

    fake_answer(201, "{}");
    assert_int_equal(run_ctl(f->cfg, "create", "peer", "--name", "west", "--host", "10.0.0.2",
                             "--port", "443", "--host", "gw2.west", "--port", "8443", NULL),
                     0);
    req_is(0, "POST", "/api/v1/peers",
           "{\"metadata\":{\"name\":\"west\"},\"spec\":{\"gateways\":[{\"host\":\"10.0.0.2\","
           "\"port\":443},{\"host\":\"gw2.west\",\"port\":8443}]}}");
    assert_string_equal(out_buf, "peer \"west\" created\n");
    assert_string_equal(err_buf, "");
    assert_string_equal(fake.opened_id, "east"); // the current context
    assert_int_equal(fake.nclose, 1);

    /* one port for every host; no port: 443 */
    fake_reset();
    fake_answer(204, "");
    assert_int_equal(run_ctl(f->cfg, "update", "peer", "--name", "west", "--host", "a", "--host",
                             "b", "--port", "7", "--context", "west", NULL),
                     0);
    req_is(0, "PUT", "/api/v1/peers/west",
           "{\"metadata\":{\"name\":\"west\"},\"spec\":{\"gateways\":[{\"host\":\"a\",\"port\":7},"
           "{\"host\":\"b\",\"port\":7}]}}");
    assert_string_equal(fake.opened_id, "west");
    assert_string_equal(out_buf, "peer \"west\" updated\n");
    fake_reset();
    fake_answer(201, "");
    assert_int_equal(run_ctl(f->cfg, "create", "peer", "--name", "x", "--host", "a", NULL), 0);
    req_is(
        0, "POST", "/api/v1/peers",
        "{\"metadata\":{\"name\":\"x\"},\"spec\":{\"gateways\":[{\"host\":\"a\",\"port\":443}]}}");
}

static void bad_values_send_nothing(void **state)
{
    struct fx *f = *state;

    assert_int_equal(run_ctl(f->cfg, "create", "peer", "--name", "x", "--host", "a", "--host", "b",
                             "--port", "1", "--port", "2", "--port", "3", NULL),
                     1);
    assert_non_null(strstr(err_buf, "one --port per --host"));
    assert_int_equal(run_ctl(f->cfg, "create", "peer", "--name", "Bad_Name", "--host", "a", NULL),
                     1);
    assert_non_null(strstr(err_buf, "not a valid peer name"));
    assert_int_equal(run_ctl(f->cfg, "create", "export", "--name", "e", "--port", "70000", NULL),
                     1);
    assert_string_equal(err_buf, "error: --port \"70000\" is not a port number (1-65535)\n");
    assert_int_equal(run_ctl(f->cfg, "create", "import", "--name", "i", "--port", "1", "--peer",
                             "a", "--lb", "fastest", NULL),
                     1);
    assert_non_null(strstr(err_buf, "--lb \"fastest\""));
    assert_int_equal(run_ctl(f->cfg, "create", "import", "--name", "i", "--port", "1", "--peer",
                             "a", "--peer", "a", NULL),
                     1);
    assert_non_null(strstr(err_buf, "given twice"));
    assert_int_equal(run_ctl(f->cfg, "get", "peer", "-o", "yaml", NULL), 1);
    assert_non_null(strstr(err_buf, "-o yaml"));
    assert_int_equal(fake.nreq, 0);
    /* usage errors exit 2 and print one line */
    assert_int_equal(run_ctl(f->cfg, "create", "peer", NULL), CTL_EXIT_USAGE);
    assert_string_equal(err_buf, "error: missing --name\n");
    assert_int_equal(run_ctl(f->cfg, "create", NULL), CTL_EXIT_USAGE);
    assert_string_equal(err_buf, "error: \"create\" needs a type: fabric, peer-cert, peer, "
                                 "export, import, policy\n");
}

static void export_and_import_requests(void **state)
{
    struct fx *f = *state;

    fake_answer(201, "");
    assert_int_equal(run_ctl(f->cfg, "create", "export", "--name", "echo", "--host", "127.0.0.1",
                             "--port", "7000", NULL),
                     0);
    req_is(0, "POST", "/api/v1/exports",
           "{\"metadata\":{\"name\":\"echo\"},\"spec\":{\"host\":\"127.0.0.1\",\"port\":7000}}");
    fake_reset();
    fake_answer(201, "");
    assert_int_equal(run_ctl(f->cfg, "create", "import", "--name", "echo", "--port", "9000",
                             "--peer", "west", NULL),
                     0);
    req_is(0, "POST", "/api/v1/imports",
           "{\"metadata\":{\"name\":\"echo\"},\"spec\":{\"port\":9000,\"sources\":[{\"peer\":"
           "\"west\",\"exportName\":\"echo\"}],\"lbScheme\":\"round-robin\"}}");
    fake_reset();
    fake_answer(204, "");
    assert_int_equal(run_ctl(f->cfg, "update", "import", "--name", "echo", "--port", "9000",
                             "--target-port", "19000", "--peer", "west", "--peer", "north",
                             "--export-name", "srv", "--export-namespace", "prod", "--lb", "static",
                             NULL),
                     0);
    req_is(0, "PUT", "/api/v1/imports/echo",
           "{\"metadata\":{\"name\":\"echo\"},\"spec\":{\"port\":9000,\"targetPort\":19000,"
           "\"sources\":[{\"peer\":\"west\",\"exportName\":\"srv\",\"exportNamespace\":\"prod\"},"
           "{\"peer\":\"north\",\"exportName\":\"srv\",\"exportNamespace\":\"prod\"}],"
           "\"lbScheme\":\"static\"}}");
}

static void delete_and_get_requests(void **state)
{
    struct fx *f = *state;

    fake_answer(204, "");
    assert_int_equal(run_ctl(f->cfg, "delete", "policy", "--name", "deny a/b", NULL), 0);
    req_is(0, "DELETE", "/api/v1/policies/deny%20a%2Fb", NULL);
    assert_string_equal(out_buf, "policy \"deny a/b\" deleted\n");

    fake_reset();
    fake_answer(200, "[{\"metadata\":{\"name\":\"e\"},\"spec\":{\"host\":\"h\",\"port\":1}}]");
    assert_int_equal(run_ctl(f->cfg, "get", "export", "-o", "json", NULL), 0);
    req_is(0, "GET", "/api/v1/exports", NULL);
    assert_string_equal(out_buf, "[\n  {\n    \"metadata\": {\n      \"name\": \"e\"\n    },\n"
                                 "    \"spec\": {\n      \"host\": \"h\",\n      \"port\": 1\n"
                                 "    }\n  }\n]\n");

    fake_reset();
    fake_answer(200, "{\"metadata\":{\"name\":\"e\"},\"spec\":{\"host\":\"h\",\"port\":1}}");
    assert_int_equal(run_ctl(f->cfg, "get", "export", "--name", "e", NULL), 0);
    req_is(0, "GET", "/api/v1/exports/e", NULL);
    assert_string_equal(out_buf, "NAME   HOST   PORT\ne      h      1\n");

    fake_reset();
    fake_answer(200, "[]");
    assert_int_equal(run_ctl(f->cfg, "get", "all", "-o", "json", NULL), 0);
    assert_int_equal(fake.nreq, 4);
    assert_int_equal(fake.nopen, 1); // one connection for all four
    req_is(0, "GET", "/api/v1/peers", NULL);
    req_is(1, "GET", "/api/v1/exports", NULL);
    req_is(2, "GET", "/api/v1/imports", NULL);
    req_is(3, "GET", "/api/v1/policies", NULL);
    assert_string_equal(out_buf, "{\n  \"peers\": [],\n  \"exports\": [],\n  \"imports\": [],\n"
                                 "  \"policies\": []\n}\n");

    fake_reset();
    fake_answer(200, "{\"name\":\"east\",\"version\":\"0.1.0\"}");
    assert_int_equal(run_ctl(f->cfg, "status", "-o", "json", NULL), 0);
    req_is(0, "GET", "/api/v1/status", NULL);
    assert_string_equal(out_buf, "{\n  \"name\": \"east\",\n  \"version\": \"0.1.0\"\n}\n");
}

static void policy_from_yaml_and_stdin(void **state)
{
    struct fx *f = *state;
    char path[600];
    const char *yaml = "kind: AccessPolicy\n"
                       "metadata:\n  name: allow-all\n"
                       "spec:\n  action: allow\n"
                       "  from:\n    - workloadSelector: {}\n"
                       "  to:\n    - workloadSelector:\n        matchLabels:\n"
                       "          export.clusterlink.net/name: \"echo\"\n";
    const char *json = "{\"kind\":\"PrivilegedAccessPolicy\",\"metadata\":{\"name\":\"deny\"},"
                       "\"spec\":{\"action\":\"deny\",\"from\":[],\"to\":[]}}";

    snprintf(path, sizeof(path), "%s/p.yaml", f->dir);
    assert_int_equal(cl_test_write_file(path, yaml, strlen(yaml)), 0);
    fake_answer(201, "");
    assert_int_equal(run_ctl(f->cfg, "create", "policy", "--file", path, NULL), 0);
    req_is(0, "POST", "/api/v1/policies",
           "{\"kind\":\"AccessPolicy\",\"metadata\":{\"name\":\"allow-all\"},\"spec\":{\"action\":"
           "\"allow\",\"from\":[{\"workloadSelector\":{}}],\"to\":[{\"workloadSelector\":{"
           "\"matchLabels\":{\"export.clusterlink.net/name\":\"echo\"}}}]}}");
    assert_string_equal(out_buf, "policy \"allow-all\" created\n");

    fake_reset();
    fake_answer(204, "");
    in_file = fmemopen((void *)json, strlen(json), "r");
    assert_non_null(in_file);
    assert_int_equal(run_ctl(f->cfg, "update", "policy", "--file", "-", NULL), 0);
    fclose(in_file);
    in_file = NULL;
    req_is(0, "PUT", "/api/v1/policies/deny", json);

    assert_int_equal(run_ctl(f->cfg, "create", "policy", "--file", "/nonexistent/p.yaml", NULL), 1);
    assert_non_null(strstr(err_buf, "cannot open /nonexistent/p.yaml"));
}

#define PP(s) ctl_policy_parse((s), strlen(s), err, sizeof(err))

static void policy_parse_rules(void **state)
{
    char err[256];
    json_t *j;
    (void)state;

    j = PP("kind: AccessPolicy\nmetadata: {name: p}\nspec:\n  n: 5\n  f: 1.5\n"
           "  b: true\n  z: ~\n  s: '5'\n  t: yes\n");
    assert_non_null(j);
    json_t *spec = json_object_get(j, "spec");
    assert_true(json_is_integer(json_object_get(spec, "n")));
    assert_true(json_is_real(json_object_get(spec, "f")));
    assert_true(json_is_true(json_object_get(spec, "b")));
    assert_true(json_is_null(json_object_get(spec, "z")));
    assert_string_equal(json_string_value(json_object_get(spec, "s")), "5");
    assert_string_equal(json_string_value(json_object_get(spec, "t")), "yes"); // YAML 1.2
    json_decref(j);

    assert_null(PP("kind: Policy\nmetadata: {name: p}\nspec: {}\n"));
    assert_non_null(strstr(err, "kind must be"));
    assert_null(PP("kind: AccessPolicy\nspec: {}\n"));
    assert_non_null(strstr(err, "metadata.name"));
    assert_null(PP("a: [1, 2\n"));
    assert_non_null(strstr(err, "invalid YAML at line"));
    assert_null(PP("{\"kind\": }"));
    assert_non_null(strstr(err, "invalid JSON"));
    assert_null(PP("a: 1\na: 2\n"));
    assert_non_null(strstr(err, "duplicate key \"a\""));
    assert_null(PP("kind: AccessPolicy\n---\nkind: AccessPolicy\n"));
    assert_null(PP(""));
    assert_non_null(strstr(err, "empty"));
    /* aliases that would expand to a billion values */
    assert_null(PP("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                   "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                   "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                   "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                   "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                   "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
                   "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n"));
    assert_non_null(strstr(err, "too large"));
}

static void server_errors_are_one_line(void **state)
{
    /* the gateway's answer to the command, and the one line gwctl prints (exit 1) */
    static const struct {
        const char *args[8];
        int status;
        const char *body, *err;
    } rows[] = {
        {{"create", "export", "--name", "e", "--port", "1"},
         400,
         "{\"error\":{\"field\":\"spec.port\",\"message\":\"port must be 1..65535\"}}",
         "error: spec.port: port must be 1..65535\n"},
        {{"create", "export", "--name", "e", "--port", "1"},
         409,
         "{\"error\":{\"field\":\"\",\"message\":\"export \\\"e\\\" exists\"}}",
         "error: export \"e\" exists\n"},
        {{"delete", "peer", "--name", "x"},
         404,
         "{\"error\":{\"message\":\"no peer \\\"x\\\"\\nsecond line\"}}",
         "error: no peer \"x\" second line\n"},
        {{"get", "peer"}, 403, "", "error: the gateway refused this certificate (HTTP 403)\n"},
        {{"get", "peer"}, 500, "oops", "error: the gateway answered HTTP 500 (expected 200)\n"},
    };
    struct fx *f = *state;
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *row = rows[i].err;
        fake_reset();
        fake_answer(rows[i].status, rows[i].body);
        CL_TEST_ROW_INT(row, run_ctl_argv(f->cfg, rows[i].args), 1);
        CL_TEST_ROW_STR(row, err_buf, rows[i].err);
        CL_TEST_ROW_STR(row, out_buf, "");
    }
    assert_int_equal(i, 5); /* every row ran */

    fake_reset();
    fake.open_rc = -111;
    fake.open_err = "cannot reach gateway at 10.0.0.1:443: connection refused";
    assert_int_equal(run_ctl(f->cfg, "status", NULL), 1);
    assert_string_equal(err_buf,
                        "error: cannot reach gateway at 10.0.0.1:443: connection refused\n");

    /* refused unprocessed (a connection the gateway retired): sent again on a new connection,
     * whatever the method */
    fake_reset();
    fake.req_rc[0] = CL_EH2_REFUSED;
    fake.req_rc[1] = CL_EH2_GOAWAY;
    fake_answer(201, "");
    assert_int_equal(
        run_ctl(f->cfg, "create", "export", "--name", "echo", "--host", "h", "--port", "7", NULL),
        0);
    assert_int_equal(fake.nreq, 3);
    assert_int_equal(fake.nopen, 3);
    for (int k = 0; k < 3; k++)
        req_is(k, "POST", "/api/v1/exports",
               "{\"metadata\":{\"name\":\"echo\"},\"spec\":{\"host\":\"h\",\"port\":7}}");
    /* three refusals in a row: the last is reported */
    fake_reset();
    fake.req_rc[0] = fake.req_rc[1] = fake.req_rc[2] = CL_EH2_REFUSED;
    assert_int_equal(run_ctl(f->cfg, "status", NULL), 1);
    assert_int_equal(fake.nreq, 3);
    assert_string_equal(err_buf, "error: fake request failed: HTTP/2 stream refused\n");
    /* a reset stream may have been processed: not sent again */
    fake_reset();
    fake.req_rc[0] = CL_EH2_RESET;
    assert_int_equal(run_ctl(f->cfg, "status", NULL), 1);
    assert_int_equal(fake.nreq, 1);
    assert_int_equal(fake.nopen, 1);
}

static void remote_exports(void **state)
{
    struct fx *f = *state;

    fake_answer(404, "");
    assert_int_equal(run_ctl(f->cfg, "get", "remote-exports", "--peer", "west", NULL), 1);
    req_is(0, "GET", "/api/v1/peers/west/exports", NULL);
    assert_string_equal(err_buf, "error: get remote-exports is not supported by this gateway\n");

    fake_reset();
    fake_answer(404, "{\"error\":{\"message\":\"no peer \\\"west\\\"\"}}");
    assert_int_equal(run_ctl(f->cfg, "get", "remote-exports", "--peer", "west", NULL), 1);
    assert_string_equal(err_buf, "error: no peer \"west\"\n");

    fake_reset();
    fake_answer(200, "[{\"metadata\":{\"name\":\"echo\"},\"spec\":{\"port\":7}}]");
    assert_int_equal(run_ctl(f->cfg, "get", "remote-exports", "--peer", "west", NULL), 0);
    assert_string_equal(out_buf, "NAME   HOST   PORT\necho   -      7\n");
}

static void context_selection(void **state)
{
    struct fx *f = *state;
    char missing[600];

    assert_int_equal(run_ctl(f->cfg, "--context", "north", "status", NULL), 1);
    assert_non_null(strstr(err_buf, "no context named \"north\""));
    assert_int_equal(fake.nopen, 0);
    snprintf(missing, sizeof(missing), "%s/none/config.json", f->dir);
    assert_int_equal(run_ctl(missing, "get", "peer", NULL), 1);
    assert_string_equal(err_buf, "error: no current context: run \"gwctl init\" first\n");
}

static void help_output(void **state)
{
    struct fx *f = *state;

    assert_int_equal(run_ctl(f->cfg, "--help", NULL), 0);
    assert_non_null(strstr(out_buf, "Usage: gwctl [--context ID] <command> [flags]"));
    assert_non_null(strstr(out_buf, "get remote-exports"));
    assert_int_equal(run_ctl(f->cfg, "get", "--help", NULL), 0);
    assert_non_null(strstr(out_buf, "Usage: gwctl get <type> [flags]"));
    assert_null(strstr(out_buf, "create peer"));
    assert_int_equal(run_ctl(f->cfg, "create", "import", "--help", NULL), 0);
    assert_non_null(strstr(out_buf, "Usage: gwctl create import [flags]"));
    assert_non_null(strstr(out_buf, "--peer PEER"));
    assert_non_null(strstr(out_buf, "(repeatable) (required)"));
    assert_non_null(strstr(out_buf, "--context ID"));
    assert_int_equal(run_ctl(f->cfg, "config", "use-context", "-h", NULL), 0);
    assert_non_null(strstr(out_buf, "Usage: gwctl config use-context ID"));
    assert_null(strstr(out_buf, "--context")); // refused there, so not offered
    assert_int_equal(run_ctl(f->cfg, "config", "current-context", "-h", NULL), 0);
    assert_non_null(strstr(out_buf, "--context ID"));
    assert_int_equal(fake.nreq, 0);
    assert_int_equal(run_ctl(f->cfg, "version", NULL), 0);
    assert_non_null(strstr(out_buf, "gwctl "));
}

/* A help line shows a value only for flags that take one, with or without a short form. */
static void help_flag_lines(void **state)
{
    static const struct ctl_flag_spec flags[] = {
        {"force", 'F', CTL_FLAG_BOOL, false, "UNUSED", "do it anyway"},
        {"quiet", 0, CTL_FLAG_BOOL, false, NULL, "say less"},
        {"tag", 't', CTL_FLAG_MULTI, true, "TAG", "a tag"},
        {"note", 0, CTL_FLAG_STR, false, "TEXT", "a note"},
        {NULL, 0, 0, false, NULL, NULL},
    };
    const struct ctl_command cmd = {
        "frob", "thing", "frobnicate a thing", flags, 0, NULL, CTL_CONTEXT_NONE, NULL,
    };
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    (void)state;
    assert_non_null(out);
    ctl_help(out, NULL, &cmd);
    assert_int_equal(fclose(out), 0);
    assert_string_equal(buf, "Usage: gwctl frob thing [flags]\n"
                             "\n"
                             "frobnicate a thing\n"
                             "\n"
                             "Flags:\n"
                             "  -F, --force                    do it anyway\n"
                             "      --quiet                    say less\n"
                             "  -t, --tag TAG                  a tag (repeatable) (required)\n"
                             "      --note TEXT                a note\n"
                             "\n"
                             "Global flags:\n"
                             "  -h, --help                     show this help\n");
    free(buf); // open_memstream allocates with malloc
}

/* Every allocation failure fails the command cleanly: exit 1, nothing leaked (ASan). */
static void alloc_failures(void **state)
{
    struct fx *f = *state;
    char path[600];
    const char *yaml = "kind: AccessPolicy\nmetadata: {name: p}\nspec: {action: allow}\n";
    const char *list = "[{\"metadata\":{\"name\":\"p\"},\"spec\":{\"gateways\":[{\"host\":"
                       "\"h\",\"port\":1}]},\"status\":{\"reachable\":true}}]";

    snprintf(path, sizeof(path), "%s/fa.yaml", f->dir);
    assert_int_equal(cl_test_write_file(path, yaml, strlen(yaml)), 0);
    for (int which = 0; which < 3; which++) {
        long total = 0;
        for (long n = -1;; n++) {
            int rc;
            fake_reset();
            fake_answer(which == 2 ? 200 : 201, which == 2 ? list : "");
            cl_failalloc_arm(n < 0 ? 1000000 : n);
            if (which == 0)
                rc = run_ctl(f->cfg, "create", "import", "--name", "i", "--port", "1", "--peer",
                             "a", "--peer", "b", "--export-namespace", "ns", NULL);
            else if (which == 1)
                rc = run_ctl(f->cfg, "create", "policy", "--file", path, NULL);
            else
                rc = run_ctl(f->cfg, "get", "all", NULL);
            if (n < 0) {
                total = cl_failalloc_count();
                cl_failalloc_arm(-1);
                assert_int_equal(rc, 0);
                continue;
            }
            cl_failalloc_arm(-1);
            if (n >= total)
                break;
            assert_int_equal(rc, 1);
            assert_non_null(strstr(err_buf, "error: "));
        }
    }
    fake_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_flags_and_forms),
        cmocka_unit_test(parse_help),
        cmocka_unit_test(parse_errors),
        cmocka_unit_test_setup(create_peer_request, per_test),
        cmocka_unit_test_setup(bad_values_send_nothing, per_test),
        cmocka_unit_test_setup(export_and_import_requests, per_test),
        cmocka_unit_test_setup(delete_and_get_requests, per_test),
        cmocka_unit_test_setup(policy_from_yaml_and_stdin, per_test),
        cmocka_unit_test(policy_parse_rules),
        cmocka_unit_test_setup(server_errors_are_one_line, per_test),
        cmocka_unit_test_setup(remote_exports, per_test),
        cmocka_unit_test_setup(context_selection, per_test),
        cmocka_unit_test_setup(help_output, per_test),
        cmocka_unit_test(help_flag_lines),
        cmocka_unit_test(alloc_failures),
    };

    return cmocka_run_group_tests(tests, setup, group_free);
}
