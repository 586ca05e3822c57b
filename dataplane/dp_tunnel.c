/*
 * The splice engine: two sides (dp_xprt.h), down (TCP to the client or backend) and up (the
 * HTTP/2 CONNECT stream), each a source of bytes for the other's sink. The engine holds no
 * buffer of its own on the data path: a source reads into what the other side reserves (its
 * queue's tail, or the stream's 64 KiB scratch sized to the room in its send queue), or hands
 * over borrowed bytes (HTTP/2 DATA) that the sink copies once.
 *
 * Backpressure: after each delivery, when the sink has less than a chunk of room (above its
 * high-water mark), the source is stopped, and restarted when the sink reports it drained to
 * its low-water mark. An HTTP/2 source ignores the stop: it gets credit back only through
 * consume(), called when the sink wrote the bytes, so the remote sender's window is the
 * bound and the shared connection never stalls.
 *
 * Half-close: EOF from a source -> shutdown() of the other sink (after its queue drains);
 * the tunnel closes when both sources ended and both sinks are shut. Errors on either side
 * reset both. One timer per tunnel carries the connect deadline, then the idle deadline
 * (re-armed lazily: the hot path only stamps `last_io`).
 *
 * Lifetime: close marks the tunnel CLOSING, drops its reference (async callbacks resolve it
 * to NULL from then on), closes every side and the timer; each close callback decrements
 * nhandles and the last one frees.
 */
#include <string.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "dp.h"

#define EARLY_CHUNKS 1

static uint64_t next_id = 1;

static const char *const state_names[DP_TUNNEL_ST_COUNT] = {
    [DP_TUNNEL_ST_INIT] = "init",
    [DP_TUNNEL_ST_CONNECTING] = "connecting",
    [DP_TUNNEL_ST_OPEN] = "open",
    [DP_TUNNEL_ST_CLOSING] = "closing",
};

static void set_state(struct dp_tunnel *t, enum dp_tunnel_state st)
{
    CL_DEBUG("dp.tunnel", "conn=%llu %s -> %s", (unsigned long long)t->id, state_names[t->state],
             state_names[st]);
    t->state = st;
}

/* Tunnels this gateway opened to a peer also count under that peer (the import side). */
static bool counts_peer(const struct dp_tunnel *t)
{
    return t->egress && t->peer[0] != '\0';
}

/* Bytes delivered from `side`: the import's or export's counter, and the peer's. */
static void count_bytes(struct dp_tunnel *t, unsigned side, size_t n)
{
    t->moved[side] += n;
    dp_counter_add(t->bytes[side], (int64_t)n);
    if (t->pbytes[side] != NULL)
        dp_counter_add(t->pbytes[side], (int64_t)n);
}

static const char *group_of(const struct dp_tunnel *t)
{
    return t->egress ? "imports" : "exports";
}

/* ---- access log ---------------------------------------------------------------------------- */

/* Appends ` key="escaped value"` when the value is not empty. */
static void put_str(char *f, size_t cap, size_t *o, const char *key, const char *v)
{
    char esc[256];

    if (v == NULL || v[0] == '\0' || *o >= cap)
        return;
    cl_log_escape(v, esc, sizeof(esc));
    *o += (size_t)snprintf(f + *o, cap - *o, " %s=\"%s\"", key, esc);
}

void dp_access_log(const struct dp_access *a)
{
    char f[1536];
    size_t o = 0;

    o += (size_t)snprintf(f, sizeof(f), "dir=%s", a->egress ? "egress" : "ingress");
    if (a->conn != 0)
        o += (size_t)snprintf(f + o, sizeof(f) - o, " conn=%llu", (unsigned long long)a->conn);
    put_str(f, sizeof(f), &o, a->egress ? "import" : "export", a->name);
    put_str(f, sizeof(f), &o, "namespace", a->ns);
    put_str(f, sizeof(f), &o, "peer", a->peer);
    put_str(f, sizeof(f), &o, "client", a->client);
    if (o < sizeof(f))
        o += (size_t)snprintf(f + o, sizeof(f) - o,
                              " status=%d client_bytes=%llu service_bytes=%llu ms=%llu", a->status,
                              (unsigned long long)a->client_bytes,
                              (unsigned long long)a->service_bytes, (unsigned long long)a->ms);
    put_str(f, sizeof(f), &o, "end", a->end);
    cl_log_fields(CL_LOG_INFO, "dp.access", "connection", f);
}

void dp_tunnel_set_denial(struct dp_tunnel *t, const json_t *answer)
{
    const char *why = json_string_value(json_object_get(answer, "reason"));
    const char *pol = json_string_value(json_object_get(answer, "policy"));

    snprintf(t->why, sizeof(t->why), "%s%s%s", why != NULL ? why : "denied",
             pol != NULL && pol[0] != '\0' ? ": " : "", pol != NULL ? pol : "");
}

/* The tunnel's line: down is the client on the import side and the backend on the export's. */
static void log_access(const struct dp_tunnel *t)
{
    unsigned from_client = t->egress ? DP_DOWN : DP_UP;
    struct dp_access a = {
        .egress = t->egress,
        .conn = t->id,
        .name = t->name,
        .ns = t->ns,
        .peer = t->peer,
        .client = t->client,
        .status = t->status,
        .client_bytes = t->moved[from_client],
        .service_bytes = t->moved[!from_client],
        .ms = uv_now(t->loop) - t->started,
        .end = t->why[0] != '\0'   ? t->why
               : t->close_err == 0 ? "closed"
                                   : cl_strerror(t->close_err),
    };

    dp_access_log(&a);
}

/* ---- lifetime ------------------------------------------------------------------------------ */

static void handle_closed(struct dp_tunnel *t)
{
    if (--t->nhandles > 0)
        return;
    cl_bufq_deinit(&t->early);
    for (unsigned i = 0; i < DP_SIDES; i++) {
        json_decref(t->bytes[i]);
        json_decref(t->pbytes[i]);
    }
    json_decref(t->cands);
    json_decref(t->attrs);
    cl_mem_free(t);
}

static void on_timer_close(uv_handle_t *h)
{
    handle_closed(CL_CONTAINER_OF((uv_timer_t *)h, struct dp_tunnel, timer));
}

void dp_xprt_on_closed(struct dp_xprt *x)
{
    struct dp_tunnel *t = x->t;

    CL_ASSERT(t->state == DP_TUNNEL_ST_CLOSING && !(t->sf[x->side] & DP_SF_CLOSED));
    t->sf[x->side] |= DP_SF_CLOSED;
    handle_closed(t);
}

static void close_all(struct dp_tunnel *t, bool reset, int err)
{
    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    if (t->state == DP_TUNNEL_ST_OPEN) {
        dp_count(group_of(t), t->name, "open", -1);
        if (counts_peer(t))
            dp_count("peers", t->peer, "open", -1);
    }
    if (reset && t->state == DP_TUNNEL_ST_OPEN)
        CL_DEBUG("dp.tunnel", "conn=%llu reset with %zu bytes down and %zu up not yet written",
                 (unsigned long long)t->id, t->x[DP_DOWN]->ops->write_queue_size(t->x[DP_DOWN]),
                 t->x[DP_UP]->ops->write_queue_size(t->x[DP_UP]));
    set_state(t, DP_TUNNEL_ST_CLOSING);
    t->close_err = err;
    if (dp_w->o.access_log)
        log_access(t);
    cl_list_remove(&t->link);
    dp_ref_del(&dp_w->refs, t->ref);
    /* the timer is counted first and closes asynchronously, so a side that reports closed
     * synchronously cannot free the tunnel under this loop */
    t->nhandles = 1;
    for (unsigned i = 0; i < DP_SIDES; i++)
        if (t->x[i] != NULL)
            t->nhandles++;
    for (unsigned i = 0; i < DP_SIDES; i++)
        if (t->x[i] != NULL)
            t->x[i]->ops->close(t->x[i], reset);
    uv_close((uv_handle_t *)&t->timer, on_timer_close);
}

void dp_tunnel_abort(struct dp_tunnel *t, int err)
{
    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    CL_DEBUG("dp.tunnel", "conn=%llu abort: %s", (unsigned long long)t->id, cl_strerror(err));
    close_all(t, true, err);
}

/* An error on the data path: counted, both sides reset. */
static void fail(struct dp_tunnel *t, int err)
{
    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    /* a reset from the far side is that side's business (it counted its own reason) */
    if (err != CL_EH2_RESET)
        dp_count(group_of(t), t->name, "errors", 1);
    dp_tunnel_abort(t, err);
}

/* Ends the tunnel once both directions are done. */
static void maybe_finish(struct dp_tunnel *t)
{
    const unsigned done = DP_SF_EOF | DP_SF_SHUT_DONE;

    if (t->state == DP_TUNNEL_ST_OPEN && (t->sf[DP_DOWN] & done) == done &&
        (t->sf[DP_UP] & done) == done)
        close_all(t, false, 0);
}

struct dp_tunnel *dp_tunnel_new(bool egress)
{
    struct dp_tunnel *t = cl_calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    if ((t->ref = dp_ref_new(&dp_w->refs, DP_REF_TUNNEL, t)) == 0) {
        cl_mem_free(t);
        return NULL;
    }
    t->id = next_id++;
    t->loop = dp_w->loop;
    t->egress = egress;
    t->idle_ms = dp_w->o.idle_ms;
    t->started = uv_now(t->loop);
    cl_bufq_init(&t->early, CL_BUFQ_CHUNK, EARLY_CHUNKS);
    uv_timer_init(t->loop, &t->timer);
    cl_list_insert_tail(&dp_w->tunnels, &t->link);
    return t;
}

struct dp_tunnel *dp_tunnel_get(uint64_t ref)
{
    return dp_ref_get(&dp_w->refs, ref, DP_REF_TUNNEL);
}

void dp_tunnel_attach(struct dp_tunnel *t, unsigned side, struct dp_xprt *x)
{
    CL_ASSERT(side < DP_SIDES && t->x[side] == NULL && t->state != DP_TUNNEL_ST_CLOSING);
    x->t = t;
    x->side = side;
    t->x[side] = x;
}

/* ---- deadlines ----------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *tm)
{
    struct dp_tunnel *t = CL_CONTAINER_OF(tm, struct dp_tunnel, timer);
    uint64_t now = uv_now(t->loop);

    if (t->state == DP_TUNNEL_ST_CONNECTING) {
        CL_INFO("dp.tunnel", "conn=%llu %s=%s: connect deadline passed", (unsigned long long)t->id,
                t->egress ? "import" : "export", t->name);
        if (t->on_timeout != NULL) {
            t->on_timeout(t);
            return;
        }
        fail(t, CL_ETIMEDOUT);
        return;
    }
    if (t->state != DP_TUNNEL_ST_OPEN || t->idle_ms == 0)
        return;
    if (now - t->last_io < t->idle_ms) { /* bytes moved since it was armed */
        uv_timer_start(&t->timer, on_timer, t->idle_ms - (now - t->last_io), 0);
        return;
    }
    CL_INFO("dp.tunnel", "conn=%llu %s=%s: idle for %llu ms, closing", (unsigned long long)t->id,
            t->egress ? "import" : "export", t->name, (unsigned long long)(now - t->last_io));
    /* the configured end of a quiet tunnel, not a failure: its own counter, not "errors" */
    dp_count(group_of(t), t->name, "idleClosed", 1);
    if (counts_peer(t))
        dp_count("peers", t->peer, "idleClosed", 1);
    snprintf(t->why, sizeof(t->why), "idle timeout");
    dp_tunnel_abort(t, CL_ETIMEDOUT);
}

void dp_tunnel_set_deadline(struct dp_tunnel *t, uint64_t timeout_ms)
{
    if (t->state != DP_TUNNEL_ST_CONNECTING)
        return;
    if (timeout_ms > 0)
        uv_timer_start(&t->timer, on_timer, timeout_ms, 0);
    else
        uv_timer_stop(&t->timer);
}

/* ---- data path ----------------------------------------------------------------------------- */

static void pause_src(struct dp_tunnel *t, unsigned side)
{
    struct dp_xprt *x = t->x[side];

    t->sf[side] |= DP_SF_PAUSED;
    t->sf[side] &= ~DP_SF_READING;
    x->ops->read_stop(x);
}

static int read_side(struct dp_tunnel *t, unsigned side)
{
    struct dp_xprt *x = t->x[side];
    int rc;

    if (t->sf[side] & (DP_SF_EOF | DP_SF_READING))
        return 0;
    t->sf[side] &= ~DP_SF_PAUSED;
    if ((rc = x->ops->read_start(x)) != 0)
        return rc;
    t->sf[side] |= DP_SF_READING;
    return 0;
}

static int shut_sink(struct dp_tunnel *t, unsigned side)
{
    struct dp_xprt *x = t->x[side];

    if (t->sf[side] & DP_SF_SHUT)
        return 0;
    t->sf[side] |= DP_SF_SHUT;
    return x->ops->shutdown(x);
}

size_t dp_xprt_alloc(struct dp_xprt *x, uint8_t **p)
{
    struct dp_tunnel *t = x->t;
    unsigned side = x->side;
    struct dp_xprt *dst = t->x[!side];
    size_t n = 0;

    *p = NULL;
    if (t->state == DP_TUNNEL_ST_OPEN && dst != NULL && !(t->sf[!side] & DP_SF_SHUT))
        n = dst->ops->reserve(dst, p);
    else if (t->state == DP_TUNNEL_ST_CONNECTING && t->early_read && side == DP_DOWN)
        n = cl_bufq_reserve(&t->early, p);
    t->rsv[side] = n > 0 ? *p : NULL;
    return n;
}

void dp_xprt_on_read(struct dp_xprt *x, const uint8_t *data, size_t n)
{
    struct dp_tunnel *t = x->t;
    unsigned side = x->side;
    struct dp_xprt *dst = t->x[!side];
    bool in_place = data != NULL && data == t->rsv[side];
    ssize_t w;

    t->rsv[side] = NULL;
    if (t->state == DP_TUNNEL_ST_CLOSING || n == 0)
        return;
    t->last_io = uv_now(t->loop);
    if (t->state == DP_TUNNEL_ST_CONNECTING) {
        CL_ASSERT(in_place && side == DP_DOWN); /* only the early queue is handed out */
        cl_bufq_commit(&t->early, n);
        if (cl_bufq_space(&t->early) == 0)
            pause_src(t, side); /* resumed by dp_tunnel_start */
        return;
    }
    CL_ASSERT(t->state == DP_TUNNEL_ST_OPEN && dst != NULL);
    w = in_place ? dst->ops->commit(dst, n) : dst->ops->write(dst, data, n);
    if (w != (ssize_t)n) {
        /* short: the far side sent more than the window we advertised (protocol violation) */
        if (w >= 0 && !in_place)
            x->ops->consume(x, n);
        fail(t, w < 0 ? (int)w : CL_EH2);
        return;
    }
    count_bytes(t, side, n);
    if (dst->ops->write_room(dst) < CL_BUFQ_CHUNK)
        pause_src(t, side); /* resumed by the sink's dp_xprt_on_writable */
}

void dp_xprt_on_read_flush(struct dp_xprt *x)
{
    struct dp_tunnel *t = x->t;
    struct dp_xprt *dst = t->x[!x->side];

    int rc;

    if (t->state == DP_TUNNEL_ST_OPEN && dst != NULL && dst->ops->flush != NULL &&
        (rc = dst->ops->flush(dst)) != 0)
        fail(t, rc);
}

void dp_xprt_on_blocked(struct dp_xprt *x)
{
    struct dp_tunnel *t = x->t;

    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    t->sf[x->side] |= DP_SF_PAUSED;
    t->sf[x->side] &= ~DP_SF_READING;
}

void dp_xprt_on_eof(struct dp_xprt *x)
{
    struct dp_tunnel *t = x->t;
    unsigned side = x->side;
    int rc;

    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    CL_DEBUG("dp.tunnel", "conn=%llu %s EOF", (unsigned long long)t->id, x->ops->name);
    t->sf[side] |= DP_SF_EOF;
    t->sf[side] &= ~(DP_SF_READING | DP_SF_PAUSED);
    if (t->state != DP_TUNNEL_ST_OPEN) /* propagated by dp_tunnel_start */
        return;
    if ((rc = shut_sink(t, !side)) != 0) {
        fail(t, rc);
        return;
    }
    maybe_finish(t); /* the shutdown may have completed at once */
}

void dp_xprt_on_written(struct dp_xprt *x, size_t n)
{
    struct dp_tunnel *t = x->t;
    struct dp_xprt *src = t->x[!x->side];

    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    t->last_io = uv_now(t->loop);
    if (src != NULL)
        src->ops->consume(src, n); /* credit goes back only now: backpressure */
}

void dp_xprt_on_writable(struct dp_xprt *x)
{
    struct dp_tunnel *t = x->t;
    unsigned src = !x->side;
    int rc;

    if (t->state != DP_TUNNEL_ST_OPEN || !(t->sf[src] & DP_SF_PAUSED))
        return;
    if ((rc = read_side(t, src)) != 0)
        fail(t, rc);
}

void dp_xprt_on_shutdown(struct dp_xprt *x)
{
    struct dp_tunnel *t = x->t;

    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    if (!(t->sf[x->side] & DP_SF_SHUT) && !(t->sf[!x->side] & DP_SF_EOF)) {
        /* shut under us (a stream reset with NO_ERROR) while bytes may still come for it */
        fail(t, CL_EH2_RESET);
        return;
    }
    t->sf[x->side] |= DP_SF_SHUT | DP_SF_SHUT_DONE;
    maybe_finish(t);
}

void dp_xprt_on_error(struct dp_xprt *x, int err)
{
    struct dp_tunnel *t = x->t;

    if (t->state == DP_TUNNEL_ST_CLOSING)
        return;
    CL_DEBUG("dp.tunnel", "conn=%llu %s error: %s", (unsigned long long)t->id, x->ops->name,
             cl_strerror(err));
    fail(t, err);
}

/* ---- states -------------------------------------------------------------------------------- */

int dp_tunnel_connecting(struct dp_tunnel *t, uint64_t timeout_ms, bool read_early)
{
    int rc;

    set_state(t, DP_TUNNEL_ST_CONNECTING);
    dp_tunnel_set_deadline(t, timeout_ms);
    if (!read_early || t->x[DP_DOWN] == NULL)
        return 0;
    t->early_read = true;
    if ((rc = read_side(t, DP_DOWN)) != 0) {
        fail(t, rc);
        return -1;
    }
    return 0;
}

/* Hands the bytes read while connecting to the up side, then the EOF if it came. */
static int flush_early(struct dp_tunnel *t)
{
    struct dp_xprt *up = t->x[DP_UP];
    const uint8_t *p;
    size_t n;
    int rc;

    while ((n = cl_bufq_peek(&t->early, &p)) > 0) {
        ssize_t w = up->ops->write(up, p, n);
        if (w != (ssize_t)n)
            return w < 0 ? (int)w : CL_EBUSY; /* a fresh stream takes a chunk */
        count_bytes(t, DP_DOWN, n);
        cl_bufq_consume(&t->early, n);
    }
    cl_bufq_deinit(&t->early); /* nothing is held while splicing */
    t->early_read = false;
    if ((t->sf[DP_DOWN] & DP_SF_EOF) && (rc = shut_sink(t, DP_UP)) != 0)
        return rc;
    return 0;
}

int dp_tunnel_start(struct dp_tunnel *t)
{
    const char *g = group_of(t);
    int rc;

    CL_ASSERT(t->state != DP_TUNNEL_ST_CLOSING && t->x[DP_DOWN] != NULL && t->x[DP_UP] != NULL);
    uv_timer_stop(&t->timer);
    set_state(t, DP_TUNNEL_ST_OPEN);
    dp_count(g, t->name, "open", 1);
    dp_count(g, t->name, "total", 1);
    /* bytes from the client (import) or the backend (export) go up; counted once, here */
    for (unsigned i = 0; i < DP_SIDES; i++) {
        bool out = (i == DP_DOWN) == t->egress;
        t->bytes[i] = json_incref(dp_counter(g, t->name, out ? "bytesOut" : "bytesIn"));
        if (counts_peer(t))
            t->pbytes[i] = json_incref(dp_counter("peers", t->peer, out ? "bytesOut" : "bytesIn"));
    }
    if (counts_peer(t))
        dp_count("peers", t->peer, "open", 1);
    t->last_io = uv_now(t->loop);
    t->rsv[DP_DOWN] = t->rsv[DP_UP] = NULL;
    if ((rc = flush_early(t)) != 0)
        goto fail;
    if (t->state == DP_TUNNEL_ST_CLOSING) /* the up side's shutdown completed the tunnel */
        return -1;
    t->sf[DP_DOWN] &= ~DP_SF_READING; /* read_start again: the early reader was stopped or not */
    for (unsigned i = 0; i < DP_SIDES; i++)
        if ((rc = read_side(t, i)) != 0)
            goto fail;
    if (t->idle_ms > 0)
        uv_timer_start(&t->timer, on_timer, t->idle_ms, 0);
    maybe_finish(t); /* both sides may have ended while connecting: nothing else will */
    return t->state == DP_TUNNEL_ST_CLOSING ? -1 : 0;
fail:
    fail(t, rc);
    return -1;
}
