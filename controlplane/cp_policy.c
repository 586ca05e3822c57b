#include "cp_policy.h"

#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cl/str.h"
#include "cp.h"

static const char *const tier_names[CP_TIER_COUNT] = {
    [CP_TIER_PRIV_DENY] = "privileged-deny",
    [CP_TIER_PRIV_ALLOW] = "privileged-allow",
    [CP_TIER_DENY] = "deny",
    [CP_TIER_ALLOW] = "allow",
    [CP_TIER_DEFAULT] = "default-deny",
};

const char *cp_tier_name(enum cp_tier t)
{
    return t < CP_TIER_COUNT ? tier_names[t] : "?";
}

/* Kubernetes label key: [prefix/]name, prefix a DNS subdomain, name <= 63 of [A-Za-z0-9._-]
 * starting and ending alphanumeric. */
static bool label_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && c != '_' && c != '.')
            return false;
        if ((i == 0 || i == len - 1) && !alnum)
            return false;
    }
    return true;
}

static bool label_key_ok(const char *k)
{
    const char *slash = strchr(k, '/');
    char prefix[254];

    if (slash == NULL)
        return label_name_ok(k, strlen(k));
    if ((size_t)(slash - k) >= sizeof(prefix))
        return false;
    memcpy(prefix, k, (size_t)(slash - k));
    prefix[slash - k] = '\0';
    return cl_str_is_dns_subdomain(prefix) && label_name_ok(slash + 1, strlen(slash + 1));
}

static bool label_value_ok(const char *v)
{
    return v[0] == '\0' || label_name_ok(v, strlen(v));
}

static int validate_selector(const json_t *sel, const char *path, struct cl_jerr *e)
{
    static const char *const keys[] = {"matchLabels", "matchExpressions", NULL};
    static const char *const ekeys[] = {"key", "operator", "values", NULL};
    char p[128], q[256];
    json_t *ml = NULL, *me = NULL, *v;
    const char *k;
    size_t i;
    int rc;

    if (!json_is_object(sel))
        return cl_jerr_set(e, path, "must be an object");
    if ((rc = cl_json_check_keys(sel, path, keys, e)) != 0 ||
        (rc = cl_json_get_typed(sel, path, "matchLabels", false, JSON_OBJECT, &ml, e)) != 0 ||
        (rc = cl_json_get_typed(sel, path, "matchExpressions", false, JSON_ARRAY, &me, e)) != 0)
        return rc;
    json_object_foreach(ml, k, v)
    {
        snprintf(p, sizeof(p), "%s.matchLabels.%s", path, k);
        if (!label_key_ok(k))
            return cl_jerr_set(e, p, "invalid label key");
        if (!json_is_string(v) || !label_value_ok(json_string_value(v)))
            return cl_jerr_set(e, p,
                               "label value must be a string of at most 63 characters "
                               "[A-Za-z0-9._-], starting and ending alphanumeric");
    }
    json_array_foreach(me, i, v)
    {
        const char *key = NULL, *op = NULL;
        json_t *vals = NULL;
        snprintf(p, sizeof(p), "%s.matchExpressions[%zu]", path, i);
        if (!json_is_object(v))
            return cl_jerr_set(e, p, "must be an object");
        if ((rc = cl_json_check_keys(v, p, ekeys, e)) != 0 ||
            (rc = cl_json_get_str(v, p, "key", true, &key, e)) != 0 ||
            (rc = cl_json_get_str(v, p, "operator", true, &op, e)) != 0 ||
            (rc = cl_json_get_typed(v, p, "values", false, JSON_ARRAY, &vals, e)) != 0)
            return rc;
        if (!label_key_ok(key))
            return cl_jerr_set(e, cl_json_path(q, sizeof(q), p, "key"), "invalid label key");
        bool needs = strcmp(op, "In") == 0 || strcmp(op, "NotIn") == 0;
        bool none = strcmp(op, "Exists") == 0 || strcmp(op, "DoesNotExist") == 0;
        if (!needs && !none)
            return cl_jerr_set(e, cl_json_path(q, sizeof(q), p, "operator"),
                               "must be one of In, NotIn, Exists, DoesNotExist");
        if (needs && json_array_size(vals) == 0)
            return cl_jerr_set(e, cl_json_path(q, sizeof(q), p, "values"),
                               "must be non-empty for operator %s", op);
        if (none && json_array_size(vals) != 0)
            return cl_jerr_set(e, cl_json_path(q, sizeof(q), p, "values"),
                               "must be empty for operator %s", op);
        size_t j;
        json_t *x;
        json_array_foreach(vals, j, x)
        {
            if (!json_is_string(x) || !label_value_ok(json_string_value(x))) {
                snprintf(q, sizeof(q), "%s.values[%zu]", p, j);
                return cl_jerr_set(e, q, "must be a valid label value");
            }
        }
    }
    return 0;
}

static int validate_peers(const json_t *list, const char *path, struct cl_jerr *e)
{
    static const char *const keys[] = {"workloadSelector", NULL};
    char p[128], q[256];
    size_t i;
    json_t *v, *sel = NULL;
    int rc;

    json_array_foreach(list, i, v)
    {
        snprintf(p, sizeof(p), "%s[%zu]", path, i);
        if (!json_is_object(v))
            return cl_jerr_set(e, p, "must be an object");
        if ((rc = cl_json_check_keys(v, p, keys, e)) != 0 ||
            (rc = cl_json_get_typed(v, p, "workloadSelector", true, JSON_OBJECT, &sel, e)) != 0 ||
            (rc = validate_selector(sel, cl_json_path(q, sizeof(q), p, "workloadSelector"), e)) !=
                0)
            return rc;
    }
    return 0;
}

int cp_policy_validate(const json_t *obj, struct cl_jerr *e)
{
    static const char *const top[] = {"kind", "apiVersion", "metadata", "spec", NULL};
    static const char *const spec[] = {"action", "from", "to", NULL};
    const char *kind = NULL, *action = NULL;
    json_t *s = NULL, *from = NULL, *to = NULL;
    int rc;

    if (!json_is_object(obj))
        return cl_jerr_set(e, "", "body must be a JSON object");
    if ((rc = cl_json_check_keys(obj, "", top, e)) != 0 ||
        (rc = cl_json_get_str(obj, "", "kind", true, &kind, e)) != 0)
        return rc;
    if (strcmp(kind, "AccessPolicy") != 0 && strcmp(kind, "PrivilegedAccessPolicy") != 0)
        return cl_jerr_set(e, "kind", "must be AccessPolicy or PrivilegedAccessPolicy");
    if ((rc = cp_model_check_metadata(obj, e)) != 0)
        return rc;
    if ((rc = cl_json_get_typed(obj, "", "spec", true, JSON_OBJECT, &s, e)) != 0 ||
        (rc = cl_json_check_keys(s, "spec", spec, e)) != 0 ||
        (rc = cl_json_get_str(s, "spec", "action", true, &action, e)) != 0)
        return rc;
    if (strcmp(action, "allow") != 0 && strcmp(action, "deny") != 0)
        return cl_jerr_set(e, "spec.action", "must be allow or deny");
    if ((rc = cl_json_get_typed(s, "spec", "from", false, JSON_ARRAY, &from, e)) != 0 ||
        (rc = cl_json_get_typed(s, "spec", "to", false, JSON_ARRAY, &to, e)) != 0 ||
        (rc = validate_peers(from, "spec.from", e)) != 0 ||
        (rc = validate_peers(to, "spec.to", e)) != 0)
        return rc;
    return 0;
}

static bool in_values(const json_t *vals, const char *v)
{
    size_t i;
    json_t *x;

    json_array_foreach(vals, i, x)
    {
        if (strcmp(json_string_value(x), v) == 0)
            return true;
    }
    return false;
}

bool cp_selector_matches(const json_t *sel, const json_t *attrs)
{
    json_t *ml = json_object_get(sel, "matchLabels");
    json_t *me = json_object_get(sel, "matchExpressions");
    const char *k;
    json_t *v;
    size_t i;

    json_object_foreach(ml, k, v)
    {
        json_t *a = json_object_get(attrs, k);
        if (!json_is_string(a) || strcmp(json_string_value(a), json_string_value(v)) != 0)
            return false;
    }
    json_array_foreach(me, i, v)
    {
        const char *key = json_string_value(json_object_get(v, "key"));
        const char *op = json_string_value(json_object_get(v, "operator"));
        json_t *vals = json_object_get(v, "values");
        json_t *a = json_object_get(attrs, key);
        const char *av = json_is_string(a) ? json_string_value(a) : NULL;
        bool ok;
        if (strcmp(op, "In") == 0)
            ok = av != NULL && in_values(vals, av);
        else if (strcmp(op, "NotIn") == 0)
            ok = av == NULL || !in_values(vals, av);
        else if (strcmp(op, "Exists") == 0)
            ok = av != NULL;
        else
            ok = av == NULL;
        if (!ok)
            return false;
    }
    return true;
}

/* A from/to list matches when it is empty or any of its selectors matches. */
static bool list_matches(const json_t *list, const json_t *attrs)
{
    size_t i;
    json_t *v;

    if (json_array_size(list) == 0)
        return true;
    json_array_foreach(list, i, v)
    {
        if (cp_selector_matches(json_object_get(v, "workloadSelector"), attrs))
            return true;
    }
    return false;
}

void cp_policy_decide(const json_t *policies, const json_t *from, const json_t *to,
                      struct cp_decision *out)
{
    const char *best_name = NULL;
    enum cp_tier best = CP_TIER_DEFAULT;
    const char *name;
    json_t *p;

    json_object_foreach((json_t *)policies, name, p)
    {
        bool priv =
            strcmp(json_string_value(json_object_get(p, "kind")), "PrivilegedAccessPolicy") == 0;
        json_t *spec = json_object_get(p, "spec");
        bool deny = strcmp(json_string_value(json_object_get(spec, "action")), "deny") == 0;
        enum cp_tier t = priv ? (deny ? CP_TIER_PRIV_DENY : CP_TIER_PRIV_ALLOW)
                              : (deny ? CP_TIER_DENY : CP_TIER_ALLOW);
        if (t > best || (t == best && best_name != NULL && strcmp(name, best_name) >= 0))
            continue; /* ties: the alphabetically first name decides, so logs are stable */
        if (list_matches(json_object_get(spec, "from"), from) &&
            list_matches(json_object_get(spec, "to"), to)) {
            best = t;
            best_name = name;
        }
    }
    out->tier = best;
    out->allow = best == CP_TIER_PRIV_ALLOW || best == CP_TIER_ALLOW;
    snprintf(out->policy, sizeof(out->policy), "%s",
             best_name != NULL ? best_name : "default-deny");
}
