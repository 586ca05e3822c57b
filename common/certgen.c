/*
 * Certificate generation with wolfCrypt: ECDSA P-256 keys, SHA-256 signatures, X.509 v3 with
 * basicConstraints, keyUsage, extendedKeyUsage, subject/authority key identifiers and DNS SANs.
 *
 * Validity is written as raw ASN.1 (tag, length, value) into Cert.beforeDate/afterDate, which
 * wolfSSL copies verbatim (asn.c CopyValidity / the template encoder), so any instant can be
 * encoded: tests need expired and not-yet-valid certificates. RFC 5280 4.1.2.5: UTCTime for
 * years 1950..2049, GeneralizedTime otherwise.
 */
#include "cl/certgen.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include "cl/err.h"
#include "cl/mem.h"
#include "cl/str.h"

#define DEFAULT_SKEW_S  3600
#define DEFAULT_VALID_S (365LL * 24 * 3600)
#define SERIAL_LEN      16
#define DER_MAX         8192
#define KEY_DER_MAX     512

/* Maps a wolfCrypt error to ours. */
static int map_wc(int rc)
{
    if (rc == MEMORY_E)
        return CL_ENOMEM;
    return CL_ETLS;
}

/* Writes a DER length; returns bytes written (at most 3 for our sizes) or 0 if too long. */
static size_t der_len(uint8_t *out, size_t len)
{
    if (len < 0x80) {
        out[0] = (uint8_t)len;
        return 1;
    }
    if (len <= 0xff) {
        out[0] = 0x81;
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[0] = 0x82;
        out[1] = (uint8_t)(len >> 8);
        out[2] = (uint8_t)len;
        return 3;
    }
    return 0;
}

/* Encodes a unix time as UTCTime or GeneralizedTime with tag and length. */
static int encode_time(int64_t t, uint8_t *out, int *outlen)
{
    struct tm tm;
    time_t tt = (time_t)t;
    char s[32];
    int n;

    if (gmtime_r(&tt, &tm) == NULL)
        return CL_EINVAL;
    if (tm.tm_year + 1900 >= 1950 && tm.tm_year + 1900 < 2050) {
        n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = ASN_UTC_TIME;
    } else {
        if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
            return CL_EINVAL;
        n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = ASN_GENERALIZED_TIME;
    }
    if (n <= 0 || n + 2 > CTC_DATE_SIZE)
        return CL_EINVAL;
    out[1] = (uint8_t)n;
    memcpy(out + 2, s, (size_t)n);
    *outlen = n + 2;
    return 0;
}

static int set_validity(Cert *c, int64_t not_before, int64_t not_after)
{
    int rc;

    if (not_before == 0)
        not_before = (int64_t)time(NULL) - DEFAULT_SKEW_S;
    if (not_after == 0)
        not_after = not_before + DEFAULT_VALID_S;
    if (not_after <= not_before)
        return CL_EINVAL;
    if ((rc = encode_time(not_before, c->beforeDate, &c->beforeDateSz)) != 0)
        return rc;
    return encode_time(not_after, c->afterDate, &c->afterDateSz);
}

/*
 * Builds GeneralNames (SEQUENCE OF [2] IA5String dNSName, then [7] OCTET STRING iPAddress) into
 * c->altNames.
 */
static int set_sans(Cert *c, const char *const *dns, size_t ndns, const char *const *ips,
                    size_t nips)
{
    uint8_t ipb[CL_CERTGEN_MAX_IPS][16];
    size_t iplen[CL_CERTGEN_MAX_IPS];
    size_t body = 0;
    size_t off;
    uint8_t hdr[4];

    if (ndns == 0 && nips == 0)
        return 0;
    if (nips > CL_CERTGEN_MAX_IPS)
        return CL_EINVAL;
    for (size_t i = 0; i < ndns; i++) {
        size_t l = dns[i] != NULL ? strlen(dns[i]) : 0;
        if (l == 0 || l > 253)
            return CL_EINVAL;
        for (size_t k = 0; k < l; k++) {
            unsigned char ch = (unsigned char)dns[i][k];
            if (ch <= 0x20 || ch >= 0x7f) // IA5 printable, no spaces
                return CL_EINVAL;
        }
        body += 1 + der_len(hdr, l) + l;
    }
    for (size_t i = 0; i < nips; i++) {
        if (ips[i] != NULL && inet_pton(AF_INET, ips[i], ipb[i]) == 1)
            iplen[i] = 4;
        else if (ips[i] != NULL && inet_pton(AF_INET6, ips[i], ipb[i]) == 1)
            iplen[i] = 16;
        else
            return CL_EINVAL;
        body += 2 + iplen[i];
    }
    off = 1;
    c->altNames[0] = ASN_SEQUENCE | ASN_CONSTRUCTED;
    if (body + 8 > sizeof(c->altNames))
        return CL_EINVAL;
    off += der_len(c->altNames + off, body);
    for (size_t i = 0; i < ndns; i++) {
        size_t l = strlen(dns[i]);
        c->altNames[off++] = ASN_CONTEXT_SPECIFIC | ASN_DNS_TYPE;
        off += der_len(c->altNames + off, l);
        memcpy(c->altNames + off, dns[i], l);
        off += l;
    }
    for (size_t i = 0; i < nips; i++) {
        c->altNames[off++] = ASN_CONTEXT_SPECIFIC | ASN_IP_TYPE;
        c->altNames[off++] = (uint8_t)iplen[i];
        memcpy(c->altNames + off, ipb[i], iplen[i]);
        off += iplen[i];
    }
    c->altNamesSz = (int)off;
    return 0;
}

static int set_common(Cert *c, WC_RNG *rng, const char *cn, int64_t not_before, int64_t not_after)
{
    int rc;

    if (cn == NULL || cn[0] == '\0' || strlen(cn) >= CTC_NAME_SIZE)
        return CL_EINVAL;
    if ((rc = wc_InitCert(c)) != 0)
        return map_wc(rc);
    c->version = 2; // X.509 v3
    c->sigType = CTC_SHA256wECDSA;
    cl_strlcpy(c->subject.commonName, cn, sizeof(c->subject.commonName));
    c->subject.commonNameEnc = CTC_UTF8;
    cl_strlcpy(c->subject.org, "ClusterLink", sizeof(c->subject.org));
    c->subject.orgEnc = CTC_UTF8;
    if ((rc = wc_RNG_GenerateBlock(rng, c->serial, SERIAL_LEN)) != 0)
        return map_wc(rc);
    c->serial[0] &= 0x7f; // positive INTEGER
    c->serial[0] |= 0x40; // and no leading zero byte to strip
    c->serialSz = SERIAL_LEN;
    return set_validity(c, not_before, not_after);
}

/* DER -> new PEM string. */
static int to_pem(const uint8_t *der, size_t derlen, int type, char **out)
{
    size_t cap = derlen * 2 + 128;
    char *pem = cl_malloc(cap);
    int n;

    if (pem == NULL)
        return CL_ENOMEM;
    n = wc_DerToPem(der, (word32)derlen, (byte *)pem, (word32)(cap - 1), type);
    if (n <= 0) {
        cl_mem_free(pem);
        return map_wc(n);
    }
    pem[n] = '\0';
    *out = pem;
    return 0;
}

static int key_to_pem(ecc_key *key, char **out)
{
    uint8_t der[KEY_DER_MAX];
    int n = wc_EccKeyToDer(key, der, sizeof(der));
    int rc;

    if (n <= 0)
        return map_wc(n);
    rc = to_pem(der, (size_t)n, ECC_PRIVATEKEY_TYPE, out);
    memset(der, 0, sizeof(der));
    return rc;
}

/* Makes and signs the certificate `c` for `key`, signed by `signer`; writes PEM. */
static int make_signed(Cert *c, ecc_key *key, ecc_key *signer, WC_RNG *rng, char **cert_pem)
{
    uint8_t *der = cl_malloc(DER_MAX);
    int n;
    int rc;

    if (der == NULL)
        return CL_ENOMEM;
    n = wc_MakeCert_ex(c, der, DER_MAX, ECC_TYPE, key, rng);
    if (n <= 0) {
        rc = map_wc(n);
        goto out;
    }
    n = wc_SignCert_ex(c->bodySz, c->sigType, der, DER_MAX, ECC_TYPE, signer, rng);
    if (n <= 0) {
        rc = map_wc(n);
        goto out;
    }
    rc = to_pem(der, (size_t)n, CERT_TYPE, cert_pem);
out:
    cl_mem_free(der);
    return rc;
}

/* A certificate being made: its fields, its new P-256 key and the RNG both draw from. */
struct build {
    Cert *c;
    WC_RNG rng;
    ecc_key key;
    bool have_rng;
    bool have_key;
};

/* Starts a certificate for `cn` (serial, validity, subject) with a new key and its subject key
 * identifier. build_end() must follow whatever this returns. */
static int build_begin(struct build *b, const char *cn, int64_t not_before, int64_t not_after)
{
    int rc;

    memset(b, 0, sizeof(*b));
    if ((b->c = cl_calloc(1, sizeof(*b->c))) == NULL)
        return CL_ENOMEM;
    if ((rc = wc_InitRng(&b->rng)) != 0)
        return map_wc(rc);
    b->have_rng = true;
    if ((rc = set_common(b->c, &b->rng, cn, not_before, not_after)) != 0)
        return rc;
    if ((rc = wc_ecc_init(&b->key)) != 0)
        return map_wc(rc);
    b->have_key = true;
    if ((rc = wc_ecc_make_key_ex(&b->rng, 32, &b->key, ECC_SECP256R1)) != 0 ||
        (rc = wc_SetSubjectKeyIdFromPublicKey(b->c, NULL, &b->key)) != 0)
        return map_wc(rc);
    return 0;
}

/* Signs the certificate with `signer` (NULL: its own key) and hands out both PEM strings (new),
 * both or neither. */
static int build_finish(struct build *b, ecc_key *signer, char **cert_pem, char **key_pem)
{
    char *cpem = NULL;
    int rc;

    if ((rc = make_signed(b->c, &b->key, signer != NULL ? signer : &b->key, &b->rng, &cpem)) != 0)
        return rc;
    if ((rc = key_to_pem(&b->key, key_pem)) != 0) {
        cl_free(&cpem);
        return rc;
    }
    *cert_pem = cpem;
    return 0;
}

static void build_end(struct build *b)
{
    if (b->have_key)
        wc_ecc_free(&b->key);
    if (b->have_rng)
        wc_FreeRng(&b->rng);
    cl_free(&b->c);
}

int cl_certgen_ca(const char *cn, int64_t not_before, int64_t not_after, char **cert_pem,
                  char **key_pem)
{
    struct build b;
    int rc;

    if (cert_pem == NULL || key_pem == NULL)
        return CL_EINVAL;
    if ((rc = build_begin(&b, cn, not_before, not_after)) != 0)
        goto out;
    if ((rc = wc_SetAuthKeyIdFromPublicKey(b.c, NULL, &b.key)) != 0 ||
        (rc = wc_SetKeyUsage(b.c, "keyCertSign,cRLSign,digitalSignature")) != 0) {
        rc = map_wc(rc);
        goto out;
    }
    b.c->isCA = 1;
    b.c->pathLenSet = 1;
    b.c->pathLen = 0; // signs leaves only
    b.c->selfSigned = 1;
    rc = build_finish(&b, NULL, cert_pem, key_pem);
out:
    build_end(&b);
    return rc;
}

/* PEM CA certificate -> new DER buffer. */
static int ca_cert_der(const char *pem, uint8_t **der, int *derlen)
{
    size_t len = strlen(pem);
    uint8_t *buf = cl_malloc(len + 1);
    int n;

    if (buf == NULL)
        return CL_ENOMEM;
    n = wc_CertPemToDer((const unsigned char *)pem, (int)len, buf, (int)len, CERT_TYPE);
    if (n <= 0) {
        cl_mem_free(buf);
        return n == MEMORY_E ? CL_ENOMEM : CL_EINVAL;
    }
    *der = buf;
    *derlen = n;
    return 0;
}

/* PEM private key (SEC1 or PKCS#8) -> initialised ecc_key. */
static int ca_key_load(const char *pem, ecc_key *key)
{
    size_t len = strlen(pem);
    uint8_t *buf = cl_malloc(len + 1);
    word32 idx = 0;
    int n, rc;

    if (buf == NULL)
        return CL_ENOMEM;
    n = wc_KeyPemToDer((const unsigned char *)pem, (int)len, buf, (int)len, NULL);
    if (n <= 0) {
        rc = n == MEMORY_E ? CL_ENOMEM : CL_EINVAL;
        goto out;
    }
    rc = wc_EccPrivateKeyDecode(buf, &idx, key, (word32)n);
    if (rc != 0) {
        /* PKCS#8 wrapping: strip it and retry */
        word32 start = 0;
        int off = wc_GetPkcs8TraditionalOffset(buf, &start, (word32)n);
        wc_ecc_free(key);
        if (off >= 0 && wc_ecc_init(key) == 0) {
            idx = (word32)off;
            rc = wc_EccPrivateKeyDecode(buf, &idx, key, (word32)n);
        } else {
            (void)wc_ecc_init(key); // leave it freeable
        }
    }
    rc = rc == 0 ? 0 : CL_EINVAL;
out:
    memset(buf, 0, len + 1);
    cl_mem_free(buf);
    return rc;
}

/* The CA key must be the one certified by the CA certificate, or every leaf would be junk. */
static int check_key_matches(const uint8_t *cader, int caderlen, ecc_key *cakey)
{
    WOLFSSL_X509 *x = wolfSSL_X509_d2i(NULL, cader, caderlen);
    uint8_t a[KEY_DER_MAX], b[KEY_DER_MAX];
    int alen = (int)sizeof(a);
    int blen;
    int rc = CL_EINVAL;

    if (x == NULL)
        return CL_EINVAL;
    if (wolfSSL_X509_get_pubkey_buffer(x, a, &alen) != WOLFSSL_SUCCESS)
        goto out;
    blen = wc_EccPublicKeyToDer(cakey, b, sizeof(b), 1);
    if (blen > 0 && blen == alen && memcmp(a, b, (size_t)alen) == 0)
        rc = 0;
out:
    wolfSSL_X509_free(x);
    return rc;
}

int cl_certgen_leaf(const char *ca_cert_pem, const char *ca_key_pem,
                    const struct cl_certgen_opts *o, char **cert_pem, char **key_pem)
{
    struct build b;
    ecc_key cakey;
    bool have_cakey = false;
    uint8_t *cader = NULL;
    int caderlen = 0;
    char eku[32] = "";
    int rc;

    if (ca_cert_pem == NULL || ca_key_pem == NULL || o == NULL || cert_pem == NULL ||
        key_pem == NULL || (o->ndns > 0 && o->dns == NULL) || (o->nips > 0 && o->ips == NULL))
        return CL_EINVAL;
    if ((rc = build_begin(&b, o->cn, o->not_before, o->not_after)) != 0)
        goto out;
    if ((rc = set_sans(b.c, o->dns, o->ndns, o->ips, o->nips)) != 0)
        goto out;
    if ((rc = ca_cert_der(ca_cert_pem, &cader, &caderlen)) != 0)
        goto out;
    if ((rc = wc_ecc_init(&cakey)) != 0) {
        rc = map_wc(rc);
        goto out;
    }
    have_cakey = true;
    if ((rc = ca_key_load(ca_key_pem, &cakey)) != 0)
        goto out;
    if ((rc = check_key_matches(cader, caderlen, &cakey)) != 0)
        goto out;
    if (wc_SetIssuerBuffer(b.c, cader, caderlen) != 0 ||
        wc_SetAuthKeyIdFromCert(b.c, cader, caderlen) != 0) {
        rc = CL_EINVAL;
        goto out;
    }
    if (o->server_auth)
        cl_strlcpy(eku, "serverAuth", sizeof(eku));
    if (o->client_auth)
        cl_strlcpy(eku + strlen(eku), eku[0] != '\0' ? ",clientAuth" : "clientAuth",
                   sizeof(eku) - strlen(eku));
    if ((rc = wc_SetKeyUsage(b.c, "digitalSignature,keyAgreement")) != 0 ||
        (eku[0] != '\0' && (rc = wc_SetExtKeyUsage(b.c, eku)) != 0)) {
        rc = map_wc(rc);
        goto out;
    }
    b.c->isCA = 0;
    b.c->basicConstSet = 1; // write basicConstraints CA:FALSE explicitly
    rc = build_finish(&b, &cakey, cert_pem, key_pem);
out:
    cl_free(&cader);
    if (have_cakey)
        wc_ecc_free(&cakey);
    build_end(&b);
    return rc;
}
