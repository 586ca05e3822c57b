/* Unit tests for dp_connect.c: the CONNECT request a peer gateway sends. */
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cm.h"
#include "dp.h"

#define NAME63 "e23456789012345678901234567890123456789012345678901234567890123"
#define NAME64 NAME63 "4"

struct row {
    const char *authority;
    const char *ns;    /* cl-export-namespace, NULL: not sent */
    const char *attrs; /* cl-client-attrs, NULL: not sent */
    int rc;
    const char *name, *want_ns, *want_attrs; /* on success */
    const char *why;                         /* on CL_EINVAL: a part of the reason */
};

static const struct row rows[] = {
    {"svc:443", NULL, NULL, 0, "svc", "", "{}", NULL},
    {"svc", NULL, NULL, 0, "svc", "", "{}", NULL}, /* the port is ignored, even when missing */
    {"a:b:443", NULL, NULL, 0, "a:b", "", "{}", NULL},
    {NAME63 ":443", "ns1", "{\"client.clusterlink.net/namespace\":\"dev\"}", 0, NAME63, "ns1",
     "{\"client.clusterlink.net/namespace\": \"dev\"}", NULL},
    {"svc:443", "", "{}", 0, "svc", "", "{}", NULL},
    {":443", NULL, NULL, CL_EINVAL, NULL, NULL, NULL, ":authority"},
    {"", NULL, NULL, CL_EINVAL, NULL, NULL, NULL, ":authority"},
    {NULL, NULL, NULL, CL_EINVAL, NULL, NULL, NULL, ":authority"},
    {NAME64 ":443", NULL, NULL, CL_EINVAL, NULL, NULL, NULL, "at most 63"},
    {"svc:443", NAME64, NULL, CL_EINVAL, NULL, NULL, NULL, "cl-export-namespace is longer"},
    {"svc:443", NULL, "[1]", CL_EINVAL, NULL, NULL, NULL, "JSON object of strings"},
    {"svc:443", NULL, "{\"a\":1}", CL_EINVAL, NULL, NULL, NULL, "JSON object of strings"},
    {"svc:443", NULL, "{\"a\":\"b\"", CL_EINVAL, NULL, NULL, NULL, "JSON object of strings"},
    {"svc:443", NULL, "", CL_EINVAL, NULL, NULL, NULL, "JSON object of strings"},
};

static int parse_row(const struct row *r, struct dp_connect_req *out, const char **why)
{
    struct cl_h2_hdr hdrs[2];
    struct cl_h2_req req;
    size_t n = 0;

    memset(&req, 0, sizeof(req));
    req.method = "CONNECT";
    req.authority = r->authority;
    if (r->ns != NULL)
        hdrs[n++] = (struct cl_h2_hdr){"cl-export-namespace", r->ns, 19, strlen(r->ns)};
    if (r->attrs != NULL)
        hdrs[n++] = (struct cl_h2_hdr){"cl-client-attrs", r->attrs, 15, strlen(r->attrs)};
    req.hdrs = hdrs;
    req.nhdrs = n;
    return dp_connect_parse(&req, out, why);
}

static void table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        struct dp_connect_req cr;
        const char *why = NULL;
        int rc = parse_row(r, &cr, &why);

        print_message("row %zu: authority=%s\n", i, r->authority ? r->authority : "(none)");
        assert_int_equal(rc, r->rc);
        if (rc != 0) {
            assert_non_null(why);
            assert_non_null(strstr(why, r->why));
            assert_null(cr.attrs); /* nothing to release */
            continue;
        }
        assert_string_equal(cr.name, r->name);
        assert_string_equal(cr.ns, r->want_ns);
        char *dump = json_dumps(cr.attrs, JSON_SORT_KEYS);
        assert_non_null(dump);
        assert_string_equal(dump, r->want_attrs);
        free(dump);
        dp_connect_req_deinit(&cr);
        assert_null(cr.attrs);
        dp_connect_req_deinit(&cr); /* idempotent */
    }
}

/* A header given twice is refused whatever its values: which one would count is ambiguous. */
static void repeated_headers(void **state)
{
    struct cl_h2_hdr two_ns[] = {CL_H2_HDR("cl-export-namespace", "a"),
                                 CL_H2_HDR("cl-export-namespace", "a")};
    struct cl_h2_hdr two_attrs[] = {CL_H2_HDR("cl-client-attrs", "{}"),
                                    CL_H2_HDR("cl-client-attrs", "{\"a\":\"b\"}")};
    struct cl_h2_hdr other[] = {CL_H2_HDR("cl-export-namespacex", "zzz"),
                                CL_H2_HDR("user-agent", "x")};
    struct cl_h2_req req = {.method = "CONNECT", .authority = "svc:443"};
    struct dp_connect_req cr;
    const char *why = NULL;
    (void)state;

    req.hdrs = two_ns;
    req.nhdrs = 2;
    assert_int_equal(dp_connect_parse(&req, &cr, &why), CL_EINVAL);
    assert_string_equal(why, "cl-export-namespace given twice");
    assert_string_equal(cr.name, "svc"); /* what was read before the error, for the log */
    assert_string_equal(cr.ns, "a");
    req.hdrs = two_attrs;
    assert_int_equal(dp_connect_parse(&req, &cr, &why), CL_EINVAL);
    assert_string_equal(why, "cl-client-attrs given twice");
    assert_null(cr.attrs);
    assert_string_equal(cr.name, "svc");
    assert_string_equal(cr.ns, "");
    req.hdrs = other; /* unknown headers are ignored, and names match whole */
    assert_int_equal(dp_connect_parse(&req, &cr, &why), 0);
    assert_string_equal(cr.ns, "");
    assert_int_equal(json_object_size(cr.attrs), 0);
    dp_connect_req_deinit(&cr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table),
        cmocka_unit_test(repeated_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
