#ifndef CL_UVX_H
#define CL_UVX_H

#include <stdbool.h>
#include <sys/socket.h>

#include <uv.h>

/*
 * Binds and listens on `addr` with SO_REUSEPORT (libuv 1.44 has no UV_TCP_REUSEPORT: the
 * socket is made here, then handed to uv_tcp_open). `tcp` must be uv_tcp_init'ed.
 * Returns 0 or a negative errno (e.g. UV_EADDRINUSE).
 */
int cl_uv_listen_reuseport(uv_tcp_t *tcp, const struct sockaddr *addr, int backlog,
                           uv_connection_cb cb);

/* Sets TCP_NODELAY and large-ish socket buffers where asked. Returns 0 or -errno. */
int cl_uv_tune_tcp(uv_tcp_t *tcp);

/* The bound port of a listening or connected handle (0 on error). */
int cl_uv_tcp_local_port(const uv_tcp_t *tcp);

#endif
