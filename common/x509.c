/*
 * X.509 DER helpers: just enough DER (ITU-T X.690) to find an iPAddress subject alternative
 * name. See cl/x509.h.
 */
#include "cl/x509.h"

#include <string.h>

#define TAG_BOOLEAN   0x01
#define TAG_OCTETS    0x04
#define TAG_OID       0x06
#define TAG_SEQUENCE  0x30
#define TAG_EXTS      0xa3 /* tbsCertificate extensions: [3] EXPLICIT, constructed */
#define TAG_SAN_IP    0x87 /* GeneralName iPAddress: [7] IMPLICIT OCTET STRING */
#define MAX_LEN_BYTES 4    /* a certificate is far below 4 GiB */

/* Unread DER bytes. */
struct der {
    const uint8_t *p;
    size_t len;
};

/*
 * Takes the next TLV off `d`: its tag and its value as a new reader. Returns false when the
 * bytes are not one complete DER TLV (multi-byte tag, indefinite, oversized or non-minimal
 * length, value running past the end); `d` is then left as it was.
 */
static bool der_next(struct der *d, uint8_t *tag, struct der *val)
{
    size_t l, hdr = 2;

    if (d->len < 2 || (d->p[0] & 0x1f) == 0x1f)
        return false;
    l = d->p[1];
    if (l & 0x80) {
        size_t n = l & 0x7f;
        if (n == 0 || n > MAX_LEN_BYTES || d->len - 2 < n)
            return false;
        l = 0;
        for (size_t i = 0; i < n; i++)
            l = (l << 8) | d->p[2 + i];
        /* DER: the long form only for 128 and up, in as few bytes as it takes */
        if (l < 0x80 || d->p[2] == 0)
            return false;
        hdr += n;
    }
    if (l > d->len - hdr)
        return false;
    *tag = d->p[0];
    val->p = d->p + hdr;
    val->len = l;
    d->p += hdr + l;
    d->len -= hdr + l;
    return true;
}

/* Takes the next TLV, which must carry `want`, and returns its value in `val`. */
static bool der_expect(struct der *d, uint8_t want, struct der *val)
{
    uint8_t tag;

    return der_next(d, &tag, val) && tag == want;
}

/* GeneralNames ::= SEQUENCE OF GeneralName; looks for [7] with the address octets. */
static bool names_have_ip(struct der names, const uint8_t *ip, size_t iplen)
{
    struct der seq, name;
    uint8_t tag;

    if (!der_expect(&names, TAG_SEQUENCE, &seq))
        return false;
    while (seq.len > 0) {
        if (!der_next(&seq, &tag, &name))
            return false;
        if (tag == TAG_SAN_IP && name.len == iplen && memcmp(name.p, ip, iplen) == 0)
            return true;
    }
    return false;
}

/*
 * Extensions ::= SEQUENCE OF Extension
 * Extension  ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
 */
static bool exts_have_ip(struct der exts, const uint8_t *ip, size_t iplen)
{
    static const uint8_t san_oid[] = {0x55, 0x1d, 0x11}; /* 2.5.29.17 subjectAltName */
    struct der seq, ext, oid, v;
    uint8_t tag;

    if (!der_expect(&exts, TAG_SEQUENCE, &seq))
        return false;
    while (seq.len > 0) {
        if (!der_expect(&seq, TAG_SEQUENCE, &ext) || !der_expect(&ext, TAG_OID, &oid))
            return false;
        if (oid.len != sizeof(san_oid) || memcmp(oid.p, san_oid, sizeof(san_oid)) != 0)
            continue;
        if (!der_next(&ext, &tag, &v))
            return false;
        if (tag == TAG_BOOLEAN && !der_next(&ext, &tag, &v))
            return false;
        /* RFC 5280: a certificate has at most one subjectAltName extension */
        return tag == TAG_OCTETS && names_have_ip(v, ip, iplen);
    }
    return false;
}

bool cl_x509_has_ip_san(const uint8_t *der, size_t len, const uint8_t *ip, size_t iplen)
{
    struct der d = {der, len}, cert, tbs, field;
    uint8_t tag;

    if (der == NULL || ip == NULL || (iplen != 4 && iplen != 16))
        return false;
    /* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE {...}, ... } */
    if (!der_expect(&d, TAG_SEQUENCE, &cert) || !der_expect(&cert, TAG_SEQUENCE, &tbs))
        return false;
    /* version, serial, signature, issuer, validity, subject, spki, [1], [2], [3] extensions */
    while (tbs.len > 0) {
        if (!der_next(&tbs, &tag, &field))
            return false;
        if (tag == TAG_EXTS)
            return exts_have_ip(field, ip, iplen);
    }
    return false;
}
