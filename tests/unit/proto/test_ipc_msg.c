/* Every message body of PROTOCOL.md: a valid one passes, each kind of defect is named. */
#include <string.h>

#include "cl/buf.h"
#include "cl/err.h"
#include "cl/ipc.h"
#include "cl/json.h"
#include "cm.h"

static void check(uint16_t type, uint16_t flags, const char *body, const char *field,
                  const char *msg)
{
    json_t *b = json_loads(body, 0, NULL);
    struct cl_jerr e = {{0}, {0}};

    assert_non_null(b);
    int rc = cl_ipc_msg_validate(type, flags, b, &e);
    if (field == NULL) {
        if (rc != 0)
            fail_msg("%s %s rejected: %s: %s", cl_ipc_type_name(type), body, e.field, e.msg);
    } else {
        if (rc != CL_ESCHEMA || strcmp(e.field, field) != 0 ||
            (msg != NULL && strstr(e.msg, msg) == NULL))
            fail_msg("%s %s: got rc=%d field '%s' msg '%s', want field '%s' '%s'",
                     cl_ipc_type_name(type), body, rc, e.field, e.msg, field, msg ? msg : "");
    }
    json_decref(b);
}

#define R CL_IPC_F_REPLY

static void valid_bodies(void **state)
{
    (void)state;
    check(CL_IPC_HELLO, 0, "{\"version\":1,\"worker\":0,\"pid\":42}", NULL, NULL);
    check(CL_IPC_WELCOME, R, "{\"version\":1,\"name\":\"east\"}", NULL, NULL);
    check(CL_IPC_CONFIG, 0,
          "{\"revision\":3,\"name\":\"east\",\"peers\":[{\"name\":\"west\",\"gateways\":[{"
          "\"host\":\"10.0.0.2\",\"port\":443}]}],\"imports\":[{\"name\":\"web\",\"listenPort\":"
          "8080,\"port\":8080,\"lbScheme\":\"static\",\"sources\":[{\"peer\":\"west\","
          "\"exportName\":\"web\",\"exportNamespace\":\"\"}]}],\"exports\":[{\"name\":\"db\","
          "\"host\":\"h\",\"port\":5432}]}",
          NULL, NULL);
    check(CL_IPC_ACK, 0, "{\"revision\":3}", NULL, NULL);
    check(CL_IPC_CONFIG_DELTA, 0,
          "{\"revision\":4,\"base\":3,\"upsert\":{\"peers\":[{\"name\":\"w\",\"gateways\":["
          "{\"host\":\"h\",\"port\":1}]}]},\"delete\":{\"imports\":[\"web\"]}}",
          NULL, NULL);
    check(CL_IPC_CONFIG_DELTA, 0, "{\"revision\":5,\"base\":4}", NULL, NULL);
    check(CL_IPC_AUTHZ_EGRESS, 0, "{\"import\":\"web\",\"client\":\"127.0.0.1:5\"}", NULL, NULL);
    check(CL_IPC_AUTHZ_EGRESS, R,
          "{\"allow\":true,\"candidates\":[{\"peer\":\"west\",\"export\":\"web\",\"namespace\":"
          "\"\",\"gateways\":[{\"host\":\"h\",\"port\":1}]}],\"attrs\":{\"a\":\"b\"}}",
          NULL, NULL);
    check(CL_IPC_AUTHZ_EGRESS, R, "{\"allow\":false,\"reason\":\"r\",\"policy\":\"p\"}", NULL,
          NULL);
    check(CL_IPC_AUTHZ_INGRESS, 0,
          "{\"peer\":\"west\",\"export\":\"web\",\"namespace\":\"\",\"attrs\":{}}", NULL, NULL);
    check(CL_IPC_AUTHZ_INGRESS, R, "{\"allow\":true,\"backend\":{\"host\":\"h\",\"port\":80}}",
          NULL, NULL);
    check(CL_IPC_AUTHZ_INGRESS, R,
          "{\"allow\":false,\"status\":404,\"reason\":\"r\",\"policy\":\"\"}", NULL, NULL);
    check(CL_IPC_HTTP_REQUEST, 0,
          "{\"method\":\"GET\",\"path\":\"/\",\"identity\":\"x\",\"identities\":[\"x\"],"
          "\"body\":\"\"}",
          NULL, NULL);
    check(CL_IPC_HTTP_RESPONSE, R,
          "{\"status\":200,\"contentType\":\"application/json\","
          "\"body\":\"[]\"}",
          NULL, NULL);
    check(CL_IPC_STATS, 0,
          "{\"worker\":1,\"imports\":{\"web\":{\"open\":1,\"total\":2,\"bytesIn\":3,\"bytesOut\":"
          "4,\"denied\":0,\"errors\":0,\"idleClosed\":5}},\"exports\":{},\"peers\":{}}",
          NULL, NULL);
    /* a worker from before idleClosed existed: its counters still count */
    check(CL_IPC_STATS, 0,
          "{\"worker\":1,\"imports\":{},\"exports\":{},\"peers\":{\"w\":{\"open\":1,"
          "\"total\":2,\"bytesIn\":3,\"bytesOut\":4,\"denied\":0,\"errors\":0}}}",
          NULL, NULL);
    /* version 2: the certificate the worker presents; without it when it could not be read */
    check(CL_IPC_STATS, 0,
          "{\"worker\":1,\"imports\":{},\"exports\":{},\"peers\":{},\"certificate\":{"
          "\"sha256\":\"ab\",\"notBefore\":1,\"notAfter\":2,\"reloadError\":\"\"}}",
          NULL, NULL);
    check(CL_IPC_STATS, 0,
          "{\"worker\":1,\"imports\":{},\"exports\":{},\"peers\":{},\"certificate\":{"
          "\"reloadError\":\"no such file\"}}",
          NULL, NULL);
    check(CL_IPC_HELLO, 0, "{\"version\":2,\"worker\":0,\"pid\":42}", NULL, NULL);
    check(CL_IPC_PEER_EVENT, 0,
          "{\"peer\":\"west\",\"gateway\":\"h:1\",\"event\":\"tls\",\"status\":0,\"error\":\"x\"}",
          NULL, NULL);
    check(CL_IPC_RESYNC, 0, "{}", NULL, NULL);
    check(CL_IPC_AUTHZ_EGRESS, R | CL_IPC_F_ERROR, "{\"code\":-10006,\"message\":\"m\"}", NULL,
          NULL);
}

static void defects_are_named(void **state)
{
    (void)state;
    check(CL_IPC_HELLO, 0, "{\"version\":1,\"worker\":0}", "pid", "required");
    check(CL_IPC_HELLO, 0, "{\"version\":\"1\",\"worker\":0,\"pid\":1}", "version", "integer");
    check(CL_IPC_HELLO, 0, "{\"version\":1,\"worker\":0,\"pid\":1,\"x\":1}", "x", "unknown field");
    check(CL_IPC_CONFIG, 0,
          "{\"revision\":1,\"name\":\"e\",\"peers\":[{\"name\":\"w\",\"gateways\":[{\"host\":"
          "\"h\",\"port\":70000}]}],\"imports\":[],\"exports\":[]}",
          "peers[0].gateways[0].port", "between");
    check(CL_IPC_CONFIG, 0,
          "{\"revision\":1,\"name\":\"e\",\"peers\":[],\"imports\":[{\"name\":\"i\","
          "\"listenPort\":1,\"port\":1,\"lbScheme\":\"static\",\"sources\":[{}]}],\"exports\":[]}",
          "imports[0].sources[0].peer", "required");
    check(CL_IPC_CONFIG, 0,
          "{\"revision\":-1,\"name\":\"e\",\"peers\":[],\"imports\":[],"
          "\"exports\":[]}",
          "revision", "between");
    check(CL_IPC_CONFIG_DELTA, 0, "{\"revision\":2}", "base", "required");
    check(CL_IPC_CONFIG_DELTA, 0,
          "{\"revision\":2,\"base\":1,\"upsert\":{\"imports\":[{\"name\":\"i\"}]}}",
          "upsert.imports[0].listenPort", "required");
    check(CL_IPC_CONFIG_DELTA, 0, "{\"revision\":2,\"base\":1,\"delete\":{\"peers\":[1]}}",
          "delete.peers[0]", "string");
    check(CL_IPC_AUTHZ_EGRESS, R, "{\"allow\":true,\"candidates\":[1],\"attrs\":{}}",
          "candidates[0]", "object");
    check(CL_IPC_AUTHZ_EGRESS, R, "{\"allow\":\"yes\"}", "allow", "boolean");
    check(CL_IPC_AUTHZ_INGRESS, 0,
          "{\"peer\":\"w\",\"export\":\"e\",\"namespace\":\"\",\"attrs\":{\"a\":1}}", "attrs.a",
          "string");
    check(CL_IPC_AUTHZ_INGRESS, R,
          "{\"allow\":false,\"status\":200,\"reason\":\"\","
          "\"policy\":\"\"}",
          "status", "between");
    check(CL_IPC_STATS, 0,
          "{\"worker\":1,\"imports\":{\"w\":{\"open\":1}},\"exports\":{},\"peers\":{}}",
          "imports.w.total", "required");
    check(CL_IPC_STATS, 0,
          "{\"worker\":1,\"imports\":{},\"exports\":{\"e\":{\"open\":1,\"total\":2,"
          "\"bytesIn\":3,\"bytesOut\":4,\"denied\":0,\"errors\":0,\"idleClosed\":\"1\"}},"
          "\"peers\":{}}",
          "exports.e.idleClosed", "integer");
    check(CL_IPC_STATS, 0,
          "{\"worker\":1,\"imports\":{},\"exports\":{},\"peers\":{},\"certificate\":{}}",
          "certificate.reloadError", "required");
    check(CL_IPC_STATS, 0,
          "{\"worker\":1,\"imports\":{},\"exports\":{},\"peers\":{},\"certificate\":{"
          "\"reloadError\":\"\",\"notAfter\":\"2030\"}}",
          "certificate.notAfter", "integer");
    check(CL_IPC_STATS, 0,
          "{\"worker\":1,\"imports\":{},\"exports\":{},\"peers\":{},\"certificate\":{"
          "\"reloadError\":\"\",\"issuer\":\"x\"}}",
          "certificate.issuer", "unknown field");
    check(CL_IPC_STATS, 0,
          "{\"worker\":1,\"imports\":{},\"exports\":{},\"peers\":{},\"certificate\":\"x\"}",
          "certificate", "object");
    check(CL_IPC_WELCOME, 0, "{}", "", "not a request");
    check(CL_IPC_ACK, R, "{}", "", "has no reply");
    check(CL_IPC_ACK, R | CL_IPC_F_ERROR, "{\"code\":5,\"message\":\"m\"}", "code", "between");
}

static int collect(const struct cl_ipc_msg *m, void *ud)
{
    json_t **out = ud;

    assert_int_equal(m->type, CL_IPC_STATS);
    *out = json_incref(m->body);
    return 0;
}

/* A STATS body as a worker builds it goes through the codec and validation with every counter,
 * idleClosed included, intact. */
static void stats_round_trip(void **state)
{
    struct cl_ipc_decoder d;
    struct cl_jerr e = {{0}, {0}};
    struct cl_buf b;
    json_t *got = NULL;
    json_t *c =
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "open", (json_int_t)1, "total", (json_int_t)9,
                  "bytesIn", (json_int_t)10, "bytesOut", (json_int_t)20, "denied", (json_int_t)1,
                  "errors", (json_int_t)2, "idleClosed", (json_int_t)3);
    json_t *body = json_pack("{s:i,s:{s:O},s:{s:O},s:{s:O}}", "worker", 0, "imports", "web", c,
                             "exports", "db", c, "peers", "west", c);

    (void)state;
    assert_non_null(body);
    cl_buf_init(&b, 1 << 20);
    cl_ipc_decoder_init(&d);
    assert_int_equal(cl_ipc_encode(&b, CL_IPC_STATS, 0, 0, body), 0);
    assert_int_equal(cl_ipc_decode(&d, cl_buf_ptr(&b), b.len, collect, &got), (ssize_t)b.len);
    assert_non_null(got);
    assert_int_equal(cl_ipc_msg_validate(CL_IPC_STATS, 0, got, &e), 0);
    assert_true(json_equal(got, body));
    for (const char *const *g = (const char *const[]){"imports", "exports", "peers", NULL}; *g;
         g++) {
        json_t *o = json_object_iter_value(json_object_iter(json_object_get(got, *g)));
        assert_int_equal(json_integer_value(json_object_get(o, "idleClosed")), 3);
        assert_int_equal(json_integer_value(json_object_get(o, "errors")), 2);
    }
    json_decref(got);
    json_decref(body);
    json_decref(c);
    cl_ipc_decoder_deinit(&d);
    cl_buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_bodies),
        cmocka_unit_test(defects_are_named),
        cmocka_unit_test(stats_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
