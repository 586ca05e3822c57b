#ifndef CL_TLS_H
#define CL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cl/bufq.h"

/*
 * Sans-I/O TLS over wolfSSL: wolfSSL never sees a socket. The owner feeds ciphertext that
 * arrived from the network (cl_tls_in_reserve/commit or cl_tls_feed), pulls plaintext out with
 * cl_tls_read, pushes plaintext in with cl_tls_write, and sends whatever ciphertext piles up in
 * cl_tls_outq() (peek iovecs, write them, consume once written).
 *
 * By default, mutual TLS between gateways (and gwctl): TLS 1.3 preferred, 1.2 minimum; both
 * sides present a certificate verified against the CA bundle; ALPN "h2" is offered and
 * required; a client sends SNI and checks the server certificate carries the expected name
 * (DNS SAN, or CN when there are no SANs). A client may instead go without a certificate
 * (`cert_optional`) and offer another ALPN protocol or none (`alpn_mode`), as the Kubernetes
 * API client does. A client that expects an IP literal sends no SNI and requires an
 * iPAddress SAN with that address instead (cl_x509_has_ip_san).
 *
 * All functions run on the owner's loop thread; nothing here blocks or calls back.
 */

struct cl_tls_ctx;
struct cl_tls;

enum cl_tls_alpn_mode {
    /* offer `alpn` (a server: accept it); the handshake fails unless both sides agree on it */
    CL_TLS_ALPN_REQUIRE = 0,
    /* the same, but a peer with no protocol of ours carries on without ALPN */
    CL_TLS_ALPN_OFFER,
    CL_TLS_ALPN_OFF, /* no ALPN extension at all */
};

#define CL_TLS_ALPN_MAX 15 /* longest protocol name accepted in `alpn` */

struct cl_tls_ctx_opts {
    bool server;           /* server: requires and verifies a client certificate */
    const char *cert_file; /* PEM: our certificate (chain) */
    const char *key_file;  /* PEM: its private key */
    const char *ca_file;   /* PEM: CA bundle peers are verified against (always required) */
    /* alternatives to the files, PEM text in memory (tests); the file wins when both set */
    const char *cert_pem;
    const char *key_pem;
    const char *ca_pem;
    /*
     * Client only: the certificate and key may both be left unset, and the client then sends
     * none (the server authenticates it some other way, e.g. a bearer token). Default false:
     * both are required. Setting one without the other is always CL_EINVAL.
     */
    bool cert_optional;
    enum cl_tls_alpn_mode alpn_mode; /* default CL_TLS_ALPN_REQUIRE */
    const char *alpn;                /* protocol for REQUIRE/OFFER (copied); NULL means "h2" */
    /*
     * Names the peer in error details, e.g. "API server" gives "API server certificate is not
     * signed by the configured CA". NULL: "peer" ("server" for name checks). Copied.
     */
    const char *peer_label;
};

/* The certificate a context presents (the first of its chain). */
struct cl_tls_cert_info {
    bool have;           /* false: none (an anonymous client), or it could not be read */
    int64_t not_before;  /* Unix time */
    int64_t not_after;   /* Unix time */
    char sha256[64 + 1]; /* of the DER, lower-case hex */
};

/* Identity of the verified peer, valid while the cl_tls lives. */
struct cl_tls_peer {
    const char *cn;         /* subject common name, "" if none */
    const char *const *dns; /* DNS subject alternative names */
    size_t ndns;
};

/*
 * Creates a context (refcount 1). On failure returns CL_ETLS_BAD_FILE (unreadable or malformed
 * file: `err` names the file and the problem), CL_ETLS_KEY_MISMATCH, CL_EINVAL (missing
 * material, a server without a certificate, a bad ALPN name), CL_ENOMEM or CL_ETLS, and writes
 * a one-line reason into err[errlen] (err may be NULL).
 */
int cl_tls_ctx_new(const struct cl_tls_ctx_opts *o, struct cl_tls_ctx **out, char *err,
                   size_t errlen);
void cl_tls_ctx_ref(struct cl_tls_ctx *c);
void cl_tls_ctx_unref(struct cl_tls_ctx *c); /* NULL-safe; frees at zero */

/*
 * Picks up replaced certificate, key and CA files for the connections made after the call;
 * connections made before keep the material they were made with. A file counts as replaced
 * when its inode, size, modification or change time differ (a rename over it, Kubernetes'
 * symlink swap, a rewrite in place). Returns 1 when reloaded; 0 when nothing changed, when any
 * material came from memory, or when these very files were refused before (so a caller polling
 * it reports a refusal once); or an error from cl_tls_ctx_new (CL_ETLS_BAD_FILE, e.g. a file
 * missing in the middle of a replacement, CL_ETLS_KEY_MISMATCH, CL_ENOMEM): the old material
 * stays in use and err says why (never left empty). Cheap when nothing changed: three stat()
 * calls.
 */
int cl_tls_ctx_reload(struct cl_tls_ctx *c, char *err, size_t errlen);

/* What the context presents now: borrowed, updated by each successful reload. */
const struct cl_tls_cert_info *cl_tls_ctx_cert_info(const struct cl_tls_ctx *c);

/*
 * New connection state. Client: `server_name` is sent as SNI and must appear in the server's
 * certificate (DNS SAN, or CN without SANs); an IPv4 or IPv6 literal (no brackets) is not sent
 * and must be an iPAddress SAN of the certificate instead. NULL for servers (and for a client
 * that checks no name). Copied. Takes a ref on ctx. Returns NULL on CL_ENOMEM.
 */
struct cl_tls *cl_tls_new(struct cl_tls_ctx *ctx, const char *server_name);
void cl_tls_free(struct cl_tls *t); /* NULL-safe */

/* Ciphertext from the network, zero-copy: writable space (0 when the input queue is full). */
size_t cl_tls_in_reserve(struct cl_tls *t, uint8_t **p);
void cl_tls_in_commit(struct cl_tls *t, size_t n);
/* Ciphertext from the network, copying. Returns 0 or CL_EBUSY (input queue full). */
int cl_tls_feed(struct cl_tls *t, const void *data, size_t len);

/*
 * Drives the handshake. Returns 0 once complete, CL_EAGAIN when more input is needed (send
 * what is in the out queue first), or: CL_ETLS_UNKNOWN_CA, CL_ETLS_EXPIRED, CL_ETLS_NAME,
 * CL_ETLS_NO_CERT, CL_ETLS_ALPN, CL_ETLS (cl_tls_error_detail() has the text). On error the out
 * queue may hold an alert worth sending before closing.
 */
int cl_tls_handshake(struct cl_tls *t);
bool cl_tls_is_established(const struct cl_tls *t);
/* True after cl_tls_handshake() returned CL_ETLS_ALPN on a server because the client offered
 * no ALPN protocol at all: the handshake itself completed, so cl_tls_write() and cl_tls_read()
 * still work, for an answer in the client's protocol (an HTTP/1.1 error) before closing. The
 * connection stays unestablished: cl_tls_peer() is NULL. */
bool cl_tls_is_open_without_alpn(const struct cl_tls *t);
/* True when the context was reloaded after this connection was made from it: its handshake
 * used (or uses) the material from before. */
bool cl_tls_is_stale(const struct cl_tls *t);

/*
 * Plaintext out. Returns bytes (> 0), CL_EAGAIN (need more ciphertext), CL_EOF (close_notify
 * received), or a negative error.
 */
ssize_t cl_tls_read(struct cl_tls *t, void *buf, size_t len);

/*
 * Encrypts len bytes into the out queue (as full records; large writes become several 16 KiB
 * records). Returns len, or a negative error (CL_ENOMEM, CL_ETLS). The out queue is not
 * bounded here: callers stop producing while cl_bufq_len(cl_tls_outq(t)) is high.
 */
ssize_t cl_tls_write(struct cl_tls *t, const void *buf, size_t len);

/* Queues close_notify. */
int cl_tls_shutdown(struct cl_tls *t);

/* Ciphertext waiting to be sent: peek iovecs, write, then cl_bufq_consume() what was sent. */
struct cl_bufq *cl_tls_outq(struct cl_tls *t);

/* After the handshake: the verified peer identity; NULL before. */
const struct cl_tls_peer *cl_tls_peer(const struct cl_tls *t);

/* True when the peer identity has `name` as a DNS SAN (or as CN when it has no SANs). */
bool cl_tls_peer_has_name(const struct cl_tls_peer *p, const char *name);

/* Negotiated ALPN protocol ("h2") or NULL (none); protocol version string ("TLSv1.3"). */
const char *cl_tls_alpn(const struct cl_tls *t);
const char *cl_tls_version(const struct cl_tls *t);

/* Human-readable reason for the last error ("certificate has expired", ...), "" if none. */
const char *cl_tls_error_detail(const struct cl_tls *t);

/* One-time library init/cleanup (wolfSSL_Init / wolfSSL_Cleanup). Idempotent. */
int cl_tls_global_init(void);
void cl_tls_global_cleanup(void);

#endif
