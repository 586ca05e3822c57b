#include "cp_store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "cl/err.h"
#include "cl/json.h"
#include "cl/log.h"
#include "cl/mem.h"

static const char *const kind_names[CP_KIND_COUNT] = {
    [CP_KIND_PEER] = "peers",      [CP_KIND_EXPORT] = "exports", [CP_KIND_IMPORT] = "imports",
    [CP_KIND_POLICY] = "policies", [CP_KIND_PORT] = "ports",
};

struct cp_store {
    MDB_env *env;
    size_t max_bytes; /* --store-size */
    MDB_dbi dbi[CP_KIND_COUNT];
    MDB_dbi meta;
};

static const char *const kind_ones[CP_KIND_COUNT] = {
    [CP_KIND_PEER] = "peer",     [CP_KIND_EXPORT] = "export", [CP_KIND_IMPORT] = "import",
    [CP_KIND_POLICY] = "policy", [CP_KIND_PORT] = "port",
};

const char *cp_kind_name(enum cp_kind k)
{
    return k < CP_KIND_COUNT ? kind_names[k] : "?";
}

const char *cp_kind_one(enum cp_kind k)
{
    return k < CP_KIND_COUNT ? kind_ones[k] : "?";
}

static int map_err(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return CL_ENOTFOUND;
    case MDB_MAP_FULL:
        return CL_ESTORE_FULL;
    case ENOMEM:
        return CL_ENOMEM;
    default:
        return CL_ESTORE;
    }
}

size_t cp_store_max_mib(const struct cp_store *s)
{
    MDB_envinfo info;

    if (mdb_env_info(s->env, &info) != 0)
        return 0;
    return info.me_mapsize >> 20;
}

int cp_store_open(const char *dir, size_t max_mib, struct cp_store **out)
{
    struct cp_store *s = NULL;
    MDB_txn *txn = NULL;
    MDB_val k = {6, "schema"}, v;
    int rc;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    if ((s = cl_calloc(1, sizeof(*s))) == NULL)
        return CL_ENOMEM;
    if ((rc = mdb_env_create(&s->env)) != 0)
        goto fail;
    mdb_env_set_maxdbs(s->env, CP_KIND_COUNT + 1);
    s->max_bytes = max_mib << 20;
    mdb_env_set_mapsize(s->env, s->max_bytes);
    if ((rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600)) != 0) {
        CL_ERROR("cp.store", "cannot open LMDB in %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        goto fail;
    if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0)
        goto fail;
    for (int i = 0; i < CP_KIND_COUNT; i++) {
        if ((rc = mdb_dbi_open(txn, kind_names[i], MDB_CREATE, &s->dbi[i])) != 0)
            goto fail;
    }
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        char ver[16];
        snprintf(ver, sizeof(ver), "%d", CP_STORE_SCHEMA);
        v.mv_data = ver;
        v.mv_size = strlen(ver);
        if ((rc = mdb_put(txn, s->meta, &k, &v, 0)) != 0)
            goto fail;
    } else if (rc == 0) {
        char ver[16] = {0};
        memcpy(ver, v.mv_data, v.mv_size < 15 ? v.mv_size : 15);
        if (strcmp(ver, "1") != 0) {
            CL_ERROR("cp.store", "state in %s has schema version %s; this build reads %d", dir, ver,
                     CP_STORE_SCHEMA);
            mdb_txn_abort(txn);
            txn = NULL;
            rc = 0;
            cp_store_close(s);
            return CL_ESTORE_SCHEMA;
        }
    } else {
        goto fail;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    cp_store_close(s);
    return map_err(rc);
}

void cp_store_close(struct cp_store *s)
{
    if (s == NULL)
        return;
    if (s->env != NULL)
        mdb_env_close(s->env);
    cl_mem_free(s);
}

int cp_store_put(struct cp_store *s, enum cp_kind kind, const char *name, const json_t *obj)
{
    MDB_txn *txn = NULL;
    char *json = NULL;
    MDB_val k, v;
    int rc;

    if ((json = cl_json_dumps(obj)) == NULL)
        return CL_ENOMEM;
    k.mv_data = (void *)name;
    k.mv_size = strlen(name);
    v.mv_data = json;
    v.mv_size = strlen(json);
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        goto fail;
    if ((rc = mdb_put(txn, s->dbi[kind], &k, &v, 0)) != 0)
        goto fail;
    rc = mdb_txn_commit(txn); /* commit frees txn even on failure; synced to disk */
    txn = NULL;
fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    cl_free(&json);
    return map_err(rc);
}

static int del_once(struct cp_store *s, enum cp_kind kind, const char *name)
{
    MDB_txn *txn = NULL;
    MDB_val k;
    int rc;

    k.mv_data = (void *)name;
    k.mv_size = strlen(name);
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        goto fail;
    if ((rc = mdb_del(txn, s->dbi[kind], &k, NULL)) != 0)
        goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    return rc;
}

int cp_store_del(struct cp_store *s, enum cp_kind kind, const char *name)
{
    MDB_envinfo info;
    int rc = del_once(s, kind, name);

    /* Even a delete writes pages (copy-on-write), so in a full map it fails, and deleting is
     * how an admin makes room. Lend the map 1 MiB for this one delete, then put the limit back
     * (LMDB keeps the map at least as large as what is in use). No transaction is open here:
     * the controlplane keeps none across calls. */
    if (rc == MDB_MAP_FULL && mdb_env_info(s->env, &info) == 0 &&
        mdb_env_set_mapsize(s->env, info.me_mapsize + ((size_t)1 << 20)) == 0) {
        rc = del_once(s, kind, name);
        mdb_env_set_mapsize(s->env, s->max_bytes);
    }
    return map_err(rc);
}

int cp_store_load(struct cp_store *s, enum cp_kind kind, json_t *into)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return map_err(rc);
    if ((rc = mdb_cursor_open(txn, s->dbi[kind], &cur)) != 0)
        goto done;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        char name[256];
        json_t *j = cl_json_loadb(v.mv_data, v.mv_size, NULL); /* copied before the txn ends */
        if (j == NULL || k.mv_size >= sizeof(name)) {
            json_decref(j);
            CL_WARN("cp.store", "skipping unreadable %s record", kind_names[kind]);
            continue;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        json_object_set_new(into, name, j);
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
done:
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return map_err(rc);
}
