/*
 * Fuzz target: what a peer (or anyone holding a fabric certificate) sends on the public port
 * once TLS is up: the HTTP/2 server of common/h2conn.c on nghttp2, and the CONNECT request
 * check of dataplane/dp_connect.c. Each input is the plaintext byte stream of one client
 * connection (preface, SETTINGS, HEADERS, DATA...); a real TLS client encrypts it, so it reaches
 * cl_h2conn exactly as it would off the wire. The server answers as the dataplane's ingress
 * does: a malformed CONNECT gets 400, a good one 200 and then its DATA echoed back (with
 * half-close), any other request an answer and no stream callbacks.
 *
 * Checked beyond the sanitizers: the connection and all its streams are freed when it closes
 * (no libuv handle left on the loop), and every stream got on_close exactly once.
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
#include "dp.h"
#include "h2_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STREAMS 64

static struct cl_tls_ctx *sctx, *cctx;
static uv_loop_t loop;
static struct cl_h2conn *srv;
static struct cl_tls *cli;
static bool srv_closed;
static int streams_open;

/* ---- the server, as the ingress behaves ---- */

static void s_on_data(struct cl_h2stream *s, const uint8_t *data, size_t len, void *ud)
{
    (void)ud;
    (void)cl_h2stream_write(s, data, len); /* echo what fits; the rest is dropped */
    cl_h2stream_consume(s, len);
}

static void s_on_end(struct cl_h2stream *s, void *ud)
{
    (void)ud;
    (void)cl_h2stream_end(s);
}

static void s_on_close(struct cl_h2stream *s, int err, void *ud)
{
    (void)s;
    (void)err;
    (void)ud;
    if (--streams_open < 0)
        abort(); /* on_close twice for one stream */
}

static const struct cl_h2stream_cbs echo_cbs = {
    .on_data = s_on_data, .on_end = s_on_end, .on_close = s_on_close};

static void answer(struct cl_h2stream *s, int status, const char *body)
{
    if (cl_h2stream_respond(s, status, NULL, 0, false) == 0) {
        (void)cl_h2stream_write(s, body, strlen(body));
        (void)cl_h2stream_end(s);
    }
}

static void on_request(struct cl_h2conn *c, struct cl_h2stream *s, const struct cl_h2_req *req,
                       void *ud)
{
    struct dp_connect_req cr;
    const char *why = NULL;
    int rc;

    (void)c;
    (void)ud;
    if (req->method == NULL || strcmp(req->method, "CONNECT") != 0) {
        answer(s, 404, "{\"error\":{\"message\":\"not here\"}}");
        return;
    }
    if ((rc = dp_connect_parse(req, &cr, &why)) != 0) {
        if (why == NULL || why[0] == '\0' || (rc != CL_EINVAL && rc != CL_ENOMEM))
            abort(); /* every refusal says why */
        answer(s, 400, why);
        return;
    }
    if (cr.name[0] == '\0' || strlen(cr.name) > 63 || strlen(cr.ns) > 63 ||
        !json_is_object(cr.attrs))
        abort();
    dp_connect_req_deinit(&cr);
    streams_open++;
    cl_h2stream_set_cbs(s, &echo_cbs, NULL);
    (void)cl_h2stream_respond(s, 200, NULL, 0, false);
}

static void on_srv_close(struct cl_h2conn *c, int err, void *ud)
{
    (void)c;
    (void)err;
    (void)ud;
    srv_closed = true;
    srv = NULL;
}

static const struct cl_h2conn_cbs srv_cbs = {.on_request = on_request, .on_close = on_srv_close};

/* ---- one-time material ---- */

static int init(void)
{
    return fuzz_tls_pair(&sctx, &cctx) == 0 ? uv_loop_init(&loop) : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready = -1;
    struct cl_h2conn_opts o = {
        .server = true, .cbs = &srv_cbs, .max_streams = MAX_STREAMS, .stream_sendq = 64 * 1024};

    if (ready < 0)
        ready = init() == 0;
    if (!ready)
        abort();
    o.tls = sctx; /* made by init() */
    srv_closed = false;
    streams_open = 0;
    if ((cli = cl_tls_new(cctx, "srv")) == NULL)
        abort();
    if (cl_h2conn_new_mem(&loop, &o, fuzz_h2_to_tls, cli, &srv) != 0)
        abort();
    (void)cl_tls_handshake(cli); /* ClientHello */
    for (int i = 0; i < 20 && !cl_tls_is_established(cli) && srv != NULL; i++)
        fuzz_pump(&loop, cli, &srv, 1);
    if (!cl_tls_is_established(cli))
        abort(); /* the handshake with our own certificates must work */
    fuzz_send_input(&loop, cli, &srv, data, size);
    if (!fuzz_close_all(&loop, &srv, &srv_closed) || streams_open != 0)
        abort(); /* something outlived its connection */
    cl_tls_free(cli);
    cli = NULL;
    return 0;
}
