#ifndef CP_K8S_LEASE_H
#define CP_K8S_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "cp_k8s_client.h"

/*
 * One writer of a gateway's Services: a coordination.k8s.io/v1 Lease per gateway name and
 * namespace, as client-go's leader election does it.
 *
 * Every controlplane of a gateway name in a namespace (two Helm releases with the same
 * gateway.name, a second one started by hand) competes for the Lease
 * clusterlink-gateway-<name>. The one named in spec.holderIdentity (the holder) renews it every
 * duration/3 with a PUT carrying the resourceVersion and is the only one that writes Services;
 * the others (standby) read it every duration/3 and take it over once it has not changed for
 * leaseDurationSeconds by their own clock (the local time at which they last saw the record
 * change, never renewTime against the local clock: clock skew between nodes does not matter),
 * or at once when it was released (holderIdentity empty). A holder whose last successful renew
 * was sent more than 2/3 of the duration ago stops being the holder before anyone else can
 * take over. On a clean stop the holder releases the Lease so the next one takes over at once.
 */

#define CP_K8S_LEASE_ID_MAX 320
#define CP_K8S_LEASE_API    "/apis/coordination.k8s.io/v1"

/* ---- pure pieces, exposed for tests ---- */

/*
 * holderIdentity of this process: "<pod>_<nonce>" in a pod (pod: $HOSTNAME), else
 * "<host>-<pid>_<nonce>", nonce as 16 hex digits. The nonce is new at every start, so a
 * restarted process is a new holder (see docs/k8s-controlplane.md). Returns 0 or CL_EINVAL.
 */
int cp_k8s_lease_identity(const char *pod, const char *host, long pid, uint64_t nonce, char *out,
                          size_t outlen);

/* Formats wall-clock microseconds as a Kubernetes MicroTime ("2026-01-02T03:04:05.123456Z").
 * out needs 32 bytes. Returns out. */
const char *cp_k8s_micro_time(uint64_t wall_us, char *out, size_t outlen);

/* The Lease record as this process has seen it. */
struct cp_k8s_lease_seen {
    json_t *spec;      /* the spec as last read (owned); NULL: no Lease exists */
    uint64_t since_ms; /* local monotonic time at which spec last changed */
};

void cp_k8s_lease_seen_init(struct cp_k8s_lease_seen *s);
void cp_k8s_lease_seen_deinit(struct cp_k8s_lease_seen *s);

/* Records a read or written Lease (NULL: none exists) at local time now_ms: since_ms moves
 * only when the spec differs from the one seen before. Returns 0 or CL_ENOMEM. */
int cp_k8s_lease_observe(struct cp_k8s_lease_seen *s, const json_t *lease, uint64_t now_ms);

enum cp_k8s_lease_step {
    CP_K8S_LEASE_CREATE,  /* no Lease: POST one naming us */
    CP_K8S_LEASE_RENEW,   /* it names us: PUT a new renewTime */
    CP_K8S_LEASE_ACQUIRE, /* released, or not changed for its duration: PUT us as holder */
    CP_K8S_LEASE_STANDBY, /* another holder's and still valid: wait */
    CP_K8S_LEASE_RELEASE, /* (never decided) PUT with the holder cleared, on a clean stop */
    CP_K8S_LEASE_STEP_COUNT,
};

const char *cp_k8s_lease_step_name(enum cp_k8s_lease_step st);

/*
 * What to do with the Lease as seen, for identity me at local time now_ms. The other holder's
 * lease expires at since_ms + its leaseDurationSeconds (dflt_ms when absent or not positive);
 * for STANDBY *expires_ms (may be NULL) says when. Pure.
 */
enum cp_k8s_lease_step cp_k8s_lease_decide(const struct cp_k8s_lease_seen *s, const char *me,
                                           uint64_t dflt_ms, uint64_t now_ms, uint64_t *expires_ms);

/* Who and how long, for the bodies. */
struct cp_k8s_lease_who {
    const char *ns;
    const char *name;     /* cp_k8s_lease_name (cp_k8s.h) */
    const char *owner;    /* owner label value: the Lease is labelled like our Services */
    const char *identity; /* holderIdentity */
    int duration_s;
};

/*
 * The body of the request for step: CREATE a new Lease (current ignored); RENEW, ACQUIRE and
 * RELEASE the current object (as read, its resourceVersion kept) with holderIdentity,
 * leaseDurationSeconds, acquireTime (ACQUIRE, RELEASE), renewTime and leaseTransitions (+1 on
 * ACQUIRE) set as client-go sets them; RELEASE clears the holder and sets the duration to 1.
 * now: a MicroTime. New reference, NULL on CL_ENOMEM or a step without a body.
 */
json_t *cp_k8s_lease_body(enum cp_k8s_lease_step step, const json_t *current,
                          const struct cp_k8s_lease_who *who, const char *now);

/* ---- the elector (I/O, on the controlplane loop) ---- */

struct cp_k8s_elector;

/* Called when this process becomes the holder (true) or stops being it (false); never from
 * within cp_k8s_elector_* calls, never after cp_k8s_elector_stop. */
typedef void (*cp_k8s_elector_cb)(bool holder, void *ud);
typedef void (*cp_k8s_elector_done_cb)(void *ud);

struct cp_k8s_elector_opts {
    struct cp_k8s_lease_who who; /* strings copied */
    cp_k8s_elector_cb on_change;
    void *ud;
};

/* Creates the elector and starts competing (the first read runs from the loop). The client is
 * borrowed and must outlive the elector. Returns 0, CL_EINVAL (strings too long, duration < 1)
 * or CL_ENOMEM. */
int cp_k8s_elector_new(uv_loop_t *loop, struct cp_k8s_client *c,
                       const struct cp_k8s_elector_opts *o, struct cp_k8s_elector **out);

/* True while this process may write Services: it holds the Lease and renewed it in time. */
bool cp_k8s_elector_is_holder(const struct cp_k8s_elector *e);

/* holderIdentity as last seen (ours when holder; "" when none or not read yet). Borrowed until
 * the next callback of the loop. */
const char *cp_k8s_elector_holder(const struct cp_k8s_elector *e);

/* Why the last Lease request failed ("" after a good write). Borrowed, as above. */
const char *cp_k8s_elector_error(const struct cp_k8s_elector *e);

/*
 * Stops competing; on_change never runs again. When the Lease names us (as last seen), releases
 * it (one PUT, short deadline) so another controlplane takes over at once. done runs once, later
 * on the loop, when that is answered or failed (or at once from the loop when there is nothing
 * to release). Then free the elector with cp_k8s_elector_free.
 */
void cp_k8s_elector_stop(struct cp_k8s_elector *e, cp_k8s_elector_done_cb done, void *ud);

/* Cancels its request and frees (its timer closes on the loop). NULL-safe. */
void cp_k8s_elector_free(struct cp_k8s_elector *e);

#endif
