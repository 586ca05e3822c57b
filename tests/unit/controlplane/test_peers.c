/* Peer health (cp_peers) against a real HTTP/2 + mutual TLS server on loopback, whose answers
 * the test scripts: what counts as evidence about a peer gateway, and what does not; and the
 * requests relayed to a peer over the same connection (discovery) when the peer refuses them. */
#include <stdio.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "cl/err.h"
#include "cl/h2conn.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/sockaddr.h"
#include "cl/tls.h"
#include "cl/uvx.h"
#include "cm.h"
#include "cp.h"
#include "pki.h"

static struct cl_test_pki pki;
static uv_loop_t loop;
static struct cp cp;
static struct cl_tls_ctx *srv_ctx, *cli_ctx;
static uv_tcp_t listener;
static uint16_t port;
static int nconn;            /* connections the server accepted */
static int nreq;             /* requests it saw */
static int refuse_n;         /* refuse (unprocessed) the first refuse_n requests */
static int retire_from = -1; /* from this request on, retire the connection (GOAWAY) and refuse */
static int retire_n;         /* ... this many requests */

static bool hold_fetch;          /* hold a discovery request unanswered, then ... */
static struct cl_h2stream *held; /* ... answer it 50 ms after the next health probe came */

static void answer(struct cl_h2stream *s)
{
    static const char body[] = "{\"name\":\"srv\"}";

    cl_h2stream_respond(s, 200, NULL, 0, false);
    cl_h2stream_write(s, body, sizeof(body) - 1);
    cl_h2stream_end(s);
}

static void on_held_close(struct cl_h2stream *s, int err, void *ud)
{
    (void)s;
    (void)err;
    (void)ud;
    held = NULL;
}

static const struct cl_h2stream_cbs held_cbs = {.on_close = on_held_close};
static uv_timer_t answer_later;

static void on_answer_later(uv_timer_t *t)
{
    (void)t;
    if (held != NULL)
        answer(held);
}

static void on_srv_request(struct cl_h2conn *c, struct cl_h2stream *s, const struct cl_h2_req *req,
                           void *ud)
{
    (void)ud;
    int n = nreq++;

    if (hold_fetch && strcmp(req->path, "/api/v1/peer/exports") == 0) {
        held = s;
        cl_h2stream_set_cbs(s, &held_cbs, NULL);
        return;
    }
    if (held != NULL) {
        /* the peer retires the connection (its certificate was reloaded): this probe is
         * refused; the discovery request it took before is answered a little later */
        cl_h2conn_shutdown(c);
        uv_timer_start(&answer_later, on_answer_later, 50, 0);
        return;
    }

    if (n < refuse_n)
        return; /* neither answered nor given callbacks: refused (REFUSED_STREAM) */
    if (retire_from >= 0 && n >= retire_from && n < retire_from + retire_n) {
        cl_h2conn_shutdown(c); /* what a gateway does when it reloads its certificate */
        return;
    }
    answer(s);
}

static void on_srv_close(struct cl_h2conn *c, int err, void *ud)
{
    (void)c;
    (void)err;
    (void)ud;
}

static const struct cl_h2conn_cbs srv_cbs = {.on_request = on_srv_request,
                                             .on_close = on_srv_close};

static void on_accept(uv_stream_t *server, int status)
{
    struct cl_h2conn_opts o = {.server = true, .tls = srv_ctx, .cbs = &srv_cbs};
    struct cl_h2conn *c;

    if (status < 0 || cl_h2conn_new(&loop, &o, &c) != 0)
        return;
    if (cl_h2conn_accept(c, server) == 0)
        nconn++;
}

/* The peer's published status once its first verdict is in (new reference). */
static json_t *settled_status(void)
{
    for (int i = 0; i < 20000; i++) {
        json_t *st = json_object_get(cp.peer_status, "srv");
        if (st != NULL && !json_is_null(json_object_get(st, "reachable")))
            return json_incref(st);
        uv_run(&loop, UV_RUN_ONCE);
    }
    fail_msg("no verdict on the peer");
    return NULL;
}

/* Health-checks the scripted server as peer "srv", which refuses its first `refusals`
 * requests unprocessed: the peer's status once the first verdict is in (new reference). */
static json_t *verdict_with_refusals(int refusals)
{
    char obj[256];
    struct cp_health_opts o = {
        .interval_ms = 60000, .timeout_ms = 5000, .fail_threshold = 2, .ok_threshold = 1};

    snprintf(obj, sizeof(obj),
             "{\"metadata\":{\"name\":\"srv\"},\"spec\":{\"gateways\":[{\"host\":\"127.0.0.1\","
             "\"port\":%u}]}}",
             (unsigned)port);
    json_object_set_new(cp.objs[CP_KIND_PEER], "srv", json_loads(obj, 0, NULL));
    refuse_n = refusals;
    assert_int_equal(cp_peers_start(&cp, cli_ctx, &o, &cp.peers), 0);
    return settled_status();
}

/* A probe the peer refused unprocessed (it retired the connection as the probe arrived) is
 * not evidence: asked again at once on a new connection, the peer is up, with no error. */
static void refused_probe_is_asked_again(void **state)
{
    (void)state;
    json_t *st = verdict_with_refusals(1);
    assert_true(json_is_true(json_object_get(st, "reachable")));
    assert_string_equal(json_string_value(json_object_get(st, "lastError")), "");
    json_decref(st);
    assert_int_equal(nreq, 2);
    assert_int_equal(nconn, 2); /* the second on a new connection */
}

/* Only once: a peer that refuses every probe is down, and says why. */
static void refused_twice_is_a_failure(void **state)
{
    (void)state;
    json_t *st = verdict_with_refusals(1000);
    assert_false(json_is_true(json_object_get(st, "reachable")));
    assert_non_null(strstr(json_string_value(json_object_get(st, "lastError")), "refused"));
    json_decref(st);
    assert_int_equal(nreq, 2);
}

struct fetched {
    int calls;
    int err;
    int status;
    char body[64];
};

static void on_fetched(int err, int status, const uint8_t *body, size_t len, void *ud)
{
    struct fetched *f = ud;

    f->calls++;
    f->err = err;
    f->status = status;
    snprintf(f->body, sizeof(f->body), "%.*s", (int)len, (const char *)body);
}

/* Relayed discovery asks the peer over the health connection: peer "srv" is up, then the
 * server retires its connection (GOAWAY) and refuses the next `refusals` requests. */
static void fetch_with_refusals(int refusals, struct fetched *f)
{
    json_t *st = verdict_with_refusals(0);

    assert_true(json_is_true(json_object_get(st, "reachable")));
    json_decref(st);
    retire_from = nreq;
    retire_n = refusals;
    memset(f, 0, sizeof(*f));
    assert_int_equal(cp_peers_fetch(cp.peers, "srv", "/api/v1/peer/exports", 5000, on_fetched, f),
                     0);
    for (int i = 0; i < 20000 && f->calls == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    for (int i = 0; i < 50; i++) /* a second answer would come now */
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(f->calls, 1);
}

/* A relayed request the peer refused as it retired the connection is asked again on the next
 * connection and answered: the caller never sees the refusal. */
static void refused_fetch_is_asked_again(void **state)
{
    struct fetched f;
    (void)state;

    fetch_with_refusals(1, &f);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.status, 200);
    assert_string_equal(f.body, "{\"name\":\"srv\"}");
    assert_int_equal(nconn, 2);
}

/* Not forever: a peer that refuses every try is an error, given once. */
static void fetch_refused_every_time_fails(void **state)
{
    struct fetched f;
    (void)state;

    fetch_with_refusals(1000, &f);
    assert_true(f.err == CL_EH2_REFUSED || f.err == CL_EH2_GOAWAY);
    assert_true(nconn <= 4);
}

/* The prober replaces a connection the peer retired without cutting what the peer took on it
 * before its GOAWAY: a discovery request in flight still gets its answer. */
static void retired_connection_finishes_its_requests(void **state)
{
    struct fetched f = {0};
    json_t *st = verdict_with_refusals(0);
    (void)state;

    json_decref(st);
    hold_fetch = true;
    assert_int_equal(cp_peers_fetch(cp.peers, "srv", "/api/v1/peer/exports", 5000, on_fetched, &f),
                     0);
    for (int i = 0; i < 20000 && held == NULL; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_non_null(held);
    hold_fetch = false;
    cp_peers_evidence(cp.peers, "srv", "127.0.0.1", "test"); /* probe now */
    for (int i = 0; i < 20000 && f.calls == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.status, 200);
    /* and the refused probe was asked again on a new connection: still up */
    for (int i = 0; i < 20000 && nconn < 2; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(nconn, 2);
    st = json_object_get(cp.peer_status, "srv");
    assert_true(json_is_true(json_object_get(st, "reachable")));
}

static int setup(void **state)
{
    struct cl_tls_ctx_opts so = {
        .server = true, .cert_pem = pki.srv.cert, .key_pem = pki.srv.key, .ca_pem = pki.ca};
    struct cl_tls_ctx_opts co = {
        .cert_pem = pki.cli.cert, .key_pem = pki.cli.key, .ca_pem = pki.ca};
    struct sockaddr_storage ss;

    (void)state;
    nconn = nreq = 0;
    retire_from = -1;
    retire_n = 0;
    hold_fetch = false;
    held = NULL;
    memset(&cp, 0, sizeof(cp));
    assert_int_equal(uv_loop_init(&loop), 0);
    cp.loop = &loop;
    cp.objs[CP_KIND_PEER] = json_object();
    cp.peer_status = json_object();
    assert_int_equal(cl_tls_ctx_new(&so, &srv_ctx, NULL, 0), 0);
    assert_int_equal(cl_tls_ctx_new(&co, &cli_ctx, NULL, 0), 0);
    assert_int_equal(cl_sockaddr_from_ip("127.0.0.1", 0, &ss), 0);
    uv_tcp_init(&loop, &listener);
    uv_timer_init(&loop, &answer_later);
    assert_int_equal(cl_uv_listen_reuseport(&listener, (struct sockaddr *)&ss, 16, on_accept), 0);
    port = (uint16_t)cl_uv_tcp_local_port(&listener);
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    (void)state;
    cp_peers_stop(cp.peers);
    cp.peers = NULL;
    uv_close((uv_handle_t *)&listener, NULL);
    /* the server's connections: let them finish closing (the client side went first) */
    for (int i = 0; i < 200; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    cl_tls_ctx_unref(srv_ctx);
    cl_tls_ctx_unref(cli_ctx);
    json_decref(cp.objs[CP_KIND_PEER]);
    json_decref(cp.peer_status);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    cl_tls_global_init();
    cl_log_set_level(CL_LOG_ERROR);
    return cl_test_pki_make(&pki);
}

static int group_teardown(void **state)
{
    (void)state;
    cl_test_pki_free(&pki);
    cl_tls_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(refused_probe_is_asked_again, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_twice_is_a_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_fetch_is_asked_again, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_refused_every_time_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(retired_connection_finishes_its_requests, setup, teardown),
    };
    cl_mem_install_jansson();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
