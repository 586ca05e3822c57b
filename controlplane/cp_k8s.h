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
 * app.kubernetes.io/managed-by=clusterlink and clusterlink.net/import=<name>). A reconciler
 * keeps the Services equal to the imports: level-triggered, one request at a time per import,
 * driven by import changes, a label-selected watch on the Services (list, watch from the
 * list's resourceVersion, re-list on 410 Gone) and a periodic resync. A Service of the same
 * name without the managed-by label is never written; the import's status says so.
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

#define CP_ATTR_CLIENT_LABELS "client.clusterlink.net/labels."
#define CP_ATTR_CLIENT_SA     "client.clusterlink.net/service-account"

struct cp_k8s_opts {
    const char *kubeconfig;   /* NULL: in-cluster configuration */
    const char *sa_dir;       /* service-account directory (default CP_K8S_SA_DIR) */
    const char *ns;           /* namespace of the Services (NULL: config's, else "default") */
    const char *selector;     /* "k=v,..." labels of the dataplane pods (required) */
    uint64_t resync_ms;       /* periodic re-evaluation of every import (default 60000) */
    uint64_t watch_timeout_s; /* server-side timeoutSeconds of a watch (default 300) */
    bool pods;                /* watch pods for client attributes (default true via main) */
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

/* {"namespace","synced","services","pods","lastError"} for /api/v1/status (new ref). */
json_t *cp_k8s_summary(struct cp_k8s *k);

/* ---- pure pieces (cp_k8s_model.c), exposed for tests and fuzzing ---- */

/* Parses "k=v,k2=v2" (label keys with an optional DNS prefix, values per Kubernetes rules).
 * Returns a new JSON object, or NULL with err filled. */
json_t *cp_k8s_parse_selector(const char *s, char *err, size_t errlen);

/* True when the Service carries app.kubernetes.io/managed-by=clusterlink. */
bool cp_k8s_service_is_ours(const json_t *svc);

/* The Service an import wants (new reference). */
json_t *cp_k8s_desired_service(const char *ns, const char *name, const json_t *imp,
                               const json_t *selector);

enum cp_k8s_action {
    CP_K8S_NONE,     /* nothing to do: absent and unwanted, or already right */
    CP_K8S_CREATE,   /* POST *body */
    CP_K8S_UPDATE,   /* PUT *body (the actual object with our fields set: keeps clusterIP,
                        resourceVersion) */
    CP_K8S_DELETE,   /* DELETE (a managed Service whose import is gone) */
    CP_K8S_CONFLICT, /* a Service of that name that is not ours: never touched */
    CP_K8S_INVALID,  /* the import cannot be a Service (name not DNS-1035) */
    CP_K8S_WAIT,     /* ours is being deleted (deletionTimestamp): create it once it is gone */
    CP_K8S_ACTION_COUNT,
};

const char *cp_k8s_action_name(enum cp_k8s_action a);

/*
 * Desired vs actual for one name. imp: the import (NULL: none); actual: the Service as the API
 * server has it (NULL: none). *body (CREATE, UPDATE) is a new reference. Pure.
 */
enum cp_k8s_action cp_k8s_plan(const char *ns, const char *name, const json_t *imp,
                               const json_t *actual, const json_t *selector, json_t **body);

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
