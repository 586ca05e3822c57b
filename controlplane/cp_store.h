#ifndef CP_STORE_H
#define CP_STORE_H

#include <jansson.h>

/*
 * Durable state in LMDB: one named database per object type, values are the objects' JSON
 * text, plus "meta" holding the schema version. Every put/delete is its own committed (synced)
 * transaction, so an acknowledged change survives kill -9.
 */
#define CP_STORE_SCHEMA 1

enum cp_kind {
    CP_KIND_PEER,
    CP_KIND_EXPORT,
    CP_KIND_IMPORT,
    CP_KIND_POLICY,
    CP_KIND_PORT, /* allocated target ports (Kubernetes mode) */
    CP_KIND_COUNT,
};

struct cp_store;

/* The default largest size of the store (--store-size). A MiB holds about 4,500 exports like
 * {"metadata":{"name":"svc-1"},"spec":{"host":"backend-1.prod.svc.cluster.local","port":8080}}. */
#define CP_STORE_DEFAULT_MIB 256

/*
 * Opens (creating) the environment in dir, able to grow to max_mib MiB (never below what the
 * files already hold). Returns 0, CL_ESTORE_SCHEMA (written by a newer version), CL_ESTORE or
 * -errno.
 */
int cp_store_open(const char *dir, size_t max_mib, struct cp_store **out);
/* The size it may grow to, in MiB (what it was opened with, or the files' size if larger). */
size_t cp_store_max_mib(const struct cp_store *s);
void cp_store_close(struct cp_store *s);

/* Returns 0, CL_ESTORE_FULL, CL_ESTORE or CL_ENOMEM. */
int cp_store_put(struct cp_store *s, enum cp_kind k, const char *name, const json_t *obj);
/* Returns 0 or CL_ENOTFOUND / CL_ESTORE_FULL (even a delete needs a few free pages) /
 * CL_ESTORE. */
int cp_store_del(struct cp_store *s, enum cp_kind k, const char *name);
/* Loads every object of kind k into `into` (a JSON object name -> obj). Returns 0 or error. */
int cp_store_load(struct cp_store *s, enum cp_kind k, json_t *into);

/* The kind's name in the API's paths and the store ("exports"), and one object of it, for
 * messages ("export web not found"). */
const char *cp_kind_name(enum cp_kind k);
const char *cp_kind_one(enum cp_kind k);

#endif
