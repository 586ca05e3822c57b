#ifndef CP_H
#define CP_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "cl/h2conn.h"
#include "cl/json.h"
#include "cp_store.h"

/* The controlplane's state: the objects (JSON, name -> object, as stored), peer status and
 * counters, the config revision, and the connected workers. One libuv loop owns it. */
struct cp {
    uv_loop_t *loop;
    const char *name;
    char **admins;
    size_t nadmins;
    struct cp_store *store;
    json_t *objs[CP_KIND_COUNT]; /* name -> object */
    json_t *peer_status;         /* name -> status object */
    json_t *counters;            /* summed STATS from workers: {imports:{},exports:{},peers:{}} */
    json_t *gone_stats;  /* "pid/worker" -> last STATS of a worker whose connection closed */
    json_t *gone_folded; /* counters of workers gone longer ago (no "open"), same shape */
    json_t *lb_state;    /* import name -> round-robin cursor */
    uint64_t revision;
    uint64_t started_ms;
    struct cp_ipc *ipc;
    struct cp_peers *peers;
    bool k8s;                  /* Kubernetes mode: target ports are allocated */
    struct cp_k8s *kube;       /* Kubernetes mode: Services and pod watch (cp_k8s.h) */
    uint16_t port_lo, port_hi; /* range for allocated target ports */
    struct cl_tls_ctx *tls;    /* --cert/--key/--ca, for calls to peers (reloaded: main.c) */
    char cert_error[320];      /* why the replaced certificate files are not in use, or "" */
};

/* ---- cp_peers.c: peer health ---- */
struct cp_health_opts {
    uint64_t interval_ms; /* probe period per gateway (default 1000) */
    uint64_t timeout_ms;  /* per probe, connect + TLS + request (default 1000) */
    int fail_threshold;   /* consecutive failures before a gateway is down (default 2) */
    int ok_threshold;     /* consecutive successes before it is up again (default 1) */
};
struct cl_tls_ctx;
struct cp_peers;
int cp_peers_start(struct cp *cp, struct cl_tls_ctx *tls, const struct cp_health_opts *o,
                   struct cp_peers **out);
void cp_peers_stop(struct cp_peers *pp);
/* Reconciles probes with the peer objects (after any change). */
void cp_peers_sync(struct cp_peers *pp);
/* GET `path` on the peer's pooled health connection (a gateway that is up, if any). A request
 * the peer refused unprocessed (REFUSED_STREAM, or beyond its GOAWAY) is sent again, up to 3
 * times in all, on that gateway's next connection if this one takes no new streams. Returns 0
 * (cb follows, once, possibly from cp_peers_sync or cp_peers_stop with CL_ENOPEER when the
 * peer's gateway is removed), CL_ENOTFOUND (no such peer), CL_ENOPEER (no connection up),
 * CL_EINVAL (path of 128 bytes or more) or CL_ENOMEM. */
int cp_peers_fetch(struct cp_peers *pp, const char *peer, const char *path, uint64_t timeout_ms,
                   cl_h2_fetch_cb cb, void *ud);
/* A worker saw this peer fail: probe at once. */
void cp_peers_evidence(struct cp_peers *pp, const char *peer, const char *gateway,
                       const char *error);

/* ---- cp_model.c: validation of REST bodies (strict, field-named errors) ---- */
int cp_model_validate(enum cp_kind k, const json_t *obj, struct cl_jerr *e);
/* Checks obj.metadata: name (DNS label), optional namespace and labels, nothing else. */
int cp_model_check_metadata(const json_t *obj, struct cl_jerr *e);
/* The object's metadata.name (borrowed) or NULL. */
const char *cp_model_name(const json_t *obj);
/* Applies defaults in place (import: exportName, lbScheme, targetPort). */
void cp_model_defaults(enum cp_kind k, json_t *obj);
/*
 * A peer's answer to GET /api/v1/peer/exports: a JSON list of objects, each with metadata.name
 * a DNS label (and metadata.namespace one when present and not empty); other fields are left
 * alone (a newer peer may send more). Returns the parsed list (new reference), or NULL with e
 * naming what was wrong ("[2].metadata.name": ...).
 */
json_t *cp_model_remote_exports(const void *body, size_t len, struct cl_jerr *e);

/* ---- cp_api.c: REST handlers (pure: request in, response out) ---- */
struct cp_http_resp {
    int status;
    json_t *body; /* new reference or NULL */
    char *text;   /* instead of body: owned text (cl_mem_free) of content_type, or NULL */
    const char *content_type;
};

void cp_api_handle(struct cp *cp, const char *method, const char *path, const char *identity,
                   const char *body, size_t bodylen, struct cp_http_resp *out);

/* Applies a change to memory and the store; bumps the revision and notifies workers.
 * Takes a reference to obj on success. Returns 0 or an error. */
int cp_state_put(struct cp *cp, enum cp_kind k, const char *name, json_t *obj);
int cp_state_del(struct cp *cp, enum cp_kind k, const char *name);
int cp_state_load(struct cp *cp);
void cp_state_free(struct cp *cp);
/* The CONFIG snapshot body for workers (new reference). */
json_t *cp_state_snapshot(struct cp *cp);

/* ---- cp_authz.c: policy decisions for the IPC authz messages ---- */
/* AUTHZ_EGRESS body -> reply body (new reference). */
json_t *cp_authz_egress(struct cp *cp, const json_t *req);
json_t *cp_authz_ingress(struct cp *cp, const json_t *req);

/* ---- cp_ipc.c ---- */
struct cp_ipc;
int cp_ipc_start(struct cp *cp, const char *path, struct cp_ipc **out);
void cp_ipc_stop(struct cp_ipc *ipc);
/* Sends `delta` (CONFIG_DELTA body) to every worker at its base revision, a full CONFIG to the
 * others. */
void cp_ipc_config_changed(struct cp_ipc *ipc, const json_t *delta);
/* JSON array describing connected workers: id, pid, revision, ipcVersion and, when its last
 * STATS had one, certificate as reported (new reference). */
json_t *cp_ipc_workers(struct cp_ipc *ipc);

/* ---- cp_metrics.c ---- */
/* The Prometheus text exposition (0.0.4) of the status and counters: owned text, or NULL when
 * out of memory. */
char *cp_metrics_text(struct cp *cp);

#endif
