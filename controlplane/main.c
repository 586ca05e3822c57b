/* cl-controlplane: the gateway's brain. See --help. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/str.h"
#include "cl/time.h"
#include "cl/tls.h"
#include "cp.h"
#include "cp_k8s.h"
#include "cp_k8s_config.h"

#define CP_MAX_ADMINS 64
#define PROG          "cl-controlplane"

static const char usage[] =
    "usage: cl-controlplane --name <peer> --data-dir <dir> --socket <path>\n"
    "                       --cert <pem> --key <pem> --ca <pem> [options]\n"
    "\n"
    "The gateway's controlplane: state in LMDB, management and peer REST APIs (relayed by the\n"
    "dataplane over the IPC socket), policy engine and load balancing. Opens no public port.\n"
    "\n"
    "  --name <peer>        this gateway's peer name (a DNS label; must match its certificate)\n"
    "  --data-dir <dir>     LMDB state directory (created if missing)\n"
    "  --store-size <MiB>   the most the state may take on disk (default 256; a MiB holds\n"
    "                       about 4,500 exports); when full, changes get 507 until objects\n"
    "                       are deleted or the controlplane restarts with a larger size\n"
    "  --socket <path>      Unix socket the dataplane workers connect to\n"
    "  --cert <pem>         this gateway's certificate (for outbound calls to peers)\n"
    "  --key <pem>          its private key\n"
    "  --ca <pem>           the fabric CA bundle\n"
    "  --cert-check-interval <ms>    how often --cert, --key and --ca (and the Kubernetes API\n"
    "                       client's CA and certificate files) are checked for replacement;\n"
    "                       connections are then made anew with the new files (default 5000;\n"
    "                       0: never)\n"
    "  --admin <identity>   certificate identity allowed to use the management API; repeat for\n"
    "                       several (default: gwctl.<name>)\n"
    "  --health-interval <ms>        peer health probe period (default 1000)\n"
    "  --health-timeout <ms>         per probe: connect, TLS and answer (default 1000)\n"
    "  --health-fail-threshold <n>   failures before a peer gateway is down (default 2)\n"
    "  --health-ok-threshold <n>     successes before it is up again (default 1)\n"
    "\n"
    "Kubernetes mode (see docs/k8s-controlplane.md):\n"
    "  --k8s                every import becomes a ClusterIP Service named after it (port ->\n"
    "                       targetPort, selecting the dataplane pods, labelled\n"
    "                       clusterlink.net/gateway=<name>: only those are ever written or\n"
    "                       deleted); pods are watched so client IPs get the attributes\n"
    "                       client.clusterlink.net/namespace, /labels.<k> and /service-account.\n"
    "                       On by default in a pod (KUBERNETES_SERVICE_HOST set and a\n"
    "                       service-account token mounted)\n"
    "  --no-k8s             off, even in a pod\n"
    "  --kubeconfig <path>  API server, CA and credentials from a kubeconfig (its "
    "current-context)\n"
    "                       instead of the pod's service account\n"
    "  --k8s-namespace <ns> namespace of the Services (default: the service account's namespace,\n"
    "                       else the kubeconfig context's, else \"default\")\n"
    "  --k8s-selector <k=v,...>  labels of the dataplane pods, the selector of every Service\n"
    "                       (required in Kubernetes mode)\n"
    "  --k8s-lease-duration <s>  of the Lease clusterlink-gateway-<name> in that namespace: only\n"
    "                       its holder writes Services, other controlplanes of the same --name\n"
    "                       stand by and take over once it is not renewed for that long, or at\n"
    "                       once when released on exit (default 15, 1..3600; short for tests)\n"
    "  --target-ports <lo-hi>  range for allocated target ports (default 20000-29999); in\n"
    "                       Kubernetes mode an import's targetPort is allocated from it when 0 "
    "and\n"
    "                       persisted\n"
    "\n"
    "  --log-level <lvl>    error, warn, info (default), debug, trace\n"
    "  --ready-file <path>  written once the socket listens (for scripts, tests and probes;\n"
    "                       an old one is removed at start)\n"
    "  -h, --help           this text\n";

static struct cp cp;
static uv_signal_t sigterm, sigint;
static uv_timer_t cert_timer;
static uint64_t expiry_warned_ms; /* wall clock of the last expiry warning, 0: none yet */

#define EXPIRY_WARN_S   (14 * 24 * 3600LL) /* warn this long before the certificate expires */
#define EXPIRY_REPEAT_S (24 * 3600LL)      /* and again every day until it is replaced */

/* A certificate close to its end (or past it) is worth a line in the log, once a day: by then
 * whatever renews it (cert-manager, a person) should have replaced the files. */
static void check_expiry(void)
{
    const struct cl_tls_cert_info *ci = cl_tls_ctx_cert_info(cp.tls);
    uint64_t now_ms = cl_wall_ms();
    int64_t left = ci->not_after - (int64_t)(now_ms / 1000);

    if (!ci->have || left > EXPIRY_WARN_S)
        return;
    if (expiry_warned_ms != 0 && now_ms - expiry_warned_ms < (uint64_t)EXPIRY_REPEAT_S * 1000)
        return;
    expiry_warned_ms = now_ms;
    if (left <= 0)
        CL_ERROR("cp",
                 "the certificate (%s) expired %lld h ago: peers refuse it; replace the "
                 "files",
                 ci->sha256, (long long)(-left / 3600));
    else
        CL_WARN("cp", "the certificate (%s) expires in %lld h: replace the files before then",
                ci->sha256, (long long)(left / 3600));
}

/* Picks up replaced --cert/--key/--ca files: the peer health connections, made with the old
 * ones, are replaced at their next probe. A set of files that cannot be used is reported once
 * in the log and stays in `gwctl status` until files that can be used replace it; the old
 * material stays in use meanwhile. */
static void on_cert_timer(uv_timer_t *t)
{
    char err[320] = "";
    int rc;

    (void)t;
    rc = cl_tls_ctx_reload(cp.tls, err, sizeof(err));
    if (rc < 0) {
        CL_WARN("cp",
                "certificate files changed but cannot be used, still using the previous "
                "ones: %s",
                err);
        snprintf(cp.cert_error, sizeof(cp.cert_error), "%s", err);
    } else if (rc == 1) {
        CL_INFO("cp", "certificate files reloaded: peer connections are made anew with them");
        cp.cert_error[0] = '\0';
        expiry_warned_ms = 0; /* a new certificate: judged afresh */
    }
    cp_k8s_reload_tls(cp.kube);
    check_expiry();
}

static void on_signal(uv_signal_t *s, int signum)
{
    CL_INFO("cp", "signal %d: stopping", signum);
    (void)s;
    cp_ipc_stop(cp.ipc);
    cp.ipc = NULL;
    cp_peers_stop(cp.peers);
    cp.peers = NULL;
    cp_k8s_stop(cp.kube);
    cp.kube = NULL;
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&cert_timer, NULL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},
        {"data-dir", required_argument, NULL, 'd'},
        {"socket", required_argument, NULL, 's'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},
        {"admin", required_argument, NULL, 'A'},
        {"log-level", required_argument, NULL, 'l'},
        {"ready-file", required_argument, NULL, 'r'},
        {"health-interval", required_argument, NULL, 'I'},
        {"health-timeout", required_argument, NULL, 'T'},
        {"health-fail-threshold", required_argument, NULL, 'F'},
        {"health-ok-threshold", required_argument, NULL, 'O'},
        {"k8s", no_argument, NULL, 'K'},
        {"no-k8s", no_argument, NULL, 'N'},
        {"kubeconfig", required_argument, NULL, 'C'},
        {"k8s-namespace", required_argument, NULL, 'S'},
        {"k8s-selector", required_argument, NULL, 'L'},
        {"k8s-lease-duration", required_argument, NULL, 'D'},
        {"target-ports", required_argument, NULL, 'P'},
        {"cert-check-interval", required_argument, NULL, 'X'},
        {"store-size", required_argument, NULL, 'Z'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *name = NULL, *dir = NULL, *sock = NULL, *cert = NULL, *key = NULL, *ca = NULL;
    const char *ready = NULL;
    struct cp_k8s_opts ko = {.pods = true};
    int k8s_flag = -1; /* -1: detect (on in a pod), 0: --no-k8s, 1: --k8s */
    bool lease_flag = false;
    /* a fixed array: no allocation for an early exit (--help, a bad flag) to leak */
    char *admins[CP_MAX_ADMINS], defadmin[128];
    size_t nadmins = 0;
    char err[512];
    int o, rc;
    long v;
    struct cp_health_opts health = {
        .interval_ms = 1000, .timeout_ms = 1000, .fail_threshold = 2, .ok_threshold = 1};
    long cert_check_ms = 5000;
    long store_mib = CP_STORE_DEFAULT_MIB;

    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'n':
            name = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 's':
            sock = optarg;
            break;
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'a':
            ca = optarg;
            break;
        case 'A':
            if (nadmins == CP_MAX_ADMINS) {
                fprintf(stderr, "cl-controlplane: at most %d --admin identities\n", CP_MAX_ADMINS);
                return 2;
            }
            admins[nadmins++] = optarg;
            break;
        case 'l':
            if (cl_log_parse_opt(stderr, PROG, optarg) != 0)
                return 2;
            break;
        case 'r':
            ready = optarg;
            break;
        case 'I':
        case 'T':
            if (cl_parse_opt_long(stderr, PROG, o == 'I' ? "health-interval" : "health-timeout",
                                  optarg, 10, 3600000, "ms", &v) != 0)
                return 2;
            *(o == 'I' ? &health.interval_ms : &health.timeout_ms) = (uint64_t)v;
            break;
        case 'Z':
            if (cl_parse_opt_long(stderr, PROG, "store-size", optarg, 1, 1048576, "MiB",
                                  &store_mib) != 0)
                return 2;
            break;
        case 'X':
            if (cl_parse_opt_long(stderr, PROG, "cert-check-interval", optarg, 0, 3600000, "ms",
                                  &cert_check_ms) != 0)
                return 2;
            break;
        case 'F':
        case 'O':
            if (cl_parse_opt_long(stderr, PROG,
                                  o == 'F' ? "health-fail-threshold" : "health-ok-threshold",
                                  optarg, 1, 100, NULL, &v) != 0)
                return 2;
            *(o == 'F' ? &health.fail_threshold : &health.ok_threshold) = (int)v;
            break;
        case 'K':
        case 'N':
            k8s_flag = o == 'K';
            break;
        case 'C':
            ko.kubeconfig = optarg;
            break;
        case 'S':
            if (!cl_str_is_dns_label(optarg)) {
                fprintf(stderr, "cl-controlplane: --k8s-namespace %s is not a namespace name\n",
                        optarg);
                return 2;
            }
            ko.ns = optarg;
            break;
        case 'L':
            ko.selector = optarg;
            break;
        case 'D':
            if (cl_parse_opt_long(stderr, PROG, "k8s-lease-duration", optarg, 1, 3600, "s", &v) !=
                0)
                return 2;
            ko.lease_duration_s = (int)v;
            lease_flag = true;
            break;
        case 'P': {
            char lo[16], *dash = strchr(optarg, '-');
            uint16_t l, hgh;
            if (dash == NULL || (size_t)(dash - optarg) >= sizeof(lo)) {
                fprintf(stderr, "cl-controlplane: --target-ports must be lo-hi\n");
                return 2;
            }
            memcpy(lo, optarg, (size_t)(dash - optarg));
            lo[dash - optarg] = '\0';
            if (cl_parse_port(lo, &l) != 0 || cl_parse_port(dash + 1, &hgh) != 0 || l > hgh) {
                fprintf(stderr, "cl-controlplane: --target-ports must be lo-hi within 1-65535\n");
                return 2;
            }
            cp.port_lo = l;
            cp.port_hi = hgh;
            break;
        }
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind < argc || name == NULL || dir == NULL || sock == NULL || cert == NULL ||
        key == NULL || ca == NULL) {
        fprintf(stderr, "cl-controlplane: %s\n\n%s",
                optind < argc ? "unexpected argument"
                              : "--name, --data-dir, --socket, --cert, --key and --ca are required",
                usage);
        return 2;
    }
    if (!cl_str_is_dns_label(name)) {
        fprintf(stderr, "cl-controlplane: --name %s is not a DNS label\n", name);
        return 2;
    }
    /* a ready file left by an earlier run (e.g. a restarted container) must not say "ready" */
    if (ready != NULL && unlink(ready) != 0 && errno != ENOENT) {
        fprintf(stderr, "cl-controlplane: cannot remove the old %s: %s\n", ready, strerror(errno));
        return 1;
    }
    /* the service-account mount; CL_K8S_SA_DIR moves it for tests */
    ko.sa_dir = getenv("CL_K8S_SA_DIR") != NULL ? getenv("CL_K8S_SA_DIR") : CP_K8S_SA_DIR;
    if (k8s_flag < 0) { /* in a pod: a service-account token is mounted */
        char tok[512];
        snprintf(tok, sizeof(tok), "%s/token", ko.sa_dir);
        k8s_flag = getenv("KUBERNETES_SERVICE_HOST") != NULL && access(tok, R_OK) == 0;
        if (k8s_flag && ko.selector == NULL) {
            fprintf(stderr, "cl-controlplane: running in a pod: Kubernetes mode needs "
                            "--k8s-selector (the dataplane pods' labels), or --no-k8s\n");
            return 2;
        }
    }
    cp.k8s = k8s_flag == 1;
    if (cp.k8s) {
        char serr[256];
        json_t *sel = cp_k8s_parse_selector(ko.selector, serr, sizeof(serr));
        if (sel == NULL) {
            fprintf(stderr, "cl-controlplane: --k8s-selector: %s\n", serr);
            return 2;
        }
        json_decref(sel);
    } else if (ko.kubeconfig != NULL || ko.ns != NULL || ko.selector != NULL || lease_flag) {
        fprintf(stderr, "cl-controlplane: --kubeconfig, --k8s-namespace, --k8s-selector and "
                        "--k8s-lease-duration need Kubernetes mode (--k8s)\n");
        return 2;
    }
    cl_mem_install_jansson();
    cl_log_set_context("proc=cp");
    /* the certificate material must be usable now, not at the first peer call */
    struct cl_tls_ctx *tls = NULL;
    struct cl_tls_ctx_opts to = {
        .server = false, .cert_file = cert, .key_file = key, .ca_file = ca};
    cl_tls_global_init();
    if ((rc = cl_tls_ctx_new(&to, &tls, err, sizeof(err))) != 0) {
        fprintf(stderr, "cl-controlplane: %s\n", err);
        return 1;
    }
    if (nadmins == 0) {
        snprintf(defadmin, sizeof(defadmin), "gwctl.%s", name);
        admins[nadmins++] = defadmin;
    }
    if (cp.port_lo == 0) {
        cp.port_lo = 20000;
        cp.port_hi = 29999;
    }
    cp.loop = uv_default_loop();
    cp.name = name;
    cp.admins = admins;
    cp.nadmins = nadmins;
    cp.started_ms = cl_now_ms();
    if ((rc = cp_store_open(dir, (size_t)store_mib, &cp.store)) != 0) {
        fprintf(stderr, "cl-controlplane: cannot open state in %s: %s\n", dir, cl_strerror(rc));
        return 1;
    }
    if ((rc = cp_state_load(&cp)) != 0) {
        fprintf(stderr, "cl-controlplane: cannot load state: %s\n", cl_strerror(rc));
        return 1;
    }
    ko.gateway = name; /* the owner label of our Services */
    if (cp.k8s && (rc = cp_k8s_start(&cp, &ko, &cp.kube, err, sizeof(err))) != 0) {
        fprintf(stderr, "cl-controlplane: Kubernetes mode: %s\n", err);
        cp_state_free(&cp);
        cp_store_close(cp.store);
        cl_tls_ctx_unref(tls);
        cl_tls_global_cleanup();
        return 1;
    }
    if ((rc = cp_peers_start(&cp, tls, &health, &cp.peers)) != 0) {
        fprintf(stderr, "cl-controlplane: cannot start the health prober: %s\n", cl_strerror(rc));
        return 1;
    }
    if ((rc = cp_ipc_start(&cp, sock, &cp.ipc)) != 0) {
        fprintf(stderr, "cl-controlplane: cannot listen on %s: %s\n", sock, cl_strerror(rc));
        cp_ipc_stop(cp.ipc);
        cp_peers_stop(cp.peers);
        cp_k8s_stop(cp.kube);
        uv_run(cp.loop, UV_RUN_DEFAULT);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    cp.tls = tls;
    check_expiry();
    uv_timer_init(cp.loop, &cert_timer);
    if (cert_check_ms > 0)
        uv_timer_start(&cert_timer, on_cert_timer, (uint64_t)cert_check_ms,
                       (uint64_t)cert_check_ms);
    uv_signal_init(cp.loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(cp.loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    if (ready != NULL) {
        FILE *f = fopen(ready, "w");
        if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
            fprintf(stderr, "cl-controlplane: cannot write %s\n", ready);
            return 1;
        }
    }
    CL_INFO("cp", "controlplane %s ready on %s (state in %s)", name, sock, dir);
    uv_run(cp.loop, UV_RUN_DEFAULT);
    uv_loop_close(cp.loop);
    cp_state_free(&cp);
    cp_store_close(cp.store);
    cl_tls_ctx_unref(tls);
    cl_tls_global_cleanup();
    CL_INFO("cp", "stopped");
    return 0;
}
