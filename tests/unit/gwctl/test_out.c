/* gwctl output: aligned tables for every object type, status, and JSON as the API sent it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/json.h"
#include "cl/mem.h"
#include "cm.h"
#include "ctl_out.h"

typedef int (*print_fn)(FILE *out, const json_t *j);

/* Renders json text with fn and compares with the expected output. */
static void check(print_fn fn, const char *json, const char *expect)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    json_t *j = cl_json_loadb(json, strlen(json), NULL);

    assert_non_null(out);
    assert_non_null(j);
    assert_int_equal(fn(out, j), 0);
    fclose(out);
    if (strcmp(buf, expect) != 0)
        fail_msg("got:\n%s\nexpected:\n%s", buf, expect);
    free(buf);
    json_decref(j);
}

static void table_alignment(void **state)
{
    static const char *const hdr[] = {"NAME", "VALUE", "X"};
    struct ctl_table t;
    const char *r1[] = {"a-long-name", "1", "x"};
    const char *r2[] = {"b", NULL, ""};
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    (void)state;

    ctl_table_init(&t, 3, hdr);
    assert_int_equal(ctl_table_add(&t, r1), 0);
    assert_int_equal(ctl_table_add(&t, r2), 0);
    ctl_table_print(&t, out);
    ctl_table_deinit(&t);
    fclose(out);
    assert_string_equal(buf, "NAME          VALUE   X\n"
                             "a-long-name   1       x\n"
                             "b             -       \n");
    free(buf);
}

static void table_many_rows(void **state)
{
    static const char *const hdr[] = {"N"};
    struct ctl_table t;
    char name[16];
    (void)state;

    ctl_table_init(&t, 1, hdr);
    for (int i = 0; i < 100; i++) {
        const char *cells[] = {name};
        snprintf(name, sizeof(name), "r%d", i);
        assert_int_equal(ctl_table_add(&t, cells), 0);
    }
    assert_int_equal(t.nrows, 100);
    assert_string_equal(t.cells[99], "r99");
    ctl_table_deinit(&t);
}

static void peers_table(void **state)
{
    (void)state;
    check(
        ctl_out_peers,
        "[{\"metadata\":{\"name\":\"west\"},\"spec\":{\"gateways\":[{\"host\":\"10.0.0.2\","
        "\"port\":443},{\"host\":\"gw2\",\"port\":8443}]},\"status\":{\"reachable\":true,"
        "\"since\":\"2026-11-24T10:00:00Z\"}},"
        "{\"metadata\":{\"name\":\"north\"},\"spec\":{\"gateways\":[{\"host\":\"n\",\"port\":1}]},"
        "\"status\":{\"reachable\":false,\"lastError\":\"connection refused\"}},"
        "{\"metadata\":{\"name\":\"new\"},\"spec\":{\"gateways\":[]}}]",
        "NAME    GATEWAYS                REACHABLE   SINCE                  LAST ERROR\n"
        "west    10.0.0.2:443,gw2:8443   yes         2026-11-24T10:00:00Z   -\n"
        "north   n:1                     no          -                      connection "
        "refused\n"
        "new     -                       -           -                      -\n");
    /* {"items": [...]} wrapper and a single object print the same way */
    check(ctl_out_peers, "{\"items\":[{\"metadata\":{\"name\":\"a\"}}]}",
          "NAME   GATEWAYS   REACHABLE   SINCE   LAST ERROR\na      -          -           -       "
          "-\n");
    check(ctl_out_peers, "{\"metadata\":{\"name\":\"a\"}}",
          "NAME   GATEWAYS   REACHABLE   SINCE   LAST ERROR\na      -          -           -       "
          "-\n");
    check(ctl_out_peers, "[]", "NAME   GATEWAYS   REACHABLE   SINCE   LAST ERROR\n");
}

static void exports_table(void **state)
{
    (void)state;
    check(ctl_out_exports,
          "[{\"metadata\":{\"name\":\"echo\"},\"spec\":{\"host\":\"127.0.0.1\",\"port\":7000}},"
          "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"port\":80}}]",
          "NAME   HOST        PORT\n"
          "echo   127.0.0.1   7000\n"
          "web    -           80\n");
}

static void imports_table(void **state)
{
    (void)state;
    check(ctl_out_imports,
          "[{\"metadata\":{\"name\":\"echo\"},\"spec\":{\"port\":9000,\"targetPort\":0,"
          "\"sources\":[{\"peer\":\"west\",\"exportName\":\"echo\"},{\"peer\":\"north\","
          "\"exportName\":\"srv\",\"exportNamespace\":\"prod\"}],\"lbScheme\":\"static\"}},"
          "{\"metadata\":{\"name\":\"k\"},\"spec\":{\"port\":80,\"targetPort\":30080,"
          "\"sources\":[],\"lbScheme\":\"random\"}}]",
          "NAME   PORT   TARGET PORT   SOURCES (PEER/EXPORT)      LB\n"
          "echo   9000   -             west/echo,north/prod/srv   static\n"
          "k      80     30080         -                          random\n");
}

static void imports_table_kubernetes(void **state)
{
    (void)state;
    check(ctl_out_imports,
          "[{\"metadata\":{\"name\":\"web\"},\"spec\":{\"port\":80,\"targetPort\":20000,"
          "\"sources\":[{\"peer\":\"west\",\"exportName\":\"web\"}],\"lbScheme\":\"static\"},"
          "\"status\":{\"service\":{\"state\":\"conflict\",\"message\":\"not ours\"}}},"
          "{\"metadata\":{\"name\":\"db\"},\"spec\":{\"port\":5432,\"targetPort\":20001,"
          "\"sources\":[],\"lbScheme\":\"random\"}}]",
          "NAME   PORT   TARGET PORT   SOURCES (PEER/EXPORT)   LB       SERVICE\n"
          "web    80     20000         west/web                static   conflict\n"
          "db     5432   20001         -                       random   -\n");
}

static void policies_table(void **state)
{
    (void)state;
    check(
        ctl_out_policies,
        "[{\"kind\":\"AccessPolicy\",\"metadata\":{\"name\":\"allow-all\"},\"spec\":{"
        "\"action\":\"allow\",\"from\":[{\"workloadSelector\":{}}],\"to\":[{"
        "\"workloadSelector\":{}}]}},"
        "{\"kind\":\"PrivilegedAccessPolicy\",\"metadata\":{\"name\":\"deny\"},\"spec\":{"
        "\"action\":\"deny\",\"from\":[],\"to\":[{\"workloadSelector\":{\"matchLabels\":{"
        "\"export.clusterlink.net/name\":\"echo\"}}}]}}]",
        "NAME        KIND                     ACTION   FROM                        TO\n"
        "allow-all   AccessPolicy             allow    [{\"workloadSelector\":{}}]   "
        "[{\"workloadSelector\":{}}]\n"
        "deny        PrivilegedAccessPolicy   deny     -                           "
        "[{\"workloadSelector\":{\"matchLabels\":{\"export.clusterlink.net/name\":\"echo\"}}}]\n");
}

static void status_view(void **state)
{
    (void)state;
    check(ctl_out_status,
          "{\"name\":\"east\",\"version\":\"0.1.0\",\"workers\":2,\"uptime\":12.5,"
          "\"peers\":[{\"name\":\"west\",\"reachable\":true},{\"name\":\"north\","
          "\"reachable\":false,\"lastError\":\"timeout\"}],"
          "\"counters\":{\"imports\":{\"web\":{\"open\":3,\"total\":9,\"bytesIn\":1024,"
          "\"bytesOut\":20,\"denied\":1,\"errors\":0,\"idleClosed\":4}},\"exports\":{\"db\":"
          "{\"open\":0,\"total\":1,\"bytesIn\":0,\"bytesOut\":0,\"denied\":0,\"errors\":1}}}}",
          "name         east\n"
          "version      0.1.0\n"
          "workers      2\n"
          "uptime       12.5\n"
          "\n"
          "PEER    REACHABLE   SINCE   LAST ERROR\n"
          "west    yes         -       -\n"
          "north   no          -       timeout\n"
          "\n"
          "COUNTERS   NAME   OPEN   TOTAL   BYTES IN   BYTES OUT   DENIED   ERRORS   IDLE CLOSED\n"
          "imports    web    3      9       1024       20          1        0        4\n"
          "exports    db     0      1       0          0           0        1        -\n");
    check(ctl_out_status,
          "{\"name\":\"east\",\"uptimeSeconds\":3725,\"revision\":7,"
          "\"objects\":{\"peers\":1,\"exports\":2},\"kubernetes\":{\"namespace\":\"cl\","
          "\"watching\":true}}",
          "name         east\n"
          "uptime       1h02m05s\n"
          "revision     7\n"
          "objects      peers 1, exports 2\n"
          "kubernetes   namespace cl, watching yes\n");
    /* too long for one line: one field per line, nothing cut short */
    check(ctl_out_status,
          "{\"name\":\"east\",\"kubernetes\":{\"namespace\":\"cl\",\"role\":\"standby\","
          "\"holder\":\"clusterlink-6f9d8c7b5-x2x9k_3fa0c2d1e4b5a697\",\"lease\":"
          "\"clusterlink-gateway-east\",\"services\":2,\"lastError\":\"\",\"leaseError\":"
          "\"API server unreachable: connection refused\"},\"objects\":{}}",
          "name         east\n"
          "kubernetes   namespace cl\n"
          "             role standby\n"
          "             holder clusterlink-6f9d8c7b5-x2x9k_3fa0c2d1e4b5a697\n"
          "             lease clusterlink-gateway-east\n"
          "             services 2\n"
          "             lastError -\n"
          "             leaseError API server unreachable: connection refused\n"
          "objects      -\n");
    check(ctl_out_status, "{\"name\":\"east\"}", "name         east\n");
    /* workers: a table; the certificate's first 16 hex digits, "-" from a worker that does not
     * report one (IPC version 1), and why replaced files were refused */
    check(ctl_out_status,
          "{\"name\":\"e\",\"workers\":[{\"id\":0,\"pid\":41,\"revision\":7,\"ipcVersion\":2,"
          "\"certificate\":{\"notBefore\":\"2026-01-01T00:00:00Z\",\"notAfter\":"
          "\"2027-01-01T00:00:00Z\",\"sha256\":"
          "\"3fa0c2d1e4b5a6970123456789abcdef3fa0c2d1e4b5a6970123456789abcdef\",\"reloadError\":"
          "\"\"}},{\"id\":1,\"pid\":42,\"revision\":7,\"ipcVersion\":2,\"certificate\":"
          "{\"sha256\":\"77aa\",\"reloadError\":\"key does not match the certificate\"}},"
          "{\"id\":2,\"pid\":43,\"revision\":6,\"ipcVersion\":1}]}",
          "name         e\n"
          "workers      3\n"
          "\n"
          "WORKER   PID   REVISION   CERTIFICATE        RELOAD ERROR\n"
          "0        41    7          3fa0c2d1e4b5a697   -\n"
          "1        42    7          77aa               key does not match the certificate\n"
          "2        43    6          -                  -\n");
    /* an older gateway sent a count */
    check(ctl_out_status, "{\"name\":\"e\",\"workers\":2}", "name         e\nworkers      2\n");
}

static void json_keeps_order(void **state)
{
    (void)state;
    check(ctl_out_json, "{\"spec\":{\"port\":1,\"host\":\"h\"},\"metadata\":{\"name\":\"x\"}}",
          "{\n  \"spec\": {\n    \"port\": 1,\n    \"host\": \"h\"\n  },\n"
          "  \"metadata\": {\n    \"name\": \"x\"\n  }\n}\n");
    check(ctl_out_json, "[]", "[]\n");
}

static void long_lists_truncate(void **state)
{
    char json[8192];
    size_t used;
    char *buf = NULL;
    size_t len = 0;
    FILE *out;
    json_t *j;
    (void)state;

    used = (size_t)snprintf(json, sizeof(json),
                            "[{\"metadata\":{\"name\":\"p\"},\"spec\":{\"gateways\":[");
    for (int i = 0; i < 40; i++)
        used += (size_t)snprintf(json + used, sizeof(json) - used,
                                 "%s{\"host\":\"gateway-%02d.example.com\",\"port\":443}",
                                 i ? "," : "", i);
    snprintf(json + used, sizeof(json) - used, "]}}]");
    j = cl_json_loadb(json, strlen(json), NULL);
    assert_non_null(j);
    out = open_memstream(&buf, &len);
    assert_int_equal(ctl_out_peers(out, j), 0);
    fclose(out);
    assert_non_null(strstr(buf, "gateway-00.example.com:443,gateway-01"));
    assert_non_null(strstr(buf, "..."));
    assert_true(strlen(buf) < 700);
    free(buf);
    json_decref(j);
}

/* What a gateway sends reaches the terminal without its control characters: no ESC, BEL or
 * CSI (C0, DEL and UTF-8-encoded C1 become '?'), other UTF-8 stays. */
static void terminal_controls_replaced(void **state)
{
    char s[] = "a\x1b]0;owned\x07"
               "b\x7f c\xc2\x9b"
               "2J \xc3\xa9t\xc3\xa9";
    (void)state;

    ctl_out_printable(s);
    assert_string_equal(s, "a?]0;owned?b? c??2J \xc3\xa9t\xc3\xa9");
    check(ctl_out_peers,
          "[{\"metadata\":{\"name\":\"w\\u001b[2J\"},\"spec\":{\"gateways\":[]},"
          "\"status\":{\"reachable\":false,\"lastError\":\"health answer names "
          "\\u001b]0;x\\u0007\"}}]",
          "NAME    GATEWAYS   REACHABLE   SINCE   LAST ERROR\n"
          "w?[2J   -          no          -       health answer names ?]0;x?\n");
    check(ctl_out_status, "{\"na\\u009bme\":\"ea\\u001bst\",\"k8s\":{\"\\u001b\":\"\\u0007\"}}",
          "na??me       ea?st\n"
          "k8s          ? ?\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_alignment),
        cmocka_unit_test(table_many_rows),
        cmocka_unit_test(peers_table),
        cmocka_unit_test(exports_table),
        cmocka_unit_test(imports_table),
        cmocka_unit_test(imports_table_kubernetes),
        cmocka_unit_test(policies_table),
        cmocka_unit_test(status_view),
        cmocka_unit_test(json_keeps_order),
        cmocka_unit_test(long_lists_truncate),
        cmocka_unit_test(terminal_controls_replaced),
    };

    cl_mem_install_jansson();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
