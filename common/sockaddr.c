#include "cl/sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cl/str.h"

int cl_hostport_split(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon, *hs, *he;

    if (s == NULL)
        return CL_EINVAL;
    if (s[0] == '[') {
        hs = s + 1;
        if ((he = strchr(hs, ']')) == NULL || he[1] != ':')
            return CL_EINVAL;
        colon = he + 1;
    } else {
        hs = s;
        if ((colon = strrchr(s, ':')) == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return CL_EINVAL; /* bare IPv6 without brackets is ambiguous */
        he = colon;
    }
    if (he == hs || (size_t)(he - hs) >= hostlen)
        return CL_EINVAL;
    if (cl_parse_port(colon + 1, port) != 0)
        return CL_EINVAL;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    return 0;
}

int cl_sockaddr_from_ip(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        return 0;
    }
    return CL_EINVAL;
}

int cl_sockaddr_parse(const char *s, struct sockaddr_storage *ss)
{
    char host[CL_ADDRSTRLEN];
    uint16_t port;

    if (cl_hostport_split(s, host, sizeof(host), &port) != 0)
        return CL_EINVAL;
    return cl_sockaddr_from_ip(host, port, ss);
}

const char *cl_sockaddr_ip(const struct sockaddr *sa, char *out, size_t outlen)
{
    out[0] = '\0';
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outlen);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)outlen);
    return out;
}

uint16_t cl_sockaddr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    return 0;
}

socklen_t cl_sockaddr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

const char *cl_sockaddr_fmt(const struct sockaddr *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];

    cl_sockaddr_ip(sa, ip, sizeof(ip));
    if (sa->sa_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%u", ip, cl_sockaddr_port(sa));
    else
        snprintf(out, outlen, "%s:%u", ip, cl_sockaddr_port(sa));
    return out;
}

bool cl_host_is_valid(const char *host)
{
    struct sockaddr_storage ss;
    char lower[254];
    size_t len;

    if (host == NULL || (len = strlen(host)) == 0 || len > 253)
        return false;
    if (cl_sockaddr_from_ip(host, 1, &ss) == 0)
        return true;
    for (size_t i = 0; i <= len; i++)
        lower[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] + 32 : host[i]);
    return cl_str_is_dns_subdomain(lower);
}
