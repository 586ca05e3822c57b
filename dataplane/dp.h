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

/* ---- worker (dp_worker.c) ---- */
struct dp_opts {
    const char *socket;
    const char *listen_host;
    uint16_t listen_port;
    const char *cert, *key, *ca;
    const char *import_bind;
    int worker_id;
    uint64_t drain_ms;
};

struct dp_counters {
    int64_t open, total, bytes_in, bytes_out, denied, errors;
};

struct dp_worker {
    uv_loop_t *loop;
    struct dp_opts o;
    struct cl_tls_ctx *srv_tls;
    struct cl_tls_ctx *cli_tls;
    struct cl_ipc_conn *ipc;
    bool ipc_up;
    uv_timer_t ipc_timer;
    uint64_t ipc_backoff;
    uv_timer_t stats_timer;
    uv_timer_t drain_timer;
    uv_signal_t sigterm;
    uv_tcp_t public_tcp;
    json_t *config;         /* last CONFIG snapshot */
    json_t *stats;          /* {imports:{name:{...}},exports:{},peers:{}} */
    struct cl_list imports; /* struct dp_import */
    struct cl_list pool;    /* struct dp_pconn */
    struct cl_list servers; /* struct dp_sconn: accepted h2 connections */
    struct cl_list tunnels; /* struct dp_tunnel */
    bool draining;
};

extern struct dp_worker *dp_w;

int dp_worker_run(const struct dp_opts *o);
/* Adds to a counter: group "imports"|"exports"|"peers", key "open", ... */
void dp_count(const char *group, const char *name, const char *key, int64_t delta);
void dp_peer_event(const char *peer, const char *gateway, const char *event, int status,
                   const char *error);

/* ---- master (dp_master.c) ---- */
int dp_master_run(int argc, char **argv, const struct dp_opts *o, int workers,
                  const char *ready_file);

/* ---- tunnel (dp_tunnel.c): a TCP socket spliced with an HTTP/2 stream ---- */
enum dp_tunnel_state {
    DP_TUNNEL_ST_INIT,       /* TCP socket known, no stream yet */
    DP_TUNNEL_ST_CONNECTING, /* waiting for authz / peer / backend */
    DP_TUNNEL_ST_OPEN,       /* splicing */
    DP_TUNNEL_ST_CLOSING,
    DP_TUNNEL_ST_COUNT,
};

#define DP_TF_TCP_EOF    0x01u /* client/backend finished sending */
#define DP_TF_H2_ENDSENT 0x02u /* we sent END_STREAM */
#define DP_TF_H2_EOF     0x04u /* peer sent END_STREAM */
#define DP_TF_TCP_SHUT   0x08u /* we shut down writing on TCP */
#define DP_TF_READING    0x10u
#define DP_TF_PAUSED     0x20u /* TCP reads paused: stream queue full */

struct dp_tunnel;
typedef void (*dp_tunnel_cb)(struct dp_tunnel *t);

struct dp_tunnel {
    struct cl_list link;
    uv_tcp_t tcp;
    uv_shutdown_t shut;
    uv_write_t wreq;
    uv_connect_t creq;
    uv_timer_t timer;
    int nhandles;
    enum dp_tunnel_state state;
    unsigned flags;
    bool writing;
    size_t inflight;
    struct cl_bufq downq; /* stream -> TCP bytes */
    struct cl_h2stream *s;
    uint64_t id;
    bool egress;   /* client side (import) vs server side (export) */
    char name[64]; /* import or export name, for counters */
    char peer[64]; /* peer name */
    /* egress: remaining candidates */
    json_t *cands;
    size_t cand;
    size_t gw;
    uint64_t deadline_ms;
    json_t *attrs;
    int last_err;
    /* ingress: the pending request while the backend connects */
    void *pending;
};

struct dp_tunnel *dp_tunnel_new(bool egress);
/* Starts splicing s <-> tcp. */
void dp_tunnel_start(struct dp_tunnel *t, struct cl_h2stream *s);
/* Aborts: RST on TCP, reset on the stream. */
void dp_tunnel_abort(struct dp_tunnel *t, int err);
/* The stream callbacks of an open tunnel. */
extern const struct cl_h2stream_cbs dp_tunnel_stream_cbs;

/* ---- ingress / egress ---- */
void dp_ingress_on_accept(uv_stream_t *server, int status);
void dp_egress_on_accept(uv_stream_t *server, int status);
void dp_pool_shutdown(void);
void dp_ingress_shutdown(void);

struct dp_import {
    struct cl_list link;
    uv_tcp_t tcp;
    char name[64];
    int port;
    bool closing;
};

#endif
