#ifndef CP_K8S_H
#define CP_K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/*
 * Kubernetes mode of the controlplane.
 *
 * Every import becomes a ClusterIP Service of the same name in the configured namespace
 * (port spec.port -> targetPort spec.targetPort, selecting the dataplane pods, labelled
 * app.kubernetes.io/managed-by=clusterlink, clusterlink.net/import=<name> and
 * clusterlink.net/gateway=<this gateway's owner value>). A reconciler keeps the Services equal
 * to the imports: level-triggered, one request at a time per import, driven by import changes,
 * a label-selected watch on this gateway's Services (list, watch from the list's
 * resourceVersion, re-list on 410 Gone) and a periodic resync. A Service of the same name that
 * is not this gateway's (no managed-by label, or another gateway's owner label) is never
 * written; the import's status says so. Services an older version made (managed-by, no owner
 * label) are listed once at start and adopted when they are exactly what an import wants.
 *
 * Only one controlplane per gateway name and namespace writes Services: the holder of the
 * Lease clusterlink-gateway-<name> (cp_k8s_lease.h). The others (standby) keep their caches and
 * statuses but write nothing until they hold it; the new holder reconciles everything at once.
 *
 * Pods in all namespaces are watched (list + watch, resumed, re-listed on 410) to map a pod
 * IP to the client attributes of DESIGN.md section 3.
 *
 * Everything runs on the controlplane loop (struct cp's), through cp_k8s_client.
 */

struct cp;
struct cp_k8s;

#define CP_K8S_LABEL_MANAGED "app.kubernetes.io/managed-by"
#define CP_K8S_MANAGER       "clusterlink"
#define CP_K8S_LABEL_IMPORT  "clusterlink.net/import"
#define CP_K8S_LABEL_GATEWAY "clusterlink.net/gateway"

#define CP_ATTR_CLIENT_LABELS "client.clusterlink.net/labels."
#define CP_ATTR_CLIENT_SA     "client.clusterlink.net/service-account"

struct cp_k8s_opts {
    const char *gateway;      /* this gateway's name (--name): the owner label's value */
    const char *kubeconfig;   /* NULL: in-cluster configuration */
    const char *sa_dir;       /* service-account directory (default CP_K8S_SA_DIR) */
    const char *ns;           /* namespace of the Services (NULL: config's, else "default") */
    const char *selector;     /* "k=v,..." labels of the dataplane pods (required) */
    uint64_t resync_ms;       /* periodic re-evaluation of every import (default 60000) */
    uint64_t watch_timeout_s; /* server-side timeoutSeconds of a watch (default 300) */
    bool pods;                /* watch pods for client attributes (default true via main) */
    int lease_duration_s;     /* the Lease's leaseDurationSeconds (0: CP_K8S_LEASE_DURATION_S) */
};

/*
 * Reads the configuration, creates the API client and starts: list Services, reconcile,
 * watch; list and watch pods. Returns 0 or CL_EINVAL / CL_ENOENT / CL_ETLS_* / CL_ENOMEM with
 * err saying why (a configuration problem); API server trouble later is retried, not fatal.
 */
int cp_k8s_start(struct cp *cp, const struct cp_k8s_opts *o, struct cp_k8s **out, char *err,
                 size_t errlen);

/* Stops watches and requests; frees on the loop. NULL-safe. */
void cp_k8s_stop(struct cp_k8s *k);

/* An import was created, updated or deleted: re-evaluate its Service. NULL-safe. */
void cp_k8s_import_changed(struct cp_k8s *k, const char *name);

/* The import's status.service ({"state":"ready|pending|conflict|error", ...}), new
 * reference, or NULL when not in Kubernetes mode. */
json_t *cp_k8s_import_status(struct cp_k8s *k, const char *name);

/* Adds the client attributes of the pod with this address ("ip:port", "[ip6]:port" or a bare
 * IP) to attrs; unknown addresses add nothing. NULL-safe. */
void cp_k8s_client_attrs(struct cp_k8s *k, const char *client, json_t *attrs);

/* {"apiServer","namespace","gateway","role","holder","identity","lease","synced","services",
 * "unownedServices","podIPs","lastError","leaseError","tlsReloadError"} for /api/v1/status
 * (new ref); role is "holder" or "standby", holder the Lease's holderIdentity as last seen,
 * tlsReloadError why replaced API server TLS files were refused ("" when not). */
json_t *cp_k8s_summary(struct cp_k8s *k);

/* Picks up replaced API server TLS files (cp_k8s_client_reload_tls), logging a refusal once
 * and keeping it in the summary until usable files replace it. NULL-safe; called on the
 * controlplane's --cert-check-interval. */
void cp_k8s_reload_tls(struct cp_k8s *k);

/* ---- pure pieces (cp_k8s_model.c), exposed for tests and fuzzing ---- */

/* Parses "k=v,k2=v2" (label keys with an optional DNS prefix, values per Kubernetes rules).
 * Returns a new JSON object, or NULL with err filled. */
json_t *cp_k8s_parse_selector(const char *s, char *err, size_t errlen);

/* The longest owner label value (a label value's limit), and the parts of the hashed form. */
#define CP_K8S_OWNER_MAX    63
#define CP_K8S_OWNER_HASH   16 /* hex digits of SHA-256(gateway name) */
#define CP_K8S_OWNER_PREFIX (CP_K8S_OWNER_MAX - 1 - CP_K8S_OWNER_HASH)

/*
 * The value of the owner label (clusterlink.net/gateway) for a gateway name: the name itself
 * when it is a valid label value (at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends);
 * otherwise "<prefix>-<hash>": the first 46 characters of the name with every character a
 * label value cannot hold made '-' and non-alphanumeric ends trimmed, '-', and the first 16 hex
 * digits of the SHA-256 of the whole name (just "<hash>" when no prefix is left). Deterministic,
 * so a restart finds its Services again. out needs CP_K8S_OWNER_MAX + 1 bytes. Returns 0, or
 * CL_EINVAL (NULL or empty name, out too small).
 */
int cp_k8s_owner_value(const char *gateway, char *out, size_t outlen);

/* The Lease that elects the one controlplane of a gateway name in a namespace that writes
 * Services (cp_k8s_lease.h). */
#define CP_K8S_LEASE_PREFIX     "clusterlink-gateway-"
#define CP_K8S_LEASE_NAME_MAX   253 /* a DNS-1123 subdomain */
#define CP_K8S_LEASE_DURATION_S 15  /* default leaseDurationSeconds */

/*
 * The Lease's name for a gateway name: CP_K8S_LEASE_PREFIX + the name when that is a DNS-1123
 * subdomain (always, for a --name that is a DNS label), else CP_K8S_LEASE_PREFIX + the hash of
 * the owner label's hashed form (the first 16 hex digits of the SHA-256 of the whole name).
 * out needs CP_K8S_LEASE_NAME_MAX + 1 bytes. Returns 0, or CL_EINVAL (NULL or empty name, out
 * too small).
 */
int cp_k8s_lease_name(const char *gateway, char *out, size_t outlen);

/* Whose a Service is, from this gateway's point of view (owner: our owner label value). */
enum cp_k8s_owner {
    CP_K8S_OWNER_OURS,    /* managed-by=clusterlink, gateway=<owner> */
    CP_K8S_OWNER_OTHER,   /* managed-by=clusterlink, gateway=<another gateway> */
    CP_K8S_OWNER_LEGACY,  /* managed-by=clusterlink, no gateway label: an older version made it */
    CP_K8S_OWNER_FOREIGN, /* not managed by ClusterLink */
};

enum cp_k8s_owner cp_k8s_service_owner(const json_t *svc, const char *owner);

/* What a Service must look like to be ours: where, by whom, selecting which pods. */
struct cp_k8s_target {
    const char *ns;
    const char *owner;      /* owner label value (cp_k8s_owner_value) */
    const json_t *selector; /* the dataplane pods' labels */
};

/* The Service an import wants (new reference). */
json_t *cp_k8s_desired_service(const struct cp_k8s_target *t, const char *name, const json_t *imp);

/* The import status message for a Service of the import's name that is not ours and is not
 * taken (foreign, another gateway's, or an older version's that differs from the import). */
void cp_k8s_conflict_message(const struct cp_k8s_target *t, const char *name, const json_t *svc,
                             char *buf, size_t len);

enum cp_k8s_action {
    CP_K8S_NONE,     /* nothing to do: absent and unwanted, or already right */
    CP_K8S_CREATE,   /* POST *body */
    CP_K8S_UPDATE,   /* PUT *body (the actual object with our fields set: keeps clusterIP,
                        resourceVersion) */
    CP_K8S_DELETE,   /* DELETE (a managed Service whose import is gone) */
    CP_K8S_CONFLICT, /* a Service of that name that is not ours: never touched */
    CP_K8S_INVALID,  /* the import cannot be a Service (name not DNS-1035) */
    CP_K8S_WAIT,     /* ours (or an unowned one) is being deleted: create ours once it is gone */
    CP_K8S_ADOPT,    /* PUT *body: an older version's Service (managed-by, no owner label)
                        exactly as the import wants it; body adds our owner label, keeps the
                        resourceVersion (so a concurrent change makes it 409, not a takeover) */
    CP_K8S_ACTION_COUNT,
};

const char *cp_k8s_action_name(enum cp_k8s_action a);

/*
 * Desired vs actual for one name. imp: the import (NULL: none); actual: the Service of that
 * name as the API server has it, whoever owns it (NULL: none). Only our own Services are ever
 * updated or deleted; another gateway's and foreign ones are CONFLICT (or NONE without an
 * import); an older version's unowned one is ADOPT when it matches the import, else CONFLICT
 * (NONE without an import: never deleted, we cannot tell whose it is). *body (CREATE, UPDATE,
 * ADOPT) is a new reference. Pure.
 */
enum cp_k8s_action cp_k8s_plan(const struct cp_k8s_target *t, const char *name, const json_t *imp,
                               const json_t *actual, json_t **body);

/* A watch event line -> type ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR") and object
 * (borrowed from *root, which the caller decrefs). Returns 0 or CL_EJSON / CL_ESCHEMA. */
int cp_k8s_watch_event(const char *line, size_t len, json_t **root, const char **type,
                       json_t **object);

/* The resourceVersion of an object or list (borrowed), NULL if none. */
const char *cp_k8s_resource_version(const json_t *obj);

/* Pod IP -> attributes. */
struct cp_k8s_pods {
    json_t *by_ip;  /* ip -> {"uid","attrs":{...}} */
    json_t *by_uid; /* uid -> [ip, ...] */
};

void cp_k8s_pods_init(struct cp_k8s_pods *p);
void cp_k8s_pods_deinit(struct cp_k8s_pods *p);
/* Applies a pod (ADDED/MODIFIED: deleted=false; DELETED: true). Pods without IPs, finished
 * (Succeeded/Failed), being deleted with no IP, or on the host network map nothing.
 * Returns 0 or CL_ESCHEMA (not a pod). */
int cp_k8s_pods_apply(struct cp_k8s_pods *p, const json_t *pod, bool deleted);
/* Adds the attributes of ip to attrs; returns true when the IP is known. */
bool cp_k8s_pods_attrs(const struct cp_k8s_pods *p, const char *ip, json_t *attrs);
size_t cp_k8s_pods_count(const struct cp_k8s_pods *p);

/* "1.2.3.4:80" / "[::1]:80" / "1.2.3.4" -> "1.2.3.4" / "::1". Returns 0 or CL_EINVAL. */
int cp_k8s_client_ip(const char *client, char *ip, size_t iplen);

#endif
