/* TLS client and server wired back to back in memory through their queues: mutual TLS with
 * ALPN h2 (the gateways' default), and the client options of the Kubernetes API client: no
 * client certificate, another ALPN protocol or none, a server addressed by IP literal (checked
 * against iPAddress SANs), error details naming the peer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl/certgen.h"
#include "cl/err.h"
#include "cl/mem.h"
#include "cl/tls.h"
#include "cm.h"
#include "pki.h"
#include "rows.h"
#include "testutil.h"

static struct cl_test_pki pki;
static struct cl_test_leaf ipsrv; /* "srv" with IP SANs 127.0.0.1 and ::1 */

static int setup(void **state)
{
    const char *dns[] = {"srv"};
    const char *ips[] = {"127.0.0.1", "::1"};
    struct cl_certgen_opts o = {.cn = "srv",
                                .dns = dns,
                                .ndns = 1,
                                .ips = ips,
                                .nips = 2,
                                .server_auth = true,
                                .client_auth = true};
    (void)state;
    cl_tls_global_init();
    if (cl_test_pki_make(&pki) != 0)
        return -1;
    return cl_certgen_leaf(pki.ca, pki.ca_key, &o, &ipsrv.cert, &ipsrv.key);
}

static int teardown(void **state)
{
    (void)state;
    cl_free(&ipsrv.cert);
    cl_free(&ipsrv.key);
    cl_test_pki_free(&pki);
    cl_tls_global_cleanup();
    return 0;
}

static struct cl_tls_ctx *ctx(bool server, const struct cl_test_leaf *l, const char *ca)
{
    struct cl_tls_ctx_opts o = {
        .server = server, .cert_pem = l->cert, .key_pem = l->key, .ca_pem = ca};
    struct cl_tls_ctx *c = NULL;
    char err[256];

    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), 0);
    return c;
}

/* Moves everything queued in from's out queue into to's input. */
static void move(struct cl_tls *from, struct cl_tls *to)
{
    struct cl_bufq *q = cl_tls_outq(from);
    const uint8_t *p;
    size_t n;

    while ((n = cl_bufq_peek(q, &p)) > 0) {
        uint8_t *d;
        size_t room = cl_tls_in_reserve(to, &d);
        if (room == 0)
            return; /* receiver must consume first */
        if (n > room)
            n = room;
        memcpy(d, p, n);
        cl_tls_in_commit(to, n);
        cl_bufq_consume(q, n);
    }
}

/* Runs both handshakes until done or failed; returns the client's and server's results. */
static void handshake(struct cl_tls *c, struct cl_tls *s, int *crc, int *src)
{
    *crc = *src = CL_EAGAIN;
    for (int i = 0; i < 20 && (*crc == CL_EAGAIN || *src == CL_EAGAIN); i++) {
        if (*crc == CL_EAGAIN)
            *crc = cl_tls_handshake(c);
        move(c, s);
        if (*src == CL_EAGAIN)
            *src = cl_tls_handshake(s);
        move(s, c);
    }
}

struct pair {
    struct cl_tls_ctx *cc, *sc;
    struct cl_tls *c, *s;
    int crc, src;
};

static void pair_run(struct pair *p, const struct cl_test_leaf *srv, const char *srv_ca,
                     const struct cl_test_leaf *cli, const char *cli_ca, const char *name)
{
    p->sc = ctx(true, srv, srv_ca);
    p->cc = ctx(false, cli, cli_ca);
    p->s = cl_tls_new(p->sc, NULL);
    p->c = cl_tls_new(p->cc, name);
    assert_non_null(p->s);
    assert_non_null(p->c);
    handshake(p->c, p->s, &p->crc, &p->src);
}

/* Like pair_run, with full option sets for both contexts. */
static void pair_opts(struct pair *p, const struct cl_tls_ctx_opts *so,
                      const struct cl_tls_ctx_opts *co, const char *name)
{
    char err[256];

    assert_int_equal(cl_tls_ctx_new(so, &p->sc, err, sizeof(err)), 0);
    assert_int_equal(cl_tls_ctx_new(co, &p->cc, err, sizeof(err)), 0);
    p->s = cl_tls_new(p->sc, NULL);
    p->c = cl_tls_new(p->cc, name);
    assert_non_null(p->s);
    assert_non_null(p->c);
    handshake(p->c, p->s, &p->crc, &p->src);
}

static void pair_free(struct pair *p)
{
    cl_tls_free(p->c);
    cl_tls_free(p->s);
    cl_tls_ctx_unref(p->cc);
    cl_tls_ctx_unref(p->sc);
}

static void mutual_handshake_and_identity(void **state)
{
    struct pair p;
    (void)state;

    pair_run(&p, &pki.srv, pki.ca, &pki.cli, pki.ca, "srv");
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);
    assert_string_equal(cl_tls_alpn(p.c), "h2");
    assert_string_equal(cl_tls_alpn(p.s), "h2");
    assert_string_equal(cl_tls_version(p.c), "TLSv1.3");
    const struct cl_tls_peer *sp = cl_tls_peer(p.s); /* the server sees the client */
    assert_non_null(sp);
    assert_string_equal(sp->cn, "cli");
    assert_int_equal(sp->ndns, 1);
    assert_string_equal(sp->dns[0], "cli");
    assert_true(cl_tls_peer_has_name(sp, "cli"));
    assert_false(cl_tls_peer_has_name(sp, "srv"));
    assert_true(cl_tls_peer_has_name(cl_tls_peer(p.c), "srv"));
    pair_free(&p);
}

static void data_both_ways_and_close_notify(void **state)
{
    struct pair p;
    size_t len = 1 << 20, got = 0;
    uint8_t *src = malloc(len), *dst = malloc(len);
    (void)state;

    for (size_t i = 0; i < len; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    pair_run(&p, &pki.srv, pki.ca, &pki.cli, pki.ca, "srv");
    assert_int_equal(p.crc, 0);
    assert_int_equal(cl_tls_write(p.c, src, len), (ssize_t)len);
    while (got < len) {
        move(p.c, p.s);
        ssize_t n = cl_tls_read(p.s, dst + got, len - got);
        if (n == CL_EAGAIN)
            continue;
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(src, dst, len);
    /* and back */
    assert_int_equal(cl_tls_write(p.s, "pong", 4), 4);
    move(p.s, p.c);
    char b[8];
    assert_int_equal(cl_tls_read(p.c, b, sizeof(b)), 4);
    assert_memory_equal(b, "pong", 4);
    assert_int_equal(cl_tls_read(p.c, b, sizeof(b)), CL_EAGAIN);
    assert_int_equal(cl_tls_shutdown(p.c), 0);
    move(p.c, p.s);
    assert_int_equal(cl_tls_read(p.s, b, sizeof(b)), CL_EOF);
    pair_free(&p);
    free(src);
    free(dst);
}

/* TLS 1.3: the client is done before the server judges its certificate; the server's alert
 * arrives with the client's first read, which then gives the client's result. */
static void read_late_alert(struct pair *p)
{
    char b[8];

    if (p->crc != 0)
        return;
    move(p->s, p->c);
    p->crc = (int)cl_tls_read(p->c, b, sizeof(b));
}

/* Handshakes that one side refuses, both sides trusting the fabric CA. */
static void refused_handshakes(void **state)
{
    static const struct {
        const char *what;
        const struct cl_test_leaf *srv, *cli; /* the certificates presented */
        const char *name;                     /* the server name the client asks for */
        bool by_server;                       /* the server refuses (else the client) */
        int rc;                               /* the refusing side's result */
        const char *detail;                   /* in its error detail, or NULL */
    } rows[] = {
        {"server certificate from another CA", &pki.other, &pki.cli, "srv", false,
         CL_ETLS_UNKNOWN_CA, NULL},
        {"expired server certificate", &pki.expired, &pki.cli, "srv", false, CL_ETLS_EXPIRED,
         "expired"},
        {"server certificate not valid yet", &pki.future, &pki.cli, "srv", false, CL_ETLS_EXPIRED,
         NULL},
        {"expired client certificate", &pki.srv, &pki.expired, "srv", true, CL_ETLS_EXPIRED, NULL},
        {"wrong server name", &pki.srv, &pki.cli, "someone-else", false, CL_ETLS_NAME,
         "someone-else"},
    };
    struct pair p;
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *row = rows[i].what;
        struct cl_tls *refuser;
        pair_run(&p, rows[i].srv, pki.ca, rows[i].cli, pki.ca, rows[i].name);
        if (rows[i].by_server) {
            refuser = p.s;
            CL_TEST_ROW_INT(row, p.src, rows[i].rc);
        } else {
            refuser = p.c;
            CL_TEST_ROW_INT(row, p.crc, rows[i].rc);
            /* the client's alert ends the server's handshake too */
            CL_TEST_ROW_TRUE(row, p.src < 0 && p.src != CL_EAGAIN);
        }
        if (rows[i].detail != NULL)
            CL_TEST_ROW_HAS(row, cl_tls_error_detail(refuser), rows[i].detail);
        pair_free(&p);
    }
    assert_int_equal(i, 5); /* every row ran */
}

/* A client trusted by no CA the server knows: the server refuses it, and the client hears. */
static void unknown_client_ca(void **state)
{
    struct pair p;
    (void)state;

    pair_run(&p, &pki.srv, pki.other_ca, &pki.cli, pki.ca, "srv");
    assert_int_equal(p.src, CL_ETLS_UNKNOWN_CA);
    assert_true(strlen(cl_tls_error_detail(p.s)) > 0);
    read_late_alert(&p);
    assert_int_equal(p.crc, CL_ETLS_UNKNOWN_CA);
    pair_free(&p);
}

static void bad_files(void **state)
{
    char *dir = cl_test_mkdtemp("tls");
    char cert[512], key[512], ca[512], garbage[512], err[256];
    struct cl_tls_ctx *c = NULL;
    (void)state;

    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(garbage, sizeof(garbage), "%s/garbage.pem", dir);
    cl_test_write_file(cert, pki.srv.cert, strlen(pki.srv.cert));
    cl_test_write_file(key, pki.srv.key, strlen(pki.srv.key));
    cl_test_write_file(ca, pki.ca, strlen(pki.ca));
    cl_test_write_file(garbage, "not a pem\n", 10);

    struct cl_tls_ctx_opts o = {.server = true, .cert_file = cert, .key_file = key, .ca_file = ca};
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), 0);
    cl_tls_ctx_unref(c);

    o.cert_file = "/nonexistent/cert.pem";
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_ETLS_BAD_FILE);
    assert_non_null(strstr(err, "/nonexistent/cert.pem"));
    o.cert_file = garbage;
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_ETLS_BAD_FILE);
    assert_non_null(strstr(err, "garbage.pem"));
    o.cert_file = cert;
    o.ca_file = garbage;
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_ETLS_BAD_FILE);
    o.ca_file = ca;
#ifndef CL_SYSTEM_WOLFSSL /* Debian's build does not compare key and certificate at load time */
    /* the client's key with the server's certificate */
    cl_test_write_file(key, pki.cli.key, strlen(pki.cli.key));
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_ETLS_KEY_MISMATCH);
    assert_non_null(strstr(err, "does not match"));
#endif
    cl_test_rmtree(dir);
    cl_free(&dir);
}

/* The server's default options, and a Kubernetes-style client (no certificate, http/1.1). */
static struct cl_tls_ctx_opts srv_opts(const struct cl_test_leaf *l)
{
    struct cl_tls_ctx_opts o = {
        .server = true, .cert_pem = l->cert, .key_pem = l->key, .ca_pem = pki.ca};
    return o;
}

static struct cl_tls_ctx_opts k8s_opts(void)
{
    struct cl_tls_ctx_opts o = {.ca_pem = pki.ca,
                                .cert_optional = true,
                                .alpn_mode = CL_TLS_ALPN_OFFER,
                                .alpn = "http/1.1",
                                .peer_label = "API server"};
    return o;
}

/* A handshake with these options that the client refuses with rc, its error detail reading
 * exactly `detail`. */
static void expect_client_refusal(const struct cl_tls_ctx_opts *so,
                                  const struct cl_tls_ctx_opts *co, const char *name, int rc,
                                  const char *detail)
{
    struct pair p;

    pair_opts(&p, so, co, name);
    assert_int_equal(p.crc, rc);
    assert_string_equal(cl_tls_error_detail(p.c), detail);
    pair_free(&p);
}

static void material_rules(void **state)
{
    struct cl_tls_ctx_opts o = {.ca_pem = pki.ca};
    struct cl_tls_ctx *c = NULL;
    char err[256];
    (void)state;

    /* by default every context needs a certificate and its key, as before */
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_EINVAL);
    assert_string_equal(err, "a certificate, a key and a CA bundle are all required");
    o.cert_pem = pki.cli.cert;
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_EINVAL);
    /* a client may go without, but not with half of it */
    o.cert_optional = true;
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_EINVAL);
    assert_non_null(strstr(err, "needs its key"));
    o.cert_pem = NULL;
    o.key_pem = pki.cli.key;
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_EINVAL);
    o.key_pem = NULL;
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), 0);
    cl_tls_ctx_unref(c);
    o.ca_pem = NULL;
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_EINVAL);
    assert_non_null(strstr(err, "CA bundle"));
    /* a server always needs one */
    o.ca_pem = pki.ca;
    o.server = true;
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_EINVAL);
    /* bad material from memory is named without a path */
    o.server = false;
    o.cert_pem = pki.cli.cert;
    o.key_pem = pki.srv.key;
#ifndef CL_SYSTEM_WOLFSSL
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_ETLS_KEY_MISMATCH);
    assert_string_equal(err, "the key does not match the certificate");
#endif
    o.key_pem = "junk";
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_ETLS_BAD_FILE);
    assert_string_equal(err, "the key is not a valid PEM private key");
    o.cert_pem = NULL;
    o.key_pem = NULL;
    o.ca_pem = "junk";
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_ETLS_BAD_FILE);
    assert_string_equal(err, "the CA bundle holds no valid PEM certificate");
    /* ALPN names: one protocol of 1..15 bytes */
    o.ca_pem = pki.ca;
    o.alpn = "";
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_EINVAL);
    o.alpn = "h2,http/1.1";
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_EINVAL);
    o.alpn = "0123456789abcdef";
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_EINVAL);
    o.alpn_mode = CL_TLS_ALPN_OFF; /* the name is not used then */
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), 0);
    cl_tls_ctx_unref(c);
    o.alpn_mode = (enum cl_tls_alpn_mode)7;
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), CL_EINVAL);
}

static void client_without_certificate(void **state)
{
    struct cl_tls_ctx_opts so = srv_opts(&pki.srv), co = k8s_opts();
    struct pair p;
    (void)state;

    /* an mTLS server (every gateway) still refuses a client without a certificate */
    co.alpn_mode = CL_TLS_ALPN_REQUIRE;
    co.alpn = NULL;
    co.peer_label = NULL;
    pair_opts(&p, &so, &co, "srv");
    assert_int_equal(p.src, CL_ETLS_NO_CERT);
    read_late_alert(&p);
    assert_int_equal(p.crc, CL_ETLS_NO_CERT);
    pair_free(&p);
    /* cert_optional with a certificate given: it is presented */
    co.cert_pem = pki.cli.cert;
    co.key_pem = pki.cli.key;
    pair_opts(&p, &so, &co, "srv");
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);
    assert_true(cl_tls_peer_has_name(cl_tls_peer(p.s), "cli"));
    pair_free(&p);
}

static void alpn_modes(void **state)
{
    struct cl_tls_ctx_opts so = srv_opts(&pki.srv), co = k8s_opts();
    struct pair p;
    (void)state;

    co.cert_pem = pki.cli.cert; /* the server here is an mTLS server */
    co.key_pem = pki.cli.key;
    /* an h2-only server refuses an http/1.1 client */
    pair_opts(&p, &so, &co, "srv");
    assert_int_equal(p.src, CL_ETLS_ALPN);
    assert_int_equal(p.crc, CL_ETLS_ALPN);
    assert_string_equal(cl_tls_error_detail(p.c), "API server does not speak http/1.1 (ALPN)");
    pair_free(&p);
    /* both offer http/1.1 */
    so.alpn_mode = CL_TLS_ALPN_OFFER;
    so.alpn = "http/1.1";
    pair_opts(&p, &so, &co, "srv");
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);
    assert_string_equal(cl_tls_alpn(p.c), "http/1.1");
    assert_string_equal(cl_tls_alpn(p.s), "http/1.1");
    pair_free(&p);
    /* the server knows no ALPN: fine for an offering client, not for a requiring one */
    so.alpn_mode = CL_TLS_ALPN_OFF;
    pair_opts(&p, &so, &co, "srv");
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);
    assert_null(cl_tls_alpn(p.c));
    assert_null(cl_tls_alpn(p.s));
    pair_free(&p);
    co.alpn_mode = CL_TLS_ALPN_REQUIRE;
    co.alpn = NULL; /* h2 */
    co.peer_label = NULL;
    expect_client_refusal(&so, &co, "srv", CL_ETLS_ALPN, "peer does not speak HTTP/2 (ALPN h2)");
    /* a client offering nothing: an offering server carries on, an h2 server refuses */
    co.alpn_mode = CL_TLS_ALPN_OFF;
    so.alpn_mode = CL_TLS_ALPN_OFFER;
    pair_opts(&p, &so, &co, "srv");
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);
    assert_null(cl_tls_alpn(p.c));
    pair_free(&p);
    so = srv_opts(&pki.srv);
    pair_opts(&p, &so, &co, "srv");
    assert_int_equal(p.src, CL_ETLS_ALPN);
    assert_string_equal(cl_tls_error_detail(p.s),
                        "client offered no ALPN protocol (this port requires ALPN h2)");
    /* ... after a complete handshake, so the refusal can be explained in the client's own
     * protocol; the peer is still not accepted, and asking again gives the same answer */
    assert_int_equal(p.crc, 0);
    assert_true(cl_tls_is_open_without_alpn(p.s));
    assert_false(cl_tls_is_open_without_alpn(p.c));
    assert_false(cl_tls_is_established(p.s));
    assert_null(cl_tls_peer(p.s));
    assert_int_equal(cl_tls_handshake(p.s), CL_ETLS_ALPN);
    assert_int_equal(cl_tls_write(p.s, "HTTP/1.1 505", 12), 12);
    move(p.s, p.c);
    char got[32];
    assert_int_equal(cl_tls_read(p.c, got, sizeof(got)), 12);
    assert_memory_equal(got, "HTTP/1.1 505", 12);
    assert_int_equal(cl_tls_write(p.c, "GET / HTTP/1.1", 14), 14);
    move(p.c, p.s);
    assert_int_equal(cl_tls_read(p.s, got, sizeof(got)), 14);
    pair_free(&p);
    /* a client that offered h2 to the same server is not in that state */
    co.alpn_mode = CL_TLS_ALPN_REQUIRE;
    pair_opts(&p, &so, &co, "srv");
    assert_int_equal(p.src, 0);
    assert_false(cl_tls_is_open_without_alpn(p.s));
    pair_free(&p);
}

static void server_by_ip_address(void **state)
{
    struct cl_tls_ctx_opts so = srv_opts(&ipsrv), co = k8s_opts();
    struct pair p;
    (void)state;

    co.cert_pem = pki.cli.cert;
    co.key_pem = pki.cli.key;
    so.alpn_mode = CL_TLS_ALPN_OFFER;
    so.alpn = "http/1.1";
    /* IPv4 and IPv6 literals match the certificate's iPAddress SANs, the DNS name its dNSName */
    const char *good[] = {"127.0.0.1", "::1", "0:0::1", "srv"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        pair_opts(&p, &so, &co, good[i]);
        assert_int_equal(p.crc, 0);
        assert_int_equal(p.src, 0);
        pair_free(&p);
    }
    /* another address is refused, and so is the address as a DNS name */
    const char *bad[] = {"127.0.0.2", "::2", "127.0.0.1.nip.io"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pair_opts(&p, &so, &co, bad[i]);
        assert_int_equal(p.crc, CL_ETLS_NAME);
        assert_false(cl_tls_is_established(p.c));
        assert_non_null(strstr(cl_tls_error_detail(p.c), bad[i]));
        assert_non_null(strstr(cl_tls_error_detail(p.c), "API server certificate"));
        pair_free(&p);
    }
    expect_client_refusal(&so, &co, "127.0.0.2", CL_ETLS_NAME,
                          "API server certificate has no IP address SAN 127.0.0.2");
    /* a certificate with DNS SANs only (the gateways' kind) never matches an address */
    so = srv_opts(&pki.srv);
    so.alpn_mode = CL_TLS_ALPN_OFFER;
    so.alpn = "http/1.1";
    co.peer_label = NULL;
    expect_client_refusal(&so, &co, "127.0.0.1", CL_ETLS_NAME,
                          "server certificate has no IP address SAN 127.0.0.1");
}

static void peer_label_in_details(void **state)
{
    struct cl_tls_ctx_opts so = srv_opts(&pki.other), co = k8s_opts();
    (void)state;

    co.cert_pem = pki.cli.cert;
    co.key_pem = pki.cli.key;
    so.alpn_mode = CL_TLS_ALPN_OFFER;
    so.alpn = "http/1.1";
    so.ca_pem = pki.ca;
    expect_client_refusal(&so, &co, "srv", CL_ETLS_UNKNOWN_CA,
                          "API server certificate is not signed by the configured CA");
    so = srv_opts(&pki.expired);
    so.alpn_mode = CL_TLS_ALPN_OFF;
    expect_client_refusal(&so, &co, "srv", CL_ETLS_EXPIRED, "API server certificate has expired");
    so = srv_opts(&pki.srv);
    so.alpn_mode = CL_TLS_ALPN_OFF;
    expect_client_refusal(&so, &co, "kubernetes.default.svc", CL_ETLS_NAME,
                          "API server certificate does not name kubernetes.default.svc");
}

/* Writes a new version of `path` the way tools and Kubernetes do: a new file, renamed over. */
static void replace_file(const char *path, const char *text)
{
    char tmp[600];

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    assert_int_equal(cl_test_write_file(tmp, text, strlen(text)), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* Handshakes a new client (pki.cli, trusting `cli_ca`, expecting `name`) with a new connection
 * of `sc`: 0, or the first side's error (the client's, else the server's). */
static int handshake_with(struct cl_tls_ctx *sc, const char *cli_ca, const char *name)
{
    struct cl_tls_ctx *cc = ctx(false, &pki.cli, cli_ca);
    struct cl_tls *c = cl_tls_new(cc, name), *s = cl_tls_new(sc, NULL);
    int crc, src;

    assert_non_null(c);
    assert_non_null(s);
    handshake(c, s, &crc, &src);
    cl_tls_free(c);
    cl_tls_free(s);
    cl_tls_ctx_unref(cc);
    return crc != 0 ? crc : src;
}

/*
 * A server context built from files picks up a new certificate, key and CA bundle for the
 * connections made after the reload, while a connection made before keeps working on the old
 * material (its wolfSSL object holds the old context until it is freed).
 */
static void reload_serves_new_material(void **state)
{
    char *dir = cl_test_mkdtemp("tlsreload");
    char cert[512], key[512], ca[512], err[256], b[8];
    struct cl_tls_ctx *sc = NULL;
    struct pair old;
    (void)state;

    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    replace_file(cert, pki.srv.cert);
    replace_file(key, pki.srv.key);
    replace_file(ca, pki.ca);
    struct cl_tls_ctx_opts so = {.server = true, .cert_file = cert, .key_file = key, .ca_file = ca};
    assert_int_equal(cl_tls_ctx_new(&so, &sc, err, sizeof(err)), 0);
    /* the old certificate names "srv" only, no address */
    assert_int_equal(handshake_with(sc, pki.ca, "srv"), 0);
    assert_int_equal(handshake_with(sc, pki.ca, "127.0.0.1"), CL_ETLS_NAME);

    memset(&old, 0, sizeof(old));
    old.sc = sc;
    cl_tls_ctx_ref(sc);
    old.cc = ctx(false, &pki.cli, pki.ca);
    old.s = cl_tls_new(old.sc, NULL);
    old.c = cl_tls_new(old.cc, "srv");
    handshake(old.c, old.s, &old.crc, &old.src);
    assert_int_equal(old.crc, 0);
    assert_int_equal(old.src, 0);

    /* the certificate first, then its key: in between, the pair does not match and is refused
     * (once); the old material keeps serving */
    replace_file(cert, ipsrv.cert);
    assert_int_equal(cl_tls_ctx_reload(sc, err, sizeof(err)), CL_ETLS_KEY_MISMATCH);
    assert_int_equal(cl_tls_ctx_reload(sc, err, sizeof(err)), 0);
    assert_int_equal(handshake_with(sc, pki.ca, "srv"), 0);
    char before[65];
    const struct cl_tls_cert_info *ci = cl_tls_ctx_cert_info(sc);
    assert_true(ci->have);
    assert_int_equal(strlen(ci->sha256), 64);
    assert_int_equal(ci->not_after - ci->not_before, 365 * 24 * 3600); /* certgen's default */
    memcpy(before, ci->sha256, sizeof(before));
    replace_file(key, ipsrv.key);
    assert_int_equal(cl_tls_ctx_reload(sc, err, sizeof(err)), 1);
    assert_true(cl_tls_ctx_cert_info(sc)->have);
    assert_string_not_equal(cl_tls_ctx_cert_info(sc)->sha256, before);
    assert_int_equal(handshake_with(sc, pki.ca, "127.0.0.1"), 0); /* the new one has addresses */

    /* a new CA bundle: clients of the old CA are refused from now on */
    replace_file(ca, pki.other_ca);
    assert_int_equal(cl_tls_ctx_reload(sc, err, sizeof(err)), 1);
    assert_int_equal(handshake_with(sc, pki.ca, "srv"), CL_ETLS_UNKNOWN_CA);

    /* the connection made before all this still carries data both ways */
    assert_int_equal(cl_tls_write(old.c, "ping", 4), 4);
    move(old.c, old.s);
    assert_int_equal(cl_tls_read(old.s, b, sizeof(b)), 4);
    assert_memory_equal(b, "ping", 4);
    assert_int_equal(cl_tls_write(old.s, "pong", 4), 4);
    move(old.s, old.c);
    assert_int_equal(cl_tls_read(old.c, b, sizeof(b)), 4);
    assert_memory_equal(b, "pong", 4);
    pair_free(&old);
    cl_tls_ctx_unref(sc);
    cl_test_rmtree(dir);
    cl_free(&dir);
}

/* Reload watches the files a context was built from, and only when all material is files. */
static void reload_files(void **state)
{
    char *dir = cl_test_mkdtemp("tlsreload");
    char ca[512], err[256];
    struct cl_tls_ctx_opts o = k8s_opts();
    struct cl_tls_ctx *c = NULL;
    (void)state;

    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    cl_test_write_file(ca, pki.ca, strlen(pki.ca));
    o.ca_pem = NULL;
    o.ca_file = ca;
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), 0);
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), 0);
    /* a bundle of two CAs: another size */
    char *both = cl_malloc(strlen(pki.ca) + strlen(pki.other_ca) + 1);
    assert_non_null(both);
    memcpy(both, pki.ca, strlen(pki.ca));
    memcpy(both + strlen(pki.ca), pki.other_ca, strlen(pki.other_ca) + 1);
    cl_test_write_file(ca, both, strlen(both));
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), 1);
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), 0);
    /* a broken replacement is refused, once: the same files are not read again */
    cl_test_write_file(ca, "junk", 4);
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), CL_ETLS_BAD_FILE);
    assert_non_null(strstr(err, ca));
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), 0);
    /* the same content and size as before, put in place by rename: a new version all the same */
    replace_file(ca, pki.ca);
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), 1);
    replace_file(ca, pki.ca);
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), 1);
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), 0);
    /* a file gone (mid-replacement) is an error until it is back */
    assert_int_equal(unlink(ca), 0);
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), CL_ETLS_BAD_FILE);
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), 0);
    replace_file(ca, pki.ca);
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), 1);
    cl_tls_ctx_unref(c);
    /* the CA from memory: nothing to watch; and no certificate to describe */
    o = k8s_opts();
    assert_int_equal(cl_tls_ctx_new(&o, &c, err, sizeof(err)), 0);
    assert_int_equal(cl_tls_ctx_reload(c, err, sizeof(err)), 0);
    assert_false(cl_tls_ctx_cert_info(c)->have);
    cl_tls_ctx_unref(c);
    cl_free(&both);
    cl_test_rmtree(dir);
    cl_free(&dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mutual_handshake_and_identity),
        cmocka_unit_test(data_both_ways_and_close_notify),
        cmocka_unit_test(refused_handshakes),
        cmocka_unit_test(unknown_client_ca),
        cmocka_unit_test(bad_files),
        cmocka_unit_test(material_rules),
        cmocka_unit_test(client_without_certificate),
        cmocka_unit_test(alpn_modes),
        cmocka_unit_test(server_by_ip_address),
        cmocka_unit_test(peer_label_in_details),
        cmocka_unit_test(reload_files),
        cmocka_unit_test(reload_serves_new_material),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
