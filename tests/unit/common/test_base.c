/* Unit tests for the small common modules: err, buf, str, sockaddr, json, log. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cl/buf.h"
#include "cl/err.h"
#include "cl/json.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/sockaddr.h"
#include "cl/str.h"
#include "cm.h"
#include "testutil.h"

static void strerror_covers_ranges(void **state)
{
    (void)state;
    assert_string_equal(cl_strerror(0), "success");
    assert_string_equal(cl_strerror(CL_ETLS_EXPIRED), "certificate expired or not yet valid");
    assert_string_equal(cl_strerror(-ECONNREFUSED), "connection refused");
    assert_string_equal(cl_strerror(-10998), "unknown error");
}

static void buf_max_enforced(void **state)
{
    struct cl_buf b;
    (void)state;

    cl_buf_init(&b, 10);
    assert_int_equal(cl_buf_append(&b, "12345", 5), 0);
    assert_int_equal(cl_buf_append(&b, "678901", 6), CL_EBUSY);
    assert_int_equal(b.len, 5);
    cl_buf_consume(&b, 3);
    assert_memory_equal(cl_buf_ptr(&b), "45", 2);
    assert_int_equal(cl_buf_append(&b, "6789abcd", 8), 0);
    assert_memory_equal(cl_buf_ptr(&b), "456789abcd", 10);
    assert_int_equal(cl_buf_printf(&b, "x"), CL_EBUSY);
    cl_buf_reset(&b);
    assert_int_equal(cl_buf_printf(&b, "%d-%s", 42, "ok"), 0);
    assert_memory_equal(cl_buf_ptr(&b), "42-ok", 5);
    cl_buf_deinit(&b);
}

static void be_helpers(void **state)
{
    uint8_t p[4];
    (void)state;

    cl_write_u32(p, 0x01020304u);
    assert_int_equal(p[0], 1);
    assert_int_equal(p[3], 4);
    assert_int_equal(cl_read_u32(p), 0x01020304u);
    cl_write_u16(p, 0xabcd);
    assert_int_equal(cl_read_u16(p), 0xabcd);
}

static void dns_labels(void **state)
{
    char long64[65];
    (void)state;

    memset(long64, 'a', 64);
    long64[64] = '\0';
    assert_true(cl_str_is_dns_label("peer-1"));
    assert_true(cl_str_is_dns_label("0abc"));
    assert_false(cl_str_is_dns_label(""));
    assert_false(cl_str_is_dns_label("-a"));
    assert_false(cl_str_is_dns_label("a-"));
    assert_false(cl_str_is_dns_label("Peer"));
    assert_false(cl_str_is_dns_label("a.b"));
    assert_false(cl_str_is_dns_label(long64));
    long64[63] = '\0';
    assert_true(cl_str_is_dns_label(long64));
    assert_false(cl_str_is_dns1035_label("0abc"));
    assert_true(cl_str_is_dns_subdomain("a.b-c.d"));
    assert_false(cl_str_is_dns_subdomain("a..b"));
    assert_false(cl_str_is_dns_subdomain("a."));
}

static void numbers(void **state)
{
    long v;
    uint16_t port;
    (void)state;

    assert_int_equal(cl_parse_long("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cl_parse_long("42x", 0, 100, &v), CL_EINVAL);
    assert_int_equal(cl_parse_long("", 0, 100, &v), CL_EINVAL);
    assert_int_equal(cl_parse_long("101", 0, 100, &v), CL_EINVAL);
    assert_int_equal(cl_parse_port("65535", &port), 0);
    assert_int_equal(port, 65535);
    assert_int_equal(cl_parse_port("0", &port), CL_EINVAL);
    assert_int_equal(cl_parse_port("65536", &port), CL_EINVAL);
}

/* What `f` holds from the start, as a string (the file is rewound and truncated after). */
static const char *file_text(FILE *f, char *out, size_t size)
{
    size_t n;

    fflush(f);
    rewind(f);
    n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    rewind(f);
    assert_int_equal(ftruncate(fileno(f), 0), 0);
    return out;
}

static void option_values(void **state)
{
    char text[160];
    FILE *err = tmpfile();
    long v = -1;
    (void)state;

    assert_non_null(err);
    assert_int_equal(cl_parse_opt_long(err, "prog", "idle-timeout", "0", 0, 604800000, "ms", &v),
                     0);
    assert_int_equal(v, 0);
    assert_string_equal(file_text(err, text, sizeof(text)), "");
    assert_int_equal(
        cl_parse_opt_long(err, "prog", "idle-timeout", "604800001", 0, 604800000, "ms", &v),
        CL_EINVAL);
    assert_int_equal(v, 0); /* left alone on failure */
    assert_string_equal(file_text(err, text, sizeof(text)),
                        "prog: --idle-timeout must be 0..604800000 ms\n");
    assert_int_equal(cl_parse_opt_long(err, "cl-dataplane", "workers", "two", 1, 256, NULL, &v),
                     CL_EINVAL);
    assert_string_equal(file_text(err, text, sizeof(text)),
                        "cl-dataplane: --workers must be 1..256\n");
    assert_int_equal(cl_parse_opt_long(err, "p", "workers", NULL, 1, 256, NULL, &v), CL_EINVAL);
    assert_string_equal(file_text(err, text, sizeof(text)), "p: --workers must be 1..256\n");

    assert_int_equal(cl_log_parse_opt(err, "prog", "loud"), CL_EINVAL);
    assert_string_equal(file_text(err, text, sizeof(text)),
                        "prog: --log-level must be error, warn, info, debug or trace\n");
    assert_int_equal(cl_log_parse_opt(err, "prog", "error"), 0);
    assert_int_equal(cl_log_level, CL_LOG_ERROR);
    assert_int_equal(cl_log_parse_opt(err, "prog", "loud"), CL_EINVAL);
    assert_int_equal(cl_log_level, CL_LOG_ERROR); /* left alone on failure */
    assert_int_equal(cl_log_parse_opt(err, "prog", "trace"), 0);
    assert_int_equal(cl_log_level, CL_LOG_TRACE);
    file_text(err, text, sizeof(text));
    assert_string_equal(file_text(err, text, sizeof(text)), "");
    cl_log_set_level(CL_LOG_INFO);
    fclose(err);
}

static void addresses(void **state)
{
    char host[CL_ADDRSTRLEN], out[CL_ADDRSTRLEN];
    struct sockaddr_storage ss;
    uint16_t port;
    (void)state;

    assert_int_equal(cl_hostport_split("example.com:443", host, sizeof(host), &port), 0);
    assert_string_equal(host, "example.com");
    assert_int_equal(port, 443);
    assert_int_equal(cl_hostport_split("[::1]:80", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(cl_hostport_split("::1:80", host, sizeof(host), &port), CL_EINVAL);
    assert_int_equal(cl_hostport_split("host", host, sizeof(host), &port), CL_EINVAL);
    assert_int_equal(cl_hostport_split(":80", host, sizeof(host), &port), CL_EINVAL);
    assert_int_equal(cl_hostport_split("h:0", host, sizeof(host), &port), CL_EINVAL);
    assert_int_equal(cl_sockaddr_parse("127.0.0.1:8080", &ss), 0);
    assert_string_equal(cl_sockaddr_fmt((struct sockaddr *)&ss, out, sizeof(out)),
                        "127.0.0.1:8080");
    assert_int_equal(cl_sockaddr_parse("[::1]:9", &ss), 0);
    assert_string_equal(cl_sockaddr_fmt((struct sockaddr *)&ss, out, sizeof(out)), "[::1]:9");
    assert_int_equal(cl_sockaddr_parse("localhost:9", &ss), CL_EINVAL);
    assert_true(cl_host_is_valid("Backend.Example"));
    assert_true(cl_host_is_valid("10.0.0.1"));
    assert_false(cl_host_is_valid("bad host"));
    assert_false(cl_host_is_valid(""));
}

static void json_strict(void **state)
{
    static const char *const allowed[] = {"name", "port", NULL};
    struct cl_jerr e;
    json_t *j;
    const char *s = NULL;
    long long port = 0;
    (void)state;

    j = cl_json_loadb("{\"a\":1,\"a\":2}", 13, &e);
    assert_null(j);
    assert_non_null(strstr(e.msg, "invalid JSON"));

    j = cl_json_loadb("{\"name\":\"x\",\"port\":70000,\"extra\":true}", 38, &e);
    assert_non_null(j);
    assert_int_equal(cl_json_check_keys(j, "spec", allowed, &e), CL_ESCHEMA);
    assert_string_equal(e.field, "spec.extra");
    assert_string_equal(e.msg, "unknown field");
    assert_int_equal(cl_json_get_str(j, "spec", "name", true, &s, &e), 0);
    assert_string_equal(s, "x");
    assert_int_equal(cl_json_get_int(j, "spec", "port", true, 1, 65535, &port, &e), CL_ESCHEMA);
    assert_string_equal(e.field, "spec.port");
    assert_string_equal(e.msg, "must be between 1 and 65535");
    assert_int_equal(cl_json_get_int(j, "spec", "name", true, 1, 2, &port, &e), CL_ESCHEMA);
    assert_string_equal(e.msg, "must be an integer, not a string");
    assert_int_equal(cl_json_get_str(j, "spec", "missing", true, &s, &e), CL_ESCHEMA);
    assert_string_equal(e.msg, "required field is missing");
    assert_int_equal(cl_json_get_str(j, "spec", "missing", false, &s, &e), 0);
    char *txt = cl_json_dumps(j);
    assert_string_equal(txt, "{\"name\":\"x\",\"port\":70000,\"extra\":true}");
    cl_free(&txt);
    json_decref(j);
}

static void log_escape(void **state)
{
    char out[32];
    (void)state;

    assert_string_equal(cl_log_escape("a\"b\\c\n", out, sizeof(out)), "a\\\"b\\\\c\\x0a");
    assert_string_equal(cl_log_escape("0123456789012345678901234567890123456789", out, 12),
                        "0123456");
    enum cl_log_level l;
    assert_int_equal(cl_log_parse_level("debug", &l), 0);
    assert_int_equal(l, CL_LOG_DEBUG);
    assert_int_equal(cl_log_parse_level("loud", &l), CL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strerror_covers_ranges),
        cmocka_unit_test(buf_max_enforced),
        cmocka_unit_test(be_helpers),
        cmocka_unit_test(dns_labels),
        cmocka_unit_test(numbers),
        cmocka_unit_test(option_values),
        cmocka_unit_test(addresses),
        cmocka_unit_test(json_strict),

        cmocka_unit_test(log_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
