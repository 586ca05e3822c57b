/*
 * X.509 DER helpers: just enough DER (ITU-T X.690) to find an iPAddress subject alternative
 * name and the validity period. See cl/x509.h.
 */
#include "cl/x509.h"

#include <string.h>

#define TAG_BOOLEAN   0x01
#define TAG_OCTETS    0x04
#define TAG_OID       0x06
#define TAG_INTEGER   0x02
#define TAG_UTCTIME   0x17
#define TAG_GENTIME   0x18
#define TAG_SEQUENCE  0x30
#define TAG_VERSION   0xa0 /* tbsCertificate version: [0] EXPLICIT, constructed */
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

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (valid for any year). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* n decimal digits at p, or -1. */
static int digits(const uint8_t *p, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Time ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }, in the DER forms RFC 5280
 * requires: UTC ("Z"), seconds present, no fractions. */
static bool parse_time(struct der *d, int64_t *out)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    struct der t;
    uint8_t tag;
    int y, ylen;

    if (!der_next(d, &tag, &t))
        return false;
    if (tag == TAG_UTCTIME && t.len == 13)
        ylen = 2;
    else if (tag == TAG_GENTIME && t.len == 15)
        ylen = 4;
    else
        return false;
    if (t.p[t.len - 1] != 'Z' || (y = digits(t.p, ylen)) < 0)
        return false;
    if (ylen == 2)
        y += y < 50 ? 2000 : 1900;
    int mo = digits(t.p + ylen, 2), dd = digits(t.p + ylen + 2, 2);
    int hh = digits(t.p + ylen + 4, 2), mi = digits(t.p + ylen + 6, 2);
    int ss = digits(t.p + ylen + 8, 2);
    if (mo < 1 || mo > 12 || dd < 1 || dd > mdays[mo - 1] || hh < 0 || hh > 23 || mi < 0 ||
        mi > 59 || ss < 0 || ss > 60)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && dd == 29 && !leap)
        return false;
    *out = days_from_civil(y, mo, dd) * 86400 + hh * 3600 + mi * 60 + ss;
    return true;
}

bool cl_x509_validity(const uint8_t *der, size_t len, int64_t *not_before, int64_t *not_after)
{
    struct der d = {der, len}, cert, tbs, field, validity;
    int64_t nb, na;
    uint8_t tag;

    if (der == NULL)
        return false;
    if (!der_expect(&d, TAG_SEQUENCE, &cert) || !der_expect(&cert, TAG_SEQUENCE, &tbs))
        return false;
    /* [0] version is optional (v1 certificates leave it out) */
    if (!der_next(&tbs, &tag, &field))
        return false;
    if (tag == TAG_VERSION && !der_next(&tbs, &tag, &field))
        return false;
    if (tag != TAG_INTEGER) /* serialNumber */
        return false;
    if (!der_expect(&tbs, TAG_SEQUENCE, &field) || /* signature AlgorithmIdentifier */
        !der_expect(&tbs, TAG_SEQUENCE, &field) || /* issuer Name */
        !der_expect(&tbs, TAG_SEQUENCE, &validity))
        return false;
    if (!parse_time(&validity, &nb) || !parse_time(&validity, &na) || validity.len != 0)
        return false;
    if (not_before != NULL)
        *not_before = nb;
    if (not_after != NULL)
        *not_after = na;
    return true;
}
