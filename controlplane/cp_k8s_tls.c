/*
 * TLS client for the Kubernetes API server over wolfSSL, sans-I/O: wolfSSL's I/O callbacks
 * read an input queue the owner fills and append to an output queue the owner sends.
 */
#include "cp_k8s_tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "cl/err.h"
#include "cl/mem.h"
#include "cl/tls.h"

#define IN_CHUNKS  8
#define OUT_CHUNKS 4096 /* not a real bound: one request at a time is written */

struct cp_k8s_tls_ctx {
    WOLFSSL_CTX *ctx;
};

struct cp_k8s_tls {
    WOLFSSL *ssl;
    struct cl_bufq in;
    struct cl_bufq out;
    bool established;
    bool by_ip;
    uint8_t ip[16];
    size_t iplen;
    char name[256];
    char detail[512];
};

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct cp_k8s_tls *t = ctx;
    size_t n;

    (void)ssl;
    n = cl_bufq_read(&t->in, buf, (size_t)sz);
    return n == 0 ? WOLFSSL_CBIO_ERR_WANT_READ : (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct cp_k8s_tls *t = ctx;

    (void)ssl;
    if (cl_bufq_write(&t->out, buf, (size_t)sz) < sz)
        return WOLFSSL_CBIO_ERR_GENERAL;
    return sz;
}

int cp_k8s_tls_ctx_new(const struct cp_k8s_tls_opts *o, struct cp_k8s_tls_ctx **out, char *err,
                       size_t errlen)
{
    struct cp_k8s_tls_ctx *c = NULL;
    int rc = CL_ETLS_BAD_FILE;

    *out = NULL;
    if (o->ca_pem == NULL || (o->cert_pem != NULL) != (o->key_pem != NULL)) {
        snprintf(err, errlen, "%s",
                 o->ca_pem == NULL ? "no CA for the API server"
                                   : "a client certificate needs its key");
        return CL_EINVAL;
    }
    cl_tls_global_init();
    if ((c = cl_calloc(1, sizeof(*c))) == NULL ||
        (c->ctx = wolfSSL_CTX_new(wolfSSLv23_client_method())) == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = CL_ENOMEM;
        goto fail;
    }
    wolfSSL_CTX_SetMinVersion(c->ctx, WOLFSSL_TLSV1_2);
    if (wolfSSL_CTX_load_verify_buffer(c->ctx, (const unsigned char *)o->ca_pem,
                                       (long)strlen(o->ca_pem),
                                       WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "the API server CA holds no valid PEM certificate");
        goto fail;
    }
    if (o->cert_pem != NULL) {
        if (wolfSSL_CTX_use_certificate_chain_buffer(c->ctx, (const unsigned char *)o->cert_pem,
                                                     (long)strlen(o->cert_pem)) !=
            WOLFSSL_SUCCESS) {
            snprintf(err, errlen, "the client certificate is not a valid PEM certificate");
            goto fail;
        }
        if (wolfSSL_CTX_use_PrivateKey_buffer(c->ctx, (const unsigned char *)o->key_pem,
                                              (long)strlen(o->key_pem),
                                              WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
            snprintf(err, errlen, "the client key is not a valid PEM private key");
            goto fail;
        }
        if (wolfSSL_CTX_check_private_key(c->ctx) != WOLFSSL_SUCCESS) {
            snprintf(err, errlen, "the client key does not match the client certificate");
            rc = CL_ETLS_KEY_MISMATCH;
            goto fail;
        }
    }
    wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_PEER, NULL);
    wolfSSL_CTX_SetIORecv(c->ctx, io_recv);
    wolfSSL_CTX_SetIOSend(c->ctx, io_send);
    *out = c;
    return 0;
fail:
    cp_k8s_tls_ctx_free(c);
    if (c == NULL)
        cl_tls_global_cleanup();
    return rc;
}

void cp_k8s_tls_ctx_free(struct cp_k8s_tls_ctx *c)
{
    if (c == NULL)
        return;
    if (c->ctx != NULL)
        wolfSSL_CTX_free(c->ctx);
    cl_mem_free(c);
    cl_tls_global_cleanup();
}

struct cp_k8s_tls *cp_k8s_tls_new(struct cp_k8s_tls_ctx *c, const char *name)
{
    struct cp_k8s_tls *t = cl_calloc(1, sizeof(*t));
    struct in6_addr a6;
    struct in_addr a4;

    if (t == NULL)
        return NULL;
    snprintf(t->name, sizeof(t->name), "%s", name);
    cl_bufq_init(&t->in, CL_BUFQ_CHUNK, IN_CHUNKS);
    cl_bufq_init(&t->out, CL_BUFQ_CHUNK, OUT_CHUNKS);
    if ((t->ssl = wolfSSL_new(c->ctx)) == NULL)
        goto fail;
    wolfSSL_SetIOReadCtx(t->ssl, t);
    wolfSSL_SetIOWriteCtx(t->ssl, t);
    if (wolfSSL_UseALPN(t->ssl, (char *)"http/1.1", 8, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) !=
        WOLFSSL_SUCCESS)
        goto fail;
    if (inet_pton(AF_INET, name, &a4) == 1) {
        memcpy(t->ip, &a4, 4);
        t->iplen = 4;
        t->by_ip = true;
    } else if (inet_pton(AF_INET6, name, &a6) == 1) {
        memcpy(t->ip, &a6, 16);
        t->iplen = 16;
        t->by_ip = true;
    } else if (wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, name, (unsigned short)strlen(name)) !=
                   WOLFSSL_SUCCESS ||
               wolfSSL_check_domain_name(t->ssl, name) != WOLFSSL_SUCCESS) {
        goto fail;
    }
    return t;
fail:
    cp_k8s_tls_free(t);
    return NULL;
}

void cp_k8s_tls_free(struct cp_k8s_tls *t)
{
    if (t == NULL)
        return;
    if (t->ssl != NULL)
        wolfSSL_free(t->ssl);
    cl_bufq_deinit(&t->in);
    cl_bufq_deinit(&t->out);
    cl_mem_free(t);
}

size_t cp_k8s_tls_in_reserve(struct cp_k8s_tls *t, uint8_t **p)
{
    return cl_bufq_reserve(&t->in, p);
}

void cp_k8s_tls_in_commit(struct cp_k8s_tls *t, size_t n)
{
    cl_bufq_commit(&t->in, n);
}

struct cl_bufq *cp_k8s_tls_outq(struct cp_k8s_tls *t)
{
    return &t->out;
}

const char *cp_k8s_tls_detail(const struct cp_k8s_tls *t)
{
    return t->detail;
}

static int map_error(struct cp_k8s_tls *t, int werr)
{
    char buf[WOLFSSL_MAX_ERROR_SZ];

    switch (werr) {
    case ASN_AFTER_DATE_E:
    case ASN_BEFORE_DATE_E:
        snprintf(t->detail, sizeof(t->detail), "API server certificate %s",
                 werr == ASN_AFTER_DATE_E ? "has expired" : "is not yet valid");
        return CL_ETLS_EXPIRED;
    case ASN_NO_SIGNER_E:
    case ASN_SIG_CONFIRM_E:
    case VERIFY_CERT_ERROR:
        snprintf(t->detail, sizeof(t->detail),
                 "API server certificate is not signed by the configured CA");
        return CL_ETLS_UNKNOWN_CA;
    case DOMAIN_NAME_MISMATCH:
        snprintf(t->detail, sizeof(t->detail), "API server certificate does not name %s", t->name);
        return CL_ETLS_NAME;
    default:
        break;
    }
    wolfSSL_ERR_error_string_n((unsigned long)werr, buf, sizeof(buf));
    snprintf(t->detail, sizeof(t->detail), "TLS error %d: %s", werr, buf);
    return CL_ETLS;
}

int cp_k8s_tls_handshake(struct cp_k8s_tls *t)
{
    int rc, werr;

    if (t->established)
        return 0;
    rc = wolfSSL_connect(t->ssl);
    if (rc != WOLFSSL_SUCCESS) {
        werr = wolfSSL_get_error(t->ssl, rc);
        if (werr == WOLFSSL_ERROR_WANT_READ || werr == WOLFSSL_ERROR_WANT_WRITE)
            return CL_EAGAIN;
        return map_error(t, werr);
    }
    if (t->by_ip) {
        WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(t->ssl);
        const unsigned char *der;
        int len = 0;
        bool ok = false;
        if (x != NULL && (der = wolfSSL_X509_get_der(x, &len)) != NULL && len > 0)
            ok = cp_k8s_cert_has_ip(der, (size_t)len, t->ip, t->iplen);
        wolfSSL_X509_free(x);
        if (!ok) {
            snprintf(t->detail, sizeof(t->detail),
                     "API server certificate has no IP address SAN %s", t->name);
            return CL_ETLS_NAME;
        }
    }
    t->established = true;
    return 0;
}

ssize_t cp_k8s_tls_read(struct cp_k8s_tls *t, void *buf, size_t len)
{
    int n, werr;

    if (!t->established)
        return CL_EAGAIN;
    n = wolfSSL_read(t->ssl, buf, (int)(len > 0x7fffffff ? 0x7fffffff : len));
    if (n > 0)
        return n;
    werr = wolfSSL_get_error(t->ssl, n);
    if (werr == WOLFSSL_ERROR_WANT_READ || werr == WOLFSSL_ERROR_WANT_WRITE)
        return CL_EAGAIN;
    if (werr == WOLFSSL_ERROR_ZERO_RETURN)
        return CL_EOF;
    return map_error(t, werr);
}

ssize_t cp_k8s_tls_write(struct cp_k8s_tls *t, const void *buf, size_t len)
{
    const char *p = buf;
    size_t done = 0;

    while (done < len) {
        int chunk = (int)(len - done > (1u << 30) ? (1u << 30) : len - done);
        int n = wolfSSL_write(t->ssl, p + done, chunk);
        if (n <= 0)
            return map_error(t, wolfSSL_get_error(t->ssl, n));
        done += (size_t)n;
    }
    return (ssize_t)len;
}

/* ---- iPAddress SAN (RFC 5280 4.2.1.6) --------------------------------------------------- */

/* One DER TLV (single-byte tag, definite length): advances *p. Returns 0 or -1. */
static int der_next(const uint8_t **p, size_t *len, uint8_t *tag, const uint8_t **val, size_t *vlen)
{
    size_t l, i = 2;

    if (*len < 2 || ((*p)[0] & 0x1f) == 0x1f)
        return -1;
    l = (*p)[1];
    if (l & 0x80) {
        size_t n = l & 0x7f;
        if (n == 0 || n > 4 || *len < 2 + n)
            return -1;
        l = 0;
        for (size_t k = 0; k < n; k++)
            l = (l << 8) | (*p)[2 + k];
        i += n;
    }
    if (l > *len - i)
        return -1;
    *tag = (*p)[0];
    *val = *p + i;
    *vlen = l;
    *p += i + l;
    *len -= i + l;
    return 0;
}

static bool names_have_ip(const uint8_t *p, size_t len, const uint8_t *ip, size_t iplen)
{
    const uint8_t *v;
    size_t vl;
    uint8_t tag;

    if (der_next(&p, &len, &tag, &v, &vl) != 0 || tag != 0x30) /* GeneralNames */
        return false;
    p = v;
    len = vl;
    while (len > 0) {
        if (der_next(&p, &len, &tag, &v, &vl) != 0)
            return false;
        if (tag == 0x87 && vl == iplen && memcmp(v, ip, iplen) == 0) /* [7] iPAddress */
            return true;
    }
    return false;
}

bool cp_k8s_cert_has_ip(const uint8_t *der, size_t len, const uint8_t *ip, size_t iplen)
{
    static const uint8_t san_oid[] = {0x55, 0x1d, 0x11}; /* 2.5.29.17 */
    const uint8_t *p = der, *v;
    size_t l = len, vl;
    uint8_t tag;

    if (der_next(&p, &l, &tag, &v, &vl) != 0 || tag != 0x30) /* Certificate */
        return false;
    p = v;
    l = vl;
    if (der_next(&p, &l, &tag, &v, &vl) != 0 || tag != 0x30) /* tbsCertificate */
        return false;
    p = v;
    l = vl;
    while (l > 0) {
        if (der_next(&p, &l, &tag, &v, &vl) != 0)
            return false;
        if (tag != 0xa3) /* [3] extensions */
            continue;
        const uint8_t *e = v;
        size_t el = vl;
        if (der_next(&e, &el, &tag, &v, &vl) != 0 || tag != 0x30)
            return false;
        e = v;
        el = vl;
        while (el > 0) {
            const uint8_t *x, *f;
            size_t xl, fl;
            if (der_next(&e, &el, &tag, &x, &xl) != 0 || tag != 0x30) /* Extension */
                return false;
            if (der_next(&x, &xl, &tag, &f, &fl) != 0 || tag != 0x06)
                return false;
            if (fl != sizeof(san_oid) || memcmp(f, san_oid, fl) != 0)
                continue;
            if (der_next(&x, &xl, &tag, &f, &fl) != 0)
                return false;
            if (tag == 0x01 && der_next(&x, &xl, &tag, &f, &fl) != 0) /* critical */
                return false;
            if (tag != 0x04)
                return false;
            return names_have_ip(f, fl, ip, iplen);
        }
        return false;
    }
    return false;
}
