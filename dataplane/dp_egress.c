/*
 * Import ports: a client connection is authorized by the controlplane (AUTHZ_EGRESS), which
 * returns candidates in load-balancing order; each candidate's gateways are tried in turn with
 * a CONNECT stream on a pooled HTTP/2 connection (dialled and handshaken only when none is up),
 * within a bounded total time. The client is reset when every candidate failed.
 */
#include <stdio.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "cl/err.h"
#include "cl/json.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/sockaddr.h"
#include "cl/time.h"
#include "dp.h"

#define AUTHZ_TIMEOUT_MS   5000
#define FAILOVER_BUDGET_MS 15000
#define DIAL_TIMEOUT_MS    5000

struct dp_pconn {
    struct cl_list link;
    uint64_t ref; /* what the DNS callback holds */
    char peer[64];
    char host[256];
    uint16_t port;
    struct cl_h2conn *c;
};

/* A DNS lookup outlives its requester when that one closes first: it names it by reference. */
struct pconn_dns {
    uv_getaddrinfo_t gai;
    uint64_t ref;
};

static void try_next(struct dp_tunnel *t);

/* ---- decision cache ---------------------------------------------------------------------- */

/*
 * An egress decision depends on the configuration, on which peers are reachable, and on the
 * client (its attributes, in Kubernetes mode). A worker remembers the controlplane's answer
 * per (import, client IP) for a short time at the same configuration revision, so a busy
 * client costs no controlplane round trip per connection. Load balancing stays per connection:
 * the controlplane lists only reachable candidates while any is reachable (all of them
 * otherwise), so random shuffles the whole remembered list on every use, as the controlplane
 * would. Round-robin over several candidates is not remembered: its rotation is one counter
 * per import in the controlplane, shared by every worker, so turns alternate strictly whichever
 * worker takes the connection. Any peer failure this worker sees forgets every decision,
 * so the next connection asks the controlplane, which has heard of the failure by then (the
 * PEER_EVENT travels first on the same socket). Bounded: full means emptied.
 */
#define DECISION_TTL_MS 500
#define DECISION_MAX    4096

static json_t *decisions; /* "import\nclient-ip" -> {"body", "until", "rev", "lb"} */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static const char *import_lb(const char *name)
{
    json_t *imp;
    size_t i;

    json_array_foreach(json_object_get(dp_w->config, "imports"), i, imp)
    {
        const char *n = json_string_value(json_object_get(imp, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return json_string_value(json_object_get(imp, "lbScheme"));
    }
    return NULL;
}

void dp_egress_forget(void)
{
    json_decref(decisions);
    decisions = NULL;
}

static void decision_key(char *key, size_t n, const char *import, const char *client)
{
    const char *colon = strrchr(client, ':');
    int iplen = colon != NULL ? (int)(colon - client) : (int)strlen(client);

    snprintf(key, n, "%s\n%.*s", import, iplen, client);
}

static void decision_put(const char *import, const char *client, json_t *body)
{
    json_int_t rev = dp_config_revision();
    const char *lb = import_lb(import);
    char key[160];

    if (rev < 0 || lb == NULL || !json_is_true(json_object_get(body, "allow")) ||
        (strcmp(lb, "round-robin") == 0 &&
         json_array_size(json_object_get(body, "candidates")) > 1))
        return;
    if (decisions == NULL || json_object_size(decisions) >= DECISION_MAX) {
        rng ^= cl_now_us() * 0x100000001b3ull; /* workers must not shuffle alike */
        json_decref(decisions);
        if ((decisions = json_object()) == NULL)
            return;
    }
    decision_key(key, sizeof(key), import, client);
    json_object_set_new_nocheck(decisions, key,
                                json_pack("{s:O,s:I,s:I,s:s}", "body", body, "until",
                                          (json_int_t)(cl_now_ms() + DECISION_TTL_MS), "rev", rev,
                                          "lb", lb));
}

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The remembered candidates in this connection's order (new reference), or NULL. */
static json_t *decision_get(const char *import, const char *client, json_t **attrs)
{
    json_t *e, *body, *cands, *out;
    size_t k, i;
    const char *lb;
    char key[160];

    if (decisions == NULL)
        return NULL;
    decision_key(key, sizeof(key), import, client);
    if ((e = json_object_get(decisions, key)) == NULL)
        return NULL;
    if ((uint64_t)json_integer_value(json_object_get(e, "until")) <= cl_now_ms() ||
        json_integer_value(json_object_get(e, "rev")) != dp_config_revision()) {
        json_object_del(decisions, key);
        return NULL;
    }
    body = json_object_get(e, "body");
    cands = json_object_get(body, "candidates");
    k = json_array_size(cands);
    lb = json_string_value(json_object_get(e, "lb"));
    if ((out = json_array()) == NULL)
        return NULL;
    for (i = 0; i < k; i++)
        json_array_append(out, json_array_get(cands, i));
    for (i = k - 1; k > 1 && strcmp(lb, "random") == 0 && i > 0; i--) { /* Fisher-Yates */
        size_t j = (size_t)(next_random() % (i + 1));
        json_t *a = json_incref(json_array_get(out, i));
        json_array_set(out, i, json_array_get(out, j));
        json_array_set_new(out, j, a);
    }
    if (json_array_size(out) != k) { /* out of memory on the way */
        json_decref(out);
        return NULL;
    }
    *attrs = json_incref(json_object_get(body, "attrs"));
    return out;
}

/* ---- pool ------------------------------------------------------------------------------- */

static void pconn_free(struct dp_pconn *p)
{
    cl_list_remove(&p->link);
    dp_ref_del(&dp_w->refs, p->ref);
    cl_mem_free(p);
}

static void on_pconn_close(struct cl_h2conn *c, int err, void *ud)
{
    struct dp_pconn *p = ud;

    if (err != 0 && err != CL_EOF)
        CL_INFO("dp.pool", "connection to peer %s at %s:%u closed: %s%s%s", p->peer, p->host,
                p->port, cl_strerror(err), cl_h2conn_error_detail(c)[0] ? ": " : "",
                cl_h2conn_error_detail(c));
    else
        CL_DEBUG("dp.pool", "connection to peer %s at %s:%u closed", p->peer, p->host, p->port);
    pconn_free(p);
}

static const struct cl_h2conn_cbs pconn_cbs = {
    .on_close = on_pconn_close,
};

static void on_pconn_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    struct pconn_dns *d = CL_CONTAINER_OF(gai, struct pconn_dns, gai);
    struct dp_pconn *p = dp_ref_get(&dp_w->refs, d->ref, DP_REF_PCONN);
    struct sockaddr_storage ss;

    cl_mem_free(d);
    if (p == NULL) { /* closed while resolving */
        uv_freeaddrinfo(res);
        return;
    }
    if (status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        cl_h2conn_close(p->c, status < 0 ? status : CL_ENOENT);
        return;
    }
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    uv_freeaddrinfo(res);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(p->port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(p->port);
    /* the connect and the TLS handshake are bounded by handshake_timeout_ms (DIAL_TIMEOUT_MS) */
    if (cl_h2conn_connect(p->c, (struct sockaddr *)&ss) != 0) {
        /* freed without its on_close (its streams got theirs: their tunnels moved on) */
        pconn_free(p);
    }
}

/*
 * A pooled connection with no stream says GOAWAY and closes after 9/10 of the public port's
 * --conn-idle-timeout: the side that opens streams gives up first, so with equal settings a new
 * stream does not meet the peer's idle GOAWAY on the way (were it to, the stream is refused and
 * retried on a new connection, see pending_close).
 */
static uint64_t pool_idle_ms(void)
{
    uint64_t ms = dp_w->o.conn_idle_ms;

    return ms == 0 ? 0 : (ms - ms / 10 > 0 ? ms - ms / 10 : 1);
}

static struct dp_pconn *pool_get(const char *peer, const char *host, uint16_t port)
{
    struct cl_list *pos, *tmp;
    struct pconn_dns *d;
    struct dp_pconn *p;
    char portstr[8];

    cl_list_foreach_safe(pos, tmp, &dp_w->pool)
    {
        p = CL_CONTAINER_OF(pos, struct dp_pconn, link);
        if (p->port == port && strcmp(p->peer, peer) == 0 && strcmp(p->host, host) == 0 &&
            cl_h2conn_can_open(p->c))
            return p;
    }
    if ((p = cl_calloc(1, sizeof(*p))) == NULL)
        return NULL;
    if ((d = cl_calloc(1, sizeof(*d))) == NULL ||
        (p->ref = dp_ref_new(&dp_w->refs, DP_REF_PCONN, p)) == 0) {
        cl_mem_free(d);
        cl_mem_free(p);
        return NULL;
    }
    snprintf(p->peer, sizeof(p->peer), "%s", peer);
    snprintf(p->host, sizeof(p->host), "%s", host);
    p->port = port;
    struct cl_h2conn_opts o = {
        .server = false,
        .tls = dp_w->cli_tls,
        .server_name = peer, /* the peer's certificate must carry its name */
        .handshake_timeout_ms = DIAL_TIMEOUT_MS,
        .idle_timeout_ms = pool_idle_ms(),
        .cbs = &pconn_cbs,
        .ud = p,
    };
    if (cl_h2conn_new(dp_w->loop, &o, &p->c) != 0) {
        dp_ref_del(&dp_w->refs, p->ref);
        cl_mem_free(d);
        cl_mem_free(p);
        return NULL;
    }
    cl_list_insert_tail(&dp_w->pool, &p->link);
    snprintf(portstr, sizeof(portstr), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    d->ref = p->ref;
    if (uv_getaddrinfo(dp_w->loop, &d->gai, on_pconn_resolved, host, portstr, &hints) != 0) {
        cl_mem_free(d);
        cl_h2conn_close(p->c, CL_ENOENT); /* on_close frees p */
        return NULL;
    }
    return p;
}

void dp_pool_retire(void)
{
    struct cl_list *pos, *tmp;

    cl_list_foreach_safe(pos, tmp, &dp_w->pool)
    {
        struct dp_pconn *p = CL_CONTAINER_OF(pos, struct dp_pconn, link);
        /* one still dialling carries streams waiting for it: let it come up and serve them */
        if (p->c != NULL && cl_h2conn_is_ready(p->c))
            cl_h2conn_shutdown(p->c);
    }
}

/* ---- one client connection ------------------------------------------------------------ */

static json_t *cur_cand(struct dp_tunnel *t)
{
    return json_array_get(t->cands, t->cand);
}

static void advance(struct dp_tunnel *t, bool whole_peer)
{
    json_t *gws = json_object_get(cur_cand(t), "gateways");

    if (whole_peer || t->gw + 1 >= json_array_size(gws)) {
        t->cand++;
        t->gw = 0;
    } else {
        t->gw++;
    }
}

static void pending_response(struct cl_h2stream *s, int status, const struct cl_h2_hdr *h, size_t n,
                             void *ud)
{
    struct dp_tunnel *t = ud;
    char gw[300];
    json_t *g = json_array_get(json_object_get(cur_cand(t), "gateways"), t->gw);

    (void)h;
    (void)n;
    t->status = status;
    if (status == 200) {
        CL_DEBUG("dp.egress", "conn=%llu import=%s tunnel to peer %s open",
                 (unsigned long long)t->id, t->name, t->peer);
        dp_count("peers", t->peer, "total", 1);
        dp_tunnel_start(t);
        return;
    }
    snprintf(gw, sizeof(gw), "%s:%lld", json_string_value(json_object_get(g, "host")),
             (long long)json_integer_value(json_object_get(g, "port")));
    CL_INFO("dp.egress", "conn=%llu import=%s peer %s answered %d", (unsigned long long)t->id,
            t->name, t->peer, status);
    if (status == 502 || status == 503)
        dp_peer_event(t->peer, gw, "status", status, "CONNECT refused");
    if (status == 403)
        dp_count("peers", t->peer, "denied", 1);
    else
        dp_count("peers", t->peer, "errors", 1);
    (void)s;
    dp_xprt_h2_release(&t->h2x, NGHTTP2_CANCEL);
    /* a 4xx (400 malformed, 403 denied, 404 no such export) holds for every gateway of this
     * peer; 502/503 may differ per gateway */
    if (status != 403)
        t->failed_other = true;
    advance(t, status >= 400 && status < 500);
    try_next(t);
}

static void pending_close(struct cl_h2stream *s, int err, void *ud)
{
    struct dp_tunnel *t = ud;
    char gw[300];
    json_t *g = json_array_get(json_object_get(cur_cand(t), "gateways"), t->gw);

    (void)s;
    dp_xprt_h2_set_stream(&t->h2x, NULL); /* gone */
    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    if (err == CL_EH2_REFUSED && !t->retried) {
        /* not processed (the connection went away under it, e.g. the peer's idle GOAWAY
         * crossed it): the same gateway once more, on a new connection */
        CL_DEBUG("dp.egress", "conn=%llu import=%s: stream refused unprocessed, retrying",
                 (unsigned long long)t->id, t->name);
        t->retried = true;
        try_next(t);
        return;
    }
    snprintf(gw, sizeof(gw), "%s:%lld", json_string_value(json_object_get(g, "host")),
             (long long)json_integer_value(json_object_get(g, "port")));
    CL_INFO("dp.egress", "conn=%llu import=%s peer %s at %s failed: %s", (unsigned long long)t->id,
            t->name, t->peer, gw, cl_strerror(err));
    dp_peer_event(t->peer, gw,
                  err == CL_ETIMEDOUT                               ? "timeout"
                  : (err <= CL_ETLS && err >= CL_ETLS_KEY_MISMATCH) ? "tls"
                                                                    : "connect",
                  0, cl_strerror(err));
    dp_count("peers", t->peer, "errors", 1);
    t->failed_other = true;
    advance(t, false);
    try_next(t);
}

static const struct cl_h2stream_cbs pending_cbs = {
    .on_response = pending_response,
    .on_close = pending_close,
};

static void try_next(struct dp_tunnel *t)
{
    while (t->state != DP_TUNNEL_ST_CLOSING) {
        json_t *cand = cur_cand(t), *g;
        char auth[80], *attrs = NULL;
        const char *host;
        long long port;
        struct dp_pconn *p;

        if (cand == NULL) {
            CL_INFO("dp.egress", "conn=%llu import=%s: no candidate left, resetting the client",
                    (unsigned long long)t->id, t->name);
            /* refused by every peer's policy is a denial, anything else an error */
            dp_count("imports", t->name, t->failed_other || t->cand == 0 ? "errors" : "denied", 1);
            dp_tunnel_abort(t, CL_ENOPEER);
            return;
        }
        g = json_array_get(json_object_get(cand, "gateways"), t->gw);
        host = json_string_value(json_object_get(g, "host"));
        port = json_integer_value(json_object_get(g, "port"));
        snprintf(t->peer, sizeof(t->peer), "%s", json_string_value(json_object_get(cand, "peer")));
        if (host == NULL || port <= 0 || port > 65535 ||
            (p = pool_get(t->peer, host, (uint16_t)port)) == NULL) {
            t->failed_other = true;
            advance(t, false);
            continue;
        }
        const char *exp = json_string_value(json_object_get(cand, "export"));
        const char *ns = json_string_value(json_object_get(cand, "namespace"));
        snprintf(auth, sizeof(auth), "%s:443", exp != NULL ? exp : "");
        attrs = t->attrs != NULL ? cl_json_dumps(t->attrs) : NULL;
        struct cl_h2_hdr h[] = {
            {":method", "CONNECT", 7, 7},
            {":authority", auth, 10, strlen(auth)},
            {"cl-export-namespace", ns != NULL ? ns : "", 19, strlen(ns != NULL ? ns : "")},
            {"cl-client-attrs", attrs != NULL ? attrs : "{}", 15,
             strlen(attrs != NULL ? attrs : "{}")},
        };
        struct cl_h2stream *s = cl_h2conn_open(p->c, h, 4, false, &pending_cbs, t);
        cl_mem_free(attrs);
        if (s != NULL) {
            dp_xprt_h2_set_stream(&t->h2x, s);
            return;
        }
        t->failed_other = true;
        advance(t, false);
    }
}

static void on_authz_egress(int err, const struct cl_ipc_msg *m, void *ud)
{
    /* the client may have gone (reset, connect deadline, drain) while we waited */
    struct dp_tunnel *t = dp_tunnel_get(dp_ref_of_ud(ud));

    if (t == NULL) {
        CL_DEBUG("dp.egress", "authorization answer for a connection that is gone");
        return;
    }
    if (err != 0 || m == NULL || !json_is_true(json_object_get(m->body, "allow"))) {
        const char *why = m != NULL ? json_string_value(json_object_get(m->body, "reason")) : NULL;
        CL_INFO("dp.egress", "conn=%llu import=%s denied: %s", (unsigned long long)t->id, t->name,
                err != 0 ? cl_strerror(err) : (why != NULL ? why : "denied"));
        if (err == 0)
            dp_tunnel_set_denial(t, m->body);
        dp_count("imports", t->name, err != 0 ? "errors" : "denied", 1);
        dp_tunnel_abort(t, err != 0 ? err : CL_EPOLICY_DENY);
        return;
    }
    if (t->client[0] != '\0')
        decision_put(t->name, t->client, m->body);
    t->cands = json_incref(json_object_get(m->body, "candidates"));
    t->attrs = json_incref(json_object_get(m->body, "attrs"));
    t->cand = 0;
    t->gw = 0;
    /* from now on the failover budget bounds dials, handshakes and CONNECT answers */
    dp_tunnel_set_deadline(t, FAILOVER_BUDGET_MS);
    try_next(t);
}

void dp_egress_on_accept(uv_stream_t *server, int status)
{
    struct dp_import *imp = CL_CONTAINER_OF((uv_tcp_t *)server, struct dp_import, tcp);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    struct dp_tunnel *t;
    json_t *q;
    int rc;

    if (status < 0)
        return;
    if ((t = dp_tunnel_new(true)) == NULL) {
        CL_WARN("dp.egress", "import=%s: out of memory, connection left in the backlog", imp->name);
        return;
    }
    snprintf(t->name, sizeof(t->name), "%s", imp->name);
    dp_xprt_tcp_init(&t->tcpx, dp_w->loop, &dp_w->xsched);
    dp_tunnel_attach(t, DP_DOWN, &t->tcpx.x);
    dp_xprt_h2_init(&t->h2x);
    dp_tunnel_attach(t, DP_UP, &t->h2x.x);
    if (uv_accept(server, (uv_stream_t *)&t->tcpx.tcp) != 0) {
        dp_tunnel_abort(t, CL_ECLOSED);
        return;
    }
    /* the client is watched while we ask: a reset ends the tunnel at once, its first bytes
     * wait in one chunk */
    if (dp_tunnel_connecting(t, AUTHZ_TIMEOUT_MS + 1000, true) != 0)
        return;
    CL_DEBUG("dp.egress", "conn=%llu import=%s: accepted, authorizing", (unsigned long long)t->id,
             imp->name);
    if (uv_tcp_getpeername(&t->tcpx.tcp, (struct sockaddr *)&ss, &len) != 0) {
        dp_tunnel_abort(t, CL_ECLOSED); /* the client is gone already */
        return;
    }
    cl_sockaddr_fmt((struct sockaddr *)&ss, t->client, sizeof(t->client));
    if ((t->cands = decision_get(imp->name, t->client, &t->attrs)) != NULL) {
        t->cand = 0;
        t->gw = 0;
        dp_tunnel_set_deadline(t, FAILOVER_BUDGET_MS);
        try_next(t);
        return;
    }
    q = json_pack("{s:s,s:s}", "import", imp->name, "client", t->client);
    rc = dp_w->ipc_up && q != NULL
             ? cl_ipc_request(dp_w->ipc, CL_IPC_AUTHZ_EGRESS, q, AUTHZ_TIMEOUT_MS, on_authz_egress,
                              dp_ref_ud(t->ref))
             : CL_ECLOSED;
    json_decref(q);
    if (rc != 0) {
        CL_INFO("dp.egress", "import=%s: controlplane unavailable, resetting the client",
                imp->name);
        dp_count("imports", imp->name, "errors", 1);
        dp_tunnel_abort(t, rc);
    }
}
