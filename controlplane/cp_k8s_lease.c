/*
 * The Lease that elects the one controlplane of a gateway name and namespace that writes
 * Services (see cp_k8s_lease.h). The decision is pure (cp_k8s_lease_decide over what was seen
 * and when); the elector drives it with one request at a time and one timer.
 *
 * Timing, for a duration D (15 s by default): the holder renews every D/3; a renew is good for
 * 2/3 D from the moment it was *sent* (the others start counting D from when they *see* the
 * change, which is later), so a holder that cannot renew stops writing at least D/3 before
 * anyone may take over. A standby reads every D/3 and at the moment the record it saw would
 * expire, so a dead holder is replaced about D (at most D + D/3) after its last renew. Lease
 * requests go to the head of the client's queue and are tried once with a deadline of D/3:
 * the elector, not the client, decides when to try again.
 */
#include "cp_k8s_lease.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/str.h"
#include "cl/time.h"
#include "cp_k8s.h"

#define RELEASE_TIMEOUT_MS 2000
#define PATH_LEN           512

static const char *const step_names[CP_K8S_LEASE_STEP_COUNT] = {
    [CP_K8S_LEASE_CREATE] = "create",   [CP_K8S_LEASE_RENEW] = "renew",
    [CP_K8S_LEASE_ACQUIRE] = "acquire", [CP_K8S_LEASE_STANDBY] = "standby",
    [CP_K8S_LEASE_RELEASE] = "release",
};

const char *cp_k8s_lease_step_name(enum cp_k8s_lease_step st)
{
    return st < CP_K8S_LEASE_STEP_COUNT ? step_names[st] : "?";
}

/* ---- pure pieces ---------------------------------------------------------------------------- */

int cp_k8s_lease_identity(const char *pod, const char *host, long pid, uint64_t nonce, char *out,
                          size_t outlen)
{
    int n;

    if (pod != NULL && pod[0] != '\0')
        n = snprintf(out, outlen, "%s_%016llx", pod, (unsigned long long)nonce);
    else if (host != NULL && host[0] != '\0')
        n = snprintf(out, outlen, "%s-%ld_%016llx", host, pid, (unsigned long long)nonce);
    else
        return CL_EINVAL;
    return n > 0 && (size_t)n < outlen ? 0 : CL_EINVAL;
}

const char *cp_k8s_micro_time(uint64_t wall_us, char *out, size_t outlen)
{
    time_t t = (time_t)(wall_us / 1000000u);
    struct tm tm;
    char sec[24];

    gmtime_r(&t, &tm);
    if (strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        sec[0] = '\0';
    snprintf(out, outlen, "%s.%06uZ", sec, (unsigned)(wall_us % 1000000u));
    return out;
}

void cp_k8s_lease_seen_init(struct cp_k8s_lease_seen *s)
{
    s->spec = NULL;
    s->since_ms = 0;
}

void cp_k8s_lease_seen_deinit(struct cp_k8s_lease_seen *s)
{
    json_decref(s->spec);
    s->spec = NULL;
}

int cp_k8s_lease_observe(struct cp_k8s_lease_seen *s, const json_t *lease, uint64_t now_ms)
{
    json_t *spec = NULL;

    if (lease != NULL) {
        const json_t *sp = json_object_get(lease, "spec");
        /* a Lease without a spec is one nobody holds */
        if ((spec = json_is_object(sp) ? json_deep_copy(sp) : json_object()) == NULL)
            return CL_ENOMEM;
    }
    /* client-go compares the whole record, not the resourceVersion: a label edit is not a
     * renew */
    if ((spec == NULL) != (s->spec == NULL) || (spec != NULL && !json_equal(spec, s->spec)))
        s->since_ms = now_ms;
    json_decref(s->spec);
    s->spec = spec;
    return 0;
}

enum cp_k8s_lease_step cp_k8s_lease_decide(const struct cp_k8s_lease_seen *s, const char *me,
                                           uint64_t dflt_ms, uint64_t now_ms, uint64_t *expires_ms)
{
    const char *holder;
    json_int_t d;
    uint64_t dur, exp;

    if (s->spec == NULL)
        return CP_K8S_LEASE_CREATE;
    holder = json_string_value(json_object_get(s->spec, "holderIdentity"));
    if (holder == NULL || holder[0] == '\0')
        return CP_K8S_LEASE_ACQUIRE; /* released */
    if (strcmp(holder, me) == 0)
        return CP_K8S_LEASE_RENEW;
    d = json_integer_value(json_object_get(s->spec, "leaseDurationSeconds"));
    dur = d > 0 ? (uint64_t)d * 1000u : dflt_ms;
    exp = s->since_ms + dur;
    if (now_ms >= exp)
        return CP_K8S_LEASE_ACQUIRE;
    if (expires_ms != NULL)
        *expires_ms = exp;
    return CP_K8S_LEASE_STANDBY;
}

json_t *cp_k8s_lease_body(enum cp_k8s_lease_step step, const json_t *current,
                          const struct cp_k8s_lease_who *who, const char *now)
{
    json_t *o, *spec;
    json_int_t transitions;

    if (step == CP_K8S_LEASE_CREATE)
        return json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s,s:s}},s:{s:s,s:i,s:s,s:s,s:i}}", "apiVersion",
                         "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", who->name,
                         "namespace", who->ns, "labels", CP_K8S_LABEL_MANAGED, CP_K8S_MANAGER,
                         CP_K8S_LABEL_GATEWAY, who->owner, "spec", "holderIdentity", who->identity,
                         "leaseDurationSeconds", who->duration_s, "acquireTime", now, "renewTime",
                         now, "leaseTransitions", 0);
    if (step != CP_K8S_LEASE_RENEW && step != CP_K8S_LEASE_ACQUIRE && step != CP_K8S_LEASE_RELEASE)
        return NULL;
    if ((o = json_deep_copy(current)) == NULL)
        return NULL;
    json_object_set_new(o, "apiVersion", json_string("coordination.k8s.io/v1"));
    json_object_set_new(o, "kind", json_string("Lease"));
    json_object_del(json_object_get(o, "metadata"), "managedFields");
    if (!json_is_object(spec = json_object_get(o, "spec"))) {
        spec = json_object();
        json_object_set_new(o, "spec", spec);
    }
    transitions = json_integer_value(json_object_get(spec, "leaseTransitions"));
    if (transitions < 0)
        transitions = 0;
    if (step == CP_K8S_LEASE_RELEASE) {
        /* as client-go's ReleaseOnCancel: no holder, 1 s, times now, transitions kept */
        json_object_set_new(spec, "holderIdentity", json_string(""));
        json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
        json_object_set_new(spec, "acquireTime", json_string(now));
        json_object_set_new(spec, "leaseTransitions", json_integer(transitions));
    } else {
        if (step == CP_K8S_LEASE_ACQUIRE) {
            /* a new holder: client-go counts every change of holder */
            json_object_set_new(spec, "leaseTransitions", json_integer(transitions + 1));
            json_object_set_new(spec, "acquireTime", json_string(now));
        }
        json_object_set_new(spec, "holderIdentity", json_string(who->identity));
        json_object_set_new(spec, "leaseDurationSeconds", json_integer(who->duration_s));
    }
    json_object_set_new(spec, "renewTime", json_string(now));
    return o;
}

/* ---- the elector ---------------------------------------------------------------------------- */

enum op {
    OP_NONE,
    OP_GET,
    OP_WRITE,
    OP_RELEASE,
};

struct cp_k8s_elector {
    uv_loop_t *loop;
    struct cp_k8s_client *c;
    char ns[64];
    char name[CP_K8S_LEASE_NAME_MAX + 1];
    char owner[CP_K8S_OWNER_MAX + 1];
    char id[CP_K8S_LEASE_ID_MAX];
    struct cp_k8s_lease_who who;
    uint64_t duration_ms;
    uint64_t period_ms; /* renew and poll period: D/3 */
    uint64_t valid_ms;  /* a renew is good for this long after it was sent: 2/3 D */
    cp_k8s_elector_cb on_change;
    void *ud;
    uv_timer_t timer;
    struct cp_k8s_call *call;
    enum op op;
    enum cp_k8s_lease_step step; /* of the write in flight */
    uint64_t sent_ms;            /* when the write in flight was sent */
    json_t *lease;               /* the object as last read or written (resourceVersion) */
    struct cp_k8s_lease_seen seen;
    bool holder;
    uint64_t valid_until;            /* holder: local time until which we may write */
    char other[CP_K8S_LEASE_ID_MAX]; /* the other holder we last said we stand by for */
    char last_error[256];
    bool stopping;
    cp_k8s_elector_done_cb done;
    void *done_ud;
};

static void on_lease_answer(const struct cp_k8s_resp *r, void *ud);
static void on_timer(uv_timer_t *t);

static void arm(struct cp_k8s_elector *e, uint64_t at_ms)
{
    uint64_t now = cl_now_ms();

    /* a holder looks again when its renew runs out, whatever else is pending */
    if (e->holder && e->valid_until < at_ms)
        at_ms = e->valid_until;
    uv_timer_start(&e->timer, on_timer, at_ms > now ? at_ms - now : 0, 0);
}

static void set_holder(struct cp_k8s_elector *e, bool holder, const char *why)
{
    if (e->holder == holder)
        return;
    e->holder = holder;
    if (holder) {
        e->other[0] = '\0';
        CL_INFO("cp.k8s",
                "lease %s/%s: this controlplane (%s) holds it: it writes the Services "
                "of gateway %s",
                e->ns, e->name, e->id, e->owner);
    } else {
        CL_WARN("cp.k8s",
                "lease %s/%s: no longer held (%s): no Service is written until it is "
                "held again",
                e->ns, e->name, why);
    }
    e->on_change(holder, e->ud);
}

/* Stops being the holder once the last good renew has run out. */
static void check_valid(struct cp_k8s_elector *e)
{
    char why[320];

    if (!e->holder || cl_now_ms() < e->valid_until)
        return;
    snprintf(why, sizeof(why), "not renewed within %llu ms%s%s", (unsigned long long)e->valid_ms,
             e->last_error[0] ? ": " : "", e->last_error);
    set_holder(e, false, why);
}

static int send_req(struct cp_k8s_elector *e, enum op op, const char *method, const json_t *body,
                    uint64_t timeout_ms)
{
    char path[PATH_LEN];
    struct cp_k8s_req req = {.method = method,
                             .path = path,
                             .timeout_ms = timeout_ms,
                             .max_attempts = 1,
                             .urgent = true};
    int rc;

    if (strcmp(method, "POST") == 0)
        snprintf(path, sizeof(path), CP_K8S_LEASE_API "/namespaces/%s/leases", e->ns);
    else
        snprintf(path, sizeof(path), CP_K8S_LEASE_API "/namespaces/%s/leases/%s", e->ns, e->name);
    e->op = op;
    rc = cp_k8s_call_json(e->c, &req, body, on_lease_answer, e, &e->call);
    if (rc != 0)
        e->op = OP_NONE;
    return rc;
}

static void failed(struct cp_k8s_elector *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A request failed or could not be sent: try again after a while (well within the validity of
 * a renew, so a holder gets several tries). */
static void failed(struct cp_k8s_elector *e, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(e->last_error, sizeof(e->last_error), fmt, ap);
    va_end(ap);
    CL_DEBUG("cp.k8s", "lease %s/%s: %s", e->ns, e->name, e->last_error);
    check_valid(e);
    arm(e, cl_now_ms() + e->period_ms / 2);
}

/* Acts on the Lease as seen: write (create, renew, take over) or stand by. */
static void decide(struct cp_k8s_elector *e)
{
    char now[40];
    uint64_t t = cl_now_ms(), expires = 0;
    enum cp_k8s_lease_step st = cp_k8s_lease_decide(&e->seen, e->id, e->duration_ms, t, &expires);
    json_t *body;
    int rc;

    if (st == CP_K8S_LEASE_STANDBY) {
        const char *h = json_string_value(json_object_get(e->seen.spec, "holderIdentity"));
        char esc[CP_K8S_LEASE_ID_MAX];
        check_valid(e);
        set_holder(e, false, "another controlplane holds it");
        if (h != NULL && strcmp(h, e->other) != 0) {
            cl_strlcpy(e->other, h, sizeof(e->other));
            CL_WARN("cp.k8s",
                    "lease %s/%s is held by %s: this controlplane (%s) of gateway %s is on "
                    "standby: the dataplane keeps serving its imports, but it writes no Service "
                    "until the lease expires or is released",
                    e->ns, e->name, cl_log_escape(h, esc, sizeof(esc)), e->id, e->owner);
        }
        /* look again in a period, and exactly when it would expire */
        arm(e, expires < t + e->period_ms ? expires : t + e->period_ms);
        return;
    }
    cp_k8s_micro_time(cl_wall_ms() * 1000u, now, sizeof(now));
    if ((body = cp_k8s_lease_body(st, e->lease, &e->who, now)) == NULL) {
        failed(e, "out of memory");
        return;
    }
    CL_DEBUG("cp.k8s", "lease %s/%s: %s", e->ns, e->name, cp_k8s_lease_step_name(st));
    e->step = st;
    e->sent_ms = t;
    rc = send_req(e, OP_WRITE, st == CP_K8S_LEASE_CREATE ? "POST" : "PUT", body, e->period_ms);
    json_decref(body);
    if (rc != 0)
        failed(e, "%s", cl_strerror(rc));
}

static void tick(struct cp_k8s_elector *e)
{
    int rc;

    if (e->stopping)
        return;
    check_valid(e);
    if (e->call != NULL)
        return; /* its answer arms the timer */
    /* the holder renews from what it last wrote (a 409 makes it read); others read first */
    if (e->holder && e->lease != NULL) {
        decide(e);
        return;
    }
    if ((rc = send_req(e, OP_GET, "GET", NULL, e->period_ms)) != 0)
        failed(e, "%s", cl_strerror(rc));
}

static void on_timer(uv_timer_t *t)
{
    tick(CL_CONTAINER_OF(t, struct cp_k8s_elector, timer));
}

static void keep(struct cp_k8s_elector *e, const json_t *lease)
{
    json_decref(e->lease);
    e->lease = lease != NULL ? json_deep_copy(lease) : NULL;
    if (cp_k8s_lease_observe(&e->seen, lease, cl_now_ms()) != 0)
        CL_WARN("cp.k8s", "lease %s/%s: out of memory", e->ns, e->name);
}

static void on_lease_answer(const struct cp_k8s_resp *r, void *ud)
{
    struct cp_k8s_elector *e = ud;
    enum op op = e->op;
    char msg[200];
    const char *m = json_string_value(json_object_get(r->json, "message"));
    bool ok = r->err == 0 && r->status >= 200 && r->status < 300 && json_is_object(r->json);

    e->call = NULL;
    e->op = OP_NONE;
    if (r->err != 0)
        snprintf(msg, sizeof(msg), "API server unreachable: %s", cl_strerror(r->err));
    else
        snprintf(msg, sizeof(msg), "API server answered %d%s%s", r->status, m ? ": " : "",
                 m ? m : "");
    if (op == OP_RELEASE) {
        if (ok)
            CL_INFO("cp.k8s", "lease %s/%s released", e->ns, e->name);
        else
            CL_WARN("cp.k8s",
                    "lease %s/%s: release failed (%s): another controlplane takes "
                    "over once it expires",
                    e->ns, e->name, msg);
        e->done(e->done_ud);
        return;
    }
    if (e->stopping)
        return;
    if (op == OP_GET) {
        if (r->err == 0 && r->status == 404) {
            keep(e, NULL);
            decide(e);
        } else if (ok) {
            keep(e, r->json);
            decide(e);
        } else {
            failed(e, "get: %s", msg);
        }
        return;
    }
    /* a write: create, renew or take over */
    if (ok) {
        uint64_t now = cl_now_ms();
        e->last_error[0] = '\0';
        keep(e, r->json);
        e->valid_until = e->sent_ms + e->valid_ms;
        /* the answer is what counts (a body cut short by a failed allocation names no one) */
        if (strcmp(cp_k8s_elector_holder(e), e->id) != 0) {
            e->valid_until = 0;
            failed(e, "%s: the Lease written does not name this controlplane",
                   cp_k8s_lease_step_name(e->step));
            return;
        }
        if (now < e->valid_until) {
            if (e->step != CP_K8S_LEASE_RENEW)
                CL_INFO("cp.k8s", "lease %s/%s: %s (transitions %lld)", e->ns, e->name,
                        e->step == CP_K8S_LEASE_CREATE ? "created" : "taken over",
                        (long long)json_integer_value(
                            json_object_get(e->seen.spec, "leaseTransitions")));
            set_holder(e, true, NULL);
        }
        arm(e, e->sent_ms + e->period_ms);
        return;
    }
    if (r->err == 0 && (r->status == 409 || r->status == 404)) {
        /* someone else moved first (or the Lease went): read it and decide again. A holder
         * keeps its last renew's validity: nobody may take over before it runs out, so the
         * change was not a takeover (a label edited, say) unless the read says so */
        CL_DEBUG("cp.k8s", "lease %s/%s: %s answered %d: re-reading", e->ns, e->name,
                 cp_k8s_lease_step_name(e->step), r->status);
        json_decref(e->lease);
        e->lease = NULL;
        arm(e, cl_now_ms());
        return;
    }
    failed(e, "%s: %s", cp_k8s_lease_step_name(e->step), msg);
}

int cp_k8s_elector_new(uv_loop_t *loop, struct cp_k8s_client *c,
                       const struct cp_k8s_elector_opts *o, struct cp_k8s_elector **out)
{
    struct cp_k8s_elector *e;
    const struct cp_k8s_lease_who *w = &o->who;

    *out = NULL;
    if (w->duration_s < 1 || strlen(w->ns) >= sizeof(e->ns) || strlen(w->name) >= sizeof(e->name) ||
        strlen(w->owner) >= sizeof(e->owner) || strlen(w->identity) >= sizeof(e->id))
        return CL_EINVAL;
    if ((e = cl_calloc(1, sizeof(*e))) == NULL)
        return CL_ENOMEM;
    e->loop = loop;
    e->c = c;
    cl_strlcpy(e->ns, w->ns, sizeof(e->ns));
    cl_strlcpy(e->name, w->name, sizeof(e->name));
    cl_strlcpy(e->owner, w->owner, sizeof(e->owner));
    cl_strlcpy(e->id, w->identity, sizeof(e->id));
    e->who = (struct cp_k8s_lease_who){.ns = e->ns,
                                       .name = e->name,
                                       .owner = e->owner,
                                       .identity = e->id,
                                       .duration_s = w->duration_s};
    e->duration_ms = (uint64_t)w->duration_s * 1000u;
    e->period_ms = e->duration_ms / 3;
    e->valid_ms = e->duration_ms * 2 / 3;
    e->on_change = o->on_change;
    e->ud = o->ud;
    cp_k8s_lease_seen_init(&e->seen);
    uv_timer_init(loop, &e->timer);
    CL_INFO("cp.k8s", "lease %s/%s: competing as %s (duration %d s)", e->ns, e->name, e->id,
            w->duration_s);
    uv_timer_start(&e->timer, on_timer, 0, 0);
    *out = e;
    return 0;
}

bool cp_k8s_elector_is_holder(const struct cp_k8s_elector *e)
{
    return e != NULL && e->holder && cl_now_ms() < e->valid_until;
}

const char *cp_k8s_elector_holder(const struct cp_k8s_elector *e)
{
    const char *h =
        e != NULL ? json_string_value(json_object_get(e->seen.spec, "holderIdentity")) : NULL;
    return h != NULL ? h : "";
}

const char *cp_k8s_elector_error(const struct cp_k8s_elector *e)
{
    return e != NULL ? e->last_error : "";
}

static void on_nothing_to_release(uv_timer_t *t)
{
    struct cp_k8s_elector *e = CL_CONTAINER_OF(t, struct cp_k8s_elector, timer);

    e->done(e->done_ud);
}

void cp_k8s_elector_stop(struct cp_k8s_elector *e, cp_k8s_elector_done_cb done, void *ud)
{
    const char *h = cp_k8s_elector_holder(e);
    char now[40];
    json_t *body = NULL;

    e->stopping = true;
    e->done = done;
    e->done_ud = ud;
    uv_timer_stop(&e->timer);
    cp_k8s_call_cancel(e->call);
    e->call = NULL;
    e->holder = false;
    /* ours as last seen: a PUT with that resourceVersion clears it, or gets 409 if someone
     * took it meanwhile */
    if (e->lease != NULL && strcmp(h, e->id) == 0) {
        cp_k8s_micro_time(cl_wall_ms() * 1000u, now, sizeof(now));
        body = cp_k8s_lease_body(CP_K8S_LEASE_RELEASE, e->lease, &e->who, now);
    }
    if (body != NULL && send_req(e, OP_RELEASE, "PUT", body, RELEASE_TIMEOUT_MS) == 0) {
        json_decref(body);
        return;
    }
    json_decref(body);
    uv_timer_start(&e->timer, on_nothing_to_release, 0, 0);
}

static void on_elector_closed(uv_handle_t *h)
{
    struct cp_k8s_elector *e = CL_CONTAINER_OF((uv_timer_t *)h, struct cp_k8s_elector, timer);

    json_decref(e->lease);
    cp_k8s_lease_seen_deinit(&e->seen);
    cl_mem_free(e);
}

void cp_k8s_elector_free(struct cp_k8s_elector *e)
{
    if (e == NULL)
        return;
    e->stopping = true;
    cp_k8s_call_cancel(e->call);
    e->call = NULL;
    uv_close((uv_handle_t *)&e->timer, on_elector_closed);
}
