#ifndef CP_K8S_TLS_H
#define CP_K8S_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cl/bufq.h"

/*
 * Sans-I/O TLS client for the Kubernetes API server (wolfSSL). Unlike cl_tls (mutual TLS with
 * ALPN h2 between gateways) the client certificate is optional (service-account tokens
 * authenticate in a cluster), ALPN offers http/1.1, and the server is checked by DNS name
 * (SNI + wolfSSL's check) or, for an IP literal such as $KUBERNETES_SERVICE_HOST, by an
 * iPAddress subject alternative name read from the certificate here.
 *
 * The owner moves bytes: ciphertext from the socket in (cp_k8s_tls_in_reserve/commit), the
 * out queue to the socket. All calls run on the owner's loop thread and never call back.
 */

struct cp_k8s_tls_ctx;
struct cp_k8s_tls;

struct cp_k8s_tls_opts {
    const char *ca_pem;   /* CA bundle the server is verified against (required) */
    const char *cert_pem; /* client certificate chain (optional) */
    const char *key_pem;  /* its key (required with cert_pem) */
};

/* Returns 0, CL_ETLS_BAD_FILE (malformed PEM; err says which), CL_ETLS_KEY_MISMATCH,
 * CL_EINVAL (no CA) or CL_ENOMEM. */
int cp_k8s_tls_ctx_new(const struct cp_k8s_tls_opts *o, struct cp_k8s_tls_ctx **out, char *err,
                       size_t errlen);
void cp_k8s_tls_ctx_free(struct cp_k8s_tls_ctx *c); /* NULL-safe; after its connections */

/* A connection to `name` (DNS name or IP literal; copied). NULL on CL_ENOMEM. */
struct cp_k8s_tls *cp_k8s_tls_new(struct cp_k8s_tls_ctx *c, const char *name);
void cp_k8s_tls_free(struct cp_k8s_tls *t); /* NULL-safe */

/* Ciphertext from the network: writable space (0 when the input queue is full), commit. */
size_t cp_k8s_tls_in_reserve(struct cp_k8s_tls *t, uint8_t **p);
void cp_k8s_tls_in_commit(struct cp_k8s_tls *t, size_t n);

/* Drives the handshake: 0 once complete, CL_EAGAIN (send the out queue, wait for input),
 * CL_ETLS_UNKNOWN_CA, CL_ETLS_EXPIRED, CL_ETLS_NAME or CL_ETLS (detail has the text). */
int cp_k8s_tls_handshake(struct cp_k8s_tls *t);

/* Plaintext out: bytes (> 0), CL_EAGAIN, CL_EOF (close_notify) or an error. */
ssize_t cp_k8s_tls_read(struct cp_k8s_tls *t, void *buf, size_t len);

/* Plaintext in (encrypted into the out queue): len or an error. */
ssize_t cp_k8s_tls_write(struct cp_k8s_tls *t, const void *buf, size_t len);

/* Ciphertext to send: peek, write, consume. */
struct cl_bufq *cp_k8s_tls_outq(struct cp_k8s_tls *t);

/* Why the last call failed, "" if it did not. */
const char *cp_k8s_tls_detail(const struct cp_k8s_tls *t);

/*
 * True when the DER certificate carries `ip` (4 or 16 bytes) as an iPAddress subject
 * alternative name. A minimal DER walk of tbsCertificate's extensions; malformed input is
 * simply "no".
 */
bool cp_k8s_cert_has_ip(const uint8_t *der, size_t len, const uint8_t *ip, size_t iplen);

#endif
