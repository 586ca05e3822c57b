/* Kubernetes mode, the pure parts: desired Services and desired-vs-actual plans, label
 * selectors, watch events, the pod IP map and client attributes, backoff, Retry-After, query
 * escaping and owner label values. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cl/json.h"
#include "cl/mem.h"
#include "cm.h"
#include "cp_k8s.h"
#include "cp_k8s_client.h"

static json_t *J(const char *text)
{
    struct cl_jerr e;
    json_t *j = cl_json_loadb(text, strlen(text), &e);

    if (j == NULL)
        fail_msg("bad test JSON (%s): %s", e.msg, text);
    return j;
}

static json_t *import(int port, int target)
{
    return json_pack("{s:{s:s},s:{s:i,s:i,s:[{s:s,s:s}],s:s}}", "metadata", "name", "web", "spec",
                     "port", port, "targetPort", target, "sources", "peer", "west", "exportName",
                     "web", "lbScheme", "round-robin");
}

/* The Service as the API server would return it for our POST: defaults and server fields. */
static json_t *served(const json_t *desired)
{
    json_t *s = json_deep_copy(desired);
    json_t *md = json_object_get(s, "metadata"), *spec = json_object_get(s, "spec");

    json_object_del(s, "kind"); /* list items carry no kind */
    json_object_del(s, "apiVersion");
    json_object_set_new(md, "uid", json_string("u-1"));
    json_object_set_new(md, "resourceVersion", json_string("41"));
    json_object_set_new(md, "managedFields", json_pack("[{s:s}]", "manager", "cl"));
    json_object_set_new(spec, "clusterIP", json_string("10.96.7.7"));
    json_object_set_new(spec, "sessionAffinity", json_string("None"));
    json_object_set_new(s, "status", json_pack("{s:{}}", "loadBalancer"));
    return s;
}

static void desired_service(void **state)
{
    json_t *sel = J("{\"app\":\"cl-dataplane\",\"release\":\"r1\"}");
    json_t *imp = import(80, 20001);
    struct cp_k8s_target t = {.ns = "cl", .owner = "east", .selector = sel};
    json_t *d = cp_k8s_desired_service(&t, "web", imp);
    json_t *want =
        J("{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"web\","
          "\"namespace\":\"cl\",\"labels\":{\"app.kubernetes.io/managed-by\":\"clusterlink\","
          "\"clusterlink.net/import\":\"web\",\"clusterlink.net/"
          "gateway\":\"east\"}},\"spec\":{\"type\":\"ClusterIP\",\"selector\":"
          "{\"app\":\"cl-dataplane\",\"release\":\"r1\"},\"ports\":[{\"name\":\"tcp\","
          "\"protocol\":\"TCP\",\"port\":80,\"targetPort\":20001}]}}");
    (void)state;

    assert_true(json_equal(d, want));
    assert_int_equal(cp_k8s_service_owner(d, "east"), CP_K8S_OWNER_OURS);
    assert_int_equal(cp_k8s_service_owner(d, "west"), CP_K8S_OWNER_OTHER);
    json_decref(want);
    json_decref(d);
    json_decref(imp);
    json_decref(sel);
}

static void plans(void **state)
{
    json_t *sel = J("{\"app\":\"dp\"}"), *imp = import(80, 20001), *body = NULL;
    struct cp_k8s_target t = {.ns = "cl", .owner = "east", .selector = sel};
    json_t *d = cp_k8s_desired_service(&t, "web", imp), *actual = served(d);
    (void)state;

    /* nothing wanted, nothing there */
    assert_int_equal(cp_k8s_plan(&t, "web", NULL, NULL, &body), CP_K8S_NONE);
    assert_null(body);
    /* wanted, absent: create exactly the desired object */
    assert_int_equal(cp_k8s_plan(&t, "web", imp, NULL, &body), CP_K8S_CREATE);
    assert_true(json_equal(body, d));
    json_decref(body);
    /* what the server made of it is right: no write */
    assert_int_equal(cp_k8s_plan(&t, "web", imp, actual, &body), CP_K8S_NONE);
    assert_null(body);
    /* extra labels and annotations someone added are not ours to judge */
    json_object_set_new(json_object_get(json_object_get(actual, "metadata"), "labels"), "team",
                        json_string("x"));
    assert_int_equal(cp_k8s_plan(&t, "web", imp, actual, &body), CP_K8S_NONE);
    /* the import changed: PUT the actual object with our fields, keeping the server's */
    json_t *imp2 = import(8080, 20002);
    assert_int_equal(cp_k8s_plan(&t, "web", imp2, actual, &body), CP_K8S_UPDATE);
    json_t *spec = json_object_get(body, "spec"), *md = json_object_get(body, "metadata");
    assert_string_equal(json_string_value(json_object_get(spec, "clusterIP")), "10.96.7.7");
    assert_string_equal(json_string_value(json_object_get(md, "resourceVersion")), "41");
    assert_string_equal(json_string_value(json_object_get(md, "uid")), "u-1");
    assert_null(json_object_get(md, "managedFields"));
    assert_string_equal(json_string_value(json_object_get(body, "kind")), "Service");
    assert_string_equal(json_string_value(json_object_get(body, "apiVersion")), "v1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(md, "labels"), "team")),
                        "x");
    json_t *port = json_array_get(json_object_get(spec, "ports"), 0);
    assert_int_equal(json_integer_value(json_object_get(port, "port")), 8080);
    assert_int_equal(json_integer_value(json_object_get(port, "targetPort")), 20002);
    /* and once applied, the plan is satisfied */
    json_t *again = NULL;
    assert_int_equal(cp_k8s_plan(&t, "web", imp2, body, &again), CP_K8S_NONE);
    assert_null(again);
    json_decref(imp2);
    json_decref(body);
    body = NULL;
    /* each owned field, changed by someone, is put back */
    static const char *const drift[] = {
        "{\"spec\":{\"type\":\"NodePort\"}}",
        "{\"spec\":{\"selector\":{\"app\":\"other\"}}}",
        "{\"spec\":{\"selector\":null}}",
        "{\"spec\":{\"ports\":[{\"name\":\"tcp\",\"protocol\":\"UDP\",\"port\":80,"
        "\"targetPort\":20001}]}}",
        "{\"spec\":{\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":80,"
        "\"targetPort\":20001}]}}",
        "{\"spec\":{\"ports\":[{\"name\":\"tcp\",\"protocol\":\"TCP\",\"port\":80,"
        "\"targetPort\":\"http\"}]}}",
        "{\"spec\":{\"ports\":[{\"name\":\"tcp\",\"port\":80,\"targetPort\":20001},"
        "{\"name\":\"x\",\"port\":81,\"targetPort\":81}]}}",
        "{\"metadata\":{\"labels\":{\"app.kubernetes.io/managed-by\":\"clusterlink\","
        "\"clusterlink.net/gateway\":\"east\"}}}",
        "{\"metadata\":{\"labels\":{\"app.kubernetes.io/managed-by\":\"clusterlink\","
        "\"clusterlink.net/gateway\":\"east\",\"clusterlink.net/import\":\"api\"}}}",
    };
    for (size_t i = 0; i < sizeof(drift) / sizeof(drift[0]); i++) {
        json_t *a = json_deep_copy(actual), *patch = J(drift[i]), *v;
        const char *k;
        json_object_foreach(patch, k, v)
        {
            json_object_update(json_object_get(a, k), v);
            if (json_object_get(v, "selector") != NULL &&
                json_is_null(json_object_get(v, "selector")))
                json_object_del(json_object_get(a, k), "selector");
        }
        if (strstr(drift[i], "\"labels\"") != NULL)
            json_object_set(json_object_get(a, "metadata"), "labels",
                            json_object_get(json_object_get(patch, "metadata"), "labels"));
        assert_int_equal(cp_k8s_plan(&t, "web", imp, a, &body), CP_K8S_UPDATE);
        json_t *b3 = NULL;
        assert_int_equal(cp_k8s_plan(&t, "web", imp, body, &b3), CP_K8S_NONE);
        json_decref(body);
        json_decref(patch);
        json_decref(a);
    }
    /* protocol and type may be left to the server's defaults */
    json_t *a = json_deep_copy(actual);
    json_object_del(json_object_get(a, "spec"), "type");
    json_object_del(json_array_get(json_object_get(json_object_get(a, "spec"), "ports"), 0),
                    "protocol");
    assert_int_equal(cp_k8s_plan(&t, "web", imp, a, &body), CP_K8S_NONE);
    json_decref(a);
    /* the import is gone: ours is deleted */
    assert_int_equal(cp_k8s_plan(&t, "web", NULL, actual, &body), CP_K8S_DELETE);
    assert_null(body);
    /* not ours: never touched, whether wanted or not */
    json_t *foreign = json_deep_copy(actual);
    json_object_del(json_object_get(foreign, "metadata"), "labels");
    assert_int_equal(cp_k8s_service_owner(foreign, "east"), CP_K8S_OWNER_FOREIGN);
    assert_int_equal(cp_k8s_plan(&t, "web", imp, foreign, &body), CP_K8S_CONFLICT);
    assert_null(body);
    assert_int_equal(cp_k8s_plan(&t, "web", NULL, foreign, &body), CP_K8S_NONE);
    json_object_set_new(json_object_get(foreign, "metadata"), "labels",
                        json_pack("{s:s}", "app.kubernetes.io/managed-by", "helm"));
    assert_int_equal(cp_k8s_plan(&t, "web", imp, foreign, &body), CP_K8S_CONFLICT);
    json_decref(foreign);
    /* ours, being deleted (finalizers pending): wait for it to go, never update or delete it */
    json_t *going = json_deep_copy(actual);
    json_object_set_new(json_object_get(going, "metadata"), "deletionTimestamp",
                        json_string("2026-01-01T00:00:00Z"));
    assert_int_equal(cp_k8s_plan(&t, "web", imp, going, &body), CP_K8S_WAIT);
    assert_null(body);
    assert_int_equal(cp_k8s_plan(&t, "web", NULL, going, &body), CP_K8S_NONE);
    json_decref(going);
    /* an import whose name cannot be a Service name */
    assert_int_equal(cp_k8s_plan(&t, "9web", imp, NULL, &body), CP_K8S_INVALID);
    assert_null(body);
    assert_string_equal(cp_k8s_action_name(CP_K8S_CONFLICT), "conflict");
    assert_string_equal(cp_k8s_action_name(CP_K8S_ACTION_COUNT), "?");
    json_decref(actual);
    json_decref(d);
    json_decref(imp);
    json_decref(sel);
}

/* A valid label value: <= 63 of [A-Za-z0-9-_.], alphanumeric at both ends. */
static bool label_value_ok(const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || n > 63 || !isalnum((unsigned char)v[0]) || !isalnum((unsigned char)v[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)v[i]) && v[i] != '-' && v[i] != '_' && v[i] != '.')
            return false;
    }
    return true;
}

static void owner_values(void **state)
{
    char out[CP_K8S_OWNER_MAX + 1], again[CP_K8S_OWNER_MAX + 1], small[CP_K8S_OWNER_MAX];
    char long63[64], long64[65];
    (void)state;

    /* a valid label value (any DNS label, so any --name) is used as it is */
    static const char *const plain[] = {"east", "gw-1", "a", "Gw_1.x"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        assert_int_equal(cp_k8s_owner_value(plain[i], out, sizeof(out)), 0);
        assert_string_equal(out, plain[i]);
    }
    memset(long63, 'a', 63);
    long63[63] = '\0';
    assert_int_equal(cp_k8s_owner_value(long63, out, sizeof(out)), 0);
    assert_string_equal(out, long63);
    /* 64 characters: 46 of them, '-', 16 hex digits of SHA-256("a" x 64) */
    memset(long64, 'a', 64);
    long64[64] = '\0';
    assert_int_equal(cp_k8s_owner_value(long64, out, sizeof(out)), 0);
    assert_int_equal(strlen(out), 63);
    assert_memory_equal(out, long64, 46);
    assert_string_equal(out + 46, "-ffe054fe7ae0cb6d");
    assert_true(label_value_ok(out));
    /* deterministic (a restart finds its Services again), and names differing only past the
     * prefix get different values */
    assert_int_equal(cp_k8s_owner_value(long64, again, sizeof(again)), 0);
    assert_string_equal(out, again);
    long64[63] = 'b';
    assert_int_equal(cp_k8s_owner_value(long64, again, sizeof(again)), 0);
    assert_string_not_equal(out, again);
    assert_memory_equal(out, again, 47);
    /* characters a label value cannot hold: '-' in the prefix, ends trimmed, hash of the name */
    assert_int_equal(cp_k8s_owner_value("gw east/1", out, sizeof(out)), 0);
    assert_int_equal(strncmp(out, "gw-east-1-", 10), 0);
    assert_int_equal(strlen(out), 10 + CP_K8S_OWNER_HASH);
    assert_true(label_value_ok(out));
    assert_int_equal(cp_k8s_owner_value("-east-", out, sizeof(out)), 0);
    assert_int_equal(strncmp(out, "east-", 5), 0);
    assert_true(label_value_ok(out));
    /* nothing usable: the hash alone */
    assert_int_equal(cp_k8s_owner_value("\xc3\xa9/", out, sizeof(out)), 0);
    assert_int_equal(strlen(out), CP_K8S_OWNER_HASH);
    assert_true(label_value_ok(out));
    static const char *const odd[] = {"\xc3\xa9t\xc3\xa9", "a b", "_x_", "x.", "..", "a/b/c"};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        assert_int_equal(cp_k8s_owner_value(odd[i], out, sizeof(out)), 0);
        if (!label_value_ok(out))
            fail_msg("owner value '%s' for '%s' is not a label value", out, odd[i]);
    }
    assert_int_equal(cp_k8s_owner_value(NULL, out, sizeof(out)), CL_EINVAL);
    assert_int_equal(cp_k8s_owner_value("", out, sizeof(out)), CL_EINVAL);
    assert_int_equal(cp_k8s_owner_value("east", small, sizeof(small)), CL_EINVAL);
}

static json_t *with_labels(const json_t *svc, const char *labels)
{
    json_t *s = json_deep_copy(svc);

    json_object_set_new(json_object_get(s, "metadata"), "labels", J(labels));
    return s;
}

static void ownership(void **state)
{
    json_t *sel = J("{\"app\":\"dp\",\"release\":\"east\"}"), *imp = import(80, 20001);
    struct cp_k8s_target east = {.ns = "cl", .owner = "east", .selector = sel};
    json_t *wsel = J("{\"app\":\"dp\",\"release\":\"west\"}");
    struct cp_k8s_target west = {.ns = "cl", .owner = "west", .selector = wsel};
    json_t *d = cp_k8s_desired_service(&east, "web", imp), *mine = served(d), *body = NULL;
    char msg[512];
    (void)state;

    /* east's Service, seen by west (same import name, same spec but for the selector): never
     * written or deleted, whatever west's import says */
    assert_int_equal(cp_k8s_service_owner(mine, "east"), CP_K8S_OWNER_OURS);
    assert_int_equal(cp_k8s_service_owner(mine, "west"), CP_K8S_OWNER_OTHER);
    assert_int_equal(cp_k8s_plan(&west, "web", imp, mine, &body), CP_K8S_CONFLICT);
    assert_null(body);
    assert_int_equal(cp_k8s_plan(&west, "web", NULL, mine, &body), CP_K8S_NONE);
    assert_null(body);
    /* even when it is exactly what west wants */
    json_t *same = cp_k8s_desired_service(&west, "web", imp), *same_s = served(same);
    json_object_set_new(json_object_get(json_object_get(same_s, "metadata"), "labels"),
                        "clusterlink.net/gateway", json_string("east"));
    assert_int_equal(cp_k8s_plan(&west, "web", imp, same_s, &body), CP_K8S_CONFLICT);
    assert_int_equal(cp_k8s_plan(&east, "web", imp, same_s, &body), CP_K8S_UPDATE);
    json_decref(body);
    json_decref(same_s);
    json_decref(same);
    cp_k8s_conflict_message(&west, "web", mine, msg, sizeof(msg));
    assert_non_null(strstr(msg, "another ClusterLink gateway"));
    assert_non_null(strstr(msg, "clusterlink.net/gateway=east"));
    assert_non_null(strstr(msg, "cl/web"));
    /* and its owner still keeps it */
    assert_int_equal(cp_k8s_plan(&east, "web", imp, mine, &body), CP_K8S_NONE);
    assert_int_equal(cp_k8s_plan(&east, "web", NULL, mine, &body), CP_K8S_DELETE);

    /* an older version's Service (managed-by, no owner label), exactly as the import wants:
     * adopted by a PUT of it (resourceVersion, clusterIP kept) with our owner label added */
    json_t *legacy = with_labels(mine, "{\"app.kubernetes.io/managed-by\":\"clusterlink\","
                                       "\"clusterlink.net/import\":\"web\",\"team\":\"x\"}");
    assert_int_equal(cp_k8s_service_owner(legacy, "east"), CP_K8S_OWNER_LEGACY);
    assert_int_equal(cp_k8s_plan(&east, "web", imp, legacy, &body), CP_K8S_ADOPT);
    json_t *md = json_object_get(body, "metadata"), *lb = json_object_get(md, "labels");
    assert_string_equal(json_string_value(json_object_get(lb, "clusterlink.net/gateway")), "east");
    assert_string_equal(json_string_value(json_object_get(lb, "team")), "x");
    assert_string_equal(json_string_value(json_object_get(md, "resourceVersion")), "41");
    assert_string_equal(json_string_value(json_object_get(md, "uid")), "u-1");
    assert_null(json_object_get(md, "managedFields"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(body, "spec"), "clusterIP")),
        "10.96.7.7");
    assert_true(json_equal(json_object_get(body, "spec"), json_object_get(legacy, "spec")));
    assert_int_equal(cp_k8s_service_owner(body, "east"), CP_K8S_OWNER_OURS);
    json_t *again = NULL;
    assert_int_equal(cp_k8s_plan(&east, "web", imp, body, &again), CP_K8S_NONE);
    assert_null(again);
    json_decref(body);
    body = NULL;
    /* ... but not by a gateway whose import differs (another selector here): a conflict that
     * says how to hand it over */
    assert_int_equal(cp_k8s_plan(&west, "web", imp, legacy, &body), CP_K8S_CONFLICT);
    assert_null(body);
    cp_k8s_conflict_message(&west, "web", legacy, msg, sizeof(msg));
    assert_non_null(strstr(msg, "no owner label"));
    assert_non_null(strstr(msg, "clusterlink.net/gateway=west"));
    /* nor when the port, target port or import label differ */
    json_t *imp2 = import(81, 20001), *imp3 = import(80, 20002);
    assert_int_equal(cp_k8s_plan(&east, "web", imp2, legacy, &body), CP_K8S_CONFLICT);
    assert_int_equal(cp_k8s_plan(&east, "web", imp3, legacy, &body), CP_K8S_CONFLICT);
    json_t *other_imp = with_labels(mine, "{\"app.kubernetes.io/managed-by\":\"clusterlink\","
                                          "\"clusterlink.net/import\":\"api\"}");
    assert_int_equal(cp_k8s_plan(&east, "web", imp, other_imp, &body), CP_K8S_CONFLICT);
    assert_null(body);
    json_decref(other_imp);
    json_decref(imp2);
    json_decref(imp3);
    /* an unowned one matching no import is never deleted: we cannot tell whose it is */
    assert_int_equal(cp_k8s_plan(&east, "web", NULL, legacy, &body), CP_K8S_NONE);
    assert_null(body);
    /* an unowned one being deleted: wait for it, write nothing */
    json_object_set_new(json_object_get(legacy, "metadata"), "deletionTimestamp",
                        json_string("2026-01-01T00:00:00Z"));
    assert_int_equal(cp_k8s_plan(&east, "web", imp, legacy, &body), CP_K8S_WAIT);
    assert_null(body);
    json_decref(legacy);

    /* labels that are not a string owner, or an empty one: another's, never ours */
    json_t *odd = with_labels(mine, "{\"app.kubernetes.io/managed-by\":\"clusterlink\","
                                    "\"clusterlink.net/import\":\"web\","
                                    "\"clusterlink.net/gateway\":\"\"}");
    assert_int_equal(cp_k8s_service_owner(odd, "east"), CP_K8S_OWNER_OTHER);
    assert_int_equal(cp_k8s_plan(&east, "web", imp, odd, &body), CP_K8S_CONFLICT);
    assert_int_equal(cp_k8s_plan(&east, "web", NULL, odd, &body), CP_K8S_NONE);
    json_decref(odd);
    odd = with_labels(mine, "{\"app.kubernetes.io/managed-by\":\"clusterlink\","
                            "\"clusterlink.net/gateway\":1}");
    assert_int_equal(cp_k8s_service_owner(odd, "east"), CP_K8S_OWNER_OTHER);
    json_decref(odd);
    /* our owner label on a Service not managed by ClusterLink: foreign */
    odd = with_labels(mine, "{\"clusterlink.net/gateway\":\"east\"}");
    assert_int_equal(cp_k8s_service_owner(odd, "east"), CP_K8S_OWNER_FOREIGN);
    assert_int_equal(cp_k8s_plan(&east, "web", imp, odd, &body), CP_K8S_CONFLICT);
    cp_k8s_conflict_message(&east, "web", odd, msg, sizeof(msg));
    assert_non_null(strstr(msg, "not managed by ClusterLink"));
    json_decref(odd);
    assert_int_equal(cp_k8s_service_owner(NULL, "east"), CP_K8S_OWNER_FOREIGN);
    assert_string_equal(cp_k8s_action_name(CP_K8S_ADOPT), "adopt");
    /* a message never overflows its buffer */
    char tiny[16];
    cp_k8s_conflict_message(&west, "web", mine, tiny, sizeof(tiny));
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    json_decref(mine);
    json_decref(d);
    json_decref(imp);
    json_decref(wsel);
    json_decref(sel);
}

static void selectors(void **state)
{
    char err[256];
    json_t *s;
    (void)state;

    s = cp_k8s_parse_selector("app=cl-dataplane,app.kubernetes.io/instance=gw-1,empty=", err,
                              sizeof(err));
    assert_non_null(s);
    assert_int_equal(json_object_size(s), 3);
    assert_string_equal(json_string_value(json_object_get(s, "app.kubernetes.io/instance")),
                        "gw-1");
    assert_string_equal(json_string_value(json_object_get(s, "empty")), "");
    json_decref(s);
    static const char *const bad[] = {
        NULL,
        "",
        "app",
        "=v",
        "app=v,,x=y",
        "app=v,app=w",
        "-app=v",
        "app=v-",
        "a b=c",
        "Example.COM/x=y",
        "/x=y",
        "a/b/c=d",
        "app=has space",
        "k=0123456789012345678901234567890123456789012345678901234567890123",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if ((s = cp_k8s_parse_selector(bad[i], err, sizeof(err))) != NULL)
            fail_msg("selector '%s' accepted", bad[i]);
        assert_true(err[0] != '\0');
    }
}

static void watch_events(void **state)
{
    json_t *root, *obj;
    const char *type;
    static const char ev[] = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\","
                             "\"resourceVersion\":\"12\"}}}";
    (void)state;

    assert_int_equal(cp_k8s_watch_event(ev, strlen(ev), &root, &type, &obj), 0);
    assert_string_equal(type, "MODIFIED");
    assert_string_equal(cp_k8s_resource_version(obj), "12");
    json_decref(root);
    static const char *const bad[] = {"",
                                      "{",
                                      "[]",
                                      "{\"type\":1,\"object\":{}}",
                                      "{\"type\":\"ADDED\"}",
                                      "{\"type\":\"ADDED\",\"object\":[]}",
                                      "{\"type\":\"A\",\"object\":{}} x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_not_equal(cp_k8s_watch_event(bad[i], strlen(bad[i]), &root, &type, &obj), 0);
        assert_null(root);
    }
    json_t *o = J("{\"metadata\":{\"resourceVersion\":\"\"}}");
    assert_null(cp_k8s_resource_version(o));
    assert_null(cp_k8s_resource_version(NULL));
    json_decref(o);
}

static json_t *pod(const char *uid, const char *ns, const char *ip, const char *phase)
{
    json_t *p = json_pack("{s:{s:s,s:s,s:s,s:{s:s,s:s}},s:{s:s,s:[]},s:{}}", "metadata", "name",
                          "p", "namespace", ns, "uid", uid, "labels", "app", "client", "tier",
                          "web", "spec", "serviceAccountName", "runner", "containers", "status");
    json_t *st = json_object_get(p, "status");
    if (ip != NULL) {
        json_object_set_new(st, "podIP", json_string(ip));
        json_object_set_new(st, "podIPs", json_pack("[{s:s}]", "ip", ip));
    }
    if (phase != NULL)
        json_object_set_new(st, "phase", json_string(phase));
    return p;
}

static void expect_attrs(struct cp_k8s_pods *p, const char *ip, const char *ns)
{
    json_t *a = json_object();

    if (ns == NULL) {
        assert_false(cp_k8s_pods_attrs(p, ip, a));
        assert_int_equal(json_object_size(a), 0);
    } else {
        assert_true(cp_k8s_pods_attrs(p, ip, a));
        assert_string_equal(
            json_string_value(json_object_get(a, "client.clusterlink.net/namespace")), ns);
        assert_string_equal(
            json_string_value(json_object_get(a, "client.clusterlink.net/service-account")),
            "runner");
        assert_string_equal(
            json_string_value(json_object_get(a, "client.clusterlink.net/labels.app")), "client");
        assert_string_equal(
            json_string_value(json_object_get(a, "client.clusterlink.net/labels.tier")), "web");
        assert_int_equal(json_object_size(a), 4);
    }
    json_decref(a);
}

static void pods(void **state)
{
    struct cp_k8s_pods p;
    json_t *a, *b, *c;
    (void)state;

    cp_k8s_pods_init(&p);
    a = pod("u-a", "team-a", "10.0.0.5", "Running");
    assert_int_equal(cp_k8s_pods_apply(&p, a, false), 0);
    expect_attrs(&p, "10.0.0.5", "team-a");
    expect_attrs(&p, "10.0.0.6", NULL);
    /* dual stack: both IPs map */
    json_array_append_new(json_object_get(json_object_get(a, "status"), "podIPs"),
                          json_pack("{s:s}", "ip", "fd00::5"));
    assert_int_equal(cp_k8s_pods_apply(&p, a, false), 0);
    expect_attrs(&p, "fd00::5", "team-a");
    assert_int_equal(cp_k8s_pods_count(&p), 2);
    /* the pod finishes: its IPs are released */
    json_object_set_new(json_object_get(a, "status"), "phase", json_string("Succeeded"));
    assert_int_equal(cp_k8s_pods_apply(&p, a, false), 0);
    expect_attrs(&p, "10.0.0.5", NULL);
    assert_int_equal(cp_k8s_pods_count(&p), 0);
    /* a new pod takes the IP; the old one's late delete must not remove it */
    b = pod("u-b", "team-b", "10.0.0.5", "Running");
    assert_int_equal(cp_k8s_pods_apply(&p, a, false), 0); /* stale MODIFIED of a */
    assert_int_equal(cp_k8s_pods_apply(&p, b, false), 0);
    expect_attrs(&p, "10.0.0.5", "team-b");
    json_object_set_new(json_object_get(a, "status"), "phase", json_string("Running"));
    assert_int_equal(cp_k8s_pods_apply(&p, a, true), 0);
    expect_attrs(&p, "10.0.0.5", "team-b");
    /* pending pods without IPs, host-network pods and bad IPs map nothing */
    c = pod("u-c", "team-c", NULL, "Pending");
    assert_int_equal(cp_k8s_pods_apply(&p, c, false), 0);
    json_decref(c);
    c = pod("u-c", "team-c", "192.168.1.1", "Running");
    json_object_set_new(json_object_get(c, "spec"), "hostNetwork", json_true());
    assert_int_equal(cp_k8s_pods_apply(&p, c, false), 0);
    expect_attrs(&p, "192.168.1.1", NULL);
    json_decref(c);
    c = pod("u-c", "team-c", "not-an-ip", "Running");
    assert_int_equal(cp_k8s_pods_apply(&p, c, false), 0);
    assert_int_equal(cp_k8s_pods_count(&p), 1);
    json_decref(c);
    /* no service account: "default" */
    c = pod("u-d", "team-d", "10.0.0.9", NULL);
    json_object_del(json_object_get(c, "spec"), "serviceAccountName");
    assert_int_equal(cp_k8s_pods_apply(&p, c, false), 0);
    json_t *at = json_object();
    assert_true(cp_k8s_pods_attrs(&p, "10.0.0.9", at));
    assert_string_equal(
        json_string_value(json_object_get(at, "client.clusterlink.net/service-account")),
        "default");
    json_decref(at);
    json_decref(c);
    /* not a pod */
    c = J("{\"metadata\":{\"name\":\"x\"}}");
    assert_int_equal(cp_k8s_pods_apply(&p, c, false), CL_ESCHEMA);
    json_decref(c);
    /* deleted */
    assert_int_equal(cp_k8s_pods_apply(&p, b, true), 0);
    expect_attrs(&p, "10.0.0.5", NULL);
    json_decref(a);
    json_decref(b);
    cp_k8s_pods_deinit(&p);
}

static void client_ips(void **state)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"10.0.0.5:4242", "10.0.0.5"},
        {"[fd00::5]:80", "fd00::5"},
        {"10.0.0.5", "10.0.0.5"},
        {"fd00::5", "fd00::5"},
        {"[::ffff:10.1.2.3]:9", "10.1.2.3"},
    };

    static const char *const bad[] = {NULL, "", ":80", "[::1", "host:80", "1.2.3:4", "[]:1"};
    char ip[64];
    (void)state;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(cp_k8s_client_ip(ok[i].in, ip, sizeof(ip)), 0);
        assert_string_equal(ip, ok[i].out);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cp_k8s_client_ip(bad[i], ip, sizeof(ip)), CL_EINVAL);
    assert_int_equal(cp_k8s_client_ip("10.0.0.5:1", ip, 4), CL_EINVAL);
}

static void backoff_and_retry_after(void **state)
{
    (void)state;
    /* exponential, capped, jitter within [d/2, d) */
    for (int a = 1; a <= 12; a++) {
        uint64_t d = 200;
        for (int i = 1; i < a; i++)
            d = d * 2 > 10000 ? 10000 : d * 2;
        uint64_t lo = cp_k8s_backoff_ms(a, 200, 10000, 0);
        uint64_t hi = cp_k8s_backoff_ms(a, 200, 10000, UINT32_MAX);
        assert_int_equal(lo, d / 2);
        assert_true(hi < d && hi >= d - 1);
    }
    assert_int_equal(cp_k8s_backoff_ms(1000000, 200, 10000, 0), 5000);
    assert_int_equal(cp_k8s_retry_after_ms("1"), 1000);
    assert_int_equal(cp_k8s_retry_after_ms(" 3 "), 3000);
    assert_int_equal(cp_k8s_retry_after_ms("0"), 0);
    assert_int_equal(cp_k8s_retry_after_ms("600"), 60000);
    assert_int_equal(cp_k8s_retry_after_ms("99999999999999999999999"), 60000);
    assert_int_equal(cp_k8s_retry_after_ms(NULL), 0);
    assert_int_equal(cp_k8s_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), 0);
    assert_int_equal(cp_k8s_retry_after_ms("2x"), 0);
}

static void query_escape(void **state)
{
    char out[64] = "";
    (void)state;

    assert_int_equal(cp_k8s_query_escape(out, sizeof(out), "app.kubernetes.io/managed-by=cl"), 0);
    assert_string_equal(out, "app.kubernetes.io%2Fmanaged-by%3Dcl");
    char small[8] = "ab";
    assert_int_equal(cp_k8s_query_escape(small, sizeof(small), "c d"), 0);
    assert_string_equal(small, "abc%20d");
    assert_int_equal(cp_k8s_query_escape(small, sizeof(small), "x"), CL_EBUSY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(desired_service),
        cmocka_unit_test(plans),
        cmocka_unit_test(owner_values),
        cmocka_unit_test(ownership),
        cmocka_unit_test(selectors),
        cmocka_unit_test(watch_events),
        cmocka_unit_test(pods),
        cmocka_unit_test(client_ips),
        cmocka_unit_test(backoff_and_retry_after),
        cmocka_unit_test(query_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
