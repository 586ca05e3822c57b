#ifndef CL_X509_H
#define CL_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Minimal X.509 helpers over DER bytes, with no TLS library underneath (pure functions:
 * fuzzable, no allocation, no globals).
 */

/*
 * True when the DER certificate `der[len]` carries `ip` (`iplen` = 4 for IPv4, 16 for IPv6,
 * network byte order) as an iPAddress subject alternative name (RFC 5280 4.2.1.6: GeneralName
 * [7], the address octets). Needed because this wolfSSL build only checks DNS names: a client
 * that reached its server by an IP literal checks the certificate with this.
 *
 * A short walk of Certificate -> tbsCertificate -> [3] extensions -> subjectAltName
 * (2.5.29.17) -> GeneralNames. It does not verify anything else (the TLS library has already
 * checked the signature chain). Single-byte tags and definite lengths only; anything
 * malformed, truncated or absent is "no", never a read outside der[0..len). A DNS name that
 * spells the address is not an IP SAN.
 */
bool cl_x509_has_ip_san(const uint8_t *der, size_t len, const uint8_t *ip, size_t iplen);

/*
 * The validity period of the DER certificate `der[len]` as Unix times (seconds, UTC): the walk
 * Certificate -> tbsCertificate -> [0] version (optional), serial, signature, issuer ->
 * validity. Each Time must be a UTCTime YYMMDDHHMMSSZ (years 1950..2049, RFC 5280 4.1.2.5.1) or
 * a GeneralizedTime YYYYMMDDHHMMSSZ with a real date and time (seconds up to 60 for a leap
 * second); anything else, malformed or truncated, is false and leaves the outputs alone. Checks
 * no signature (the TLS library did). Either output may be NULL.
 */
bool cl_x509_validity(const uint8_t *der, size_t len, int64_t *not_before, int64_t *not_after);

#endif
