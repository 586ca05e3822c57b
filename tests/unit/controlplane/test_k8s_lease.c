/* Kubernetes mode, the Lease that elects one writer per gateway name and namespace: its name,
 * this process's identity, MicroTime, and the pure decision (what was seen, when, who we are,
 * now -> create / renew / take over / stand by) with the bodies of each request. */
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cl/json.h"
#include "cl/mem.h"
#include "cl/str.h"
#include "cm.h"
#include "cp_k8s.h"
#include "cp_k8s_lease.h"

#define D_MS 15000 /* our default duration */

static json_t *J(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);

    assert_non_null(j);
    return j;
}

/* A Lease as the API server returns it. */
static json_t *lease(const char *holder, int duration, const char *renew, int transitions,
                     const char *rv)
{
    json_t *l = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:[{s:s}]},s:{s:s,s:s,s:s,s:i}}",
                          "apiVersion", "coordination.k8s.io/v1", "kind", "Lease", "metadata",
                          "name", "clusterlink-gateway-east", "namespace", "cl", "uid", "u-1",
                          "resourceVersion", rv, "managedFields", "manager", "kcm", "spec",
                          "holderIdentity", holder, "acquireTime", "2026-01-01T00:00:00.000000Z",
                          "renewTime", renew, "leaseTransitions", transitions);

    if (duration != 0)
        json_object_set_new(json_object_get(l, "spec"), "leaseDurationSeconds",
                            json_integer(duration));
    return l;
}

static enum cp_k8s_lease_step decide(const struct cp_k8s_lease_seen *s, uint64_t now,
                                     uint64_t *expires)
{
    return cp_k8s_lease_decide(s, "me_01", D_MS, now, expires);
}

static void lease_names(void **state)
{
    char out[CP_K8S_LEASE_NAME_MAX + 1], owner[CP_K8S_OWNER_MAX + 1], small[CP_K8S_LEASE_NAME_MAX];
    char long64[65];
    (void)state;

    /* a --name (a DNS label) gives a readable name */
    assert_int_equal(cp_k8s_lease_name("east", out, sizeof(out)), 0);
    assert_string_equal(out, "clusterlink-gateway-east");
    assert_int_equal(cp_k8s_lease_name("gw-1", out, sizeof(out)), 0);
    assert_string_equal(out, "clusterlink-gateway-gw-1");
    assert_int_equal(cp_k8s_lease_name("a.b", out, sizeof(out)), 0);
    assert_string_equal(out, "clusterlink-gateway-a.b");
    /* not a valid name that way: the hash of the owner label's hashed form */
    memset(long64, 'a', 64);
    long64[64] = '\0';
    const char *const hashed[] = {long64, "Gw_1", "gw east/1", "x-", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(hashed) / sizeof(hashed[0]); i++) {
        assert_int_equal(cp_k8s_lease_name(hashed[i], out, sizeof(out)), 0);
        assert_int_equal(strlen(out), strlen(CP_K8S_LEASE_PREFIX) + CP_K8S_OWNER_HASH);
        assert_true(cl_str_is_dns_subdomain(out));
        if (i == 0 || i == 2) { /* names whose owner value is hashed: the same hash */
            assert_int_equal(cp_k8s_owner_value(hashed[i], owner, sizeof(owner)), 0);
            assert_string_equal(out + strlen(CP_K8S_LEASE_PREFIX),
                                owner + strlen(owner) - CP_K8S_OWNER_HASH);
        }
    }
    assert_int_equal(cp_k8s_lease_name(long64, out, sizeof(out)), 0);
    assert_string_equal(out, "clusterlink-gateway-ffe054fe7ae0cb6d");
    assert_int_equal(cp_k8s_lease_name(NULL, out, sizeof(out)), CL_EINVAL);
    assert_int_equal(cp_k8s_lease_name("", out, sizeof(out)), CL_EINVAL);
    assert_int_equal(cp_k8s_lease_name("east", small, sizeof(small)), CL_EINVAL);
}

static void identities(void **state)
{
    char out[CP_K8S_LEASE_ID_MAX], small[12];
    (void)state;

    /* in a pod: the pod's name; outside: host-pid; a nonce per start either way */
    assert_int_equal(
        cp_k8s_lease_identity("clusterlink-7d9f-x2", "node1", 7, 0xab, out, sizeof(out)), 0);
    assert_string_equal(out, "clusterlink-7d9f-x2_00000000000000ab");
    assert_int_equal(
        cp_k8s_lease_identity(NULL, "laptop", 4242, 0x0123456789abcdefull, out, sizeof(out)), 0);
    assert_string_equal(out, "laptop-4242_0123456789abcdef");
    assert_int_equal(cp_k8s_lease_identity("", "laptop", 1, 2, out, sizeof(out)), 0);
    assert_string_equal(out, "laptop-1_0000000000000002");
    /* the same pod name started again is another identity */
    char again[CP_K8S_LEASE_ID_MAX];
    assert_int_equal(cp_k8s_lease_identity("pod", "h", 1, 1, out, sizeof(out)), 0);
    assert_int_equal(cp_k8s_lease_identity("pod", "h", 1, 2, again, sizeof(again)), 0);
    assert_string_not_equal(out, again);
    assert_int_equal(cp_k8s_lease_identity(NULL, NULL, 1, 1, out, sizeof(out)), CL_EINVAL);
    assert_int_equal(cp_k8s_lease_identity("pod-name", NULL, 1, 1, small, sizeof(small)),
                     CL_EINVAL);
}

static void micro_times(void **state)
{
    char out[32];
    (void)state;

    assert_string_equal(cp_k8s_micro_time(0, out, sizeof(out)), "1970-01-01T00:00:00.000000Z");
    assert_string_equal(cp_k8s_micro_time(1767323045123456ull, out, sizeof(out)),
                        "2026-01-02T03:04:05.123456Z");
    assert_string_equal(cp_k8s_micro_time(1767323045000007ull, out, sizeof(out)),
                        "2026-01-02T03:04:05.000007Z");
}

/* The decision for every kind of record, at the edges of expiry. */
static void decisions(void **state)
{
    struct cp_k8s_lease_seen s;
    uint64_t exp = 0;
    json_t *l;
    (void)state;

    cp_k8s_lease_seen_init(&s);
    /* none: create */
    assert_int_equal(decide(&s, 1000, &exp), CP_K8S_LEASE_CREATE);
    assert_int_equal(cp_k8s_lease_observe(&s, NULL, 1000), 0);
    assert_int_equal(decide(&s, 1000, &exp), CP_K8S_LEASE_CREATE);

    /* ours: renew, however long ago it was seen (only our own renews count for us) */
    l = lease("me_01", 15, "2026-01-01T00:00:00.000000Z", 0, "5");
    assert_int_equal(cp_k8s_lease_observe(&s, l, 1000), 0);
    assert_int_equal(decide(&s, 1000, NULL), CP_K8S_LEASE_RENEW);
    assert_int_equal(decide(&s, 1000000, NULL), CP_K8S_LEASE_RENEW);
    json_decref(l);

    /* another's, 10 s: standby until 10 s after we saw it change, then take over */
    l = lease("other_02", 10, "2026-01-01T00:00:01.000000Z", 3, "6");
    assert_int_equal(cp_k8s_lease_observe(&s, l, 2000), 0);
    assert_int_equal(s.since_ms, 2000);
    assert_int_equal(decide(&s, 2000, &exp), CP_K8S_LEASE_STANDBY);
    assert_int_equal(exp, 12000);
    assert_int_equal(decide(&s, 11999, &exp), CP_K8S_LEASE_STANDBY);
    assert_int_equal(decide(&s, 12000, &exp), CP_K8S_LEASE_ACQUIRE);
    json_decref(l);

    /* its holder's duration, not ours; ours when it has none (or a bad one) */
    static const int durs[] = {0, -5};
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        l = lease("other_02", 1, "2026-01-01T00:00:02.000000Z", 3, "7");
        json_object_set_new(json_object_get(l, "spec"), "leaseDurationSeconds",
                            json_integer(durs[i]));
        assert_int_equal(cp_k8s_lease_observe(&s, l, 3000 + i), 0);
        assert_int_equal(decide(&s, 3000 + i + D_MS - 1, &exp), CP_K8S_LEASE_STANDBY);
        assert_int_equal(exp, 3000 + i + D_MS);
        assert_int_equal(decide(&s, 3000 + i + D_MS, &exp), CP_K8S_LEASE_ACQUIRE);
        json_decref(l);
    }

    /* released (holder cleared, or absent), or no spec at all: take over at once */
    l = lease("", 1, "2026-01-01T00:00:03.000000Z", 4, "8");
    assert_int_equal(cp_k8s_lease_observe(&s, l, 4000), 0);
    assert_int_equal(decide(&s, 4000, NULL), CP_K8S_LEASE_ACQUIRE);
    json_object_del(json_object_get(l, "spec"), "holderIdentity");
    assert_int_equal(cp_k8s_lease_observe(&s, l, 4001), 0);
    assert_int_equal(decide(&s, 4001, NULL), CP_K8S_LEASE_ACQUIRE);
    json_object_del(l, "spec");
    assert_int_equal(cp_k8s_lease_observe(&s, l, 4002), 0);
    assert_int_equal(decide(&s, 4002, NULL), CP_K8S_LEASE_ACQUIRE);
    json_decref(l);
    cp_k8s_lease_seen_deinit(&s);
    cp_k8s_lease_seen_deinit(&s); /* idempotent */
}

/* Expiry is judged by when we saw the record change, never by renewTime against our clock. */
static void clock_skew_does_not_matter(void **state)
{
    struct cp_k8s_lease_seen s;
    uint64_t exp = 0;
    json_t *l;
    (void)state;

    cp_k8s_lease_seen_init(&s);
    /* renewTime decades in the past (the holder's clock is behind): still valid for 15 s */
    l = lease("other_02", 15, "1999-01-01T00:00:00.000000Z", 0, "10");
    assert_int_equal(cp_k8s_lease_observe(&s, l, 50000), 0);
    assert_int_equal(decide(&s, 50000, &exp), CP_K8S_LEASE_STANDBY);
    assert_int_equal(exp, 65000);
    json_decref(l);
    /* renewTime far in the future (its clock is ahead), never changing: it expires anyway */
    l = lease("other_02", 15, "2999-01-01T00:00:00.000000Z", 0, "11");
    assert_int_equal(cp_k8s_lease_observe(&s, l, 60000), 0);
    assert_int_equal(decide(&s, 74999, &exp), CP_K8S_LEASE_STANDBY);
    assert_int_equal(decide(&s, 75000, &exp), CP_K8S_LEASE_ACQUIRE);
    json_decref(l);
    cp_k8s_lease_seen_deinit(&s);
}

/* A holder renewing keeps a standby waiting; one that stops is replaced a duration after the
 * standby last saw it change. Changes outside the spec (labels, resourceVersion) are not
 * renews. */
static void renews_and_takeover(void **state)
{
    struct cp_k8s_lease_seen s;
    char renew[32];
    uint64_t now = 100000, exp = 0;
    json_t *l;
    (void)state;

    cp_k8s_lease_seen_init(&s);
    for (int i = 0; i < 10; i++, now += 5000) { /* renewed every 5 s, read every 5 s */
        cp_k8s_micro_time(1767323045000000ull + (uint64_t)i * 5000000u, renew, sizeof(renew));
        l = lease("other_02", 15, renew, 1, i % 2 ? "20" : "21");
        assert_int_equal(cp_k8s_lease_observe(&s, l, now), 0);
        assert_int_equal(s.since_ms, now);
        assert_int_equal(decide(&s, now, &exp), CP_K8S_LEASE_STANDBY);
        assert_int_equal(exp, now + 15000);
        json_decref(l);
    }
    /* it stops renewing: the same record read again and again (someone labels it meanwhile) */
    uint64_t last = now - 5000;
    l = lease("other_02", 15, renew, 1, "22");
    json_object_set_new(json_object_get(l, "metadata"), "labels", json_pack("{s:s}", "team", "x"));
    for (; now < last + 15000; now += 5000) {
        assert_int_equal(cp_k8s_lease_observe(&s, l, now), 0);
        assert_int_equal(s.since_ms, last);
        assert_int_equal(decide(&s, now, &exp), CP_K8S_LEASE_STANDBY);
        assert_int_equal(exp, last + 15000);
    }
    assert_int_equal(cp_k8s_lease_observe(&s, l, now), 0);
    assert_int_equal(decide(&s, now, &exp), CP_K8S_LEASE_ACQUIRE);
    json_decref(l);
    /* deleted meanwhile: create; then it is back (someone else's): standby from now */
    assert_int_equal(cp_k8s_lease_observe(&s, NULL, now + 1), 0);
    assert_int_equal(decide(&s, now + 1, &exp), CP_K8S_LEASE_CREATE);
    l = lease("third_03", 15, renew, 2, "30");
    assert_int_equal(cp_k8s_lease_observe(&s, l, now + 2), 0);
    assert_int_equal(decide(&s, now + 2, &exp), CP_K8S_LEASE_STANDBY);
    assert_int_equal(exp, now + 2 + 15000);
    json_decref(l);
    cp_k8s_lease_seen_deinit(&s);
}

static void bodies(void **state)
{
    const struct cp_k8s_lease_who who = {.ns = "cl",
                                         .name = "clusterlink-gateway-east",
                                         .owner = "east",
                                         .identity = "me_01",
                                         .duration_s = 15};
    const char *now = "2026-01-02T03:04:05.123456Z";
    json_t *cur = lease("other_02", 10, "2026-01-01T00:00:09.000000Z", 4, "77"), *b, *want;
    (void)state;

    b = cp_k8s_lease_body(CP_K8S_LEASE_CREATE, NULL, &who, now);
    want = J("{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{"
             "\"name\":\"clusterlink-gateway-east\",\"namespace\":\"cl\",\"labels\":{"
             "\"app.kubernetes.io/managed-by\":\"clusterlink\",\"clusterlink.net/gateway\":"
             "\"east\"}},\"spec\":{\"holderIdentity\":\"me_01\",\"leaseDurationSeconds\":15,"
             "\"acquireTime\":\"2026-01-02T03:04:05.123456Z\",\"renewTime\":"
             "\"2026-01-02T03:04:05.123456Z\",\"leaseTransitions\":0}}");
    assert_true(json_equal(b, want));
    json_decref(b);
    json_decref(want);

    /* take over: us, our duration, a new acquireTime, one more transition; everything else as
     * read (resourceVersion for the 409, uid), managedFields left to the server */
    b = cp_k8s_lease_body(CP_K8S_LEASE_ACQUIRE, cur, &who, now);
    want = J("{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{"
             "\"name\":\"clusterlink-gateway-east\",\"namespace\":\"cl\",\"uid\":\"u-1\","
             "\"resourceVersion\":\"77\"},\"spec\":{\"holderIdentity\":\"me_01\","
             "\"leaseDurationSeconds\":15,\"acquireTime\":\"2026-01-02T03:04:05.123456Z\","
             "\"renewTime\":\"2026-01-02T03:04:05.123456Z\",\"leaseTransitions\":5}}");
    assert_true(json_equal(b, want));
    json_decref(want);

    /* renew what we wrote: only renewTime moves */
    json_t *r = cp_k8s_lease_body(CP_K8S_LEASE_RENEW, b, &who, "2026-01-02T03:04:10.000000Z");
    json_t *spec = json_object_get(r, "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "renewTime")),
                        "2026-01-02T03:04:10.000000Z");
    assert_string_equal(json_string_value(json_object_get(spec, "acquireTime")), now);
    assert_int_equal(json_integer_value(json_object_get(spec, "leaseTransitions")), 5);
    assert_string_equal(json_string_value(json_object_get(spec, "holderIdentity")), "me_01");
    assert_string_equal(cp_k8s_resource_version(r), "77");

    /* release on a clean stop: no holder, 1 s, transitions kept (client-go's ReleaseOnCancel) */
    json_t *rel = cp_k8s_lease_body(CP_K8S_LEASE_RELEASE, r, &who, "2026-01-02T03:04:11.000000Z");
    spec = json_object_get(rel, "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "holderIdentity")), "");
    assert_int_equal(json_integer_value(json_object_get(spec, "leaseDurationSeconds")), 1);
    assert_int_equal(json_integer_value(json_object_get(spec, "leaseTransitions")), 5);
    assert_string_equal(json_string_value(json_object_get(spec, "renewTime")),
                        "2026-01-02T03:04:11.000000Z");
    assert_string_equal(cp_k8s_resource_version(rel), "77");
    /* and whoever reads that takes over at once */
    struct cp_k8s_lease_seen s;
    cp_k8s_lease_seen_init(&s);
    assert_int_equal(cp_k8s_lease_observe(&s, rel, 1), 0);
    assert_int_equal(cp_k8s_lease_decide(&s, "next_02", D_MS, 1, NULL), CP_K8S_LEASE_ACQUIRE);
    cp_k8s_lease_seen_deinit(&s);
    json_decref(rel);
    json_decref(r);
    json_decref(b);

    /* a Lease without a spec or with odd transitions still gets a whole one */
    json_object_del(cur, "spec");
    b = cp_k8s_lease_body(CP_K8S_LEASE_ACQUIRE, cur, &who, now);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(b, "spec"), "leaseTransitions")), 1);
    json_decref(b);
    assert_null(cp_k8s_lease_body(CP_K8S_LEASE_STANDBY, cur, &who, now));
    assert_string_equal(cp_k8s_lease_step_name(CP_K8S_LEASE_ACQUIRE), "acquire");
    assert_string_equal(cp_k8s_lease_step_name(CP_K8S_LEASE_STEP_COUNT), "?");
    json_decref(cur);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lease_names),
        cmocka_unit_test(identities),
        cmocka_unit_test(micro_times),
        cmocka_unit_test(decisions),
        cmocka_unit_test(clock_skew_does_not_matter),
        cmocka_unit_test(renews_and_takeover),
        cmocka_unit_test(bodies),
    };

    cl_mem_install_jansson();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
