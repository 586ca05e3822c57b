/* Kubernetes mode, the pure part: desired Services, desired-vs-actual plans, label
 * selectors, watch events and the pod IP map. No I/O. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "cl/err.h"
#include "cl/json.h"
#include "cl/str.h"
#include "cp_k8s.h"

static const char *const action_names[CP_K8S_ACTION_COUNT] = {
    [CP_K8S_NONE] = "none",     [CP_K8S_CREATE] = "create",     [CP_K8S_UPDATE] = "update",
    [CP_K8S_DELETE] = "delete", [CP_K8S_CONFLICT] = "conflict", [CP_K8S_INVALID] = "invalid",
    [CP_K8S_WAIT] = "wait",     [CP_K8S_ADOPT] = "adopt",
};

const char *cp_k8s_action_name(enum cp_k8s_action a)
{
    return a < CP_K8S_ACTION_COUNT ? action_names[a] : "?";
}

/* ---- label selectors ------------------------------------------------------------------------ */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Label name or value: <= 63 of [A-Za-z0-9-_.], alphanumeric at both ends (empty allowed for
 * values only). */
static bool label_part_ok(const char *s, size_t n, bool empty_ok)
{
    if (n == 0)
        return empty_ok;
    if (n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    }
    return true;
}

static bool label_key_ok(const char *k)
{
    const char *slash = strchr(k, '/');

    if (slash == NULL)
        return label_part_ok(k, strlen(k), false);
    if (slash == k || (size_t)(slash - k) > 253 || strchr(slash + 1, '/') != NULL)
        return false;
    char prefix[254];
    memcpy(prefix, k, (size_t)(slash - k));
    prefix[slash - k] = '\0';
    return cl_str_is_dns_subdomain(prefix) && label_part_ok(slash + 1, strlen(slash + 1), false);
}

json_t *cp_k8s_parse_selector(const char *s, char *err, size_t errlen)
{
    json_t *sel = json_object();
    char buf[1024];

    if (sel == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (s == NULL || s[0] == '\0') {
        snprintf(err, errlen, "the selector is empty (want k=v[,k=v...])");
        goto fail;
    }
    if (strlen(s) >= sizeof(buf)) {
        snprintf(err, errlen, "the selector is too long");
        goto fail;
    }
    cl_strlcpy(buf, s, sizeof(buf));
    for (char *p = buf, *next; p != NULL; p = next) {
        char *comma = strchr(p, ',');
        next = comma != NULL ? comma + 1 : NULL;
        if (comma != NULL)
            *comma = '\0';
        char *eq = strchr(p, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "selector term '%s' is not k=v", p);
            goto fail;
        }
        *eq = '\0';
        const char *v = eq + 1;
        if (!label_key_ok(p)) {
            snprintf(err, errlen, "selector key '%s' is not a valid label key", p);
            goto fail;
        }
        if (!label_part_ok(v, strlen(v), true)) {
            snprintf(err, errlen, "selector value '%s' is not a valid label value", v);
            goto fail;
        }
        if (json_object_get(sel, p) != NULL) {
            snprintf(err, errlen, "selector key '%s' given twice", p);
            goto fail;
        }
        json_object_set_new(sel, p, json_string(v));
    }
    return sel;
fail:
    json_decref(sel);
    return NULL;
}

/* ---- owners -------------------------------------------------------------------------------- */

/* The first CP_K8S_OWNER_HASH hex digits of the SHA-256 of the name, NUL-terminated. */
static int name_hash(const char *gateway, size_t n, char out[CP_K8S_OWNER_HASH + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[32];

    if (n > UINT32_MAX || wc_Sha256Hash((const unsigned char *)gateway, (uint32_t)n, digest) != 0)
        return CL_EINVAL;
    for (size_t i = 0; i < CP_K8S_OWNER_HASH / 2; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[CP_K8S_OWNER_HASH] = '\0';
    return 0;
}

int cp_k8s_owner_value(const char *gateway, char *out, size_t outlen)
{
    char hash[CP_K8S_OWNER_HASH + 1];
    size_t n, lo, hi, o = 0;

    if (gateway == NULL || gateway[0] == '\0' || outlen < CP_K8S_OWNER_MAX + 1)
        return CL_EINVAL;
    n = strlen(gateway);
    if (label_part_ok(gateway, n, false)) {
        memcpy(out, gateway, n + 1);
        return 0;
    }
    if (name_hash(gateway, n, hash) != 0)
        return CL_EINVAL;
    /* a readable prefix: the name's first characters, unusable ones as '-', alnum ends */
    hi = n < CP_K8S_OWNER_PREFIX ? n : CP_K8S_OWNER_PREFIX;
    for (lo = 0; lo < hi && !is_alnum(gateway[lo]); lo++)
        ;
    while (hi > lo && !is_alnum(gateway[hi - 1]))
        hi--;
    for (size_t i = lo; i < hi; i++) {
        char c = gateway[i];
        out[o++] = is_alnum(c) || c == '-' || c == '_' || c == '.' ? c : '-';
    }
    if (o > 0)
        out[o++] = '-';
    memcpy(out + o, hash, sizeof(hash));
    return 0;
}

int cp_k8s_lease_name(const char *gateway, char *out, size_t outlen)
{
    char hash[CP_K8S_OWNER_HASH + 1];
    size_t n;

    if (gateway == NULL || gateway[0] == '\0' || outlen < CP_K8S_LEASE_NAME_MAX + 1)
        return CL_EINVAL;
    n = strlen(gateway);
    if (sizeof(CP_K8S_LEASE_PREFIX) - 1 + n <= CP_K8S_LEASE_NAME_MAX) {
        snprintf(out, outlen, "%s%s", CP_K8S_LEASE_PREFIX, gateway);
        if (cl_str_is_dns_subdomain(out))
            return 0;
    }
    if (name_hash(gateway, n, hash) != 0)
        return CL_EINVAL;
    snprintf(out, outlen, "%s%s", CP_K8S_LEASE_PREFIX, hash);
    return 0;
}

/* ---- Services ------------------------------------------------------------------------------- */

static const char *label(const json_t *obj, const char *key)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(obj, "metadata"), "labels"), key));
}

enum cp_k8s_owner cp_k8s_service_owner(const json_t *svc, const char *owner)
{
    const char *m = label(svc, CP_K8S_LABEL_MANAGED);
    const json_t *g = json_object_get(json_object_get(json_object_get(svc, "metadata"), "labels"),
                                      CP_K8S_LABEL_GATEWAY);

    if (m == NULL || strcmp(m, CP_K8S_MANAGER) != 0)
        return CP_K8S_OWNER_FOREIGN;
    if (g == NULL)
        return CP_K8S_OWNER_LEGACY;
    /* a non-string label cannot come from the API server; whatever it is, it is not us */
    if (owner != NULL && json_is_string(g) && strcmp(json_string_value(g), owner) == 0)
        return CP_K8S_OWNER_OURS;
    return CP_K8S_OWNER_OTHER;
}

static json_t *desired_ports(const json_t *imp)
{
    const json_t *spec = json_object_get(imp, "spec");
    return json_pack("[{s:s,s:s,s:O,s:O}]", "name", "tcp", "protocol", "TCP", "port",
                     json_object_get(spec, "port"), "targetPort",
                     json_object_get(spec, "targetPort"));
}

json_t *cp_k8s_desired_service(const struct cp_k8s_target *t, const char *name, const json_t *imp)
{
    return json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s,s:s,s:s}},s:{s:s,s:O,s:o}}", "apiVersion", "v1",
                     "kind", "Service", "metadata", "name", name, "namespace", t->ns, "labels",
                     CP_K8S_LABEL_MANAGED, CP_K8S_MANAGER, CP_K8S_LABEL_IMPORT, name,
                     CP_K8S_LABEL_GATEWAY, t->owner, "spec", "type", "ClusterIP", "selector",
                     t->selector, "ports", desired_ports(imp));
}

void cp_k8s_conflict_message(const struct cp_k8s_target *t, const char *name, const json_t *svc,
                             char *buf, size_t len)
{
    const char *g = label(svc, CP_K8S_LABEL_GATEWAY);

    switch (cp_k8s_service_owner(svc, t->owner)) {
    case CP_K8S_OWNER_OTHER:
        snprintf(buf, len,
                 "Service %s/%s is managed by another ClusterLink gateway (label %s=%s, this "
                 "gateway is %s); it is left alone",
                 t->ns, name, CP_K8S_LABEL_GATEWAY, g != NULL ? g : "?", t->owner);
        break;
    case CP_K8S_OWNER_LEGACY:
        snprintf(buf, len,
                 "Service %s/%s is managed by ClusterLink but has no owner label %s (an older "
                 "version made it) and is not what this import wants, so it may be another "
                 "gateway's; it is left alone (delete it, or label it %s=%s to hand it to this "
                 "gateway)",
                 t->ns, name, CP_K8S_LABEL_GATEWAY, CP_K8S_LABEL_GATEWAY, t->owner);
        break;
    case CP_K8S_OWNER_OURS: /* not a conflict; a caller's mistake, said plainly */
        snprintf(buf, len, "Service %s/%s is this gateway's", t->ns, name);
        break;
    default:
        snprintf(buf, len,
                 "Service %s/%s exists and is not managed by ClusterLink (no label %s=%s); it "
                 "is left alone",
                 t->ns, name, CP_K8S_LABEL_MANAGED, CP_K8S_MANAGER);
        break;
    }
}

static bool str_is(const json_t *v, const char *dflt, const char *want)
{
    const char *s = v != NULL ? json_string_value(v) : dflt;
    return s != NULL && strcmp(s, want) == 0;
}

/* The fields we own (the owner label aside) are as the import wants them. */
static bool matches(const struct cp_k8s_target *t, const char *name, const json_t *imp,
                    const json_t *actual)
{
    const json_t *spec = json_object_get(actual, "spec");
    const json_t *ispec = json_object_get(imp, "spec");
    const json_t *ports = json_object_get(spec, "ports");
    const json_t *p = json_array_get(ports, 0);
    const json_t *tp = json_object_get(p, "targetPort");
    const char *il = label(actual, CP_K8S_LABEL_IMPORT);

    return str_is(json_object_get(spec, "type"), "ClusterIP", "ClusterIP") &&
           json_equal(json_object_get(spec, "selector"), (json_t *)t->selector) &&
           json_array_size(ports) == 1 && str_is(json_object_get(p, "name"), NULL, "tcp") &&
           str_is(json_object_get(p, "protocol"), "TCP", "TCP") &&
           json_is_integer(json_object_get(p, "port")) &&
           json_integer_value(json_object_get(p, "port")) ==
               json_integer_value(json_object_get(ispec, "port")) &&
           json_is_integer(tp) &&
           json_integer_value(tp) == json_integer_value(json_object_get(ispec, "targetPort")) &&
           il != NULL && strcmp(il, name) == 0;
}

/* The actual object with our fields set: whatever the server or others added stays. */
static json_t *updated(const struct cp_k8s_target *t, const char *name, const json_t *imp,
                       const json_t *actual)
{
    json_t *o = json_deep_copy(actual), *md, *labels, *spec;

    if (o == NULL)
        return NULL;
    json_object_set_new(o, "apiVersion", json_string("v1"));
    json_object_set_new(o, "kind", json_string("Service"));
    if (!json_is_object(md = json_object_get(o, "metadata"))) {
        md = json_object();
        json_object_set_new(o, "metadata", md);
    }
    json_object_del(md, "managedFields"); /* omitted in an update: the server keeps them */
    if (!json_is_object(labels = json_object_get(md, "labels"))) {
        labels = json_object();
        json_object_set_new(md, "labels", labels);
    }
    json_object_set_new(labels, CP_K8S_LABEL_MANAGED, json_string(CP_K8S_MANAGER));
    json_object_set_new(labels, CP_K8S_LABEL_IMPORT, json_string(name));
    json_object_set_new(labels, CP_K8S_LABEL_GATEWAY, json_string(t->owner));
    if (!json_is_object(spec = json_object_get(o, "spec"))) {
        spec = json_object();
        json_object_set_new(o, "spec", spec);
    }
    json_object_set_new(spec, "type", json_string("ClusterIP"));
    json_object_set(spec, "selector", (json_t *)t->selector);
    json_object_set_new(spec, "ports", desired_ports(imp));
    return o;
}

enum cp_k8s_action cp_k8s_plan(const struct cp_k8s_target *t, const char *name, const json_t *imp,
                               const json_t *actual, json_t **body)
{
    bool going = json_object_get(json_object_get(actual, "metadata"), "deletionTimestamp") != NULL;
    enum cp_k8s_owner own =
        actual != NULL ? cp_k8s_service_owner(actual, t->owner) : CP_K8S_OWNER_FOREIGN;

    *body = NULL;
    if (imp == NULL) /* only ours are deleted; one being deleted already needs nothing more */
        return actual != NULL && own == CP_K8S_OWNER_OURS && !going ? CP_K8S_DELETE : CP_K8S_NONE;
    if (!cl_str_is_dns1035_label(name))
        return CP_K8S_INVALID;
    if (actual == NULL) {
        *body = cp_k8s_desired_service(t, name, imp);
        return CP_K8S_CREATE;
    }
    switch (own) {
    case CP_K8S_OWNER_OURS:
        if (going)
            return CP_K8S_WAIT;
        if (matches(t, name, imp, actual))
            return CP_K8S_NONE;
        *body = updated(t, name, imp, actual);
        return CP_K8S_UPDATE;
    case CP_K8S_OWNER_LEGACY:
        if (going)
            return CP_K8S_WAIT;
        if (!matches(t, name, imp, actual))
            return CP_K8S_CONFLICT;
        *body = updated(t, name, imp, actual); /* the same, plus our owner label */
        return CP_K8S_ADOPT;
    default:
        return CP_K8S_CONFLICT;
    }
}

/* ---- watch events --------------------------------------------------------------------------- */

int cp_k8s_watch_event(const char *line, size_t len, json_t **root, const char **type,
                       json_t **object)
{
    struct cl_jerr e;
    json_t *r = cl_json_loadb(line, len, &e), *o;
    const char *t;

    *root = NULL;
    if (r == NULL)
        return CL_EJSON;
    t = json_string_value(json_object_get(r, "type"));
    o = json_object_get(r, "object");
    if (t == NULL || !json_is_object(o)) {
        json_decref(r);
        return CL_ESCHEMA;
    }
    *root = r;
    *type = t;
    *object = o;
    return 0;
}

const char *cp_k8s_resource_version(const json_t *obj)
{
    const char *rv =
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    return rv != NULL && rv[0] != '\0' ? rv : NULL;
}

/* ---- pods ----------------------------------------------------------------------------------- */

void cp_k8s_pods_init(struct cp_k8s_pods *p)
{
    p->by_ip = json_object();
    p->by_uid = json_object();
}

void cp_k8s_pods_deinit(struct cp_k8s_pods *p)
{
    json_decref(p->by_ip);
    json_decref(p->by_uid);
    p->by_ip = p->by_uid = NULL;
}

size_t cp_k8s_pods_count(const struct cp_k8s_pods *p)
{
    return json_object_size(p->by_ip);
}

static void forget(struct cp_k8s_pods *p, const char *uid)
{
    json_t *ips = json_object_get(p->by_uid, uid), *v;
    size_t i;

    json_array_foreach(ips, i, v)
    {
        const char *ip = json_string_value(v);
        json_t *e = json_object_get(p->by_ip, ip);
        /* the IP may belong to a newer pod by now */
        if (e != NULL && strcmp(json_string_value(json_object_get(e, "uid")), uid) == 0)
            json_object_del(p->by_ip, ip);
    }
    json_object_del(p->by_uid, uid);
}

static bool ip_ok(const char *s)
{
    unsigned char b[16];
    return s != NULL && (inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1);
}

int cp_k8s_pods_apply(struct cp_k8s_pods *p, const json_t *pod, bool deleted)
{
    const json_t *md = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
    const json_t *st = json_object_get(pod, "status");
    json_t *v;
    const char *uid = json_string_value(json_object_get(md, "uid"));
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *phase = json_string_value(json_object_get(st, "phase"));
    const char *sa = json_string_value(json_object_get(spec, "serviceAccountName"));
    json_t *ips, *attrs, *labels;
    const char *k;
    size_t i;

    if (uid == NULL || uid[0] == '\0' || ns == NULL)
        return CL_ESCHEMA;
    forget(p, uid);
    if (deleted || json_is_true(json_object_get(spec, "hostNetwork")) ||
        (phase != NULL && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0)))
        return 0;
    ips = json_array();
    json_array_foreach(json_object_get(st, "podIPs"), i, v)
    {
        const char *ip = json_string_value(json_object_get(v, "ip"));
        if (ip_ok(ip))
            json_array_append_new(ips, json_string(ip));
    }
    const char *one = json_string_value(json_object_get(st, "podIP"));
    if (json_array_size(ips) == 0 && ip_ok(one))
        json_array_append_new(ips, json_string(one));
    if (json_array_size(ips) == 0) {
        json_decref(ips);
        return 0;
    }
    attrs = json_pack("{s:s}", "client.clusterlink.net/namespace", ns);
    json_object_set_new(attrs, CP_ATTR_CLIENT_SA, json_string(sa != NULL ? sa : "default"));
    labels = json_object_get(md, "labels");
    json_object_foreach(labels, k, v)
    {
        char key[512];
        if (!json_is_string(v))
            continue;
        snprintf(key, sizeof(key), "%s%s", CP_ATTR_CLIENT_LABELS, k);
        json_object_set(attrs, key, v);
    }
    json_array_foreach(ips, i, v)
    {
        json_object_set_new(p->by_ip, json_string_value(v),
                            json_pack("{s:s,s:O}", "uid", uid, "attrs", attrs));
    }
    json_object_set_new(p->by_uid, uid, ips);
    json_decref(attrs);
    return 0;
}

bool cp_k8s_pods_attrs(const struct cp_k8s_pods *p, const char *ip, json_t *attrs)
{
    json_t *e = json_object_get(p->by_ip, ip);

    if (e == NULL)
        return false;
    json_object_update(attrs, json_object_get(e, "attrs"));
    return true;
}

int cp_k8s_client_ip(const char *client, char *ip, size_t iplen)
{
    const char *end;
    size_t n;

    if (client == NULL)
        return CL_EINVAL;
    if (client[0] == '[') {
        if ((end = strchr(client, ']')) == NULL)
            return CL_EINVAL;
        client++;
    } else if ((end = strchr(client, ':')) != NULL && strchr(end + 1, ':') != NULL) {
        end = client + strlen(client); /* a bare IPv6 address */
    } else if (end == NULL) {
        end = client + strlen(client);
    }
    n = (size_t)(end - client);
    if (n == 0 || n >= iplen)
        return CL_EINVAL;
    memcpy(ip, client, n);
    ip[n] = '\0';
    /* an IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d */
    if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.') != NULL)
        memmove(ip, ip + 7, n - 7 + 1);
    return ip_ok(ip) ? 0 : CL_EINVAL;
}
