/*
 * Fuzz target: what a peer gateway sends back on a connection we dialled, once TLS is up: the
 * HTTP/2 client of common/h2conn.c on nghttp2, as the dataplane's pooled connections (CONNECT
 * tunnels) and the controlplane's peer calls (cl_h2_fetch: health, discovery) use it. Each input
 * is the plaintext byte stream of the server side (SETTINGS, HEADERS, DATA, RST_STREAM,
 * GOAWAY...); a real TLS server encrypts it, so it reaches cl_h2conn exactly as it would off the
 * wire. Before the input, the client has opened three CONNECT streams (ids 1, 3, 5: one sends
 * bytes, one half-closes) and two fetches (ids 7 and 9, the second with a small body limit).
 *
 * Checked beyond the sanitizers: every stream gets on_close exactly once and every fetch its
 * callback exactly once, both before the connection's on_close; a fetch that reports success
 * has a status and a body within its limit; nothing is left on the loop. Timers are not run
 * (the loop is only polled), so a fetch left unanswered ends with the connection.
 * The certificates are made once per process; nothing else is kept between inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cl/err.h"
#include "cl/h2conn.h"
#include "cl/mem.h"
#include "cl/tls.h"
#include "h2_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSTREAMS  3
#define NFETCHES  2
#define SMALL_MAX 16

static struct cl_tls_ctx *sctx, *cctx;
static uv_loop_t loop;
static struct cl_h2conn *cli;
static struct cl_tls *srv;
static bool cli_closed, cli_ready;
static int closes[NSTREAMS], fetched[NFETCHES];

/* ---- the client, as the dataplane's egress and the controlplane's fetches use it ---- */

static void c_on_response(struct cl_h2stream *s, int status, const struct cl_h2_hdr *hdrs,
                          size_t nhdrs, void *ud)
{
    (void)s;
    (void)hdrs;
    (void)nhdrs;
    (void)ud;
    if (status < 100 || status > 999)
        abort(); /* nghttp2 checks :status; a value outside it must not reach us */
}

static void c_on_data(struct cl_h2stream *s, const uint8_t *data, size_t len, void *ud)
{
    (void)data;
    (void)ud;
    cl_h2stream_consume(s, len); /* written out at once, as a fast client would */
}

static void c_on_close(struct cl_h2stream *s, int err, void *ud)
{
    int i = (int)(intptr_t)ud;

    (void)s;
    (void)err;
    if (cli_closed || ++closes[i] != 1)
        abort(); /* after the connection's on_close, or twice */
}

static const struct cl_h2stream_cbs stream_cbs = {
    .on_response = c_on_response, .on_data = c_on_data, .on_close = c_on_close};

static void on_fetch(int err, int status, const uint8_t *body, size_t len, void *ud)
{
    int i = (int)(intptr_t)ud;

    if (cli_closed || ++fetched[i] != 1)
        abort();
    if (err == 0 && (status < 100 || status > 999 || (len > 0 && body == NULL) ||
                     len > (i == 1 ? SMALL_MAX : 4096)))
        abort();
}

static void on_ready(struct cl_h2conn *c, void *ud)
{
    (void)c;
    (void)ud;
    cli_ready = true;
}

static void on_cli_close(struct cl_h2conn *c, int err, void *ud)
{
    (void)c;
    (void)err;
    (void)ud;
    cli_closed = true;
    cli = NULL;
}

static const struct cl_h2conn_cbs cli_cbs = {.on_ready = on_ready, .on_close = on_cli_close};

/* ---- one-time material ---- */

static int init(void)
{
    return fuzz_tls_pair(&sctx, &cctx) == 0 ? uv_loop_init(&loop) : -1;
}

static void open_streams(void)
{
    static const struct cl_h2_hdr hdrs[] = {
        {":method", "CONNECT", 7, 7},
        {":authority", "echo:443", 10, 8},
        {"x-clusterlink-attrs", "{}", 19, 2},
    };
    struct cl_h2stream *s[NSTREAMS];

    for (int i = 0; i < NSTREAMS; i++) {
        if ((s[i] = cl_h2conn_open(cli, hdrs, 3, false, &stream_cbs, (void *)(intptr_t)i)) == NULL)
            abort();
    }
    if (cl_h2stream_write(s[0], "hello, tunnel", 13) != 13 || cl_h2stream_end(s[1]) != 0)
        abort();
    if (cl_h2_fetch(cli, "GET", "srv", "/api/v1/peer/health", NULL, 0, NULL, 0, 4096, 1000,
                    on_fetch, (void *)(intptr_t)0) != 0 ||
        cl_h2_fetch(cli, "GET", "srv", "/api/v1/peer/exports", NULL, 0, NULL, 0, SMALL_MAX, 1000,
                    on_fetch, (void *)(intptr_t)1) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready = -1;
    struct cl_h2conn_opts o = {.server = false, .server_name = "srv", .cbs = &cli_cbs};

    if (ready < 0)
        ready = init() == 0;
    if (!ready)
        abort();
    o.tls = cctx; /* made by init() */
    cli_closed = cli_ready = false;
    memset(closes, 0, sizeof(closes));
    memset(fetched, 0, sizeof(fetched));
    if ((srv = cl_tls_new(sctx, NULL)) == NULL)
        abort();
    if (cl_h2conn_new_mem(&loop, &o, fuzz_h2_to_tls, srv, &cli) != 0)
        abort();
    for (int i = 0; i < 20 && !cli_ready && cli != NULL; i++)
        fuzz_pump(&loop, srv, &cli, 1);
    if (!cli_ready || cli == NULL)
        abort(); /* the handshake with our own certificates must work */
    open_streams();
    fuzz_pump(&loop, srv, &cli, 2);
    fuzz_send_input(&loop, srv, &cli, data, size);
    if (!fuzz_close_all(&loop, &cli, &cli_closed))
        abort(); /* something outlived its connection */
    for (int i = 0; i < NSTREAMS; i++) {
        if (closes[i] != 1)
            abort();
    }
    for (int i = 0; i < NFETCHES; i++) {
        if (fetched[i] != 1)
            abort();
    }
    cl_tls_free(srv);
    srv = NULL;
    return 0;
}
