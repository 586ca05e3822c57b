#ifndef CP_K8S_CLIENT_H
#define CP_K8S_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "cl/list.h"
#include "cp_k8s_config.h"

/*
 * Kubernetes API client on the controlplane's libuv loop; nothing blocks. HTTPS (cl_tls: the
 * server verified by DNS name or iPAddress SAN, client certificate optional) speaking HTTP/1.1
 * with JSON bodies: keep-alive connections carrying one request at a time (a few in parallel),
 * a dedicated connection per watch stream, DNS through uv_getaddrinfo, a deadline per attempt.
 *
 * Retries (bounded by max_attempts): connection failures and timeouts, 429 (after its
 * Retry-After, at most 60 s) and 5xx (500, 502, 503, 504), with exponential backoff and
 * jitter. Other answers, 409 included, go to the caller, who knows whether to re-read.
 */

struct cp_k8s_client;
struct cp_k8s_call;

/* An answer, borrowed for the callback. */
struct cp_k8s_resp {
    int err;      /* 0, or why no answer came: CL_ETIMEDOUT, CL_ETLS*, -ECONNREFUSED, CL_EHTTP... */
    int status;   /* HTTP status when err == 0 */
    json_t *json; /* the body parsed as JSON, NULL when empty or not JSON */
    const char *body;
    size_t len;
    int attempts;       /* attempts made */
    const char *detail; /* transport error text, "" if none */
};

typedef void (*cp_k8s_resp_cb)(const struct cp_k8s_resp *r, void *ud);

/* Watch stream callbacks. on_line gets each event line (borrowed); a negative return ends
 * the stream (on_end follows with that code). on_end runs once: err 0 and status 200 when
 * the server ended the stream, status != 200 with the answer's JSON (e.g. 410 Gone), or a
 * transport error. */
struct cp_k8s_watch_cbs {
    int (*on_line)(const char *line, size_t len, void *ud);
    void (*on_end)(int err, int status, const json_t *body, void *ud);
};

struct cp_k8s_req {
    const char *method;       /* GET, POST, PUT, PATCH, DELETE */
    const char *path;         /* "/api/v1/..." with its query; the server prefix is added */
    const char *content_type; /* of body; default application/json */
    const char *body;         /* copied; NULL for none */
    size_t bodylen;
    uint64_t timeout_ms; /* per attempt, connection included (default 30000) */
    int max_attempts;    /* default 5 */
    bool urgent;         /* ahead of the calls waiting for a connection, and may open one more than
                            max_conns (the Lease: its renewals must not wait behind Services) */
};

struct cp_k8s_client_opts {
    uint64_t backoff_base_ms; /* first retry delay (default 200) */
    uint64_t backoff_max_ms;  /* cap (default 10000) */
    size_t max_conns;         /* keep-alive connections for requests (default 4) */
    size_t max_body;          /* per answer (default 64 MiB) */
};

/*
 * Creates a client for `cfg` (borrowed; must outlive the client: the token is re-read from
 * it). Returns 0, or CL_ETLS_BAD_FILE / CL_ETLS_KEY_MISMATCH / CL_EINVAL (err says why) or
 * CL_ENOMEM.
 */
int cp_k8s_client_new(uv_loop_t *loop, struct cp_k8s_config *cfg,
                      const struct cp_k8s_client_opts *o, struct cp_k8s_client **out, char *err,
                      size_t errlen);

/* Cancels every call (no callbacks run) and closes every connection; handles finish closing
 * on the loop. NULL-safe. */
void cp_k8s_client_free(struct cp_k8s_client *c);

/*
 * Picks up replaced TLS files (the CA, and the client certificate and key when the kubeconfig
 * names files; none when any of them came from *-data, which would need the kubeconfig
 * re-read): cl_tls_ctx_reload. On 1,
 * idle connections are closed and busy ones close after their call, so the next calls are
 * dialled and verified with the new files; watches run on until they end. Returns 1, 0
 * (nothing changed, material from memory, or a set refused before), or the reload's error
 * (err says why; the old material stays in use). No callback runs from here.
 */
int cp_k8s_client_reload_tls(struct cp_k8s_client *c, char *err, size_t errlen);

/*
 * Starts a request. cb runs once, later, on the loop (never before this returns), unless the
 * call is cancelled. *out (may be NULL) is the handle for cp_k8s_call_cancel, valid until cb
 * runs. Returns 0 or CL_ENOMEM.
 */
int cp_k8s_call(struct cp_k8s_client *c, const struct cp_k8s_req *r, cp_k8s_resp_cb cb, void *ud,
                struct cp_k8s_call **out);

/* cp_k8s_call with body (borrowed; NULL for none) as the request's JSON body; r->body is
 * ignored. Returns 0 or CL_ENOMEM. */
int cp_k8s_call_json(struct cp_k8s_client *c, const struct cp_k8s_req *r, const json_t *body,
                     cp_k8s_resp_cb cb, void *ud, struct cp_k8s_call **out);

/*
 * Opens a watch stream (GET `path`, which should carry watch=1) on its own connection, with
 * an idle deadline: no byte for idle_ms ends it with CL_ETIMEDOUT. One attempt: the owner
 * decides when to resume. Returns 0 or CL_ENOMEM; *out as above, valid until on_end.
 */
int cp_k8s_watch(struct cp_k8s_client *c, const char *path, uint64_t idle_ms,
                 const struct cp_k8s_watch_cbs *cbs, void *ud, struct cp_k8s_call **out);

/* Cancels a call or watch: its callbacks never run. NULL-safe. */
void cp_k8s_call_cancel(struct cp_k8s_call *call);

/*
 * Backoff before attempt `attempt` (1 = first retry): min(max, base * 2^(attempt-1)) scaled
 * by a jitter factor in [0.5, 1.0) taken from `rnd` (0..UINT32_MAX). Pure, for tests.
 */
uint64_t cp_k8s_backoff_ms(int attempt, uint64_t base, uint64_t max, uint32_t rnd);

/* Retry-After (delta-seconds) in ms, capped at 60 s; 0 when absent or not a number. */
uint64_t cp_k8s_retry_after_ms(const char *v);

/* Appends s to out percent-encoded for a query value. Returns 0 or CL_EBUSY (too long). */
int cp_k8s_query_escape(char *out, size_t outlen, const char *s);

#endif
