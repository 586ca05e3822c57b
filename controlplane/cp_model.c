/* Validation of the REST objects: strict (unknown fields rejected), field-named errors. */
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cl/sockaddr.h"
#include "cl/str.h"
#include "cp.h"
#include "cp_policy.h"

static const char *const top_keys[] = {"apiVersion", "kind", "metadata", "spec", "status", NULL};
static const char *const meta_keys[] = {"name", "namespace", "labels", NULL};

int cp_model_check_metadata(const json_t *obj, struct cl_jerr *e)
{
    json_t *m = NULL, *labels = NULL;
    const char *name = NULL, *ns = NULL;
    int rc;

    if ((rc = cl_json_get_typed(obj, "", "metadata", true, JSON_OBJECT, &m, e)) != 0 ||
        (rc = cl_json_check_keys(m, "metadata", meta_keys, e)) != 0 ||
        (rc = cl_json_get_str(m, "metadata", "name", true, &name, e)) != 0 ||
        (rc = cl_json_get_str(m, "metadata", "namespace", false, &ns, e)) != 0 ||
        (rc = cl_json_get_typed(m, "metadata", "labels", false, JSON_OBJECT, &labels, e)) != 0)
        return rc;
    if (!cl_str_is_dns_label(name))
        return cl_jerr_set(e, "metadata.name",
                           "must be a DNS label: 1-63 of [a-z0-9-], starting and ending "
                           "alphanumeric");
    if (ns != NULL && ns[0] != '\0' && !cl_str_is_dns_label(ns))
        return cl_jerr_set(e, "metadata.namespace", "must be a DNS label");
    return 0;
}

static int check_meta(const json_t *obj, struct cl_jerr *e)
{
    int rc;

    if (!json_is_object(obj))
        return cl_jerr_set(e, "", "body must be a JSON object");
    if ((rc = cl_json_check_keys(obj, "", top_keys, e)) != 0)
        return rc;
    return cp_model_check_metadata(obj, e);
}

static int check_hostport(const json_t *o, const char *path, struct cl_jerr *e)
{
    const char *host = NULL;
    long long port = 0;
    char p[128];
    int rc;

    if ((rc = cl_json_get_str(o, path, "host", true, &host, e)) != 0 ||
        (rc = cl_json_get_int(o, path, "port", true, 1, 65535, &port, e)) != 0)
        return rc;
    if (!cl_host_is_valid(host))
        return cl_jerr_set(e, cl_json_path(p, sizeof(p), path, "host"),
                           "must be a hostname or an IP address");
    return 0;
}

static int check_peer(const json_t *obj, struct cl_jerr *e)
{
    static const char *const spec_keys[] = {"gateways", NULL};
    static const char *const gw_keys[] = {"host", "port", NULL};
    json_t *spec = NULL, *gws = NULL, *g;
    char p[64];
    size_t i;
    int rc;

    if ((rc = cl_json_get_typed(obj, "", "spec", true, JSON_OBJECT, &spec, e)) != 0 ||
        (rc = cl_json_check_keys(spec, "spec", spec_keys, e)) != 0 ||
        (rc = cl_json_get_typed(spec, "spec", "gateways", true, JSON_ARRAY, &gws, e)) != 0)
        return rc;
    if (json_array_size(gws) == 0)
        return cl_jerr_set(e, "spec.gateways", "must list at least one gateway");
    json_array_foreach(gws, i, g)
    {
        snprintf(p, sizeof(p), "spec.gateways[%zu]", i);
        if (!json_is_object(g))
            return cl_jerr_set(e, p, "must be an object");
        if ((rc = cl_json_check_keys(g, p, gw_keys, e)) != 0 || (rc = check_hostport(g, p, e)) != 0)
            return rc;
    }
    return 0;
}

static int check_export(const json_t *obj, struct cl_jerr *e)
{
    static const char *const spec_keys[] = {"host", "port", NULL};
    json_t *spec = NULL;
    int rc;

    if ((rc = cl_json_get_typed(obj, "", "spec", true, JSON_OBJECT, &spec, e)) != 0 ||
        (rc = cl_json_check_keys(spec, "spec", spec_keys, e)) != 0)
        return rc;
    return check_hostport(spec, "spec", e);
}

static int check_import(const json_t *obj, struct cl_jerr *e)
{
    static const char *const spec_keys[] = {"port", "targetPort", "sources", "lbScheme", NULL};
    static const char *const src_keys[] = {"peer", "exportName", "exportNamespace", NULL};
    json_t *spec = NULL, *srcs = NULL, *s;
    const char *lb = NULL, *peer = NULL, *en = NULL, *ens = NULL;
    long long port = 0, tport = 0;
    char p[64], q[128];
    size_t i;
    int rc;

    if ((rc = cl_json_get_typed(obj, "", "spec", true, JSON_OBJECT, &spec, e)) != 0 ||
        (rc = cl_json_check_keys(spec, "spec", spec_keys, e)) != 0 ||
        (rc = cl_json_get_int(spec, "spec", "port", true, 1, 65535, &port, e)) != 0 ||
        (rc = cl_json_get_int(spec, "spec", "targetPort", false, 0, 65535, &tport, e)) != 0 ||
        (rc = cl_json_get_str(spec, "spec", "lbScheme", false, &lb, e)) != 0 ||
        (rc = cl_json_get_typed(spec, "spec", "sources", true, JSON_ARRAY, &srcs, e)) != 0)
        return rc;
    if (lb != NULL && strcmp(lb, "round-robin") != 0 && strcmp(lb, "random") != 0 &&
        strcmp(lb, "static") != 0)
        return cl_jerr_set(e, "spec.lbScheme", "must be round-robin, random or static");
    if (json_array_size(srcs) == 0)
        return cl_jerr_set(e, "spec.sources", "must list at least one source");
    json_array_foreach(srcs, i, s)
    {
        snprintf(p, sizeof(p), "spec.sources[%zu]", i);
        if (!json_is_object(s))
            return cl_jerr_set(e, p, "must be an object");
        if ((rc = cl_json_check_keys(s, p, src_keys, e)) != 0 ||
            (rc = cl_json_get_str(s, p, "peer", true, &peer, e)) != 0 ||
            (rc = cl_json_get_str(s, p, "exportName", false, &en, e)) != 0 ||
            (rc = cl_json_get_str(s, p, "exportNamespace", false, &ens, e)) != 0)
            return rc;
        if (!cl_str_is_dns_label(peer))
            return cl_jerr_set(e, cl_json_path(q, sizeof(q), p, "peer"), "must be a DNS label");
        if (en != NULL && !cl_str_is_dns_label(en))
            return cl_jerr_set(e, cl_json_path(q, sizeof(q), p, "exportName"),
                               "must be a DNS label");
        if (ens != NULL && ens[0] != '\0' && !cl_str_is_dns_label(ens))
            return cl_jerr_set(e, cl_json_path(q, sizeof(q), p, "exportNamespace"),
                               "must be a DNS label");
    }
    return 0;
}

int cp_model_validate(enum cp_kind k, const json_t *obj, struct cl_jerr *e)
{
    int rc;

    if (k == CP_KIND_POLICY)
        return cp_policy_validate(obj, e);
    if ((rc = check_meta(obj, e)) != 0)
        return rc;
    switch (k) {
    case CP_KIND_PEER:
        return check_peer(obj, e);
    case CP_KIND_EXPORT:
        return check_export(obj, e);
    case CP_KIND_IMPORT:
        return check_import(obj, e);
    default:
        return cl_jerr_set(e, "", "unsupported object");
    }
}

const char *cp_model_name(const json_t *obj)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
}

void cp_model_defaults(enum cp_kind k, json_t *obj)
{
    json_t *spec = json_object_get(obj, "spec");
    size_t i;
    json_t *s;

    json_object_del(obj, "status"); /* output only: computed on read */
    if (k != CP_KIND_IMPORT)
        return;
    if (json_object_get(spec, "lbScheme") == NULL)
        json_object_set_new(spec, "lbScheme", json_string("round-robin"));
    /* outside Kubernetes the dataplane listens on the import's port */
    json_object_set_new(spec, "targetPort",
                        json_integer(json_integer_value(json_object_get(spec, "port"))));
    json_array_foreach(json_object_get(spec, "sources"), i, s)
    {
        if (json_object_get(s, "exportName") == NULL)
            json_object_set_new(s, "exportName", json_string(cp_model_name(obj)));
        if (json_object_get(s, "exportNamespace") == NULL)
            json_object_set_new(s, "exportNamespace", json_string(""));
    }
}

json_t *cp_model_remote_exports(const void *body, size_t len, struct cl_jerr *e)
{
    char at[64], mp[48];
    const char *name, *ns;
    json_t *list, *x, *m;
    size_t i;

    if ((list = cl_json_loadb(body, len, e)) == NULL)
        return NULL;
    if (!json_is_array(list)) {
        cl_jerr_set(e, "", "must be a JSON list of exports");
        goto fail;
    }
    json_array_foreach(list, i, x)
    {
        snprintf(at, sizeof(at), "[%zu]", i);
        name = ns = NULL;
        if (!json_is_object(x)) {
            cl_jerr_set(e, at, "must be an object");
            goto fail;
        }
        cl_json_path(mp, sizeof(mp), at, "metadata");
        if (cl_json_get_typed(x, at, "metadata", true, JSON_OBJECT, &m, e) != 0 ||
            cl_json_get_str(m, mp, "name", true, &name, e) != 0 ||
            cl_json_get_str(m, mp, "namespace", false, &ns, e) != 0)
            goto fail;
        if (!cl_str_is_dns_label(name)) {
            cl_jerr_set(e, cl_json_path(at, sizeof(at), mp, "name"), "must be a DNS label");
            goto fail;
        }
        if (ns != NULL && ns[0] != '\0' && !cl_str_is_dns_label(ns)) {
            cl_jerr_set(e, cl_json_path(at, sizeof(at), mp, "namespace"), "must be a DNS label");
            goto fail;
        }
    }
    return list;
fail:
    json_decref(list);
    return NULL;
}
