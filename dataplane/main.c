/* cl-dataplane: master + workers carrying every byte. See --help. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/sockaddr.h"
#include "cl/str.h"
#include "cl/tls.h"
#include "dp.h"

#define PROG        "cl-dataplane"
#define MAX_IDLE_MS (7L * 24 * 3600 * 1000) /* a week */

static const char usage[] =
    "usage: cl-dataplane --socket <path> --listen <addr:port> --cert <pem> --key <pem>\n"
    "                    --ca <pem> [options]\n"
    "\n"
    "The gateway's dataplane: a master process and N workers that listen (SO_REUSEPORT) on the\n"
    "public mutual-TLS HTTP/2 port and on every import port, and splice client connections\n"
    "into HTTP/2 CONNECT tunnels between gateways.\n"
    "\n"
    "  --socket <path>        the controlplane's IPC socket\n"
    "  --listen <addr:port>   public port (port 0: pick a free one; see --ready-file)\n"
    "  --cert <pem>           this gateway's certificate (DNS SAN = its peer name)\n"
    "  --key <pem>            its private key\n"
    "  --ca <pem>             the fabric CA bundle peers and admins are verified against\n"
    "  --workers <n>          worker processes (default: number of CPUs)\n"
    "  --import-bind <addr>   address import ports listen on (default 127.0.0.1; 0.0.0.0 for\n"
    "                         every interface, as in Kubernetes)\n"
    "  --drain-timeout <ms>   on SIGTERM, how long open tunnels may finish (default 10000)\n"
    "  --idle-timeout <ms>    a tunnel with no byte either way for that long is reset, both\n"
    "                         ends (default 3600000 = 1 h; 0: never)\n"
    "  --conn-idle-timeout <ms>\n"
    "                         an HTTP/2 connection on the public port with no open stream for\n"
    "                         that long gets GOAWAY and is closed; pooled connections to peers\n"
    "                         close after 9/10 of it (default 300000 = 5 min; 0: never)\n"
    "  --cert-check-interval <ms>\n"
    "                         how often --cert, --key and --ca are checked for replacement;\n"
    "                         new connections use the new files, and connections made before\n"
    "                         take no new streams and close once their tunnels end (default\n"
    "                         5000; 0: never)\n"
    "  --access-log           one line per client connection when it ends (mod=dp.access:\n"
    "                         import or export, peer, client, CONNECT status, bytes each\n"
    "                         way, duration, how it ended), written whatever --log-level\n"
    "  --log-level <lvl>      error, warn, info (default), debug, trace\n"
    "  --ready-file <path>    written with the public port once every worker listens and has\n"
    "                         its first configuration (or found no controlplane to ask); an\n"
    "                         old one is removed at start\n"
    "  --worker-id <n>        internal: the master gives each worker it starts its number\n"
    "  -h, --help             this text\n";

/* Picks a free port for --listen host:0 (SO_REUSEPORT, so workers can bind it too); the
 * socket stays open to hold the port while the master lives. */
static int pick_port(const char *host, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int one = 1, fd;

    if (cl_sockaddr_from_ip(host, 0, &ss) != 0)
        return CL_EINVAL;
    if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, cl_sockaddr_len((struct sockaddr *)&ss)) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    *port = cl_sockaddr_port((struct sockaddr *)&ss);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"listen", required_argument, NULL, 'L'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},
        {"workers", required_argument, NULL, 'w'},
        {"import-bind", required_argument, NULL, 'b'},
        {"log-level", required_argument, NULL, 'l'},
        {"ready-file", required_argument, NULL, 'r'},
        {"worker-id", required_argument, NULL, 'W'},
        {"drain-timeout", required_argument, NULL, 'D'},
        {"idle-timeout", required_argument, NULL, 'I'},
        {"conn-idle-timeout", required_argument, NULL, 'C'},
        {"cert-check-interval", required_argument, NULL, 'T'},
        {"access-log", no_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct dp_opts o = {
        .import_bind = "127.0.0.1",
        .worker_id = -1,
        .drain_ms = 10000,
        .idle_ms = 3600000,
        .conn_idle_ms = 300000,
        .cert_check_ms = 5000,
    };
    const char *listen = NULL, *ready = NULL;
    char host[CL_ADDRSTRLEN], ctx[32], err[256];
    long workers = sysconf(_SC_NPROCESSORS_ONLN), v;
    int c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            o.socket = optarg;
            break;
        case 'L':
            listen = optarg;
            break;
        case 'c':
            o.cert = optarg;
            break;
        case 'k':
            o.key = optarg;
            break;
        case 'a':
            o.ca = optarg;
            break;
        case 'w':
            if (cl_parse_opt_long(stderr, PROG, "workers", optarg, 1, 256, NULL, &workers) != 0)
                return 2;
            break;
        case 'b':
            o.import_bind = optarg;
            break;
        case 'l':
            if (cl_log_parse_opt(stderr, PROG, optarg) != 0)
                return 2;
            break;
        case 'r':
            ready = optarg;
            break;
        case 'W':
            if (cl_parse_opt_long(stderr, PROG, "worker-id", optarg, 0, 1000, NULL, &v) != 0)
                return 2;
            o.worker_id = (int)v;
            break;
        case 'D':
            if (cl_parse_opt_long(stderr, PROG, "drain-timeout", optarg, 0, 3600000, "ms", &v) != 0)
                return 2;
            o.drain_ms = (uint64_t)v;
            break;
        case 'I':
            if (cl_parse_opt_long(stderr, PROG, "idle-timeout", optarg, 0, MAX_IDLE_MS, "ms", &v) !=
                0)
                return 2;
            o.idle_ms = (uint64_t)v;
            break;
        case 'C':
            if (cl_parse_opt_long(stderr, PROG, "conn-idle-timeout", optarg, 0, MAX_IDLE_MS, "ms",
                                  &v) != 0)
                return 2;
            o.conn_idle_ms = (uint64_t)v;
            break;
        case 'T':
            if (cl_parse_opt_long(stderr, PROG, "cert-check-interval", optarg, 0, 3600000, "ms",
                                  &v) != 0)
                return 2;
            o.cert_check_ms = (uint64_t)v;
            break;
        case 'A':
            o.access_log = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind < argc || o.socket == NULL || listen == NULL || o.cert == NULL || o.key == NULL ||
        o.ca == NULL) {
        fprintf(stderr, "cl-dataplane: %s\n\n%s",
                optind < argc ? "unexpected argument"
                              : "--socket, --listen, --cert, --key and --ca are required",
                usage);
        return 2;
    }
    if (cl_hostport_split(listen, host, sizeof(host), &o.listen_port) != 0) {
        if (strlen(listen) > 2 && strcmp(listen + strlen(listen) - 2, ":0") == 0) {
            snprintf(host, sizeof(host), "%.*s", (int)strlen(listen) - 2, listen);
            o.listen_port = 0;
        } else {
            fprintf(stderr, "cl-dataplane: --listen %s is not addr:port\n", listen);
            return 2;
        }
    }
    o.listen_host = host;
    struct sockaddr_storage probe;
    if (cl_sockaddr_from_ip(host, 1, &probe) != 0 ||
        cl_sockaddr_from_ip(o.import_bind, 1, &probe) != 0) {
        fprintf(stderr, "cl-dataplane: --listen and --import-bind need IP addresses\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    cl_mem_install_jansson();
    cl_tls_global_init();
    if (o.worker_id >= 0) {
        snprintf(ctx, sizeof(ctx), "proc=dp worker=%d", o.worker_id);
        cl_log_set_context(ctx);
        return dp_worker_run(&o);
    }
    cl_log_set_context("proc=dp-master");
    /* fail early, in the master, on unusable certificate material */
    struct cl_tls_ctx *t = NULL;
    struct cl_tls_ctx_opts to = {
        .server = true, .cert_file = o.cert, .key_file = o.key, .ca_file = o.ca};
    if (cl_tls_ctx_new(&to, &t, err, sizeof(err)) != 0) {
        fprintf(stderr, "cl-dataplane: %s\n", err);
        return 1;
    }
    cl_tls_ctx_unref(t);
    if (o.listen_port == 0) {
        int rc = pick_port(host, &o.listen_port);
        if (rc != 0) {
            fprintf(stderr, "cl-dataplane: cannot pick a port on %s: %s\n", host, cl_strerror(rc));
            return 1;
        }
    }
    /* a ready file left by an earlier run (e.g. a restarted container) must not say "ready" */
    if (ready != NULL && unlink(ready) != 0 && errno != ENOENT) {
        fprintf(stderr, "cl-dataplane: cannot remove the old %s: %s\n", ready, strerror(errno));
        return 1;
    }
    return dp_master_run(argc, argv, &o, (int)workers, ready);
}
