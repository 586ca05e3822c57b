#include "cl/uvx.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "cl/sockaddr.h"

int cl_uv_listen_reuseport(uv_tcp_t *tcp, const struct sockaddr *addr, int backlog,
                           uv_connection_cb cb)
{
    int one = 1, rc;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if (addr->sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, addr, cl_sockaddr_len(addr)) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if ((rc = uv_tcp_open(tcp, fd)) != 0) {
        close(fd);
        return rc;
    }
    /* from here the handle owns fd: uv_close releases it */
    return uv_listen((uv_stream_t *)tcp, backlog, cb);
}

int cl_uv_tune_tcp(uv_tcp_t *tcp)
{
    return uv_tcp_nodelay(tcp, 1);
}

int cl_uv_tcp_local_port(const uv_tcp_t *tcp)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    return cl_sockaddr_port((struct sockaddr *)&ss);
}
