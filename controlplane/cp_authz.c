/* Authorization for the per-connection IPC messages, and load-balancing order. */
#include <stdlib.h>
#include <string.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cp.h"
#include "cp_k8s.h"
#include "cp_policy.h"

/* Orders candidates in place: the reachable ones in scheme order; unreachable ones are left out
 * while any reachable one exists, and tried (in order) only when none is, so a wrong health
 * verdict alone cannot take a service down. */
static void lb_order(struct cp *cp, const char *import, const char *scheme, json_t *cands)
{
    json_t *up = json_array(), *down = json_array(), *c, *list;
    size_t i, n;

    json_array_foreach(cands, i, c)
    {
        json_array_append(json_is_true(json_object_get(c, "reachable")) ? up : down, c);
    }
    list = json_array_size(up) > 0 ? up : down;
    n = json_array_size(list);
    if (n > 1 && strcmp(scheme, "round-robin") == 0) {
        json_int_t cur = json_integer_value(json_object_get(cp->lb_state, import));
        size_t start = (size_t)(cur % (json_int_t)n);
        json_array_clear(cands);
        for (i = 0; i < n; i++)
            json_array_append(cands, json_array_get(list, (start + i) % n));
        json_object_set_new(cp->lb_state, import, json_integer(cur + 1));
    } else {
        if (n > 1 && strcmp(scheme, "random") == 0) {
            for (i = n - 1; i > 0; i--) { /* Fisher-Yates */
                size_t j = (size_t)random() % (i + 1);
                json_t *x = json_incref(json_array_get(list, i));
                json_array_set(list, i, json_array_get(list, j));
                json_array_set_new(list, j, x);
            }
        }
        json_array_clear(cands);
        json_array_extend(cands, list);
    }
    json_decref(up);
    json_decref(down);
}

json_t *cp_authz_egress(struct cp *cp, const json_t *req)
{
    const char *imp = json_string_value(json_object_get(req, "import"));
    const char *client = json_string_value(json_object_get(req, "client"));
    json_t *o, *spec, *src, *cands, *from;
    struct cp_decision last = {.allow = false, .policy = "default-deny"};
    size_t i;

    if (imp == NULL || (o = json_object_get(cp->objs[CP_KIND_IMPORT], imp)) == NULL)
        return json_pack("{s:b,s:s,s:s}", "allow", 0, "reason", "no such import", "policy", "");
    spec = json_object_get(o, "spec");
    cands = json_array();
    from = json_object(); /* client attributes: the pod's, in Kubernetes mode */
    cp_k8s_client_attrs(cp->kube, client, from);
    json_array_foreach(json_object_get(spec, "sources"), i, src)
    {
        const char *peer = json_string_value(json_object_get(src, "peer"));
        const char *en = json_string_value(json_object_get(src, "exportName"));
        const char *ens = json_string_value(json_object_get(src, "exportNamespace"));
        json_t *p = json_object_get(cp->objs[CP_KIND_PEER], peer);
        struct cp_decision d;
        if (p == NULL)
            continue; /* a source whose peer is not defined yet */
        json_t *to = json_pack("{s:s,s:s,s:s}", CP_ATTR_PEER_NAME, peer, CP_ATTR_EXPORT_NAME, en,
                               CP_ATTR_EXPORT_NS, ens != NULL ? ens : "");
        cp_policy_decide(cp->objs[CP_KIND_POLICY], from, to, &d);
        json_decref(to);
        /* one line per decision: allowed ones at debug (the per-connection path), denials at
         * info, where an operator looks for them */
        CL_LOG(d.allow ? CL_LOG_DEBUG : CL_LOG_INFO, "cp.authz",
               "egress client=%s import=%s peer=%s export=%s %s by %s",
               client != NULL ? client : "?", imp, peer, en, d.allow ? "allowed" : "denied",
               d.policy);
        if (!d.allow) {
            last = d;
            continue;
        }
        json_t *st = json_object_get(cp->peer_status, peer);
        json_t *reach = json_object_get(st, "reachable");
        json_array_append_new(cands,
                              json_pack("{s:s,s:s,s:s,s:O,s:b}", "peer", peer, "export", en,
                                        "namespace", ens != NULL ? ens : "", "gateways",
                                        json_object_get(json_object_get(p, "spec"), "gateways"),
                                        "reachable", !json_is_false(reach))); /* unknown = up */
    }
    if (json_array_size(cands) == 0) {
        json_decref(cands);
        json_decref(from);
        return json_pack("{s:b,s:s,s:s}", "allow", 0, "reason",
                         last.allow ? "no source peer defined" : "denied by egress policy",
                         "policy", last.policy);
    }
    lb_order(cp, imp, json_string_value(json_object_get(spec, "lbScheme")), cands);
    for (i = 0; i < json_array_size(cands); i++)
        json_object_del(json_array_get(cands, i), "reachable");
    return json_pack("{s:b,s:o,s:o}", "allow", 1, "candidates", cands, "attrs", from);
}

json_t *cp_authz_ingress(struct cp *cp, const json_t *req)
{
    const char *peer = json_string_value(json_object_get(req, "peer"));
    const char *exp = json_string_value(json_object_get(req, "export"));
    const char *ns = json_string_value(json_object_get(req, "namespace"));
    json_t *attrs = json_object_get(req, "attrs");
    json_t *o, *from, *to, *spec;
    struct cp_decision d;
    const char *k;
    json_t *v;

    if (peer == NULL || json_object_get(cp->objs[CP_KIND_PEER], peer) == NULL) {
        CL_INFO("cp.authz", "ingress peer=%s export=%s denied: unknown peer",
                peer != NULL ? peer : "?", exp != NULL ? exp : "?");
        return json_pack("{s:b,s:i,s:s,s:s}", "allow", 0, "status", 403, "reason", "unknown peer",
                         "policy", "");
    }
    if (exp == NULL || (o = json_object_get(cp->objs[CP_KIND_EXPORT], exp)) == NULL) {
        CL_INFO("cp.authz", "ingress peer=%s export=%s denied: no such export", peer,
                exp != NULL ? exp : "?");
        return json_pack("{s:b,s:i,s:s,s:s}", "allow", 0, "status", 404, "reason", "no such export",
                         "policy", "");
    }
    from = json_object();
    json_object_foreach(attrs, k, v)
    {
        /* client attributes as claimed by the calling gateway; the peer name never */
        if (json_is_string(v) && strncmp(k, "peer.", 5) != 0)
            json_object_set(from, k, v);
    }
    json_object_set_new(from, CP_ATTR_PEER_NAME, json_string(peer));
    to = json_pack("{s:s,s:s}", CP_ATTR_EXPORT_NAME, exp, CP_ATTR_EXPORT_NS, ns ? ns : "");
    cp_policy_decide(cp->objs[CP_KIND_POLICY], from, to, &d);
    json_decref(from);
    json_decref(to);
    CL_LOG(d.allow ? CL_LOG_DEBUG : CL_LOG_INFO, "cp.authz", "ingress peer=%s export=%s %s by %s",
           peer, exp, d.allow ? "allowed" : "denied", d.policy);
    if (!d.allow)
        return json_pack("{s:b,s:i,s:s,s:s}", "allow", 0, "status", 403, "reason",
                         "denied by ingress policy", "policy", d.policy);
    spec = json_object_get(o, "spec");
    return json_pack("{s:b,s:{s:O,s:O}}", "allow", 1, "backend", "host",
                     json_object_get(spec, "host"), "port", json_object_get(spec, "port"));
}
