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

#include "cl/h2conn.h"
#include "cl/tls.h"

/* A fresh CA, a server certificate for "srv" and a client one for "peer", and a context for
 * each (new, kept by the caller for the whole process). Returns 0 or -1. */
int fuzz_tls_pair(struct cl_tls_ctx **server, struct cl_tls_ctx **client);

/* Ciphertext written by the cl_h2conn goes into t; when t's input is full, plaintext t has
 * decrypted is read and dropped to make room; what still does not fit is dropped. */
void fuzz_h2_to_tls(struct cl_tls *t, const uint8_t *data, size_t len);

/* Ciphertext t has to send is fed to c (c may be NULL: nothing moves). Returns whether
 * anything moved. */
bool fuzz_tls_to_h2(struct cl_tls *t, struct cl_h2conn *c);

/* Reads and drops whatever plaintext t has decrypted. */
void fuzz_tls_drain(struct cl_tls *t);

#endif
