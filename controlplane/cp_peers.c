/*
 * Peer health: one pooled HTTP/2 connection per peer gateway, `GET /api/v1/peer/health` on it
 * every interval (with a per-request timeout). A gateway flips to down after `fail_threshold`
 * consecutive failures and back up after `ok_threshold` successes (the first probe decides at
 * once); a peer is reachable when any of its gateways is up. A probe the peer refused
 * unprocessed (it retired the connection: a certificate reload, a drain) is no evidence: it is
 * asked again at once on a new connection, and only a second refusal counts as a failure.
 * A relayed request (cp_peers_fetch: discovery) refused that way is asked again too, up to
 * FETCH_TRIES in all, on the same connection while it takes new streams, else on the next one.
 * A PEER_EVENT from a worker is evidence: the peer is probed at once and re-probed quickly
 * until the verdict settles, so a dead peer stops getting traffic before the next heartbeat
 * would have noticed.
 * Nothing here blocks: DNS, connect, TLS and the request are all asynchronous, and a slow or
 * silent peer only ever costs its own timeout.
 */
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cl/h2conn.h"
#include "cl/json.h"
#include "cl/list.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/time.h"
#include "cp.h"

#define QUICK_RETRY_MS 150
/* A refused fetch is sent again, up to this many times in all: a refusal by RST_STREAM can
 * arrive before the GOAWAY that retires the connection, so a retry on it can be refused too. */
#define FETCH_TRIES    3

struct gw {
    struct cl_list link;
    struct ppeer *p;
    char host[256];
    uint16_t port;
    struct cl_h2conn *c;
    uv_getaddrinfo_t gai;
    bool resolving;
    bool probing;
    bool dead;   /* removed: free when the last async operation returns */
    int dropped; /* connections replaced whose on_close is still to come (they point at g) */
    int known;   /* -1 unknown, 0 down, 1 up */
    int fails, oks;
    bool asked_again;       /* this probe was refused unprocessed once already */
    int fetching;           /* cp_peers_fetch requests in flight on a connection of this gateway */
    struct cl_list waiting; /* refused fetches waiting for the next connection */
    uint64_t rtt_us;
    uint64_t sent_us;
    char last_error[160];
};

struct ppeer {
    struct cl_list link;
    struct cp_peers *pp;
    char name[64];
    char key[1024]; /* gateways as text, to notice changes */
    struct cl_list gws;
    bool reachable;
    bool known;
    uint64_t since_ms;
    uv_timer_t quick;
    bool quick_armed;
};

struct cp_peers {
    struct cp *cp;
    struct cp_health_opts o;
    struct cl_tls_ctx *tls;
    uv_timer_t tick;
    struct cl_list peers;
    bool stopping;
};

/* A cp_peers_fetch request, kept so that it can be asked again. */
struct fetch {
    struct cl_list link; /* on g->waiting while it waits for a new connection */
    struct gw *g;
    char path[128];
    uint64_t timeout_ms;
    cl_h2_fetch_cb cb;
    void *ud;
    int tries;
};

static void publish(struct ppeer *p);
static void probe(struct gw *g);
static void fail_waiting(struct gw *g, int err);
static void send_waiting(struct gw *g);

/* ---- gateway lifecycle ---- */

static void gw_maybe_free(struct gw *g)
{
    if (g->dead && !g->resolving && !g->probing && g->c == NULL && g->dropped == 0 &&
        g->fetching == 0 && cl_list_is_empty(&g->waiting))
        cl_mem_free(g);
}

static void on_conn_close(struct cl_h2conn *c, int err, void *ud)
{
    struct gw *g = ud;

    (void)err;
    /* a replaced connection can close after its successor exists (the address lookup may
     * finish in the same loop iteration as the close): only the current one clears g->c */
    if (g->c == c)
        g->c = NULL;
    else
        g->dropped--;
    gw_maybe_free(g);
}

/* Retires the current connection so the next probe dials a new one. Gracefully: a request
 * already on it (a discovery fetch the peer took before its GOAWAY) still gets its answer, or
 * its own timeout; nothing new goes on it. Before its handshake is done it closes at once. */
static void gw_drop_conn(struct gw *g)
{
    cl_h2conn_shutdown(g->c); /* on_close follows */
    g->c = NULL;
    g->dropped++;
}

static const struct cl_h2conn_cbs conn_cbs = {.on_close = on_conn_close};

static void verdict(struct gw *g, bool ok, const char *err)
{
    struct ppeer *p = g->p;
    const struct cp_health_opts *o = &p->pp->o;
    int before = g->known;

    g->asked_again = false;
    if (ok) {
        g->fails = 0;
        g->oks++;
        g->last_error[0] = '\0';
        if (g->known != 1 && (g->known == -1 || g->oks >= o->ok_threshold))
            g->known = 1;
    } else {
        g->oks = 0;
        g->fails++;
        snprintf(g->last_error, sizeof(g->last_error), "%s", err);
        if (g->known != 0 && (g->known == -1 || g->fails >= o->fail_threshold))
            g->known = 0;
    }
    if (before != g->known)
        CL_INFO("cp.health", "peer %s gateway %s:%u is %s%s%s", p->name, g->host, g->port,
                g->known ? "up" : "down", ok ? "" : ": ", ok ? "" : err);
    publish(p);
}

static void on_health(int err, int status, const uint8_t *body, size_t len, void *ud)
{
    struct gw *g = ud;
    char why[256];

    g->probing = false;
    if (g->dead) {
        gw_maybe_free(g);
        return;
    }
    g->rtt_us = cl_now_us() - g->sent_us;
    if ((err == CL_EH2_REFUSED || err == CL_EH2_GOAWAY) && !g->asked_again) {
        /* Not processed: the peer retired this connection (it reloaded its certificate files,
         * or is draining) as the probe arrived. That says nothing either way, and a first
         * verdict would stand at once: ask again, now, on a new connection. */
        g->asked_again = true;
        if (g->c != NULL)
            gw_drop_conn(g);
        probe(g);
        return;
    }
    if (err != 0) {
        snprintf(why, sizeof(why), "%s%s%s", cl_strerror(err),
                 g->c != NULL && cl_h2conn_error_detail(g->c)[0] ? ": " : "",
                 g->c != NULL ? cl_h2conn_error_detail(g->c) : "");
        verdict(g, false, why);
        return;
    }
    if (status != 200) {
        snprintf(why, sizeof(why), "health answered HTTP %d", status);
        verdict(g, false, why);
        return;
    }
    json_t *j = cl_json_loadb(body, len, NULL);
    const char *name = json_string_value(json_object_get(j, "name"));
    if (name == NULL || strcmp(name, g->p->name) != 0) {
        snprintf(why, sizeof(why), "health answer names %s, expected %s",
                 name != NULL ? name : "nobody", g->p->name);
        verdict(g, false, why);
    } else {
        verdict(g, true, NULL);
    }
    json_decref(j);
}

static void send_probe(struct gw *g)
{
    struct cp_peers *pp = g->p->pp;
    int rc;

    g->sent_us = cl_now_us();
    g->probing = true;
    rc = cl_h2_fetch(g->c, "GET", g->p->name, "/api/v1/peer/health", NULL, 0, NULL, 0, 64 * 1024,
                     pp->o.timeout_ms, on_health, g);
    if (rc != 0) {
        g->probing = false;
        cl_h2conn_close(g->c, rc);
        verdict(g, false, cl_strerror(rc));
    }
}

static void on_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    struct gw *g = CL_CONTAINER_OF(gai, struct gw, gai);
    struct sockaddr_storage ss;
    char why[256];

    g->resolving = false;
    if (g->dead || status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        if (!g->dead) {
            snprintf(why, sizeof(why), "cannot resolve %.64s: %s", g->host, uv_strerror(status));
            verdict(g, false, why);
            fail_waiting(g, status < 0 ? status : CL_ENOPEER);
        }
        gw_maybe_free(g);
        return;
    }
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    uv_freeaddrinfo(res);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(g->port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(g->port);
    struct cl_h2conn_opts o = {.server = false,
                               .tls = g->p->pp->tls,
                               .server_name = g->p->name, /* the peer's certificate names it */
                               .handshake_timeout_ms = g->p->pp->o.timeout_ms,
                               .cbs = &conn_cbs,
                               .ud = g};
    if (cl_h2conn_new(g->p->pp->cp->loop, &o, &g->c) != 0) {
        verdict(g, false, "out of memory");
        fail_waiting(g, CL_ENOMEM);
        return;
    }
    if (cl_h2conn_connect(g->c, (struct sockaddr *)&ss) != 0) {
        g->c = NULL; /* freed without on_close */
        verdict(g, false, "cannot start a connection");
        fail_waiting(g, CL_ENOPEER);
        return;
    }
    send_probe(g);   /* queued until the handshake completes; its timeout covers it */
    send_waiting(g); /* likewise */
}

static void probe(struct gw *g)
{
    char port[8];

    if (g->dead || g->probing || g->resolving)
        return;
    /* made with certificate files since replaced: the next handshake uses the new ones */
    if (g->c != NULL && cl_h2conn_is_stale(g->c))
        gw_drop_conn(g); /* no probe is on it now */
    if (g->c != NULL && cl_h2conn_can_open(g->c)) {
        send_probe(g);
        return;
    }
    if (g->c != NULL)
        gw_drop_conn(g); /* going away or dead: replace it */
    snprintf(port, sizeof(port), "%u", g->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    g->resolving = true;
    if (uv_getaddrinfo(g->p->pp->cp->loop, &g->gai, on_resolved, g->host, port, &hints) != 0) {
        g->resolving = false;
        verdict(g, false, "cannot resolve");
        fail_waiting(g, CL_ENOPEER);
    }
}

/* ---- peers ---- */

static void publish(struct ppeer *p)
{
    struct cp *cp = p->pp->cp;
    json_t *gws = json_array();
    bool any = false, all_known = true;
    const char *err = "";
    struct cl_list *pos, *tmp;
    char since[40];

    cl_list_foreach_safe(pos, tmp, &p->gws)
    {
        struct gw *g = CL_CONTAINER_OF(pos, struct gw, link);
        any |= g->known == 1;
        all_known &= g->known != -1;
        if (g->last_error[0] != '\0')
            err = g->last_error;
        json_array_append_new(
            gws, json_pack("{s:s,s:i,s:o,s:s,s:f}", "host", g->host, "port", g->port, "reachable",
                           g->known == -1 ? json_null() : json_boolean(g->known), "lastError",
                           g->last_error, "rttMs", (double)g->rtt_us / 1000.0));
    }
    if (!p->known && (any || all_known)) {
        p->known = true;
        p->reachable = !any; /* force the change below */
    }
    if (p->known && p->reachable != any) {
        p->reachable = any;
        p->since_ms = cl_wall_ms();
        CL_INFO("cp.health", "peer %s is %s", p->name, any ? "reachable" : "unreachable");
    }
    cl_time_rfc3339(p->since_ms, since, sizeof(since));
    json_t *st = json_pack("{s:o,s:s,s:s,s:o}", "reachable",
                           p->known ? json_boolean(p->reachable) : json_null(), "since",
                           p->known ? since : "", "lastError", any ? "" : err, "gateways", gws);
    json_object_set_new(cp->peer_status, p->name, st);
}

static void on_quick(uv_timer_t *t)
{
    struct ppeer *p = CL_CONTAINER_OF(t, struct ppeer, quick);
    struct cl_list *pos, *tmp;
    bool unsettled = false;

    p->quick_armed = false;
    cl_list_foreach_safe(pos, tmp, &p->gws)
    {
        struct gw *g = CL_CONTAINER_OF(pos, struct gw, link);
        /* keep probing quickly while a gateway is failing but not yet declared down */
        if (g->fails > 0 && g->known != 0) {
            unsettled = true;
            probe(g);
        }
    }
    if (unsettled) {
        uv_timer_start(&p->quick, on_quick, QUICK_RETRY_MS, 0);
        p->quick_armed = true;
    }
}

static void gw_remove(struct gw *g)
{
    cl_list_remove(&g->link);
    g->dead = true;
    fail_waiting(g, CL_ENOPEER);
    if (g->c != NULL)
        cl_h2conn_close(g->c, 0); /* an in-flight probe fails and finds g dead */
    gw_maybe_free(g);
}

static void on_peer_timer_close(uv_handle_t *h)
{
    cl_mem_free(CL_CONTAINER_OF((uv_timer_t *)h, struct ppeer, quick));
}

static void peer_remove(struct ppeer *p)
{
    struct cl_list *pos, *tmp;

    cl_list_remove(&p->link);
    cl_list_foreach_safe(pos, tmp, &p->gws)
    {
        gw_remove(CL_CONTAINER_OF(pos, struct gw, link));
    }
    uv_close((uv_handle_t *)&p->quick, on_peer_timer_close);
}

static void peer_add(struct cp_peers *pp, const char *name, const json_t *obj, const char *key)
{
    struct ppeer *p = cl_calloc(1, sizeof(*p));
    json_t *g;
    size_t i;

    if (p == NULL)
        return;
    p->pp = pp;
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->key, sizeof(p->key), "%s", key);
    cl_list_init(&p->gws);
    uv_timer_init(pp->cp->loop, &p->quick);
    json_array_foreach(json_object_get(json_object_get(obj, "spec"), "gateways"), i, g)
    {
        struct gw *w = cl_calloc(1, sizeof(*w));
        if (w == NULL)
            continue;
        w->p = p;
        w->known = -1;
        cl_list_init(&w->waiting);
        snprintf(w->host, sizeof(w->host), "%s", json_string_value(json_object_get(g, "host")));
        w->port = (uint16_t)json_integer_value(json_object_get(g, "port"));
        cl_list_insert_tail(&p->gws, &w->link);
        probe(w);
    }
    cl_list_insert_tail(&pp->peers, &p->link);
    publish(p);
}

void cp_peers_sync(struct cp_peers *pp)
{
    struct cl_list *pos, *tmp;
    const char *name;
    json_t *obj;

    if (pp == NULL || pp->stopping)
        return;
    /* drop peers that are gone or whose gateways changed */
    cl_list_foreach_safe(pos, tmp, &pp->peers)
    {
        struct ppeer *p = CL_CONTAINER_OF(pos, struct ppeer, link);
        json_t *o = json_object_get(pp->cp->objs[CP_KIND_PEER], p->name);
        char *key = o != NULL ? cl_json_dumps(json_object_get(o, "spec")) : NULL;
        if (key == NULL || strcmp(key, p->key) != 0) {
            peer_remove(p);
            if (o == NULL)
                json_object_del(pp->cp->peer_status, p->name);
        }
        cl_mem_free(key);
    }
    json_object_foreach(pp->cp->objs[CP_KIND_PEER], name, obj)
    {
        bool have = false;
        cl_list_foreach_safe(pos, tmp, &pp->peers)
        {
            have |= strcmp(CL_CONTAINER_OF(pos, struct ppeer, link)->name, name) == 0;
        }
        if (!have) {
            char *key = cl_json_dumps(json_object_get(obj, "spec"));
            if (key != NULL)
                peer_add(pp, name, obj, key);
            cl_mem_free(key);
        }
    }
}

static void fetch_done(struct fetch *f, int err, int status, const uint8_t *body, size_t len)
{
    struct gw *g = f->g;

    f->cb(err, status, body, len, f->ud);
    cl_mem_free(f);
    gw_maybe_free(g);
}

static void on_fetch(int err, int status, const uint8_t *body, size_t len, void *ud);

static int fetch_send(struct fetch *f)
{
    struct gw *g = f->g;
    int rc = cl_h2_fetch(g->c, "GET", g->p->name, f->path, NULL, 0, NULL, 0, 1u << 20,
                         f->timeout_ms, on_fetch, f);

    if (rc == 0) {
        g->fetching++;
        f->tries++;
    }
    return rc;
}

static void on_fetch(int err, int status, const uint8_t *body, size_t len, void *ud)
{
    struct fetch *f = ud;
    struct gw *g = f->g;

    g->fetching--;
    if ((err == CL_EH2_REFUSED || err == CL_EH2_GOAWAY) && f->tries < FETCH_TRIES && !g->dead) {
        /* Not processed: the peer retired the connection (a certificate reload, a drain), as
         * for a health probe, or refused the stream alone. Ask again on a connection that can
         * take it: this one, or its successor, which the prober dials (at once, or at its next
         * probe when one is in flight on the old connection). RFC 9113 section 8.7. */
        if (g->c != NULL && cl_h2conn_can_open(g->c)) {
            if ((err = fetch_send(f)) == 0)
                return;
        } else {
            cl_list_insert_tail(&g->waiting, &f->link);
            probe(g);
            return;
        }
    }
    fetch_done(f, err, status, body, len);
}

/* The gateway has a new connection: the waiting fetches go on it (queued until its handshake
 * is done; their timeouts cover it). */
static void send_waiting(struct gw *g)
{
    struct cl_list *pos, *tmp;
    int rc;

    cl_list_foreach_safe(pos, tmp, &g->waiting)
    {
        struct fetch *f = CL_CONTAINER_OF(pos, struct fetch, link);
        cl_list_remove(&f->link);
        if ((rc = fetch_send(f)) != 0)
            fetch_done(f, rc, 0, NULL, 0);
    }
}

/* Not through fetch_done: that may free g, which gw_remove still uses after this returns. */
static void fail_waiting(struct gw *g, int err)
{
    struct cl_list *pos, *tmp;

    cl_list_foreach_safe(pos, tmp, &g->waiting)
    {
        struct fetch *f = CL_CONTAINER_OF(pos, struct fetch, link);
        cl_list_remove(&f->link);
        f->cb(err, 0, NULL, 0, f->ud);
        cl_mem_free(f);
    }
}

int cp_peers_fetch(struct cp_peers *pp, const char *peer, const char *path, uint64_t timeout_ms,
                   cl_h2_fetch_cb cb, void *ud)
{
    struct cl_list *pos, *tmp, *gp, *gt;
    struct fetch *f;
    int rc;

    if (pp == NULL)
        return CL_ENOPEER;
    if (strlen(path) >= sizeof(f->path))
        return CL_EINVAL;
    cl_list_foreach_safe(pos, tmp, &pp->peers)
    {
        struct ppeer *p = CL_CONTAINER_OF(pos, struct ppeer, link);
        struct gw *best = NULL;
        if (strcmp(p->name, peer) != 0)
            continue;
        cl_list_foreach_safe(gp, gt, &p->gws)
        {
            struct gw *g = CL_CONTAINER_OF(gp, struct gw, link);
            if (g->c != NULL && cl_h2conn_can_open(g->c) && (best == NULL || g->known == 1))
                best = g;
        }
        if (best == NULL)
            return CL_ENOPEER;
        if ((f = cl_calloc(1, sizeof(*f))) == NULL)
            return CL_ENOMEM;
        f->g = best;
        snprintf(f->path, sizeof(f->path), "%s", path);
        f->timeout_ms = timeout_ms;
        f->cb = cb;
        f->ud = ud;
        if ((rc = fetch_send(f)) != 0)
            cl_mem_free(f);
        return rc;
    }
    return CL_ENOTFOUND;
}

void cp_peers_evidence(struct cp_peers *pp, const char *peer, const char *gateway,
                       const char *error)
{
    struct cl_list *pos, *tmp;

    if (pp == NULL)
        return;
    cl_list_foreach_safe(pos, tmp, &pp->peers)
    {
        struct ppeer *p = CL_CONTAINER_OF(pos, struct ppeer, link);
        if (strcmp(p->name, peer) != 0)
            continue;
        CL_DEBUG("cp.health", "evidence against peer %s (%s: %s): probing now", peer, gateway,
                 error);
        struct cl_list *gp, *gt;
        cl_list_foreach_safe(gp, gt, &p->gws)
        {
            probe(CL_CONTAINER_OF(gp, struct gw, link));
        }
        if (!p->quick_armed) {
            uv_timer_start(&p->quick, on_quick, QUICK_RETRY_MS, 0);
            p->quick_armed = true;
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    struct cp_peers *pp = CL_CONTAINER_OF(t, struct cp_peers, tick);
    struct cl_list *pos, *tmp, *gp, *gt;

    cl_list_foreach_safe(pos, tmp, &pp->peers)
    {
        struct ppeer *p = CL_CONTAINER_OF(pos, struct ppeer, link);
        cl_list_foreach_safe(gp, gt, &p->gws)
        {
            probe(CL_CONTAINER_OF(gp, struct gw, link));
        }
    }
}

int cp_peers_start(struct cp *cp, struct cl_tls_ctx *tls, const struct cp_health_opts *o,
                   struct cp_peers **out)
{
    struct cp_peers *pp = cl_calloc(1, sizeof(*pp));

    if (pp == NULL)
        return CL_ENOMEM;
    pp->cp = cp;
    pp->o = *o;
    pp->tls = tls;
    cl_tls_ctx_ref(tls);
    cl_list_init(&pp->peers);
    uv_timer_init(cp->loop, &pp->tick);
    uv_timer_start(&pp->tick, on_tick, o->interval_ms, o->interval_ms);
    *out = pp;
    cp_peers_sync(pp);
    return 0;
}

static void on_tick_close(uv_handle_t *h)
{
    struct cp_peers *pp = CL_CONTAINER_OF((uv_timer_t *)h, struct cp_peers, tick);

    cl_tls_ctx_unref(pp->tls);
    cl_mem_free(pp);
}

void cp_peers_stop(struct cp_peers *pp)
{
    struct cl_list *pos, *tmp;

    if (pp == NULL || pp->stopping)
        return;
    pp->stopping = true;
    cl_list_foreach_safe(pos, tmp, &pp->peers)
    {
        peer_remove(CL_CONTAINER_OF(pos, struct ppeer, link));
    }
    uv_close((uv_handle_t *)&pp->tick, on_tick_close);
}
