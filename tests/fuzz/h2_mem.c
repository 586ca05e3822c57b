/* See h2_mem.h. */
#include "h2_mem.h"

#include <string.h>

#include "cl/bufq.h"
#include "cl/certgen.h"
#include "cl/mem.h"

int fuzz_tls_pair(struct cl_tls_ctx **server, struct cl_tls_ctx **client)
{
    char *ca = NULL, *cakey = NULL, *scert = NULL, *skey = NULL, *ccert = NULL, *ckey = NULL;
    const char *sdns[] = {"srv"}, *cdns[] = {"peer"};
    struct cl_certgen_opts so = {.cn = "srv", .dns = sdns, .ndns = 1, .server_auth = true};
    struct cl_certgen_opts co = {.cn = "peer", .dns = cdns, .ndns = 1, .client_auth = true};
    int rc = -1;

    if (cl_tls_global_init() != 0 || cl_certgen_ca("fuzz-ca", 0, 0, &ca, &cakey) != 0 ||
        cl_certgen_leaf(ca, cakey, &so, &scert, &skey) != 0 ||
        cl_certgen_leaf(ca, cakey, &co, &ccert, &ckey) != 0)
        goto out;
    struct cl_tls_ctx_opts s = {.server = true, .cert_pem = scert, .key_pem = skey, .ca_pem = ca};
    struct cl_tls_ctx_opts c = {.cert_pem = ccert, .key_pem = ckey, .ca_pem = ca};
    if (cl_tls_ctx_new(&s, server, NULL, 0) != 0 || cl_tls_ctx_new(&c, client, NULL, 0) != 0)
        goto out;
    rc = 0;
out:
    cl_free(&ca);
    cl_free(&cakey);
    cl_free(&scert);
    cl_free(&skey);
    cl_free(&ccert);
    cl_free(&ckey);
    return rc;
}

void fuzz_h2_to_tls(struct cl_h2conn *c, const uint8_t *data, size_t len, void *wud)
{
    struct cl_tls *t = wud;

    (void)c;
    while (len > 0) {
        uint8_t *p;
        size_t n = cl_tls_in_reserve(t, &p);
        uint8_t sink[4096];
        if (n == 0) { /* t's input is full: read (and drop) what it decrypted */
            if (cl_tls_read(t, sink, sizeof(sink)) <= 0)
                return; /* nothing decrypts any more: the rest is dropped */
            continue;
        }
        if (n > len)
            n = len;
        memcpy(p, data, n);
        cl_tls_in_commit(t, n);
        data += n;
        len -= n;
    }
}

/* What t has to send, fed to c (NULL: nothing moves). Returns whether anything moved. */
static bool tls_to_h2(struct cl_tls *t, struct cl_h2conn *c)
{
    struct cl_bufq *q = cl_tls_outq(t);
    bool moved = false;
    const uint8_t *p;
    size_t n;

    while (c != NULL && (n = cl_bufq_peek(q, &p)) > 0) {
        int rc = cl_h2conn_feed(c, p, n);
        cl_bufq_consume(q, n);
        moved = true;
        if (rc != 0)
            break; /* closed: c may be gone */
    }
    return moved;
}

static void tls_drain(struct cl_tls *t)
{
    uint8_t sink[4096];

    while (cl_tls_read(t, sink, sizeof(sink)) > 0)
        ;
}

void fuzz_pump(uv_loop_t *loop, struct cl_tls *t, struct cl_h2conn *const *c, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (cl_tls_is_established(t))
            tls_drain(t);
        else
            (void)cl_tls_handshake(t);
        if (!tls_to_h2(t, *c) && *c == NULL)
            break;
    }
}

void fuzz_send_input(uv_loop_t *loop, struct cl_tls *t, struct cl_h2conn *const *c,
                     const uint8_t *data, size_t size)
{
    for (size_t off = 0; off < size && *c != NULL;) {
        size_t n = size - off;
        if (n > 1 + (size_t)(data[off] % 200) * 97)
            n = 1 + (size_t)(data[off] % 200) * 97;
        if (cl_tls_write(t, data + off, n) < 0)
            break;
        off += n;
        fuzz_pump(loop, t, c, 4);
    }
    fuzz_pump(loop, t, c, 8);
}

bool fuzz_close_all(uv_loop_t *loop, struct cl_h2conn *const *c, const bool *closed)
{
    if (*c != NULL)
        cl_h2conn_close(*c, 0);
    for (int i = 0; i < 100 && !*closed; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    uv_run(loop, UV_RUN_NOWAIT);
    return *closed && !uv_loop_alive(loop);
}
