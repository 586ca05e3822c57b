#ifndef DP_H
#define DP_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "cl/bufq.h"
#include "cl/h2conn.h"
#include "cl/ipc.h"
#include "cl/list.h"
#include "cl/tls.h"
#include "dp_ref.h"
#include "dp_xprt.h"

/* ---- worker (dp_worker.c) ---- */
struct dp_opts {
    const char *socket;
    const char *listen_host;
    uint16_t listen_port;
    const char *cert, *key, *ca;
    const char *import_bind;
    int worker_id;
    uint64_t drain_ms;
    uint64_t idle_ms;       /* tunnel idle timeout, 0 = none */
    uint64_t conn_idle_ms;  /* HTTP/2 connection with no stream: GOAWAY and close; 0 = none */
    uint64_t cert_check_ms; /* how often the certificate files are checked; 0 = never */
    bool access_log;        /* a line per connection when it ends (dp_tunnel.c) */
};

struct dp_worker {
    uv_loop_t *loop;
    struct dp_opts o;
    struct cl_tls_ctx *srv_tls;
    struct cl_tls_ctx *cli_tls;
    struct cl_ipc_conn *ipc;
    bool ipc_up;
    int ipc_version;      /* offered in HELLO, then agreed in WELCOME */
    char cert_error[320]; /* why replaced certificate files were refused; "" when not */
    uv_timer_t ipc_timer;
    uint64_t ipc_backoff;
    uv_timer_t stats_timer;
    uv_timer_t drain_timer;
    uv_timer_t cert_timer;
    uv_signal_t sigterm;
    uv_tcp_t public_tcp;
    json_t *config;              /* last CONFIG snapshot */
    json_t *stats;               /* {imports:{name:{...}},exports:{},peers:{}} */
    struct cl_list imports;      /* struct dp_import */
    struct cl_list pool;         /* struct dp_pconn */
    struct cl_list servers;      /* struct dp_sconn: accepted h2 connections */
    struct cl_list tunnels;      /* struct dp_tunnel */
    struct dp_refs refs;         /* {id, generation} of what async callbacks refer to */
    struct dp_xprt_sched xsched; /* TCP writes that went out at once (dp_xprt.h) */
    bool draining;
};

extern struct dp_worker *dp_w;

int dp_worker_run(const struct dp_opts *o);
/* The revision of the configuration this worker applied last, -1 before the first CONFIG. */
json_int_t dp_config_revision(void);
/* Adds to a counter: group "imports"|"exports"|"peers", key "open", ... */
void dp_count(const char *group, const char *name, const char *key, int64_t delta);
/* The counter itself (a JSON integer in dp_w->stats, created at 0), for a hot path to add to
 * with dp_counter_add() and no lookup; borrowed, entries are never removed. NULL for an empty
 * name or out of memory. */
json_t *dp_counter(const char *group, const char *name, const char *key);

static inline void dp_counter_add(json_t *c, int64_t delta)
{
    if (c != NULL)
        json_integer_set(c, json_integer_value(c) + delta); /* in place: no allocation */
}

void dp_peer_event(const char *peer, const char *gateway, const char *event, int status,
                   const char *error);

/* ---- master (dp_master.c) ---- */
int dp_master_run(int argc, char **argv, const struct dp_opts *o, int workers,
                  const char *ready_file);

/* ---- tunnel (dp_tunnel.c): the splice engine between two xprts (dp_xprt.h) ---- */
enum dp_tunnel_state {
    DP_TUNNEL_ST_INIT,       /* created, sides being attached */
    DP_TUNNEL_ST_CONNECTING, /* waiting for authz / peer / backend (connect deadline) */
    DP_TUNNEL_ST_OPEN,       /* splicing (idle deadline) */
    DP_TUNNEL_ST_CLOSING,    /* handles closing; freed by the last close callback */
    DP_TUNNEL_ST_COUNT,
};

enum { DP_DOWN, DP_UP, DP_SIDES };

/* per-side flags, t->sf[side]: the side as a source (reading) and as a sink (writing) */
#define DP_SF_READING   0x01u /* read_start() in effect */
#define DP_SF_PAUSED    0x02u /* stopped: the other side is full (resumed on its writable) */
#define DP_SF_EOF       0x04u /* the source ended */
#define DP_SF_SHUT      0x08u /* shutdown() asked of the sink */
#define DP_SF_SHUT_DONE 0x10u /* the sink's write side is closed */
#define DP_SF_CLOSED    0x20u /* close() finished */

struct dp_tunnel;
typedef void (*dp_tunnel_cb)(struct dp_tunnel *t);

struct dp_tunnel {
    struct cl_list link; /* dp_w->tunnels */
    uint64_t id;         /* conn=<id> in logs */
    uint64_t ref;        /* dp_w->refs: what async callbacks hold */
    uv_loop_t *loop;
    uv_timer_t timer; /* the one deadline: connect, then idle */
    int nhandles;
    enum dp_tunnel_state state;
    struct dp_xprt *x[DP_SIDES];
    unsigned sf[DP_SIDES];
    uint8_t *rsv[DP_SIDES];   /* region the side's last dp_xprt_alloc() handed out */
    json_t *bytes[DP_SIDES];  /* counter of bytes delivered from each side (borrowed ints) */
    json_t *pbytes[DP_SIDES]; /* the same for the peer (egress only; NULL otherwise) */
    uint64_t moved[DP_SIDES]; /* bytes delivered from each side by this tunnel */
    struct cl_bufq early;     /* down -> up bytes read while connecting (one chunk at most) */
    bool early_read;          /* read the down side while connecting */
    uint64_t idle_ms;         /* 0: no idle deadline */
    uint64_t last_io;         /* loop time of the last byte read or written */
    dp_tunnel_cb on_timeout;  /* connect deadline passed (NULL: reset and count an error) */
    int close_err;
    bool egress;   /* client side (import) vs server side (export) */
    char name[64]; /* import or export name, for counters */
    char peer[64]; /* peer name */
    /* the concrete sides (not used by tunnels with other xprts, e.g. in tests) */
    struct dp_xprt_tcp tcpx;
    struct dp_xprt_h2 h2x;
    uv_connect_t creq;
    /* egress: remaining candidates */
    json_t *cands;
    size_t cand;
    size_t gw;
    json_t *attrs;
    char client[72];   /* "ip:port" of the client, "[ip6%scope]:port" at most */
    bool failed_other; /* a candidate failed otherwise than by refusing (403) */
    bool retried;      /* a stream refused unprocessed (GOAWAY) was retried once */
    /* ingress: the pending CONNECT */
    char ns[64];
    uint16_t port;
    /* for the access log (cold: read once, when the tunnel closes) */
    uint64_t started; /* loop time it was created */
    int status;       /* the last CONNECT answer, received (egress) or sent (ingress); 0: none */
    char why[128];    /* what refused or ended it, when more than close_err can say */
};

/*
 * A tunnel registered with the worker (dp_w: loop, list, refs, idle timeout), no side attached.
 * Returns NULL when out of memory. Freed by the engine once closed.
 */
struct dp_tunnel *dp_tunnel_new(bool egress);
/* Attaches a side (its ops, unstarted); it is closed with the tunnel. */
void dp_tunnel_attach(struct dp_tunnel *t, unsigned side, struct dp_xprt *x);
/*
 * CONNECTING: arms the connect deadline (0: none); with read_early, reads the down side into a
 * one-chunk queue meanwhile, so a client reset is seen at once and its first bytes wait in
 * user space. Returns 0, or -1 when the tunnel was aborted (it is gone).
 */
int dp_tunnel_connecting(struct dp_tunnel *t, uint64_t timeout_ms, bool read_early);
/* Re-arms the connect deadline (CONNECTING only). */
void dp_tunnel_set_deadline(struct dp_tunnel *t, uint64_t timeout_ms);
/*
 * OPEN: both sides attached; flushes early bytes, starts reading both sides and arms the idle
 * deadline. Returns 0, or -1 when the tunnel was aborted (it is gone).
 */
int dp_tunnel_start(struct dp_tunnel *t);
/* Aborts: every side reset (RST on TCP, RST_STREAM on the stream) and closed. */
void dp_tunnel_abort(struct dp_tunnel *t, int err);
/* Resolves a reference held by an async callback: the tunnel, or NULL once it is closing. */
struct dp_tunnel *dp_tunnel_get(uint64_t ref);

/*
 * One connection's line in the access log (--access-log): a tunnel writes its own when it
 * closes; the ingress side writes one for a CONNECT refused before it became a tunnel. NULL or
 * "" strings and a zero conn are left out; status 0 means no CONNECT answer.
 */
struct dp_access {
    bool egress;
    uint64_t conn;
    const char *name; /* import (egress) or export (ingress) */
    const char *ns;   /* the export's namespace (ingress) */
    const char *peer;
    const char *client; /* the client's "ip:port" (egress) */
    int status;
    uint64_t client_bytes;  /* from the client towards the service */
    uint64_t service_bytes; /* from the service back to the client */
    uint64_t ms;
    const char *end; /* "closed" when both directions ended, else what ended it */
};

void dp_access_log(const struct dp_access *a);
/* Keeps what an AUTHZ_* denial said for the access log: "<reason>: <policy>". */
void dp_tunnel_set_denial(struct dp_tunnel *t, const json_t *answer);

/* ---- the CONNECT request of a tunnel (dp_connect.c) ---- */
struct dp_connect_req {
    char name[64]; /* the export: :authority up to its last ':' (the port is ignored) */
    char ns[64];   /* cl-export-namespace, "" when not sent */
    json_t *attrs; /* cl-client-attrs (new reference): a string map, empty when not sent */
};

/*
 * Checks and takes apart a CONNECT request (docs/protocol.md): `:authority` "<export>:<port>"
 * with an export name of 1..63 bytes, at most one `cl-export-namespace` of at most 63 bytes, at
 * most one `cl-client-attrs` holding a JSON object of strings. Pure: no I/O, no globals.
 * Returns 0 (release `out` with dp_connect_req_deinit), CL_EINVAL with *why set to a static
 * text for the 400 answer, or CL_ENOMEM (nothing to release after either error; `name` and
 * `ns` then hold what was read before the error, "" otherwise, for the access log).
 */
int dp_connect_parse(const struct cl_h2_req *req, struct dp_connect_req *out, const char **why);
/* Releases what dp_connect_parse() returned; NULL-safe, idempotent. */
void dp_connect_req_deinit(struct dp_connect_req *r);

/* ---- ingress / egress ---- */
void dp_ingress_on_accept(uv_stream_t *server, int status);
void dp_egress_on_accept(uv_stream_t *server, int status);
/* GOAWAY on every pooled connection that is up: its streams finish, new ones dial anew. */
void dp_pool_retire(void);
/* Forgets every remembered egress decision (a peer failed: ask the controlplane again). */
void dp_egress_forget(void);
/* GOAWAY on every accepted connection of the public port (SIGTERM). */
void dp_ingress_shutdown(void);
/* GOAWAY on every accepted connection past its handshake: peers open new streams elsewhere. */
void dp_ingress_retire(void);

struct dp_import {
    struct cl_list link;
    uv_tcp_t tcp;
    char name[64];
    int port;
    bool closing;
};

#endif
