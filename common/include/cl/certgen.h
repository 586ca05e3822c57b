#ifndef CL_CERTGEN_H
#define CL_CERTGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Certificate generation with wolfSSL (ECDSA P-256, SHA-256), for `gwctl create fabric` /
 * `gwctl create peer-cert` and for tests (which need expired, wrong-CA and wrong-name
 * certificates on demand). Outputs are PEM text, new strings (free with cl_free).
 */
#define CL_CERTGEN_MAX_IPS 8

struct cl_certgen_opts {
    const char *cn;         /* subject CN (required) */
    const char *const *dns; /* DNS SANs (may be NULL) */
    size_t ndns;
    const char *const *ips; /* IP address SANs, IPv4 or IPv6 literals (may be NULL) */
    size_t nips;            /* at most CL_CERTGEN_MAX_IPS */
    bool server_auth;       /* extendedKeyUsage serverAuth */
    bool client_auth;       /* extendedKeyUsage clientAuth */
    int64_t not_before;     /* unix seconds; 0 = now - 1h (clock skew) */
    int64_t not_after;      /* unix seconds; 0 = not_before + 365 days */
};

/* Self-signed CA (basicConstraints CA:TRUE, keyCertSign|cRLSign). Returns 0, CL_ENOMEM,
 * CL_EINVAL or CL_ETLS. */
int cl_certgen_ca(const char *cn, int64_t not_before, int64_t not_after, char **cert_pem,
                  char **key_pem);

/* Leaf signed by the CA (basicConstraints CA:FALSE, digitalSignature). Returns 0, CL_ENOMEM,
 * CL_EINVAL (bad options or CA material) or CL_ETLS. */
int cl_certgen_leaf(const char *ca_cert_pem, const char *ca_key_pem,
                    const struct cl_certgen_opts *o, char **cert_pem, char **key_pem);

#endif
