/* Policy engine and load balancing, ClusterLink's own scenarios. */
#include <string.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cm.h"
#include "cp.h"
#include "cp_policy.h"
#include "testutil.h"

static json_t *pol(const char *kind, const char *name, const char *action, const char *from_peer)
{
    json_t *p = json_pack("{s:s,s:{s:s},s:{s:s,s:[],s:[{s:{}}]}}", "kind", kind, "metadata", "name",
                          name, "spec", "action", action, "from", "to", "workloadSelector");
    json_t *from = json_object_get(json_object_get(p, "spec"), "from");
    if (from_peer != NULL)
        json_array_append_new(from, json_pack("{s:{s:{s:s}}}", "workloadSelector", "matchLabels",
                                              CP_ATTR_PEER_NAME, from_peer));
    else
        json_array_append_new(from, json_pack("{s:{}}", "workloadSelector"));
    assert_int_equal(cp_policy_validate(p, NULL), 0);
    return p;
}

static void decide(json_t *pols, const char *peer, bool allow, const char *by)
{
    json_t *from = json_pack("{s:s}", CP_ATTR_PEER_NAME, peer);
    json_t *to = json_pack("{s:s}", CP_ATTR_EXPORT_NAME, "web");
    struct cp_decision d;

    cp_policy_decide(pols, from, to, &d);
    if (d.allow != allow || strcmp(d.policy, by) != 0)
        fail_msg("peer %s: got %s by %s, want %s by %s", peer, d.allow ? "allow" : "deny", d.policy,
                 allow ? "allow" : "deny", by);
    json_decref(from);
    json_decref(to);
}

static void tiers_removed_layer_by_layer(void **state)
{
    json_t *p = json_object();
    (void)state;

    decide(p, "west", false, "default-deny");
    json_object_set_new(p, "allow", pol("AccessPolicy", "allow", "allow", NULL));
    decide(p, "west", true, "allow");
    json_object_set_new(p, "deny", pol("AccessPolicy", "deny", "deny", "west"));
    decide(p, "west", false, "deny");
    decide(p, "north", true, "allow"); /* the deny names west only */
    json_object_set_new(p, "p-allow", pol("PrivilegedAccessPolicy", "p-allow", "allow", NULL));
    decide(p, "west", true, "p-allow");
    json_object_set_new(p, "p-deny", pol("PrivilegedAccessPolicy", "p-deny", "deny", "west"));
    decide(p, "west", false, "p-deny");
    json_object_del(p, "p-deny");
    decide(p, "west", true, "p-allow");
    json_object_del(p, "p-allow");
    decide(p, "west", false, "deny");
    json_object_del(p, "deny");
    decide(p, "west", true, "allow");
    json_object_del(p, "allow");
    decide(p, "west", false, "default-deny");
    json_decref(p);
}

static void match_expressions(void **state)
{
    json_t *attrs = json_pack("{s:s,s:s}", "env", "prod", "tier", "web");

    struct {
        const char *sel;
        bool match;
    } cases[] = {
        {"{}", true},
        {"{\"matchLabels\":{\"env\":\"prod\"}}", true},
        {"{\"matchLabels\":{\"env\":\"dev\"}}", false},
        {"{\"matchExpressions\":[{\"key\":\"env\",\"operator\":\"In\",\"values\":[\"dev\","
         "\"prod\"]}]}",
         true},
        {"{\"matchExpressions\":[{\"key\":\"env\",\"operator\":\"NotIn\",\"values\":[\"prod\"]}]}",
         false},
        {"{\"matchExpressions\":[{\"key\":\"owner\",\"operator\":\"NotIn\",\"values\":[\"x\"]}]}",
         true},
        {"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\"}]}", true},
        {"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"DoesNotExist\"}]}", false},
        {"{\"matchLabels\":{\"env\":\"prod\"},\"matchExpressions\":[{\"key\":\"owner\","
         "\"operator\":\"Exists\"}]}",
         false},
    };

    (void)state;

    for (size_t i = 0; i < CL_ARRAY_SIZE(cases); i++) {
        json_t *sel = json_loads(cases[i].sel, 0, NULL);
        if (cp_selector_matches(sel, attrs) != cases[i].match)
            fail_msg("selector %s", cases[i].sel);
        json_decref(sel);
    }
    json_decref(attrs);
}

/* ---- load balancing through cp_authz_egress ---- */

static struct cp cp;
static char *dir;

static void add(enum cp_kind k, const char *name, const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    assert_non_null(o);
    cp_model_defaults(k, o);
    assert_int_equal(cp_state_put(&cp, k, name, o), 0);
    json_decref(o);
}

static int lb_setup(void **state)
{
    (void)state;
    memset(&cp, 0, sizeof(cp));
    dir = cl_test_mkdtemp("lb");
    cp.name = "east";
    if (cp_store_open(dir, CP_STORE_DEFAULT_MIB, &cp.store) != 0 || cp_state_load(&cp) != 0)
        return -1;
    const char *peers[] = {"p1", "p2", "p3"};
    for (int i = 0; i < 3; i++) {
        char j[256];
        snprintf(j, sizeof(j),
                 "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"gateways\":[{\"host\":\"10.0.0.%d\","
                 "\"port\":443}]}}",
                 peers[i], i + 1);
        add(CP_KIND_PEER, peers[i], j);
    }
    add(CP_KIND_POLICY, "allow",
        "{\"kind\":\"AccessPolicy\",\"metadata\":{\"name\":\"allow\"},\"spec\":{\"action\":"
        "\"allow\"}}");
    return 0;
}

static int lb_teardown(void **state)
{
    (void)state;
    cp_state_free(&cp);
    cp_store_close(cp.store);
    cl_test_rmtree(dir);
    cl_free(&dir);
    return 0;
}

static void import_with(const char *lb)
{
    char j[512];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"port\":8080,\"lbScheme\":\"%s\","
             "\"sources\":[{\"peer\":\"p1\"},{\"peer\":\"p2\"},{\"peer\":\"p3\"}]}}",
             lb);
    add(CP_KIND_IMPORT, "web", j);
}

/* The first candidate's peer (or "" when denied). */
static const char *first(char *buf, size_t len, size_t *n)
{
    json_t *req = json_pack("{s:s,s:s}", "import", "web", "client", "127.0.0.1:1");
    json_t *r = cp_authz_egress(&cp, req);
    json_t *c = json_object_get(r, "candidates");

    *n = json_array_size(c);
    snprintf(buf, len, "%s",
             json_is_true(json_object_get(r, "allow"))
                 ? json_string_value(json_object_get(json_array_get(c, 0), "peer"))
                 : "");
    json_decref(req);
    json_decref(r);
    return buf;
}

static void round_robin_exact_rotation(void **state)
{
    char b[16];
    size_t n;
    (void)state;

    import_with("round-robin");
    const char *want[] = {"p1", "p2", "p3"};
    for (int i = 0; i < 30; i++) {
        assert_string_equal(first(b, sizeof(b), &n), want[i % 3]);
        assert_int_equal(n, 3); /* every candidate is listed, for failover */
    }
}

static void static_falls_back_when_first_unreachable(void **state)
{
    char b[16];
    size_t n;
    (void)state;

    import_with("static");
    for (int i = 0; i < 5; i++)
        assert_string_equal(first(b, sizeof(b), &n), "p1");
    json_object_set_new(cp.peer_status, "p1", json_pack("{s:b}", "reachable", 0));
    assert_string_equal(first(b, sizeof(b), &n), "p2");
    assert_int_equal(n, 2); /* left out while others are reachable */
    json_object_set_new(cp.peer_status, "p2", json_pack("{s:b}", "reachable", 0));
    json_object_set_new(cp.peer_status, "p3", json_pack("{s:b}", "reachable", 0));
    assert_string_equal(first(b, sizeof(b), &n), "p1"); /* none reachable: all, in order */
    assert_int_equal(n, 3);
}

static void random_reaches_every_source(void **state)
{
    char b[16];
    size_t n;
    int seen[3] = {0};
    (void)state;

    import_with("random");
    for (int i = 0; i < 300; i++) {
        first(b, sizeof(b), &n);
        seen[b[1] - '1']++;
    }
    for (int i = 0; i < 3; i++)
        assert_true(seen[i] > 50); /* uniform would be 100 each */
}

static void egress_denied_peer_left_out(void **state)
{
    char b[16];
    size_t n;
    (void)state;

    import_with("static");
    add(CP_KIND_POLICY, "no-p1",
        "{\"kind\":\"AccessPolicy\",\"metadata\":{\"name\":\"no-p1\"},\"spec\":{\"action\":"
        "\"deny\",\"to\":[{\"workloadSelector\":{\"matchLabels\":{\"peer.clusterlink.net/"
        "name\":\"p1\"}}}]}}");
    assert_string_equal(first(b, sizeof(b), &n), "p2");
    assert_int_equal(n, 2);
    assert_int_equal(cp_state_del(&cp, CP_KIND_POLICY, "allow"), 0);
    assert_string_equal(first(b, sizeof(b), &n), ""); /* default deny */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tiers_removed_layer_by_layer),
        cmocka_unit_test(match_expressions),
        cmocka_unit_test_setup_teardown(round_robin_exact_rotation, lb_setup, lb_teardown),
        cmocka_unit_test_setup_teardown(static_falls_back_when_first_unreachable, lb_setup,
                                        lb_teardown),
        cmocka_unit_test_setup_teardown(random_reaches_every_source, lb_setup, lb_teardown),
        cmocka_unit_test_setup_teardown(egress_denied_peer_left_out, lb_setup, lb_teardown),
    };
    cl_mem_install_jansson();
    cl_log_set_level(CL_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
