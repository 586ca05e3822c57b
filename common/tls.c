/*
 * Sans-I/O TLS over wolfSSL: wolfSSL's I/O callbacks read from an input queue the owner fills
 * with ciphertext from the network and append to an output queue the owner sends. wolfSSL
 * never sees a socket. See cl/tls.h.
 */
#include "cl/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/x509.h"

#define IN_CHUNKS  2    /* 128 KiB of ciphertext waiting to be decrypted (64 KiB chunks) */
#define OUT_CHUNKS 1024 /* not a real bound: producers stop on cl_bufq_len() */
#define MAX_SANS   16

/*
 * One version of a file. Kubernetes replaces a mounted Secret by swapping a symlink (a new
 * inode behind the same path), `mv` gives a new inode, and a rewrite in place changes the
 * change time to the nanosecond: so a new certificate of the same size, written within the same
 * second as the old one, still counts as new.
 */
struct file_id {
    bool present; /* stat succeeded */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim;
    struct timespec ctim;
};

struct file_stamp {
    char *path;            /* NULL: none, or the material came from memory */
    struct file_id in_use; /* the version the context was built from */
    struct file_id failed; /* the version a reload last refused (see have_failed) */
};

struct cl_tls_ctx {
    int refs;
    WOLFSSL_CTX *ctx;
    bool server;
    bool cert_optional;
    bool reloadable; /* every piece of material came from a file */
    enum cl_tls_alpn_mode alpn_mode;
    char alpn[CL_TLS_ALPN_MAX + 1];
    char *peer_label;             /* NULL: the default wording */
    struct file_stamp files[3];   /* cert, key, ca */
    bool have_failed;             /* files[].failed hold a refused set, reported once */
    struct cl_tls_cert_info cert; /* of the material in use; have = false without one */
    unsigned gen;                 /* successful reloads so far */
};

struct cl_tls {
    struct cl_tls_ctx *ctx;
    unsigned ctx_gen; /* ctx->gen when ssl was made from it */
    WOLFSSL *ssl;
    struct cl_bufq in;
    struct cl_bufq out;
    bool established;
    bool no_alpn; /* handshake complete, but the client offered no ALPN protocol (server) */
    bool server;
    char *server_name;
    uint8_t ip[16]; /* server_name as an address, when it is an IP literal */
    size_t iplen;   /* 4 or 16; 0: server_name is a DNS name (or none) */
    char *cn;
    char *dns[MAX_SANS];
    const char *dns_view[MAX_SANS];
    struct cl_tls_peer peer;
    char alpn[CL_TLS_ALPN_MAX + 1];
    char detail[384];
};

static int global_refs;

int cl_tls_global_init(void)
{
    if (global_refs++ > 0)
        return 0;
    return wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : CL_ETLS;
}

void cl_tls_global_cleanup(void)
{
    if (global_refs > 0 && --global_refs == 0)
        wolfSSL_Cleanup();
}

/* ---- I/O callbacks --------------------------------------------------------------------------- */

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct cl_tls *t = ctx;
    size_t n;

    (void)ssl;
    n = cl_bufq_read(&t->in, buf, (size_t)sz);
    if (n == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct cl_tls *t = ctx;
    ssize_t n;

    (void)ssl;
    n = cl_bufq_write(&t->out, buf, (size_t)sz);
    if (n < sz)
        return WOLFSSL_CBIO_ERR_GENERAL; /* out of memory: the connection fails */
    return sz;
}

/* ---- context ------------------------------------------------------------------------------- */

static void file_id_get(const char *path, struct file_id *id)
{
    struct stat st;

    memset(id, 0, sizeof(*id));
    if (path == NULL || stat(path, &st) != 0)
        return; /* absent: differs from any present version, so a later one is noticed */
    id->present = true;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtim = st.st_mtim;
    id->ctim = st.st_ctim;
}

static bool file_id_eq(const struct file_id *a, const struct file_id *b)
{
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
           a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* Records the path and the version about to be read: taken before reading, so a replacement
 * that lands while the context is built shows as a change at the next reload. */
static int stamp(struct file_stamp *f, const char *path)
{
    memset(f, 0, sizeof(*f));
    if (path == NULL)
        return 0;
    if ((f->path = cl_strdup(path)) == NULL)
        return CL_ENOMEM;
    file_id_get(path, &f->in_use);
    return 0;
}

static int check_readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s file %s: %s", what, path, strerror(errno));
        return CL_ETLS_BAD_FILE;
    }
    fclose(f);
    return 0;
}

/* Names material in messages: "key /etc/cl/key.pem" for a file, "the key" from memory. */
static const char *describe(char *buf, size_t n, const char *what, const char *path)
{
    if (path != NULL)
        snprintf(buf, n, "%s %s", what, path);
    else
        snprintf(buf, n, "the %s", what);
    return buf;
}

/* Our certificate chain and its key, from files or memory. Returns 0 or an error (err set). */
static int load_identity(WOLFSSL_CTX *ctx, const struct cl_tls_ctx_opts *o, char *err,
                         size_t errlen)
{
    const char *cert = o->cert_file, *key = o->key_file;
    char a[PATH_MAX + 16], b[PATH_MAX + 16];

    if ((cert != NULL ? wolfSSL_CTX_use_certificate_chain_file(ctx, cert)
                      : wolfSSL_CTX_use_certificate_chain_buffer(
                            ctx, (const unsigned char *)o->cert_pem, (long)strlen(o->cert_pem))) !=
        WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s is not a valid PEM certificate",
                 describe(a, sizeof(a), "certificate", cert));
        return CL_ETLS_BAD_FILE;
    }
    if ((key != NULL ? wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM)
                     : wolfSSL_CTX_use_PrivateKey_buffer(
                           ctx, (const unsigned char *)o->key_pem, (long)strlen(o->key_pem),
                           WOLFSSL_FILETYPE_PEM)) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s is not a valid PEM private key",
                 describe(a, sizeof(a), "key", key));
        return CL_ETLS_BAD_FILE;
    }
    if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s does not match %s", describe(a, sizeof(a), "key", key),
                 describe(b, sizeof(b), "certificate", cert));
        return CL_ETLS_KEY_MISMATCH;
    }
    return 0;
}

#define PEM_MAX (256 * 1024) /* a certificate chain file larger than this is not ours */

/*
 * What cl_tls_ctx_cert_info() reports about the first certificate of `o`'s chain (the one
 * presented). Reads the file again, after wolfSSL did: should it have been replaced in between,
 * its stamp (taken before either read) differs and the next reload reads both anew. Best
 * effort: a certificate it cannot describe leaves `have` false.
 */
static void describe_cert(const struct cl_tls_ctx_opts *o, struct cl_tls_cert_info *ci)
{
    char *pem = NULL;
    uint8_t *der = NULL;
    uint8_t sum[WC_SHA256_DIGEST_SIZE];
    size_t n = 0;
    int dn;

    memset(ci, 0, sizeof(*ci));
    if (o->cert_file != NULL) {
        FILE *f = fopen(o->cert_file, "rb");
        if (f == NULL)
            return;
        if ((pem = cl_malloc(PEM_MAX + 1)) != NULL)
            n = fread(pem, 1, PEM_MAX, f);
        fclose(f);
    } else if (o->cert_pem != NULL && (n = strlen(o->cert_pem)) <= PEM_MAX) {
        pem = cl_strdup(o->cert_pem);
    }
    if (pem == NULL || n == 0 || (der = cl_malloc(n)) == NULL)
        goto out;
    pem[n] = '\0';
    dn = wolfSSL_CertPemToDer((const unsigned char *)pem, (int)n, der, (int)n, CERT_TYPE);
    if (dn <= 0 || !cl_x509_validity(der, (size_t)dn, &ci->not_before, &ci->not_after) ||
        wc_Sha256Hash(der, (word32)dn, sum) != 0)
        goto out;
    for (size_t i = 0; i < sizeof(sum); i++)
        snprintf(ci->sha256 + 2 * i, 3, "%02x", sum[i]);
    ci->have = true;
out:
    cl_mem_free(der);
    cl_mem_free(pem);
}

/* Is the material complete? An anonymous client (cert_optional) needs only the CA. */
static int check_material(const struct cl_tls_ctx_opts *o, char *err, size_t errlen)
{
    bool cert = o->cert_file != NULL || o->cert_pem != NULL;
    bool key = o->key_file != NULL || o->key_pem != NULL;
    bool ca = o->ca_file != NULL || o->ca_pem != NULL;

    if (o->server || !o->cert_optional) {
        if (cert && key && ca)
            return 0;
        snprintf(err, errlen, "a certificate, a key and a CA bundle are all required");
    } else if (!ca) {
        snprintf(err, errlen, "a CA bundle is required");
    } else if (cert != key) {
        snprintf(err, errlen, "a client certificate needs its key and a key its certificate");
    } else {
        return 0;
    }
    return CL_EINVAL;
}

static WOLFSSL_CTX *build_ctx(const struct cl_tls_ctx_opts *o, char *err, size_t errlen, int *rc)
{
    WOLFSSL_CTX *ctx;
    const char *cert = o->cert_file, *key = o->key_file, *ca = o->ca_file;

    if ((*rc = check_material(o, err, errlen)) != 0)
        return NULL;
    if ((cert != NULL && (*rc = check_readable("certificate", cert, err, errlen)) != 0) ||
        (key != NULL && (*rc = check_readable("key", key, err, errlen)) != 0) ||
        (ca != NULL && (*rc = check_readable("CA", ca, err, errlen)) != 0))
        return NULL;
    ctx = wolfSSL_CTX_new(o->server ? wolfSSLv23_server_method() : wolfSSLv23_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "out of memory");
        *rc = CL_ENOMEM;
        return NULL;
    }
    wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2);
    /* without one (cert_optional) the client answers a certificate request with none */
    if ((cert != NULL || o->cert_pem != NULL) && (*rc = load_identity(ctx, o, err, errlen)) != 0)
        goto fail;
    if ((ca != NULL ? wolfSSL_CTX_load_verify_locations(ctx, ca, NULL)
                    : wolfSSL_CTX_load_verify_buffer(ctx, (const unsigned char *)o->ca_pem,
                                                     (long)strlen(o->ca_pem),
                                                     WOLFSSL_FILETYPE_PEM)) != WOLFSSL_SUCCESS) {
        char a[PATH_MAX + 16];
        snprintf(err, errlen, "%s holds no valid PEM certificate",
                 describe(a, sizeof(a), "CA bundle", ca));
        *rc = CL_ETLS_BAD_FILE;
        goto fail;
    }
    wolfSSL_CTX_set_verify(
        ctx, WOLFSSL_VERIFY_PEER | (o->server ? WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    wolfSSL_CTX_SetIORecv(ctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    return ctx;
fail:
    wolfSSL_CTX_free(ctx);
    return NULL;
}

static int set_alpn(struct cl_tls_ctx *c, const struct cl_tls_ctx_opts *o, char *err, size_t errlen)
{
    const char *p = o->alpn != NULL ? o->alpn : "h2";
    size_t n = strlen(p);

    if (o->alpn_mode != CL_TLS_ALPN_REQUIRE && o->alpn_mode != CL_TLS_ALPN_OFFER &&
        o->alpn_mode != CL_TLS_ALPN_OFF) {
        snprintf(err, errlen, "unknown ALPN mode %d", (int)o->alpn_mode);
        return CL_EINVAL;
    }
    if (o->alpn_mode == CL_TLS_ALPN_OFF)
        return 0;
    /* wolfSSL_UseALPN takes a comma-separated list: one protocol, so no commas */
    if (n == 0 || n > CL_TLS_ALPN_MAX || strchr(p, ',') != NULL) {
        snprintf(err, errlen, "bad ALPN protocol name \"%.32s\"", p);
        return CL_EINVAL;
    }
    memcpy(c->alpn, p, n + 1);
    return 0;
}

int cl_tls_ctx_new(const struct cl_tls_ctx_opts *o, struct cl_tls_ctx **out, char *err,
                   size_t errlen)
{
    struct cl_tls_ctx *c;
    char dummy[8];
    int rc;

    if (err == NULL) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    cl_tls_global_init();
    if ((c = cl_calloc(1, sizeof(*c))) == NULL) {
        cl_tls_global_cleanup();
        return CL_ENOMEM;
    }
    c->refs = 1;
    c->server = o->server;
    c->cert_optional = o->cert_optional;
    c->alpn_mode = o->alpn_mode;
    if ((rc = set_alpn(c, o, err, errlen)) != 0 ||
        (o->peer_label != NULL && (c->peer_label = cl_strdup(o->peer_label)) == NULL) ||
        (rc = stamp(&c->files[0], o->cert_file)) != 0 ||
        (rc = stamp(&c->files[1], o->key_file)) != 0 ||
        (rc = stamp(&c->files[2], o->ca_file)) != 0 ||
        (c->ctx = build_ctx(o, err, errlen, &rc)) == NULL) {
        if (rc == 0)
            rc = CL_ENOMEM; /* the peer_label copy */
        cl_tls_ctx_unref(c);
        return rc;
    }
    describe_cert(o, &c->cert);
    /* reload re-reads files only: material from memory could not be re-read */
    c->reloadable = o->ca_file != NULL && (o->cert_file != NULL || o->cert_pem == NULL) &&
                    (o->key_file != NULL || o->key_pem == NULL);
    *out = c;
    return 0;
}

void cl_tls_ctx_ref(struct cl_tls_ctx *c)
{
    c->refs++;
}

void cl_tls_ctx_unref(struct cl_tls_ctx *c)
{
    if (c == NULL || --c->refs > 0)
        return;
    if (c->ctx != NULL)
        wolfSSL_CTX_free(c->ctx);
    for (int i = 0; i < 3; i++)
        cl_mem_free(c->files[i].path);
    cl_mem_free(c->peer_label);
    cl_mem_free(c);
    cl_tls_global_cleanup();
}

int cl_tls_ctx_reload(struct cl_tls_ctx *c, char *err, size_t errlen)
{
    struct cl_tls_ctx_opts o = {.server = c->server, .cert_optional = c->cert_optional};
    struct file_id now[3];
    bool changed = false, refused_before = c->have_failed;
    WOLFSSL_CTX *n;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (!c->reloadable)
        return 0; /* built from memory: nothing to watch */
    for (int i = 0; i < 3; i++) {
        file_id_get(c->files[i].path, &now[i]); /* before reading, as in stamp() */
        if (!file_id_eq(&now[i], &c->files[i].in_use))
            changed = true;
        if (!file_id_eq(&now[i], &c->files[i].failed))
            refused_before = false;
    }
    /* a set of files refused once is not read (nor reported) again until one of them changes */
    if (!changed || refused_before)
        return 0;
    o.cert_file = c->files[0].path;
    o.key_file = c->files[1].path;
    o.ca_file = c->files[2].path;
    if ((n = build_ctx(&o, err, errlen, &rc)) == NULL) {
        for (int i = 0; i < 3; i++)
            c->files[i].failed = now[i];
        c->have_failed = true;
        if (err != NULL && errlen > 0 && err[0] == '\0') /* err always says why */
            snprintf(err, errlen, "%s", cl_strerror(rc));
        return rc;
    }
    wolfSSL_CTX_free(c->ctx); /* live connections keep their own reference (wolfSSL_new) */
    c->ctx = n;
    for (int i = 0; i < 3; i++)
        c->files[i].in_use = now[i];
    c->have_failed = false;
    c->gen++;
    describe_cert(&o, &c->cert);
    return 1;
}

const struct cl_tls_cert_info *cl_tls_ctx_cert_info(const struct cl_tls_ctx *c)
{
    return &c->cert;
}

/* ---- connections --------------------------------------------------------------------------- */

struct cl_tls *cl_tls_new(struct cl_tls_ctx *ctx, const char *server_name)
{
    struct cl_tls *t = cl_calloc(1, sizeof(*t));
    /* no protocol of ours in the peer's list or selection: fail, or carry on without ALPN */
    int alpn_flag = ctx->alpn_mode == CL_TLS_ALPN_REQUIRE ? WOLFSSL_ALPN_FAILED_ON_MISMATCH
                                                          : WOLFSSL_ALPN_CONTINUE_ON_MISMATCH;

    if (t == NULL)
        return NULL;
    t->ctx = ctx;
    t->ctx_gen = ctx->gen;
    t->server = ctx->server;
    /* big chunks: one socket read and one uv_write buffer per 64 KiB of ciphertext */
    cl_bufq_init(&t->in, CL_BUFQ_BIG_CHUNK, IN_CHUNKS);
    cl_bufq_init(&t->out, CL_BUFQ_BIG_CHUNK, OUT_CHUNKS);
    if ((t->ssl = wolfSSL_new(ctx->ctx)) == NULL)
        goto fail;
    wolfSSL_SetIOReadCtx(t->ssl, t);
    wolfSSL_SetIOWriteCtx(t->ssl, t);
    if (ctx->alpn_mode != CL_TLS_ALPN_OFF &&
        wolfSSL_UseALPN(t->ssl, ctx->alpn, (unsigned)strlen(ctx->alpn), alpn_flag) !=
            WOLFSSL_SUCCESS)
        goto fail;
    if (!t->server && server_name != NULL) {
        if ((t->server_name = cl_strdup(server_name)) == NULL)
            goto fail;
        /* An IP literal is not sent as SNI (RFC 6066 3: host names only), and wolfSSL's name
         * check would compare it with DNS names: the iPAddress SAN check after the handshake
         * takes its place. */
        if (inet_pton(AF_INET, server_name, t->ip) == 1) {
            t->iplen = 4;
        } else if (inet_pton(AF_INET6, server_name, t->ip) == 1) {
            t->iplen = 16;
        } else if (wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, server_name,
                                  (unsigned short)strlen(server_name)) != WOLFSSL_SUCCESS ||
                   wolfSSL_check_domain_name(t->ssl, server_name) != WOLFSSL_SUCCESS) {
            goto fail;
        }
    }
    cl_tls_ctx_ref(ctx);
    return t;
fail:
    if (t->ssl != NULL)
        wolfSSL_free(t->ssl);
    cl_mem_free(t->server_name);
    cl_mem_free(t);
    return NULL;
}

void cl_tls_free(struct cl_tls *t)
{
    if (t == NULL)
        return;
    wolfSSL_free(t->ssl);
    cl_bufq_deinit(&t->in);
    cl_bufq_deinit(&t->out);
    cl_mem_free(t->server_name);
    cl_mem_free(t->cn);
    for (size_t i = 0; i < t->peer.ndns; i++)
        cl_mem_free(t->dns[i]);
    cl_tls_ctx_unref(t->ctx);
    cl_mem_free(t);
}

size_t cl_tls_in_reserve(struct cl_tls *t, uint8_t **p)
{
    return cl_bufq_reserve(&t->in, p);
}

void cl_tls_in_commit(struct cl_tls *t, size_t n)
{
    cl_bufq_commit(&t->in, n);
}

int cl_tls_feed(struct cl_tls *t, const void *data, size_t len)
{
    if (cl_bufq_space(&t->in) < len)
        return CL_EBUSY;
    return cl_bufq_write(&t->in, data, len) == (ssize_t)len ? 0 : CL_ENOMEM;
}

struct cl_bufq *cl_tls_outq(struct cl_tls *t)
{
    return &t->out;
}

/* Who the peer is in error details: the context's label, or `dflt`. */
static const char *who(const struct cl_tls *t, const char *dflt)
{
    return t->ctx->peer_label != NULL ? t->ctx->peer_label : dflt;
}

/* The peer did not select our ALPN protocol. */
static int alpn_error(struct cl_tls *t)
{
    if (t->ctx->alpn[0] == '\0') /* we offered none (CL_TLS_ALPN_OFF) */
        snprintf(t->detail, sizeof(t->detail), "%s requires ALPN", who(t, "peer"));
    else if (strcmp(t->ctx->alpn, "h2") == 0)
        snprintf(t->detail, sizeof(t->detail), "%s does not speak HTTP/2 (ALPN h2)",
                 who(t, "peer"));
    else
        snprintf(t->detail, sizeof(t->detail), "%s does not speak %s (ALPN)", who(t, "peer"),
                 t->ctx->alpn);
    return CL_ETLS_ALPN;
}

/* Maps a wolfSSL failure (ours, or an alert the peer sent) to a CL_ETLS_* code + detail. */
static int map_error(struct cl_tls *t, int werr)
{
    WOLFSSL_ALERT_HISTORY h;
    char buf[WOLFSSL_MAX_ERROR_SZ];
    int rc = CL_ETLS;

    switch (werr) {
    case ASN_AFTER_DATE_E:
    case ASN_BEFORE_DATE_E:
        rc = CL_ETLS_EXPIRED;
        snprintf(t->detail, sizeof(t->detail), "%s certificate %s", who(t, "peer"),
                 werr == ASN_AFTER_DATE_E ? "has expired" : "is not yet valid");
        return rc;
    case ASN_NO_SIGNER_E:
    case ASN_SIG_CONFIRM_E:
    case VERIFY_CERT_ERROR:
        if (t->ctx->peer_label != NULL)
            snprintf(t->detail, sizeof(t->detail),
                     "%s certificate is not signed by the configured CA", t->ctx->peer_label);
        else
            snprintf(t->detail, sizeof(t->detail),
                     "peer certificate is not signed by a trusted CA (unknown CA)");
        return CL_ETLS_UNKNOWN_CA;
    case DOMAIN_NAME_MISMATCH:
        snprintf(t->detail, sizeof(t->detail), "%s certificate does not name %s", who(t, "server"),
                 t->server_name != NULL ? t->server_name : "the expected peer");
        return CL_ETLS_NAME;
    case NO_PEER_CERT:
        snprintf(t->detail, sizeof(t->detail), "%s sent no certificate", who(t, "peer"));
        return CL_ETLS_NO_CERT;
    case UNKNOWN_ALPN_PROTOCOL_NAME_E:
        return alpn_error(t);
    default:
        break;
    }
    if (wolfSSL_get_alert_history(t->ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.code > 0 &&
        (werr == FATAL_ERROR || h.last_rx.level == alert_fatal)) {
        switch (h.last_rx.code) {
        case certificate_expired:
            snprintf(t->detail, sizeof(t->detail), "peer rejected our certificate: expired");
            return CL_ETLS_EXPIRED;
        case unknown_ca:
        case bad_certificate:
            snprintf(t->detail, sizeof(t->detail),
                     "peer rejected our certificate (alert %d: not signed by a CA it trusts)",
                     h.last_rx.code);
            return CL_ETLS_UNKNOWN_CA;
        case 116: /* certificate_required (TLS 1.3) */
            snprintf(t->detail, sizeof(t->detail), "peer requires a client certificate");
            return CL_ETLS_NO_CERT;
        case no_application_protocol:
            return alpn_error(t);
        default:
            snprintf(t->detail, sizeof(t->detail), "peer sent TLS alert %d", h.last_rx.code);
            return CL_ETLS;
        }
    }
    wolfSSL_ERR_error_string_n((unsigned long)werr, buf, sizeof(buf));
    snprintf(t->detail, sizeof(t->detail), "TLS error %d: %s", werr, buf);
    return rc;
}

static int collect_peer(struct cl_tls *t)
{
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(t->ssl);
    char cn[256] = "";
    char *alt;

    if (x == NULL) {
        snprintf(t->detail, sizeof(t->detail), "peer sent no certificate");
        return CL_ETLS_NO_CERT;
    }
    wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, cn,
                                      sizeof(cn));
    if ((t->cn = cl_strdup(cn)) == NULL)
        goto oom;
    while ((alt = wolfSSL_X509_get_next_altname(x)) != NULL && t->peer.ndns < MAX_SANS) {
        if ((t->dns[t->peer.ndns] = cl_strdup(alt)) == NULL)
            goto oom;
        t->dns_view[t->peer.ndns] = t->dns[t->peer.ndns];
        t->peer.ndns++;
    }
    wolfSSL_X509_free(x);
    t->peer.cn = t->cn;
    t->peer.dns = t->dns_view;
    return 0;
oom:
    wolfSSL_X509_free(x);
    return CL_ENOMEM;
}

/* The server was addressed by an IP literal: its certificate must carry it as an IP SAN. */
static int check_ip_san(struct cl_tls *t)
{
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(t->ssl);
    const unsigned char *der;
    int len = 0;
    bool ok = false;

    if (x != NULL && (der = wolfSSL_X509_get_der(x, &len)) != NULL && len > 0)
        ok = cl_x509_has_ip_san(der, (size_t)len, t->ip, t->iplen);
    wolfSSL_X509_free(x);
    if (!ok) {
        snprintf(t->detail, sizeof(t->detail), "%s certificate has no IP address SAN %s",
                 who(t, "server"), t->server_name);
        return CL_ETLS_NAME;
    }
    return 0;
}

int cl_tls_handshake(struct cl_tls *t)
{
    char *proto = NULL;
    unsigned short plen = 0;
    int rc, werr;

    if (t->established)
        return 0;
    if (t->no_alpn)
        return CL_ETLS_ALPN;
    rc = t->server ? wolfSSL_accept(t->ssl) : wolfSSL_connect(t->ssl);
    if (rc != WOLFSSL_SUCCESS) {
        werr = wolfSSL_get_error(t->ssl, rc);
        if (werr == WOLFSSL_ERROR_WANT_READ || werr == WOLFSSL_ERROR_WANT_WRITE)
            return CL_EAGAIN;
        return map_error(t, werr);
    }
    if (t->ctx->alpn_mode != CL_TLS_ALPN_OFF &&
        wolfSSL_ALPN_GetProtocol(t->ssl, &proto, &plen) == WOLFSSL_SUCCESS && plen > 0) {
        /* wolfSSL only reports a protocol from our list, which has one: checked anyway */
        if (plen != strlen(t->ctx->alpn) || memcmp(proto, t->ctx->alpn, plen) != 0)
            return alpn_error(t);
        memcpy(t->alpn, t->ctx->alpn, plen + 1);
    } else if (t->ctx->alpn_mode == CL_TLS_ALPN_REQUIRE) {
        if (!t->server)
            return alpn_error(t);
        /* the client named no protocol at all (a mismatch fails inside wolfSSL_accept): most
         * likely an HTTP/1.1 client, to which the session can still say why it is refused */
        t->no_alpn = true;
        snprintf(t->detail, sizeof(t->detail),
                 "client offered no ALPN protocol (this port requires ALPN %s)", t->ctx->alpn);
        return CL_ETLS_ALPN;
    }
    if (t->iplen > 0 && (rc = check_ip_san(t)) != 0)
        return rc;
    if ((rc = collect_peer(t)) != 0)
        return rc;
    t->established = true;
    return 0;
}

bool cl_tls_is_established(const struct cl_tls *t)
{
    return t->established;
}

bool cl_tls_is_open_without_alpn(const struct cl_tls *t)
{
    return t->no_alpn;
}

bool cl_tls_is_stale(const struct cl_tls *t)
{
    return t->ctx_gen != t->ctx->gen;
}

ssize_t cl_tls_read(struct cl_tls *t, void *buf, size_t len)
{
    int n, werr;

    if (!t->established && !t->no_alpn)
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

ssize_t cl_tls_write(struct cl_tls *t, const void *buf, size_t len)
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

int cl_tls_shutdown(struct cl_tls *t)
{
    int rc = wolfSSL_shutdown(t->ssl);

    return rc == WOLFSSL_SUCCESS || rc == WOLFSSL_SHUTDOWN_NOT_DONE ? 0 : CL_ETLS;
}

const struct cl_tls_peer *cl_tls_peer(const struct cl_tls *t)
{
    return t->established ? &t->peer : NULL;
}

bool cl_tls_peer_has_name(const struct cl_tls_peer *p, const char *name)
{
    if (p == NULL || name == NULL)
        return false;
    for (size_t i = 0; i < p->ndns; i++) {
        if (strcmp(p->dns[i], name) == 0)
            return true;
    }
    return p->ndns == 0 && p->cn != NULL && strcmp(p->cn, name) == 0;
}

const char *cl_tls_alpn(const struct cl_tls *t)
{
    return t->alpn[0] != '\0' ? t->alpn : NULL;
}

const char *cl_tls_version(const struct cl_tls *t)
{
    return wolfSSL_get_version(t->ssl);
}

const char *cl_tls_error_detail(const struct cl_tls *t)
{
    return t->detail;
}
