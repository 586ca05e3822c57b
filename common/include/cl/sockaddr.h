#ifndef CL_SOCKADDR_H
#define CL_SOCKADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Large enough for "[ffff:...:ffff]:65535" and a hostname:port of 253+6. */
#define CL_ADDRSTRLEN 264

/*
 * Splits "host:port", "[v6]:port" or "v4:port" into host and port. Host is a hostname or an
 * IP literal (brackets removed). Returns 0 or CL_EINVAL.
 */
int cl_hostport_split(const char *s, char *host, size_t hostlen, uint16_t *port);

/* Parses a numeric "ip:port" / "[ip6]:port" into *ss (no DNS). Returns 0 or CL_EINVAL. */
int cl_sockaddr_parse(const char *s, struct sockaddr_storage *ss);

/* Numeric IP literal + port to sockaddr. Returns 0 or CL_EINVAL. */
int cl_sockaddr_from_ip(const char *ip, uint16_t port, struct sockaddr_storage *ss);

/* "1.2.3.4:80" / "[::1]:80". Returns out. */
const char *cl_sockaddr_fmt(const struct sockaddr *sa, char *out, size_t outlen);

/* Only the IP part ("1.2.3.4", "::1"). Returns out. */
const char *cl_sockaddr_ip(const struct sockaddr *sa, char *out, size_t outlen);

uint16_t cl_sockaddr_port(const struct sockaddr *sa);

socklen_t cl_sockaddr_len(const struct sockaddr *sa);

/* Hostname (RFC 1123, labels may be upper case) or IP literal. */
bool cl_host_is_valid(const char *host);

#endif
