/*
 * Shared by the HTTP/2 fuzz targets: certificates for an in-memory TLS pair, and moving bytes
 * between a cl_h2conn made with cl_h2conn_new_mem() and the raw cl_tls object on the other
 * side (whose plaintext is the fuzz input, or is read and dropped).
 */
#ifndef CL_FUZZ_H2_MEM_H
#define CL_FUZZ_H2_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cl/h2conn.h"
#include "cl/tls.h"

/* A fresh CA, a server certificate for "srv" and a client one for "peer", and a context for
 * each (new, kept by the caller for the whole process). Returns 0 or -1. */
int fuzz_tls_pair(struct cl_tls_ctx **server, struct cl_tls_ctx **client);

/* A cl_h2conn_write_cb: ciphertext written by the cl_h2conn goes into the cl_tls `wud`; when
 * its input is full, plaintext it has decrypted is read and dropped to make room; what still
 * does not fit is dropped. */
void fuzz_h2_to_tls(struct cl_h2conn *c, const uint8_t *data, size_t len, void *wud);

/*
 * `rounds` times: runs the loop once without waiting, lets t go on with its handshake (or
 * drops the plaintext it decrypted), and feeds what t has to send to *c. *c is the target's
 * own pointer, which its on_close sets to NULL: a round in which nothing moved to a closed
 * connection ends the pumping.
 */
void fuzz_pump(uv_loop_t *loop, struct cl_tls *t, struct cl_h2conn *const *c, int rounds);

/* The fuzz input, written through t in pieces whose sizes come from the input itself (so
 * frames straddle records), pumping after each; stops when *c is closed. */
void fuzz_send_input(uv_loop_t *loop, struct cl_tls *t, struct cl_h2conn *const *c,
                     const uint8_t *data, size_t size);

/* Closes *c if it is still open, runs the loop until `*closed` (set by its on_close), and
 * returns whether it closed and nothing is left on the loop. */
bool fuzz_close_all(uv_loop_t *loop, struct cl_h2conn *const *c, const bool *closed);

#endif
