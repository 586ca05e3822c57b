/* cl_x509_has_ip_san: real certificates (openssl-made and certgen-made, with and without IP
 * SANs), hand-built DER for the corners (critical flag, an address spelled as a DNS name,
 * other GeneralName kinds), and malformed input: truncations, every single-byte corruption,
 * multi-byte tags, indefinite and oversized lengths. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "cl/certgen.h"
#include "cl/mem.h"
#include "cl/x509.h"
#include "cm.h"
#include "rows.h"

/* An openssl-made certificate with SANs DNS:kubernetes, IP:10.96.0.1, IP:fd00::1 (DER; only
 * parsed here, never used for TLS). */
static const unsigned char san_der[] = {
    0x30, 0x82, 0x01, 0xb4, 0x30, 0x82, 0x01, 0x5b, 0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x14, 0x6f,
    0xfc, 0x72, 0xab, 0x73, 0x8a, 0x52, 0x34, 0x02, 0x34, 0x46, 0x2f, 0x88, 0x2d, 0xfa, 0x2c, 0x1d,
    0x98, 0xeb, 0xc0, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x30,
    0x19, 0x31, 0x17, 0x30, 0x15, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x0e, 0x6b, 0x75, 0x62, 0x65,
    0x2d, 0x61, 0x70, 0x69, 0x73, 0x65, 0x72, 0x76, 0x65, 0x72, 0x30, 0x20, 0x17, 0x0d, 0x32, 0x36,
    0x31, 0x31, 0x32, 0x39, 0x32, 0x33, 0x33, 0x34, 0x30, 0x32, 0x5a, 0x18, 0x0f, 0x32, 0x31, 0x32,
    0x36, 0x31, 0x31, 0x30, 0x35, 0x32, 0x33, 0x33, 0x34, 0x30, 0x32, 0x5a, 0x30, 0x19, 0x31, 0x17,
    0x30, 0x15, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x0e, 0x6b, 0x75, 0x62, 0x65, 0x2d, 0x61, 0x70,
    0x69, 0x73, 0x65, 0x72, 0x76, 0x65, 0x72, 0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42,
    0x00, 0x04, 0x5b, 0x8c, 0x9b, 0x38, 0xde, 0x8a, 0xcb, 0x52, 0xd4, 0xd5, 0xb6, 0xa9, 0x36, 0x53,
    0x42, 0x0f, 0xb5, 0x5e, 0x6c, 0xe1, 0x42, 0x85, 0x35, 0xe4, 0xf4, 0xf2, 0xb8, 0x95, 0xa1, 0x92,
    0xaf, 0xae, 0x67, 0xfc, 0xd1, 0x32, 0x91, 0x5b, 0x13, 0x7f, 0xa1, 0x6e, 0x98, 0xeb, 0xd0, 0x7c,
    0x49, 0x6c, 0xfa, 0xdd, 0x51, 0xe9, 0x0a, 0xb2, 0x21, 0x21, 0x87, 0x43, 0x9b, 0xd6, 0x7a, 0x40,
    0x4b, 0xeb, 0xa3, 0x7f, 0x30, 0x7d, 0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d, 0x0e, 0x04, 0x16, 0x04,
    0x14, 0xaa, 0xa0, 0xd4, 0xf3, 0x7f, 0xe5, 0x66, 0x40, 0xdd, 0xa8, 0x65, 0x9f, 0x7c, 0x50, 0x60,
    0xaa, 0xf7, 0xc0, 0xf5, 0xeb, 0x30, 0x1f, 0x06, 0x03, 0x55, 0x1d, 0x23, 0x04, 0x18, 0x30, 0x16,
    0x80, 0x14, 0xaa, 0xa0, 0xd4, 0xf3, 0x7f, 0xe5, 0x66, 0x40, 0xdd, 0xa8, 0x65, 0x9f, 0x7c, 0x50,
    0x60, 0xaa, 0xf7, 0xc0, 0xf5, 0xeb, 0x30, 0x2d, 0x06, 0x03, 0x55, 0x1d, 0x11, 0x04, 0x26, 0x30,
    0x24, 0x82, 0x0a, 0x6b, 0x75, 0x62, 0x65, 0x72, 0x6e, 0x65, 0x74, 0x65, 0x73, 0x87, 0x04, 0x0a,
    0x60, 0x00, 0x01, 0x87, 0x10, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04,
    0x02, 0x30, 0x00, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x03,
    0x47, 0x00, 0x30, 0x44, 0x02, 0x20, 0x7c, 0x45, 0xeb, 0x0f, 0x34, 0xea, 0x64, 0xf8, 0x3f, 0xc2,
    0xc9, 0xe1, 0x10, 0x9c, 0xca, 0x28, 0x59, 0xab, 0xe4, 0x47, 0xdf, 0x7b, 0x5f, 0x4a, 0x27, 0x73,
    0x5d, 0xcd, 0xbd, 0xc2, 0x49, 0x85, 0x02, 0x20, 0x32, 0xd3, 0x2f, 0x80, 0xbf, 0x21, 0x6d, 0x6a,
    0xa5, 0x4a, 0x65, 0x83, 0x2a, 0xff, 0x6e, 0x30, 0x13, 0x07, 0x66, 0x9d, 0xed, 0x93, 0x72, 0xe1,
    0x13, 0x09, 0x23, 0xd6, 0x00, 0x19, 0xf2, 0xdd};

static uint8_t v4[4], v6[16], other4[4], other6[16];

static int setup(void **state)
{
    (void)state;
    if (inet_pton(AF_INET, "10.96.0.1", v4) != 1 || inet_pton(AF_INET6, "fd00::1", v6) != 1 ||
        inet_pton(AF_INET, "10.96.0.2", other4) != 1 || inet_pton(AF_INET6, "fd00::2", other6) != 1)
        return -1;
    return wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    wolfSSL_Cleanup();
    return 0;
}

/* True when `needle` occurs in `hay` (the only way a "yes" can be right). */
static bool contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    return memmem(hay, n, needle, m) != NULL;
}

static void openssl_certificate(void **state)
{
    (void)state;
    assert_true(cl_x509_has_ip_san(san_der, sizeof(san_der), v4, 4));
    assert_true(cl_x509_has_ip_san(san_der, sizeof(san_der), v6, 16));
    assert_false(cl_x509_has_ip_san(san_der, sizeof(san_der), other4, 4));
    assert_false(cl_x509_has_ip_san(san_der, sizeof(san_der), other6, 16));
    /* the IPv4 address padded into 16 bytes is another address */
    uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(mapped + 12, v4, 4);
    assert_false(cl_x509_has_ip_san(san_der, sizeof(san_der), mapped, 16));
    /* only 4 and 16 bytes are addresses; NULLs are "no" */
    assert_false(cl_x509_has_ip_san(san_der, sizeof(san_der), v6, 5));
    assert_false(cl_x509_has_ip_san(san_der, sizeof(san_der), v4, 0));
    assert_false(cl_x509_has_ip_san(NULL, 10, v4, 4));
    assert_false(cl_x509_has_ip_san(san_der, sizeof(san_der), NULL, 4));
}

/* PEM -> DER with wolfSSL; returns the length. */
static size_t to_der(const char *pem, uint8_t *out, size_t cap)
{
    int n = wolfSSL_CertPemToDer((const unsigned char *)pem, (int)strlen(pem), out, (int)cap,
                                 CERT_TYPE);
    assert_true(n > 0);
    return (size_t)n;
}

static void certgen_certificates(void **state)
{
    const char *dns[] = {"kubernetes.default.svc"};
    const char *ips[] = {"10.96.0.1", "fd00::1"};
    struct cl_certgen_opts with = {
        .cn = "apiserver", .dns = dns, .ndns = 1, .ips = ips, .nips = 2, .server_auth = true};
    struct cl_certgen_opts without = {.cn = "apiserver", .dns = dns, .ndns = 1};
    struct cl_certgen_opts only_ip = {.cn = "apiserver", .ips = ips, .nips = 1};

    /* the leaf each row makes (NULL: the CA certificate itself), and whether it names v4/v6 */
    const struct {
        const char *what;
        const struct cl_certgen_opts *leaf;
        bool v4, v6;
    } rows[] = {
        {"both addresses", &with, true, true},
        {"DNS names only", &without, false, false},
        {"the IPv4 address only", &only_ip, true, false},
        {"a CA certificate has no SAN extension at all", NULL, false, false},
    };

    char *ca = NULL, *ca_key = NULL;
    uint8_t der[4096];
    size_t i, n;
    (void)state;

    assert_int_equal(cl_certgen_ca("ca", 0, 0, &ca, &ca_key), 0);
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *row = rows[i].what;
        char *cert = NULL, *key = NULL;
        if (rows[i].leaf != NULL)
            CL_TEST_ROW_INT(row, cl_certgen_leaf(ca, ca_key, rows[i].leaf, &cert, &key), 0);
        n = to_der(rows[i].leaf != NULL ? cert : ca, der, sizeof(der));
        CL_TEST_ROW_INT(row, cl_x509_has_ip_san(der, n, v4, 4), rows[i].v4);
        CL_TEST_ROW_INT(row, cl_x509_has_ip_san(der, n, v6, 16), rows[i].v6);
        CL_TEST_ROW_INT(row, cl_x509_has_ip_san(der, n, other4, 4), false);
        cl_free(&cert);
        cl_free(&key);
    }
    assert_int_equal(i, 4); /* every row ran */
    cl_free(&ca);
    cl_free(&ca_key);
}

/* DER helper: tag + length + content written to out; returns the bytes written. */
static size_t tlv(uint8_t *out, uint8_t tag, const uint8_t *v, size_t n)
{
    size_t i = 0;

    out[i++] = tag;
    if (n < 128) {
        out[i++] = (uint8_t)n;
    } else {
        out[i++] = 0x82;
        out[i++] = (uint8_t)(n >> 8);
        out[i++] = (uint8_t)n;
    }
    memmove(out + i, v, n);
    return i + n;
}

/*
 * Certificate{tbs{[0] version, INT serial, [3]{SEQ{other extension, SEQ{OID SAN, [BOOL],
 * OCTET{SEQ{names}}}}}}}, signature parts left out (the check never reads them).
 */
static size_t make_cert(uint8_t *cert, const uint8_t *names, size_t nlen, bool critical)
{
    static const uint8_t bc[] = {0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x13,
                                 0x01, 0x01, 0xff, 0x04, 0x02, 0x30, 0x00}; /* basicConstraints */
    uint8_t tmp[512], ext[512], exts[512], tbs[512];
    size_t m, e = 0, x, t = 0;

    m = tlv(tmp, 0x30, names, nlen); /* GeneralNames */
    e += tlv(ext + e, 0x06, (const uint8_t *)"\x55\x1d\x11", 3);
    if (critical)
        e += tlv(ext + e, 0x01, (const uint8_t *)"\xff", 1);
    e += tlv(ext + e, 0x04, tmp, m);
    memcpy(exts, bc, sizeof(bc));
    x = sizeof(bc) + tlv(exts + sizeof(bc), 0x30, ext, e); /* Extension */
    m = tlv(tmp, 0x30, exts, x);                           /* Extensions */
    x = tlv(exts, 0xa3, tmp, m);
    t += tlv(tbs + t, 0xa0, (const uint8_t *)"\x02\x01\x02", 3);
    t += tlv(tbs + t, 0x02, (const uint8_t *)"\x01", 1);
    memcpy(tbs + t, exts, x);
    t += x;
    m = tlv(tmp, 0x30, tbs, t);
    return tlv(cert, 0x30, tmp, m);
}

static void hand_made(void **state)
{
    uint8_t names[128], cert[600];
    size_t n = 0, c;
    (void)state;

    n += tlv(names + n, 0x82, (const uint8_t *)"kubernetes", 10);  /* dNSName */
    n += tlv(names + n, 0xa4, (const uint8_t *)"\x30\x00", 2);     /* directoryName */
    n += tlv(names + n, 0x87, (const uint8_t *)"\x0a\x60\x00", 3); /* a short "address" */
    n += tlv(names + n, 0x87, v4, 4);
    for (int critical = 0; critical < 2; critical++) {
        c = make_cert(cert, names, n, critical);
        assert_true(cl_x509_has_ip_san(cert, c, v4, 4));
        assert_false(cl_x509_has_ip_san(cert, c, v6, 16));
        /* the same bytes as a DNS name are not an IP SAN */
        assert_false(cl_x509_has_ip_san(cert, c, (const uint8_t *)"kube", 4));
        /* trailing bytes after the certificate do not matter */
        cert[c] = 0;
        assert_true(cl_x509_has_ip_san(cert, c + 1, v4, 4));
    }
    /* an address-and-mask ([7] with 8 bytes, as in name constraints) is not the address */
    uint8_t masked[16];
    memcpy(masked, v4, 4);
    memset(masked + 4, 0xff, 4);
    n = tlv(names, 0x87, masked, 8);
    c = make_cert(cert, names, n, false);
    assert_false(cl_x509_has_ip_san(cert, c, v4, 4));
    /* the address as a DNS name only */
    n = tlv(names, 0x82, v4, 4);
    c = make_cert(cert, names, n, false);
    assert_false(cl_x509_has_ip_san(cert, c, v4, 4));
    /* the SAN extension value is not an OCTET STRING */
    n = tlv(names, 0x87, v4, 4);
    c = make_cert(cert, names, n, false);
    uint8_t *oct = memmem(cert, c, "\x55\x1d\x11\x04", 4);
    assert_non_null(oct);
    assert_true(cl_x509_has_ip_san(cert, c, v4, 4));
    oct[3] = 0x03;
    assert_false(cl_x509_has_ip_san(cert, c, v4, 4));
}

static void malformed(void **state)
{
    uint8_t buf[sizeof(san_der)];
    (void)state;

    /* every truncation is "no", never a read past the end (ASan) */
    for (size_t n = 0; n < sizeof(san_der); n++) {
        uint8_t *copy = cl_malloc(n > 0 ? n : 1);
        assert_non_null(copy);
        memcpy(copy, san_der, n);
        assert_false(cl_x509_has_ip_san(copy, n, v4, 4));
        cl_mem_free(copy);
    }
    /* every single-byte corruption: no crash, and a "yes" only while the address is there */
    for (size_t i = 0; i < sizeof(san_der); i++) {
        static const uint8_t vals[] = {0x00, 0x1f, 0x30, 0x7f, 0x80, 0x81, 0x84, 0x85, 0xa3, 0xff};
        for (size_t k = 0; k < sizeof(vals); k++) {
            memcpy(buf, san_der, sizeof(buf));
            buf[i] = vals[k];
            if (cl_x509_has_ip_san(buf, sizeof(buf), v4, 4))
                assert_true(contains(buf, sizeof(buf), v4, 4));
            if (cl_x509_has_ip_san(buf, sizeof(buf), v6, 16))
                assert_true(contains(buf, sizeof(buf), v6, 16));
        }
    }
    memcpy(buf, san_der, sizeof(buf));
    buf[0] = 0x1f; /* a multi-byte tag */
    assert_false(cl_x509_has_ip_san(buf, sizeof(buf), v4, 4));
    memcpy(buf, san_der, sizeof(buf));
    buf[1] = 0x80; /* indefinite length (BER, not DER) */
    assert_false(cl_x509_has_ip_san(buf, sizeof(buf), v4, 4));
    buf[1] = 0x85; /* five length bytes */
    assert_false(cl_x509_has_ip_san(buf, sizeof(buf), v4, 4));
    /* a length of 4 GiB - 1 */
    static const uint8_t huge[] = {0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30, 0x00};
    assert_false(cl_x509_has_ip_san(huge, sizeof(huge), v4, 4));
    /* not a SEQUENCE at the top; an empty one */
    assert_false(cl_x509_has_ip_san((const uint8_t *)"\x04\x00", 2, v4, 4));
    assert_false(cl_x509_has_ip_san((const uint8_t *)"\x30\x00", 2, v4, 4));
    assert_false(cl_x509_has_ip_san((const uint8_t *)"\x30\x02\x30\x00", 4, v4, 4));
}

/* A DER certificate whose validity is the two Time TLVs `nb` and `na` (as text after their
 * tag), wrapped the way cl_x509_validity walks: SEQUENCE { SEQUENCE { [0] version, serial,
 * algorithm, issuer, validity } }. Returns the length. */
static size_t with_validity(uint8_t *out, uint8_t nbtag, const char *nb, uint8_t natag,
                            const char *na)
{
    uint8_t tbs[160], v[80];
    size_t n = 0, vn = 0;

    static const uint8_t head[] = {0xa0, 0x03, 0x02, 0x01, 0x02, /* [0] v3 */
                                   0x02, 0x01, 0x01,             /* serial 1 */
                                   0x30, 0x00,                   /* algorithm */
                                   0x30, 0x00};                  /* issuer */
    memcpy(tbs, head, sizeof(head));
    n = sizeof(head);
    v[vn++] = nbtag;
    v[vn++] = (uint8_t)strlen(nb);
    memcpy(v + vn, nb, strlen(nb));
    vn += strlen(nb);
    v[vn++] = natag;
    v[vn++] = (uint8_t)strlen(na);
    memcpy(v + vn, na, strlen(na));
    vn += strlen(na);
    n += tlv(tbs + n, 0x30, v, vn);
    uint8_t inner[200];
    size_t in = tlv(inner, 0x30, tbs, n);
    return tlv(out, 0x30, inner, in);
}

static void validity(void **state)
{
    int64_t nb = 0, na = 0;
    (void)state;

    /* openssl's: UTCTime 261129233402Z, GeneralizedTime 21261105233402Z */
    assert_true(cl_x509_validity(san_der, sizeof(san_der), &nb, &na));
    assert_int_equal(nb, 1795995242);
    assert_int_equal(na, 4949595242LL);
    assert_true(cl_x509_validity(san_der, sizeof(san_der), NULL, NULL));

    /* certgen writes whatever instants it is given, in the form RFC 5280 wants for each year */
    const struct {
        const char *what;
        int64_t nb, na;
    } rows[] = {
        {"UTCTime's first and last seconds", -631152000, 2524607999LL},
        {"GeneralizedTime on both sides of them", -631152001, 2524608000LL},
        {"a leap day", 951782400 /* 2000-02-29 */, 1709164800 /* 2024-02-29 */},
        {"before 1900", -2203891200LL /* 1900-03-01 */, -2203804800LL},
    };

    char *ca = NULL, *ca_key = NULL;
    uint8_t der[4096];

    assert_int_equal(cl_certgen_ca("ca", 0, 0, &ca, &ca_key), 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct cl_certgen_opts o = {
            .cn = "leaf", .not_before = rows[i].nb, .not_after = rows[i].na};
        char *cert = NULL, *key = NULL;
        CL_TEST_ROW_INT(rows[i].what, cl_certgen_leaf(ca, ca_key, &o, &cert, &key), 0);
        size_t n = to_der(cert, der, sizeof(der));
        CL_TEST_ROW_TRUE(rows[i].what, cl_x509_validity(der, n, &nb, &na));
        CL_TEST_ROW_INT(rows[i].what, nb, rows[i].nb);
        CL_TEST_ROW_INT(rows[i].what, na, rows[i].na);
        cl_free(&cert);
        cl_free(&key);
    }
    cl_free(&ca);
    cl_free(&ca_key);

    /* Time forms RFC 5280 rules out, and dates that do not exist: refused, outputs untouched */
    const struct {
        const char *what;
        uint8_t tag;
        const char *text;
    } bad[] = {
        {"no Z", 0x17, "2611292334020"},
        {"a time zone offset", 0x18, "20261129233402+0100"},
        {"fractional seconds", 0x18, "20261129233402.5Z"},
        {"no seconds", 0x17, "2611292334Z"},
        {"UTCTime with four-digit year", 0x17, "20261129233402Z"},
        {"GeneralizedTime with two-digit year", 0x18, "261129233402Z"},
        {"month 13", 0x17, "261329233402Z"},
        {"day 0", 0x17, "261100233402Z"},
        {"31 November", 0x17, "261131233402Z"},
        {"29 February 2100", 0x18, "21000229000000Z"},
        {"hour 24", 0x17, "261129243402Z"},
        {"second 61", 0x17, "261129233461Z"},
        {"a letter", 0x17, "26112923340aZ"},
        {"a sign", 0x17, "26-129233402Z"},
        {"not a Time at all", 0x04, "261129233402Z"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = with_validity(der, bad[i].tag, bad[i].text, 0x17, "261129233402Z");
        nb = na = 7;
        CL_TEST_ROW_TRUE(bad[i].what, !cl_x509_validity(der, n, &nb, &na));
        n = with_validity(der, 0x17, "261129233402Z", bad[i].tag, bad[i].text);
        CL_TEST_ROW_TRUE(bad[i].what, !cl_x509_validity(der, n, &nb, &na));
        CL_TEST_ROW_TRUE(bad[i].what, nb == 7 && na == 7);
    }
    /* the hand-made wrapper itself is fine, leap seconds included; v1 (no version) too */
    size_t n = with_validity(der, 0x17, "161231235960Z", 0x18, "20240229120000Z");
    assert_true(cl_x509_validity(der, n, &nb, &na));
    assert_int_equal(nb, 1483228800); /* 23:59:60 counts as the next second */
    assert_int_equal(na, 1709208000);
    assert_int_equal(der[4], 0xa0);
    memmove(der + 4, der + 9, n - 9); /* drop [0] version: both lengths shrink by 5 */
    der[1] -= 5;
    der[3] -= 5;
    assert_true(cl_x509_validity(der, n - 5, &nb, &na));
    assert_int_equal(na, 1709208000);

    /* every truncation of a real certificate is "no", never a read past the end (ASan) */
    for (size_t k = 0; k < sizeof(san_der); k++) {
        uint8_t *copy = cl_malloc(k > 0 ? k : 1);
        assert_non_null(copy);
        memcpy(copy, san_der, k);
        assert_false(cl_x509_validity(copy, k, &nb, &na));
        cl_mem_free(copy);
    }
    assert_false(cl_x509_validity(NULL, 10, &nb, &na));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(openssl_certificate),
        cmocka_unit_test(certgen_certificates),
        cmocka_unit_test(hand_made),
        cmocka_unit_test(malformed),
        cmocka_unit_test(validity),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
