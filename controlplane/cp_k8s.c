/*
 * Kubernetes mode: the import -> Service reconciler and the pod watch (see cp_k8s.h).
 *
 * Reconciler. One item per name that is an import or a managed Service. An item is "due" when
 * something may have changed (its import changed, a watch event, an answer to our own
 * request, a retry time, the periodic resync); a single timer runs the due items. Running an
 * item compares the import with the cached Service (cp_k8s_plan) and sends at most one
 * request; the answer updates the cache and makes the item due again, so it converges one
 * step at a time, level-triggered: bursts of 409/429/5xx only delay it. Nothing is written
 * before the first list of this gateway's Services, and the one-off list of unowned ones an
 * older version made, have been read (adoption, not re-creation).
 *
 * Ownership: "ours" is managed-by=clusterlink plus clusterlink.net/gateway=<our owner value>;
 * only those are cached in `services` (the watch selects exactly them) and only those are ever
 * updated or deleted. A Service of an import's name that is not ours (foreign, another
 * gateway's, unowned) is kept per name in `others`, as last read: plans against it give
 * CONFLICT (re-read every CONFLICT_RECHECK_MS) or, for an unowned one that is exactly what the
 * import wants, ADOPT (a PUT adding our owner label, with its resourceVersion).
 *
 * Lease: only the holder of the gateway's Lease (cp_k8s_lease.c) sends writes; a standby plans
 * as usual (reads included) and reports "standby" where a write would be due. On becoming the
 * holder every name is evaluated at once; on losing it the writes in flight are cancelled.
 *
 * Watchers (this gateway's Services in the namespace, pods everywhere; and a list-only one for
 * unowned Services at start): list (pods: in pages), then watch from the list's
 * resourceVersion; a watch that ends is resumed from the last resourceVersion seen; 410 Gone
 * (or an ERROR event saying so) re-lists. Failures back off.
 */
#include "cp_k8s.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cl/err.h"
#include "cl/list.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/str.h"
#include "cl/time.h"
#include "cp.h"
#include "cp_k8s_client.h"
#include "cp_k8s_config.h"
#include "cp_k8s_lease.h"

#define CONFLICT_RECHECK_MS 5000  /* a foreign Service is looked at again after this */
#define ERROR_BACKOFF_MAX   30000 /* an item's retry delay after failed requests */
#define WATCH_BACKOFF_MAX   30000
#define PODS_PAGE           500
#define PATH_MAX_LEN        3072

enum op {
    OP_NONE,
    OP_CREATE,
    OP_UPDATE,
    OP_DELETE,
    OP_GET,
    OP_ADOPT, /* a PUT, as OP_UPDATE, of an older version's Service */
};

static const char *const op_names[] = {
    [OP_NONE] = "none",     [OP_CREATE] = "create", [OP_UPDATE] = "update",
    [OP_DELETE] = "delete", [OP_GET] = "get",       [OP_ADOPT] = "adopt",
};

struct item {
    struct cl_list link;
    struct cp_k8s *k;
    char name[64];
    uint64_t due_ms; /* 0: nothing to do */
    bool busy;
    enum op op;
    struct cp_k8s_call *call;
    int failures;
    bool recheck; /* others[name] was planned against: read it again before acting on it */
    json_t *status;
};

struct watcher;

struct watch_kind {
    const char *what;
    bool paged;
    bool list_only; /* no watch after the list: done once it completes */
    void (*list_begin)(struct watcher *w);
    void (*list_item)(struct watcher *w, json_t *obj);
    void (*list_end)(struct watcher *w);
    void (*event)(struct watcher *w, const char *type, json_t *obj);
};

struct watcher {
    struct cp_k8s *k;
    const struct watch_kind *kind;
    char base[512]; /* collection path with its fixed query (label selector) */
    char *rv;       /* resume point */
    char *cont;     /* continue token while listing in pages */
    bool synced;    /* a list completed */
    bool gone;      /* the watch said 410: re-list */
    int failures;
    uint64_t events;
    uv_timer_t timer;
    struct cp_k8s_call *call;
};

struct cp_k8s {
    struct cp *cp;
    struct cp_k8s_config cfg;
    struct cp_k8s_client *client;
    char ns[64];
    json_t *selector;
    char owner[CP_K8S_OWNER_MAX + 1]; /* our clusterlink.net/gateway value */
    char lease[CP_K8S_LEASE_NAME_MAX + 1];
    char identity[CP_K8S_LEASE_ID_MAX]; /* our holderIdentity */
    struct cp_k8s_elector *elector;
    struct cp_k8s_target target;
    json_t *services;   /* name -> our Service as last seen */
    json_t *svc_new;    /* being filled by a (re-)list */
    json_t *others;     /* import name -> a Service of that name that is not ours, as last read */
    size_t legacy_seen; /* unowned Services the start-up list found (for the summary) */
    struct cl_list items;
    uv_timer_t work;
    uint64_t resync_ms;
    uint64_t next_resync;
    uint64_t watch_timeout_s;
    struct watcher svc;
    struct watcher legacy; /* list-only: unowned Services an older version made */
    struct watcher pods;
    bool watch_pods;
    struct cp_k8s_pods podmap;
    struct cp_k8s_pods podnew; /* being filled by a re-list */
    int nhandles;
    bool stopping;
    char last_error[512];
    char tls_error[320]; /* why replaced API server TLS files were refused; "" when not */
    uint32_t rnd;
};

static void schedule(struct cp_k8s *k);
static void watcher_next(struct watcher *w, uint64_t delay);

static uint32_t rnd(struct cp_k8s *k)
{
    uint32_t x = k->rnd;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return k->rnd = x;
}

static void set_error(struct cp_k8s *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct cp_k8s *k, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(k->last_error, sizeof(k->last_error), fmt, ap);
    va_end(ap);
}

/* The message of a Kubernetes Status answer, or a description of the failure. */
static const char *resp_text(const struct cp_k8s_resp *r, char *buf, size_t len)
{
    const char *m = json_string_value(json_object_get(r->json, "message"));

    if (r->err != 0)
        snprintf(buf, len, "API server unreachable: %s%s%s", cl_strerror(r->err),
                 r->detail[0] ? ": " : "", r->detail);
    else if (m != NULL)
        snprintf(buf, len, "API server answered %d: %s", r->status, m);
    else
        snprintf(buf, len, "API server answered %d", r->status);
    return buf;
}

/* ---- items ---------------------------------------------------------------------------------- */

static struct item *item_find(struct cp_k8s *k, const char *name)
{
    struct cl_list *pos, *tmp;

    cl_list_foreach_safe(pos, tmp, &k->items)
    {
        struct item *it = CL_CONTAINER_OF(pos, struct item, link);
        if (strcmp(it->name, name) == 0)
            return it;
    }
    return NULL;
}

static void item_free(struct item *it)
{
    cl_list_remove(&it->link);
    cp_k8s_call_cancel(it->call);
    json_decref(it->status);
    cl_mem_free(it);
}

static void set_status(struct item *it, const char *state, const char *msg, const json_t *svc)
{
    json_t *st =
        json_pack("{s:s,s:s,s:s}", "state", state, "name", it->name, "namespace", it->k->ns);
    const json_t *spec = json_object_get(svc, "spec");
    const char *ip = json_string_value(json_object_get(spec, "clusterIP"));
    const char *uid = json_string_value(json_object_get(json_object_get(svc, "metadata"), "uid"));
    const char *old = json_string_value(json_object_get(it->status, "state"));

    if (st == NULL)
        return;
    if (msg != NULL)
        json_object_set_new(st, "message", json_string(msg));
    if (ip != NULL)
        json_object_set_new(st, "clusterIP", json_string(ip));
    if (uid != NULL)
        json_object_set_new(st, "uid", json_string(uid));
    if (old == NULL || strcmp(old, state) != 0) {
        char esc[256];
        /* standby is said once, by the elector, not per import */
        CL_LOG(strcmp(state, "conflict") == 0 || strcmp(state, "error") == 0 ? CL_LOG_WARN
                                                                             : CL_LOG_INFO,
               "cp.k8s", "import %s: Service %s/%s %s%s%s", it->name, it->k->ns, it->name, state,
               msg != NULL ? ": " : "", msg != NULL ? cl_log_escape(msg, esc, sizeof(esc)) : "");
    }
    json_decref(it->status);
    it->status = st;
}

static struct item *item_get(struct cp_k8s *k, const char *name)
{
    struct item *it = item_find(k, name);

    if (it != NULL || strlen(name) >= sizeof(it->name))
        return it;
    if ((it = cl_calloc(1, sizeof(*it))) == NULL)
        return NULL;
    it->k = k;
    cl_strlcpy(it->name, name, sizeof(it->name));
    cl_list_insert_tail(&k->items, &it->link);
    set_status(it, "pending", NULL, NULL);
    return it;
}

/* Makes the item due after `delay` ms (earlier wins). */
static void item_due(struct item *it, uint64_t delay)
{
    uint64_t t = cl_now_ms() + delay;

    if (it->due_ms == 0 || t < it->due_ms)
        it->due_ms = t;
    schedule(it->k);
}

static void mark(struct cp_k8s *k, const char *name)
{
    struct item *it = item_get(k, name);

    if (it != NULL)
        item_due(it, 0);
}

static void mark_all(struct cp_k8s *k)
{
    const char *n;
    json_t *o;
    struct cl_list *pos, *tmp;

    json_object_foreach(k->cp->objs[CP_KIND_IMPORT], n, o)
    {
        mark(k, n);
    }
    json_object_foreach(k->services, n, o)
    {
        mark(k, n);
    }
    cl_list_foreach_safe(pos, tmp, &k->items)
    {
        item_due(CL_CONTAINER_OF(pos, struct item, link), 0);
    }
}

/* A request failed in a way that is worth retrying later (API server trouble, a rejection we
 * cannot fix by re-reading). */
static void item_failed(struct item *it, const char *msg)
{
    it->failures++;
    set_error(it->k, "%s %s: %s", op_names[it->op], it->name, msg);
    if (json_object_get(it->k->cp->objs[CP_KIND_IMPORT], it->name) != NULL)
        set_status(it, "error", msg, NULL);
    item_due(it, cp_k8s_backoff_ms(it->failures, 500, ERROR_BACKOFF_MAX, rnd(it->k)));
}

/* Caches a Service from an answer or a watch: ours in services, anyone else's in others. */
static void cache_service(struct cp_k8s *k, const char *name, json_t *svc)
{
    if (svc != NULL && cp_k8s_service_owner(svc, k->owner) == CP_K8S_OWNER_OURS) {
        json_object_set(k->services, name, svc);
        json_object_del(k->others, name);
    } else {
        json_object_del(k->services, name);
        if (svc != NULL)
            json_object_set(k->others, name, svc);
        else
            json_object_del(k->others, name);
    }
}

static void on_answer(const struct cp_k8s_resp *r, void *ud);

static int item_send(struct item *it, enum op op, const char *method, json_t *body)
{
    struct cp_k8s *k = it->k;
    char path[PATH_MAX_LEN];
    struct cp_k8s_req req = {.method = method, .path = path, .timeout_ms = 15000};
    int rc;

    if (op == OP_CREATE)
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services", k->ns);
    else
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s", k->ns, it->name);
    it->op = op;
    rc = cp_k8s_call_json(k->client, &req, body, on_answer, it, &it->call);
    if (rc == 0)
        it->busy = true;
    return rc;
}

/* A write is due but another controlplane of this gateway holds the Lease. */
static void item_standby(struct item *it, const json_t *actual)
{
    struct cp_k8s *k = it->k;
    const char *h = cp_k8s_elector_holder(k->elector);
    char msg[1024];

    snprintf(msg, sizeof(msg),
             "this controlplane (%s) is on standby: %s holds the lease %s/%s of gateway %s "
             "and writes its Services; this one writes none until it holds the lease",
             k->identity, h[0] != '\0' ? h : "no one (not read yet)", k->ns, k->lease, k->owner);
    set_status(it, "standby", msg, actual);
}

static void item_run(struct item *it)
{
    struct cp_k8s *k = it->k;
    json_t *imp = json_object_get(k->cp->objs[CP_KIND_IMPORT], it->name);
    json_t *actual = json_object_get(k->services, it->name), *body = NULL;
    json_t *other = actual == NULL ? json_object_get(k->others, it->name) : NULL;
    enum cp_k8s_action a;
    char msg[512];
    int rc = 0;

    it->due_ms = 0;
    if (!k->svc.synced || !k->legacy.synced)
        return; /* marked again once the Services are listed */
    if (imp != NULL && other != NULL && it->recheck) {
        /* someone else's Service was there a while ago: look again before deciding */
        rc = item_send(it, OP_GET, "GET", NULL);
        goto sent;
    }
    a = cp_k8s_plan(&k->target, it->name, imp, actual != NULL ? actual : other, &body);
    CL_DEBUG("cp.k8s", "import %s: %s", it->name, cp_k8s_action_name(a));
    if ((a == CP_K8S_CREATE || a == CP_K8S_UPDATE || a == CP_K8S_DELETE || a == CP_K8S_ADOPT) &&
        !cp_k8s_elector_is_holder(k->elector)) {
        /* evaluated again when this controlplane holds the Lease (mark_all) */
        json_decref(body);
        if (imp != NULL)
            item_standby(it, actual);
        return;
    }
    switch (a) {
    case CP_K8S_NONE:
        if (imp == NULL) {
            json_object_del(k->others, it->name);
            item_free(it);
            return;
        }
        it->failures = 0;
        set_status(it, "ready", NULL, actual);
        return;
    case CP_K8S_INVALID:
        set_status(it, "error",
                   "the import name is not a valid Service name (DNS-1035: it must start with "
                   "a letter)",
                   NULL);
        return;
    case CP_K8S_WAIT: /* ours: its DELETED event brings it back here; unowned: re-read */
        set_status(it, "pending", "the Service is being deleted; it is created again once gone",
                   NULL);
        it->recheck = other != NULL;
        item_due(it, CONFLICT_RECHECK_MS);
        return;
    case CP_K8S_CONFLICT: /* never written; read again now and then, ours once it is gone */
        cp_k8s_conflict_message(&k->target, it->name, other, msg, sizeof(msg));
        set_status(it, "conflict", msg, NULL);
        it->recheck = true;
        item_due(it, CONFLICT_RECHECK_MS);
        return;
    case CP_K8S_ADOPT:
        CL_INFO("cp.k8s",
                "import %s: adopting Service %s/%s (made by an older version, as the import "
                "wants it): adding label %s=%s",
                it->name, k->ns, it->name, CP_K8S_LABEL_GATEWAY, k->owner);
        rc = item_send(it, OP_ADOPT, "PUT", body);
        break;
    case CP_K8S_CREATE:
        rc = item_send(it, OP_CREATE, "POST", body);
        break;
    case CP_K8S_UPDATE:
        rc = item_send(it, OP_UPDATE, "PUT", body);
        break;
    case CP_K8S_DELETE: {
        const char *uid =
            json_string_value(json_object_get(json_object_get(actual, "metadata"), "uid"));
        /* only the object we saw: never a Service someone re-created meanwhile */
        body = uid != NULL ? json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind",
                                       "DeleteOptions", "preconditions", "uid", uid)
                           : NULL;
        rc = item_send(it, OP_DELETE, "DELETE", body);
        break;
    }
    default:
        break;
    }
    json_decref(body);
sent:
    if (rc != 0)
        item_failed(it, cl_strerror(rc));
}

/* Answer to the item's request: update the cache, then evaluate again. */
static void on_answer(const struct cp_k8s_resp *r, void *ud)
{
    struct item *it = ud;
    struct cp_k8s *k = it->k;
    enum op op = it->op;
    char msg[512];
    bool ok = r->err == 0 && r->status >= 200 && r->status < 300;

    it->busy = false;
    it->call = NULL;
    if (k->stopping)
        return;
    if (ok) {
        it->failures = 0;
        it->recheck = false; /* what we have is fresh: plan on it (a conflict is reported then) */
        if (op == OP_DELETE)
            json_object_del(k->services, it->name);
        else if (json_is_object(r->json))
            cache_service(k, it->name, r->json);
        item_due(it, 0);
        return;
    }
    if (r->err == 0 && r->status == 404 &&
        (op == OP_GET || op == OP_UPDATE || op == OP_ADOPT || op == OP_DELETE)) {
        it->recheck = false; /* gone: create it if wanted */
        cache_service(k, it->name, NULL);
        item_due(it, 0);
        return;
    }
    if (r->err == 0 && r->status == 409 && op != OP_GET) {
        /* POST: a Service of that name exists; PUT: our resourceVersion is stale; DELETE: the
         * uid precondition failed. Re-read it, then decide again. */
        CL_DEBUG("cp.k8s", "import %s: %s answered 409, re-reading", it->name, op_names[op]);
        if (item_send(it, OP_GET, "GET", NULL) != 0)
            item_failed(it, "out of memory");
        return;
    }
    item_failed(it, resp_text(r, msg, sizeof(msg)));
}

static void on_work(uv_timer_t *t)
{
    struct cp_k8s *k = CL_CONTAINER_OF(t, struct cp_k8s, work);
    uint64_t now = cl_now_ms();
    struct cl_list *pos, *tmp;

    if (k->stopping)
        return;
    if (k->resync_ms > 0 && now >= k->next_resync) {
        k->next_resync = now + k->resync_ms;
        if (k->svc.synced)
            mark_all(k);
    }
    cl_list_foreach_safe(pos, tmp, &k->items)
    {
        struct item *it = CL_CONTAINER_OF(pos, struct item, link);
        if (!it->busy && it->due_ms != 0 && it->due_ms <= now)
            item_run(it);
    }
    schedule(k);
}

/* Arms the work timer for the earliest due item (or the next resync). */
static void schedule(struct cp_k8s *k)
{
    uint64_t now = cl_now_ms(), next = k->resync_ms > 0 ? k->next_resync : UINT64_MAX;
    struct cl_list *pos, *tmp;

    if (k->stopping)
        return;
    cl_list_foreach_safe(pos, tmp, &k->items)
    {
        struct item *it = CL_CONTAINER_OF(pos, struct item, link);
        if (!it->busy && it->due_ms != 0 && it->due_ms < next)
            next = it->due_ms;
    }
    if (next == UINT64_MAX)
        return;
    uv_timer_start(&k->work, on_work, next > now ? next - now : 0, 0);
}

/* ---- watchers ------------------------------------------------------------------------------- */

static void on_list(const struct cp_k8s_resp *r, void *ud);
static int on_watch_line(const char *line, size_t len, void *ud);
static void on_watch_end(int err, int status, const json_t *body, void *ud);

static void set_rv(struct watcher *w, const char *rv)
{
    char *n;

    if (rv == NULL || (w->rv != NULL && strcmp(w->rv, rv) == 0))
        return;
    if ((n = cl_strdup(rv)) == NULL)
        return; /* keep the older one: a resume from it is merely longer */
    cl_mem_free(w->rv);
    w->rv = n;
}

static void watcher_start(struct watcher *w)
{
    struct cp_k8s *k = w->k;
    char path[PATH_MAX_LEN], rv[256] = "", cont[2048] = "";
    const char *sep = strchr(w->base, '?') != NULL ? "&" : "?";
    int rc;

    if (k->stopping)
        return;
    if (!w->synced || w->gone) { /* list (a page) */
        if (w->cont == NULL) {
            w->gone = false;
            w->kind->list_begin(w);
        } else if (cp_k8s_query_escape(cont, sizeof(cont), w->cont) != 0) {
            cl_free(&w->cont); /* absurd token: start over */
            w->kind->list_begin(w);
            cont[0] = '\0';
        }
        if (w->kind->paged)
            snprintf(path, sizeof(path), "%s%slimit=%d%s%s", w->base, sep, PODS_PAGE,
                     cont[0] ? "&continue=" : "", cont);
        else
            snprintf(path, sizeof(path), "%s", w->base);
        struct cp_k8s_req req = {.method = "GET", .path = path, .timeout_ms = 60000};
        rc = cp_k8s_call(k->client, &req, on_list, w, &w->call);
    } else {
        if (cp_k8s_query_escape(rv, sizeof(rv), w->rv != NULL ? w->rv : "") != 0)
            rv[0] = '\0';
        snprintf(path, sizeof(path),
                 "%s%swatch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%llu",
                 w->base, sep, rv, (unsigned long long)k->watch_timeout_s);
        struct cp_k8s_watch_cbs cbs = {.on_line = on_watch_line, .on_end = on_watch_end};
        rc = cp_k8s_watch(k->client, path, (k->watch_timeout_s + 30) * 1000, &cbs, w, &w->call);
    }
    if (rc != 0) {
        w->call = NULL;
        w->failures++;
        watcher_next(w, cp_k8s_backoff_ms(w->failures, 500, WATCH_BACKOFF_MAX, rnd(k)));
    }
}

static void on_watcher_timer(uv_timer_t *t)
{
    watcher_start(CL_CONTAINER_OF(t, struct watcher, timer));
}

static void watcher_next(struct watcher *w, uint64_t delay)
{
    if (w->k->stopping)
        return;
    uv_timer_start(&w->timer, on_watcher_timer, delay, 0);
}

static void on_list(const struct cp_k8s_resp *r, void *ud)
{
    struct watcher *w = ud;
    struct cp_k8s *k = w->k;
    const char *cont;
    json_t *items, *o;
    char msg[512];
    size_t i;

    w->call = NULL;
    if (k->stopping)
        return;
    if (r->err != 0 || r->status != 200 || !json_is_object(r->json)) {
        if (r->err == 0 && r->status == 410) /* the continue token expired */
            cl_free(&w->cont);
        w->failures++;
        set_error(k, "list %s: %s", w->kind->what, resp_text(r, msg, sizeof(msg)));
        CL_WARN("cp.k8s", "%s", k->last_error);
        watcher_next(w, cp_k8s_backoff_ms(w->failures, 500, WATCH_BACKOFF_MAX, rnd(k)));
        return;
    }
    items = json_object_get(r->json, "items");
    json_array_foreach(items, i, o)
    {
        w->kind->list_item(w, o);
    }
    cont = json_string_value(json_object_get(json_object_get(r->json, "metadata"), "continue"));
    cl_free(&w->cont);
    if (w->kind->paged && cont != NULL && cont[0] != '\0') {
        if ((w->cont = cl_strdup(cont)) == NULL)
            w->kind->list_begin(w); /* cannot hold the token: start over */
        watcher_next(w, 0);
        return;
    }
    set_rv(w, cp_k8s_resource_version(r->json));
    w->failures = 0;
    w->synced = true;
    w->kind->list_end(w);
    if (!w->kind->list_only)
        watcher_next(w, 0); /* now watch */
}

static int on_watch_line(const char *line, size_t len, void *ud)
{
    struct watcher *w = ud;
    json_t *root, *obj;
    const char *type;
    int rc;

    if ((rc = cp_k8s_watch_event(line, len, &root, &type, &obj)) != 0) {
        CL_WARN("cp.k8s", "watch %s: undecodable event (%s): resuming", w->kind->what,
                cl_strerror(rc));
        return rc; /* ends the stream; resumed from the last good resourceVersion */
    }
    w->events++;
    if (strcmp(type, "ERROR") == 0) {
        json_int_t code = json_integer_value(json_object_get(obj, "code"));
        const char *m = json_string_value(json_object_get(obj, "message"));
        char esc[256];
        CL_INFO("cp.k8s", "watch %s: ERROR event %lld: %s", w->kind->what, (long long)code,
                cl_log_escape(m != NULL ? m : "", esc, sizeof(esc)));
        if (code == 410)
            w->gone = true;
        json_decref(root);
        return CL_ECLOSED;
    }
    set_rv(w, cp_k8s_resource_version(obj));
    if (strcmp(type, "BOOKMARK") != 0)
        w->kind->event(w, type, obj);
    json_decref(root);
    return 0;
}

static void on_watch_end(int err, int status, const json_t *body, void *ud)
{
    struct watcher *w = ud;
    struct cp_k8s *k = w->k;

    w->call = NULL;
    if (k->stopping)
        return;
    if (err == 0 && status == 410)
        w->gone = true;
    if (w->gone) {
        CL_INFO("cp.k8s", "watch %s: resourceVersion too old (410 Gone): re-listing",
                w->kind->what);
        w->failures = 0;
        watcher_next(w, 0);
        return;
    }
    if (err == 0 && status == 200) { /* the server's timeout: resume at once */
        w->failures = 0;
        watcher_next(w, 0);
        return;
    }
    const char *m = json_string_value(json_object_get(body, "message"));
    w->failures++;
    if (err != 0)
        set_error(k, "watch %s: %s", w->kind->what, cl_strerror(err));
    else
        set_error(k, "watch %s: status %d %s", w->kind->what, status, m != NULL ? m : "");
    CL_DEBUG("cp.k8s", "%s", k->last_error);
    watcher_next(w, cp_k8s_backoff_ms(w->failures, 500, WATCH_BACKOFF_MAX, rnd(k)));
}

/* Services: the cache of this gateway's Services. */
static void svc_list_begin(struct watcher *w)
{
    json_decref(w->k->svc_new);
    w->k->svc_new = json_object();
}

static void svc_list_item(struct watcher *w, json_t *obj)
{
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));

    if (name != NULL && w->k->svc_new != NULL &&
        cp_k8s_service_owner(obj, w->k->owner) == CP_K8S_OWNER_OURS)
        json_object_set(w->k->svc_new, name, obj);
}

/* The list replaces the cache: Services deleted while no watch ran drop out of it. */
static void svc_list_end(struct watcher *w)
{
    struct cp_k8s *k = w->k;
    const char *n;
    json_t *o;

    if (k->svc_new == NULL) /* out of memory at list_begin: keep what we have */
        return;
    json_object_foreach(k->services, n, o)
    {
        if (json_object_get(k->svc_new, n) == NULL)
            mark(k, n);
    }
    json_decref(k->services);
    k->services = k->svc_new;
    k->svc_new = NULL;
    CL_INFO("cp.k8s", "listed %zu Services of this gateway (%s=%s) in %s",
            json_object_size(k->services), CP_K8S_LABEL_GATEWAY, k->owner, k->ns);
    mark_all(k);
}

static void svc_event(struct watcher *w, const char *type, json_t *obj)
{
    struct cp_k8s *k = w->k;
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));

    if (name == NULL)
        return;
    CL_DEBUG("cp.k8s", "Service %s/%s %s", k->ns, name, type);
    if (strcmp(type, "DELETED") == 0) /* or relabelled out of our selection: re-read */
        cache_service(k, name, NULL);
    else
        cache_service(k, name, obj);
    mark(k, name);
}

static const struct watch_kind svc_kind = {
    .what = "services",
    .paged = false,
    .list_begin = svc_list_begin,
    .list_item = svc_list_item,
    .list_end = svc_list_end,
    .event = svc_event,
};

/*
 * Unowned Services (managed-by=clusterlink without an owner label: made by a version before
 * owner labels), listed once at start, before anything is written. Those named like one of our
 * imports are kept in others, where the plan adopts the ones exactly as the import wants them;
 * the rest are left alone: they may be another gateway's, and nothing on them says whose.
 * Unowned ones that appear later are found when a create answers 409.
 */
static void legacy_list_begin(struct watcher *w)
{
    w->k->legacy_seen = 0;
}

static void legacy_list_item(struct watcher *w, json_t *obj)
{
    struct cp_k8s *k = w->k;
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));

    if (name == NULL || cp_k8s_service_owner(obj, k->owner) != CP_K8S_OWNER_LEGACY)
        return;
    k->legacy_seen++;
    if (json_object_get(k->cp->objs[CP_KIND_IMPORT], name) != NULL &&
        json_object_get(k->services, name) == NULL)
        json_object_set(k->others, name, obj);
}

static void legacy_list_end(struct watcher *w)
{
    struct cp_k8s *k = w->k;

    if (k->legacy_seen > 0)
        CL_INFO("cp.k8s",
                "%zu Services in %s are managed by ClusterLink without an owner label (%s): "
                "those exactly as one of this gateway's imports wants are adopted, the others "
                "left alone",
                k->legacy_seen, k->ns, CP_K8S_LABEL_GATEWAY);
    mark_all(k);
}

static void legacy_event(struct watcher *w, const char *type, json_t *obj)
{
    /* list-only: never watched */
    (void)w;
    (void)type;
    (void)obj;
}

static const struct watch_kind legacy_kind = {
    .what = "unowned services",
    .paged = false,
    .list_only = true,
    .list_begin = legacy_list_begin,
    .list_item = legacy_list_item,
    .list_end = legacy_list_end,
    .event = legacy_event,
};

/* Pods: the IP map (a re-list builds a new one and swaps it in). */
static void pods_list_begin(struct watcher *w)
{
    cp_k8s_pods_deinit(&w->k->podnew);
    cp_k8s_pods_init(&w->k->podnew);
}

static void pods_list_item(struct watcher *w, json_t *obj)
{
    cp_k8s_pods_apply(&w->k->podnew, obj, false);
}

static void pods_list_end(struct watcher *w)
{
    struct cp_k8s *k = w->k;
    struct cp_k8s_pods old = k->podmap;

    k->podmap = k->podnew;
    k->podnew = old;
    cp_k8s_pods_deinit(&k->podnew);
    cp_k8s_pods_init(&k->podnew);
    CL_INFO("cp.k8s", "listed pods: %zu pod IPs known", cp_k8s_pods_count(&k->podmap));
}

static void pods_event(struct watcher *w, const char *type, json_t *obj)
{
    if (cp_k8s_pods_apply(&w->k->podmap, obj, strcmp(type, "DELETED") == 0) != 0)
        CL_DEBUG("cp.k8s", "watch pods: %s event without a pod", type);
}

static const struct watch_kind pods_kind = {
    .what = "pods",
    .paged = true,
    .list_begin = pods_list_begin,
    .list_item = pods_list_item,
    .list_end = pods_list_end,
    .event = pods_event,
};

/* ---- lifetime ------------------------------------------------------------------------------- */

/* Drops one of the things that must end before k is freed (handles, the Lease release). */
static void k8s_unref(struct cp_k8s *k)
{
    if (--k->nhandles > 0)
        return;
    json_decref(k->services);
    json_decref(k->svc_new);
    json_decref(k->others);
    json_decref(k->selector);
    cp_k8s_pods_deinit(&k->podmap);
    cp_k8s_pods_deinit(&k->podnew);
    cl_mem_free(k->svc.rv);
    cl_mem_free(k->svc.cont);
    cl_mem_free(k->legacy.rv);
    cl_mem_free(k->legacy.cont);
    cl_mem_free(k->pods.rv);
    cl_mem_free(k->pods.cont);
    cp_k8s_config_deinit(&k->cfg);
    cl_mem_free(k);
}

static void on_handle_closed(uv_handle_t *h)
{
    k8s_unref(h->data);
}

/* The elector's verdict: the holder writes; on becoming it, everything is looked at again (it
 * may have missed changes while on standby); on losing it, writes in flight are cancelled. */
static void on_lease_change(bool holder, void *ud)
{
    struct cp_k8s *k = ud;
    struct cl_list *pos, *tmp;

    if (k->stopping)
        return;
    if (holder) {
        mark_all(k);
        return;
    }
    cl_list_foreach_safe(pos, tmp, &k->items)
    {
        struct item *it = CL_CONTAINER_OF(pos, struct item, link);
        if (it->busy && it->op != OP_GET) {
            cp_k8s_call_cancel(it->call);
            it->call = NULL;
            it->busy = false;
        }
        item_due(it, 0); /* its status says standby */
    }
}

/* Identity in the Lease: the pod's name in a pod, else host-pid; a nonce per start. */
static int make_identity(struct cp_k8s *k, bool in_pod)
{
    char host[256] = "";
    uint64_t nonce = 0;

    if (getrandom(&nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
        nonce = uv_hrtime() ^ ((uint64_t)getpid() << 32);
    if (gethostname(host, sizeof(host)) != 0)
        cl_strlcpy(host, "localhost", sizeof(host));
    host[sizeof(host) - 1] = '\0';
    return cp_k8s_lease_identity(in_pod ? getenv("HOSTNAME") : NULL, host, (long)getpid(), nonce,
                                 k->identity, sizeof(k->identity));
}

static void watcher_init(struct cp_k8s *k, struct watcher *w, const struct watch_kind *kind)
{
    w->k = k;
    w->kind = kind;
    uv_timer_init(k->cp->loop, &w->timer);
    w->timer.data = k;
    k->nhandles++;
}

int cp_k8s_start(struct cp *cp, const struct cp_k8s_opts *o, struct cp_k8s **out, char *err,
                 size_t errlen)
{
    struct cp_k8s *k;
    char sel[256] = "", q[256] = "";
    const char *ns;
    int rc;

    *out = NULL;
    if ((k = cl_calloc(1, sizeof(*k))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return CL_ENOMEM;
    }
    k->cp = cp;
    k->rnd = (uint32_t)uv_hrtime() | 1;
    cl_list_init(&k->items);
    if (o->kubeconfig != NULL)
        rc = cp_k8s_config_kubeconfig(o->kubeconfig, &k->cfg, err, errlen);
    else
        rc = cp_k8s_config_in_cluster(o->sa_dir != NULL ? o->sa_dir : CP_K8S_SA_DIR,
                                      getenv("KUBERNETES_SERVICE_HOST"),
                                      getenv("KUBERNETES_SERVICE_PORT"), &k->cfg, err, errlen);
    if (rc != 0)
        goto fail;
    ns = o->ns != NULL ? o->ns : k->cfg.ns != NULL ? k->cfg.ns : "default";
    if (!cl_str_is_dns_label(ns) || strlen(ns) >= sizeof(k->ns)) {
        snprintf(err, errlen, "namespace %s is not a valid namespace name", ns);
        rc = CL_EINVAL;
        goto fail;
    }
    cl_strlcpy(k->ns, ns, sizeof(k->ns));
    if ((k->selector = cp_k8s_parse_selector(o->selector, err, errlen)) == NULL) {
        rc = CL_EINVAL;
        goto fail;
    }
    if ((rc = cp_k8s_owner_value(o->gateway, k->owner, sizeof(k->owner))) != 0) {
        snprintf(err, errlen, "no gateway name to label the Services with");
        goto fail;
    }
    if (cp_k8s_lease_name(o->gateway, k->lease, sizeof(k->lease)) != 0 ||
        make_identity(k, o->kubeconfig == NULL) != 0) {
        snprintf(err, errlen, "cannot name the lease or this controlplane in it");
        rc = CL_EINVAL;
        goto fail;
    }
    k->target.ns = k->ns;
    k->target.owner = k->owner;
    k->target.selector = k->selector;
    if ((rc = cp_k8s_client_new(cp->loop, &k->cfg, NULL, &k->client, err, errlen)) != 0)
        goto fail;
    if ((k->services = json_object()) == NULL || (k->others = json_object()) == NULL) {
        rc = CL_ENOMEM;
        goto fail;
    }
    cp_k8s_pods_init(&k->podmap);
    cp_k8s_pods_init(&k->podnew);
    k->resync_ms = o->resync_ms != 0 ? o->resync_ms : 60000;
    k->next_resync = cl_now_ms() + k->resync_ms;
    k->watch_timeout_s = o->watch_timeout_s != 0 ? o->watch_timeout_s : 300;
    k->watch_pods = o->pods;
    uv_timer_init(cp->loop, &k->work);
    k->work.data = k;
    k->nhandles = 1;
    watcher_init(k, &k->svc, &svc_kind);
    snprintf(sel, sizeof(sel), "%s=%s,%s=%s", CP_K8S_LABEL_MANAGED, CP_K8S_MANAGER,
             CP_K8S_LABEL_GATEWAY, k->owner);
    cp_k8s_query_escape(q, sizeof(q), sel);
    snprintf(k->svc.base, sizeof(k->svc.base), "/api/v1/namespaces/%s/services?labelSelector=%s",
             k->ns, q);
    watcher_init(k, &k->legacy, &legacy_kind);
    snprintf(sel, sizeof(sel), "%s=%s,!%s", CP_K8S_LABEL_MANAGED, CP_K8S_MANAGER,
             CP_K8S_LABEL_GATEWAY);
    q[0] = '\0';
    cp_k8s_query_escape(q, sizeof(q), sel);
    snprintf(k->legacy.base, sizeof(k->legacy.base),
             "/api/v1/namespaces/%s/services?labelSelector=%s", k->ns, q);
    watcher_init(k, &k->pods, &pods_kind);
    snprintf(k->pods.base, sizeof(k->pods.base), "/api/v1/pods");
    CL_INFO("cp.k8s",
            "Kubernetes mode: API server %s:%u (%s), Services in namespace %s labelled %s=%s",
            k->cfg.host, k->cfg.port, o->kubeconfig != NULL ? o->kubeconfig : "in-cluster", k->ns,
            CP_K8S_LABEL_GATEWAY, k->owner);
    struct cp_k8s_elector_opts eo = {
        .who = {.ns = k->ns,
                .name = k->lease,
                .owner = k->owner,
                .identity = k->identity,
                .duration_s =
                    o->lease_duration_s > 0 ? o->lease_duration_s : CP_K8S_LEASE_DURATION_S},
        .on_change = on_lease_change,
        .ud = k,
    };
    if ((rc = cp_k8s_elector_new(cp->loop, k->client, &eo, &k->elector)) != 0) {
        /* nothing has started yet: undo what the loop holds */
        snprintf(err, errlen, "cannot start the lease: %s", cl_strerror(rc));
        k->elector = NULL;
        cp_k8s_stop(k);
        return rc;
    }
    watcher_start(&k->legacy);
    watcher_start(&k->svc);
    if (k->watch_pods)
        watcher_start(&k->pods);
    *out = k;
    return 0;
fail:
    json_decref(k->selector);
    json_decref(k->services);
    json_decref(k->others);
    cp_k8s_client_free(k->client);
    cp_k8s_config_deinit(&k->cfg);
    cl_mem_free(k);
    return rc;
}

static void on_lease_released(void *ud)
{
    struct cp_k8s *k = ud;

    cp_k8s_elector_free(k->elector);
    k->elector = NULL;
    cp_k8s_client_free(k->client);
    k->client = NULL;
    k8s_unref(k);
}

void cp_k8s_stop(struct cp_k8s *k)
{
    struct cl_list *pos, *tmp;

    if (k == NULL || k->stopping)
        return;
    k->stopping = true;
    cl_list_foreach_safe(pos, tmp, &k->items)
    {
        item_free(CL_CONTAINER_OF(pos, struct item, link));
    }
    cp_k8s_call_cancel(k->svc.call);
    cp_k8s_call_cancel(k->legacy.call);
    cp_k8s_call_cancel(k->pods.call);
    k->svc.call = k->legacy.call = k->pods.call = NULL;
    uv_close((uv_handle_t *)&k->work, on_handle_closed);
    uv_close((uv_handle_t *)&k->svc.timer, on_handle_closed);
    uv_close((uv_handle_t *)&k->legacy.timer, on_handle_closed);
    uv_close((uv_handle_t *)&k->pods.timer, on_handle_closed);
    /* a holder hands the Lease back so another controlplane takes over at once; the client
     * lives until that is answered */
    k->nhandles++;
    if (k->elector != NULL)
        cp_k8s_elector_stop(k->elector, on_lease_released, k);
    else
        on_lease_released(k);
}

void cp_k8s_import_changed(struct cp_k8s *k, const char *name)
{
    if (k == NULL || k->stopping)
        return;
    mark(k, name);
}

json_t *cp_k8s_import_status(struct cp_k8s *k, const char *name)
{
    struct item *it;

    if (k == NULL)
        return NULL;
    if ((it = item_find(k, name)) == NULL || it->status == NULL)
        return json_pack("{s:s,s:s,s:s}", "state", "pending", "name", name, "namespace", k->ns);
    return json_deep_copy(it->status);
}

void cp_k8s_client_attrs(struct cp_k8s *k, const char *client, json_t *attrs)
{
    char ip[64];

    if (k == NULL || cp_k8s_client_ip(client, ip, sizeof(ip)) != 0)
        return;
    cp_k8s_pods_attrs(&k->podmap, ip, attrs);
}

void cp_k8s_reload_tls(struct cp_k8s *k)
{
    char err[320] = "";
    int rc;

    if (k == NULL || k->client == NULL)
        return;
    rc = cp_k8s_client_reload_tls(k->client, err, sizeof(err));
    if (rc < 0) {
        CL_WARN("cp.k8s",
                "API server TLS files changed but cannot be used, still using the previous "
                "ones: %s",
                err);
        snprintf(k->tls_error, sizeof(k->tls_error), "%s", err);
    } else if (rc == 1) {
        CL_INFO("cp.k8s", "API server TLS files reloaded: the next requests connect with them");
        k->tls_error[0] = '\0';
    }
}

json_t *cp_k8s_summary(struct cp_k8s *k)
{
    if (k == NULL)
        return json_null();
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:i,s:i,s:i,s:s,s:s,s:s}", "apiServer",
                     k->client != NULL ? k->cfg.host : "", "namespace", k->ns, "gateway", k->owner,
                     "role", cp_k8s_elector_is_holder(k->elector) ? "holder" : "standby", "holder",
                     cp_k8s_elector_holder(k->elector), "identity", k->identity, "lease", k->lease,
                     "synced", k->svc.synced && k->legacy.synced, "services",
                     (int)json_object_size(k->services), "unownedServices", (int)k->legacy_seen,
                     "podIPs", (int)cp_k8s_pods_count(&k->podmap), "lastError", k->last_error,
                     "leaseError", cp_k8s_elector_error(k->elector), "tlsReloadError",
                     k->tls_error);
}
