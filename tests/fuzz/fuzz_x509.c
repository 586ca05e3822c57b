/* Fuzz target: the DER walk behind the iPAddress SAN check (cl_x509_has_ip_san, common/x509.c)
 * that a TLS client runs on the server's certificate when it dialled an IP literal. Input: one
 * byte whose low bit picks IPv4 or IPv6, the 4 or 16 address bytes, then the certificate. A
 * "yes" must be backed by a [7] iPAddress TLV holding exactly those bytes (checked for that
 * address and for one of the other length taken from the input), and must not change between
 * calls. The same bytes go through cl_x509_validity: an answer must be the same twice and lie
 * within years 0000..9999 (any four-digit year, a leap second at most). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cl/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t needle[18];
    size_t iplen, len;
    uint8_t *der;
    bool yes;

    if (size < 1)
        return 0;
    iplen = (data[0] & 1) ? 16 : 4;
    if (size < 1 + iplen)
        return 0;
    len = size - 1 - iplen;
    /* an exact-size copy, so that any read past the end is caught */
    if ((der = malloc(len > 0 ? len : 1)) == NULL)
        return 0;
    memcpy(der, data + 1 + iplen, len);
    yes = cl_x509_has_ip_san(der, len, data + 1, iplen);
    if (yes != cl_x509_has_ip_san(der, len, data + 1, iplen))
        abort();
    needle[0] = 0x87;
    needle[1] = (uint8_t)iplen;
    memcpy(needle + 2, data + 1, iplen);
    if (yes && memmem(der, len, needle, iplen + 2) == NULL)
        abort();
    /* a second probe, of the other length, with an address taken from the input's tail */
    size_t other = iplen == 4 ? 16 : 4;
    if (len >= other) {
        needle[1] = (uint8_t)other;
        memcpy(needle + 2, der + len - other, other);
        if (cl_x509_has_ip_san(der, len, needle + 2, other) &&
            memmem(der, len, needle, other + 2) == NULL)
            abort();
    }
    int64_t nb = 1, na = 2, nb2 = 3, na2 = 4;
    bool v = cl_x509_validity(der, len, &nb, &na);
    if (v != cl_x509_validity(der, len, &nb2, &na2))
        abort();
    if (v && (nb != nb2 || na != na2 || nb < -62167219200LL || nb > 253402300800LL ||
              na < -62167219200LL || na > 253402300800LL))
        abort();
    if (!v && (nb != 1 || na != 2)) /* a "no" leaves the outputs alone */
        abort();
    free(der);
    return 0;
}
