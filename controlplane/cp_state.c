/* In-memory objects mirrored in LMDB; every change bumps the revision and reprograms workers. */
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cp.h"
#include "cp_k8s.h"

int cp_state_load(struct cp *cp)
{
    int rc;

    for (int k = 0; k < CP_KIND_COUNT; k++) {
        if ((cp->objs[k] = json_object()) == NULL)
            return CL_ENOMEM;
        if ((rc = cp_store_load(cp->store, (enum cp_kind)k, cp->objs[k])) != 0)
            return rc;
    }
    cp->peer_status = json_object();
    cp->counters = json_pack("{s:{},s:{},s:{}}", "imports", "exports", "peers");
    cp->gone_stats = json_object();
    cp->gone_folded = json_pack("{s:{},s:{},s:{}}", "imports", "exports", "peers");
    cp->lb_state = json_object();
    cp->revision = 1;
    CL_INFO("cp.state", "loaded %zu peers, %zu exports, %zu imports, %zu policies",
            json_object_size(cp->objs[CP_KIND_PEER]), json_object_size(cp->objs[CP_KIND_EXPORT]),
            json_object_size(cp->objs[CP_KIND_IMPORT]), json_object_size(cp->objs[CP_KIND_POLICY]));
    return 0;
}

void cp_state_free(struct cp *cp)
{
    for (int k = 0; k < CP_KIND_COUNT; k++)
        json_decref(cp->objs[k]);
    json_decref(cp->peer_status);
    json_decref(cp->counters);
    json_decref(cp->gone_stats);
    json_decref(cp->gone_folded);
    json_decref(cp->lb_state);
}

/* The worker-facing form of one object (as in the CONFIG snapshot), new reference; NULL for
 * kinds workers do not need. */
static json_t *worker_view(enum cp_kind k, const char *name, const json_t *o)
{
    json_t *spec = json_object_get(o, "spec");

    switch (k) {
    case CP_KIND_PEER:
        return json_pack("{s:s,s:O}", "name", name, "gateways", json_object_get(spec, "gateways"));
    case CP_KIND_IMPORT:
        return json_pack("{s:s,s:O,s:O,s:O,s:O}", "name", name, "listenPort",
                         json_object_get(spec, "targetPort"), "port", json_object_get(spec, "port"),
                         "sources", json_object_get(spec, "sources"), "lbScheme",
                         json_object_get(spec, "lbScheme"));
    case CP_KIND_EXPORT:
        return json_pack("{s:s,s:O,s:O}", "name", name, "host", json_object_get(spec, "host"),
                         "port", json_object_get(spec, "port"));
    default:
        return NULL;
    }
}

/* Bumps the revision and tells the workers: a CONFIG_DELTA from the previous revision (empty
 * for changes workers do not see, e.g. policies). */
static void changed(struct cp *cp, enum cp_kind k, const char *name, const json_t *obj)
{
    static const char *const group[CP_KIND_COUNT] = {
        [CP_KIND_PEER] = "peers", [CP_KIND_IMPORT] = "imports", [CP_KIND_EXPORT] = "exports"};
    json_t *delta, *v;

    cp->revision++;
    if (cp->ipc == NULL)
        return;
    delta = json_pack("{s:I,s:I}", "revision", (json_int_t)cp->revision, "base",
                      (json_int_t)(cp->revision - 1));
    if (group[k] != NULL) {
        if (obj != NULL && (v = worker_view(k, name, obj)) != NULL)
            json_object_set_new(delta, "upsert", json_pack("{s:[o]}", group[k], v));
        else if (obj == NULL)
            json_object_set_new(delta, "delete", json_pack("{s:[s]}", group[k], name));
    }
    cp_ipc_config_changed(cp->ipc, delta);
    json_decref(delta);
}

int cp_state_put(struct cp *cp, enum cp_kind k, const char *name, json_t *obj)
{
    int rc = cp_store_put(cp->store, k, name, obj); /* durable before acknowledged */

    if (rc != 0)
        return rc;
    json_object_set(cp->objs[k], name, obj);
    if (k == CP_KIND_PEER)
        cp_peers_sync(cp->peers);
    if (k == CP_KIND_IMPORT) {
        json_object_del(cp->lb_state, name);
        cp_k8s_import_changed(cp->kube, name); /* its Service follows */
    }
    CL_INFO("cp.state", "stored %s %s (revision %llu)", cp_kind_name(k), name,
            (unsigned long long)cp->revision + 1);
    changed(cp, k, name, obj);
    return 0;
}

int cp_state_del(struct cp *cp, enum cp_kind k, const char *key)
{
    char name[256];
    int rc;

    /* key may be the object's own key in cp->objs: it dies with the object below */
    snprintf(name, sizeof(name), "%s", key);
    rc = cp_store_del(cp->store, k, name);

    if (rc != 0 && rc != CL_ENOTFOUND)
        return rc;
    json_object_del(cp->objs[k], name);
    if (k == CP_KIND_PEER) {
        json_object_del(cp->peer_status, name);
        cp_peers_sync(cp->peers); /* stops its probes and closes its connection */
    }
    if (k == CP_KIND_IMPORT)
        cp_k8s_import_changed(cp->kube, name); /* its Service goes */
    CL_INFO("cp.state", "deleted %s %s (revision %llu)", cp_kind_name(k), name,
            (unsigned long long)cp->revision + 1);
    changed(cp, k, name, NULL);
    return 0;
}

json_t *cp_state_snapshot(struct cp *cp)
{
    static const enum cp_kind kinds[] = {CP_KIND_PEER, CP_KIND_IMPORT, CP_KIND_EXPORT};

    json_t *lists[3];
    const char *n;
    json_t *o;

    for (size_t i = 0; i < 3; i++) {
        lists[i] = json_array();
        json_object_foreach(cp->objs[kinds[i]], n, o)
        {
            json_array_append_new(lists[i], worker_view(kinds[i], n, o));
        }
    }
    return json_pack("{s:I,s:s,s:o,s:o,s:o}", "revision", (json_int_t)cp->revision, "name",
                     cp->name, "peers", lists[0], "imports", lists[1], "exports", lists[2]);
}
