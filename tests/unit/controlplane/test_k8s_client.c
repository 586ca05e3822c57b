/* The Kubernetes API client on a real loop against a scripted HTTPS server (a wolfSSL server
 * on a thread with blocking sockets): keep-alive, retries of 5xx/429/transport errors with
 * their limits, timeouts, a connection cut mid-answer, watch streams, cancellation from inside
 * a callback, freeing with calls in flight, certificate checks. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "cl/bufq.h"
#include "cl/certgen.h"
#include "cl/err.h"
#include "cl/mem.h"
#include "cl/time.h"
#include "cl/tls.h"
#include "cm.h"
#include "cp_k8s_client.h"
#include "pki.h"
#include "testutil.h"

/* What the server does with the nth request (counting from 0 over the whole test). */
enum act {
    ACT_ANSWER,   /* send `text` */
    ACT_HOLD,     /* never answer (until the client goes) */
    ACT_CUT,      /* send `text`, then close the connection */
    ACT_WATCH,    /* send `text` as a chunked stream, one chunk per line, then end it */
    ACT_WATCH_ON, /* like ACT_WATCH but keep the stream open afterwards */
};

struct step {
    enum act act;
    const char *text;
};

struct server {
    int lfd;
    uint16_t port;
    WOLFSSL_CTX *ctx;
    pthread_t th;
    const struct step *steps;
    size_t nsteps;
    int nreq;
    int nconn;
    char last_req[4096];
    volatile int stop;
};

static struct cl_test_pki pki;
static struct cl_test_leaf ipsrv; /* "srv" with the IP SAN 127.0.0.1 */
static bool want_client_cert;     /* the next server_start requires a client certificate */
static uv_loop_t loop;

static void serve_conn(struct server *s, int fd)
{
    WOLFSSL *ssl = wolfSSL_new(s->ctx);
    char buf[8192];

    wolfSSL_set_fd(ssl, fd);
    if (wolfSSL_accept(ssl) != WOLFSSL_SUCCESS)
        goto done;
    for (;;) {
        size_t len = 0;
        int n;
        buf[0] = '\0';
        while (strstr(buf, "\r\n\r\n") == NULL) {
            if ((n = wolfSSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len))) <= 0)
                goto done;
            len += (size_t)n;
            buf[len] = '\0';
        }
        const char *cl = strstr(buf, "Content-Length: ");
        size_t want = (size_t)(strstr(buf, "\r\n\r\n") - buf) + 4 +
                      (cl != NULL ? (size_t)strtol(cl + 16, NULL, 10) : 0);
        while (len < want) {
            if ((n = wolfSSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len))) <= 0)
                goto done;
            len += (size_t)n;
            buf[len] = '\0';
        }
        snprintf(s->last_req, sizeof(s->last_req), "%s", buf);
        int i = s->nreq++;
        const struct step *st = (size_t)i < s->nsteps ? &s->steps[i] : NULL;
        if (st == NULL || st->act == ACT_HOLD) {
            while (wolfSSL_read(ssl, buf, sizeof(buf)) > 0)
                ; /* until the client closes */
            goto done;
        }
        if (st->act == ACT_WATCH || st->act == ACT_WATCH_ON) {
            static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n";
            wolfSSL_write(ssl, head, (int)strlen(head));
            for (const char *p = st->text; *p != '\0';) {
                const char *nl = strchr(p, '\n');
                size_t l = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
                char hdr[32];
                snprintf(hdr, sizeof(hdr), "%zx\r\n", l);
                wolfSSL_write(ssl, hdr, (int)strlen(hdr));
                wolfSSL_write(ssl, p, (int)l);
                wolfSSL_write(ssl, "\r\n", 2);
                p += l;
            }
            if (st->act == ACT_WATCH_ON) {
                while (wolfSSL_read(ssl, buf, sizeof(buf)) > 0)
                    ;
                goto done;
            }
            wolfSSL_write(ssl, "0\r\n\r\n", 5);
            continue;
        }
        wolfSSL_write(ssl, st->text, (int)strlen(st->text));
        if (st->act == ACT_CUT)
            goto done;
    }
done:
    wolfSSL_free(ssl);
    close(fd);
}

static void *server_main(void *arg)
{
    struct server *s = arg;

    while (!s->stop) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            break;
        s->nconn++;
        serve_conn(s, fd);
    }
    return NULL;
}

static void server_start(struct server *s, const struct step *steps, size_t n,
                         const struct cl_test_leaf *leaf)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->steps = steps;
    s->nsteps = n;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 8), 0);
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    s->ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    assert_int_equal(wolfSSL_CTX_use_certificate_chain_buffer(
                         s->ctx, (const unsigned char *)leaf->cert, (long)strlen(leaf->cert)),
                     WOLFSSL_SUCCESS);
    assert_int_equal(wolfSSL_CTX_use_PrivateKey_buffer(s->ctx, (const unsigned char *)leaf->key,
                                                       (long)strlen(leaf->key),
                                                       WOLFSSL_FILETYPE_PEM),
                     WOLFSSL_SUCCESS);
    if (want_client_cert) {
        assert_int_equal(wolfSSL_CTX_load_verify_buffer(s->ctx, (const unsigned char *)pki.ca,
                                                        (long)strlen(pki.ca), WOLFSSL_FILETYPE_PEM),
                         WOLFSSL_SUCCESS);
        wolfSSL_CTX_set_verify(s->ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                               NULL);
    }
    assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
    s->stop = 1;
    shutdown(s->lfd, SHUT_RDWR);
    close(s->lfd);
    pthread_join(s->th, NULL);
    wolfSSL_CTX_free(s->ctx);
}

static void config(struct cp_k8s_config *c, uint16_t port)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->host, sizeof(c->host), "127.0.0.1");
    c->port = port;
    c->server_name = cl_strdup("srv"); /* as kubeconfig's tls-server-name */
    c->ca_pem = cl_strdup(pki.ca);
    c->token = cl_strdup("tok");
    assert_non_null(c->server_name);
}

/* ---- one-shot calls ---- */

struct got {
    int n;
    int err, status, attempts;
    char body[512];
    char detail[256];
    bool json;
};

static void on_resp(const struct cp_k8s_resp *r, void *ud)
{
    struct got *g = ud;

    g->n++;
    g->err = r->err;
    g->status = r->status;
    g->attempts = r->attempts;
    g->json = r->json != NULL;
    snprintf(g->body, sizeof(g->body), "%.*s", (int)r->len, r->body);
    snprintf(g->detail, sizeof(g->detail), "%s", r->detail);
}

static void run_until(int *flag, int want)
{
    uint64_t deadline = cl_now_ms() + 20000;

    while (*flag < want && cl_now_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(*flag >= want);
}

/* Runs the loop without blocking for `ms` milliseconds. */
static void run_for(uint64_t ms)
{
    uint64_t until = cl_now_ms() + ms;

    while (cl_now_ms() < until)
        uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- the per-test fixture: a scripted server, a configuration pointing at it, a client ---- */

struct fix {
    struct server s;
    bool serving;
    struct cp_k8s_config cfg;
    struct cp_k8s_client *c;
};

/* Starts the scripted server and points a fresh configuration at it. */
static void open_server(struct fix *f, const struct step *steps, size_t n,
                        const struct cl_test_leaf *leaf)
{
    server_start(&f->s, steps, n, leaf);
    f->serving = true;
    cp_k8s_config_deinit(&f->cfg);
    config(&f->cfg, f->s.port);
}

static void close_server(struct fix *f)
{
    if (f->serving)
        server_stop(&f->s);
    f->serving = false;
}

static void open_client(struct fix *f, const struct cp_k8s_client_opts *o)
{
    char err[256];

    assert_int_equal(cp_k8s_client_new(&loop, &f->cfg, o, &f->c, err, sizeof(err)), 0);
}

/* Frees the client and runs the loop until its handles are closed. */
static void close_client(struct fix *f)
{
    if (f->c == NULL)
        return;
    cp_k8s_client_free(f->c);
    f->c = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
}

static int fix_setup(void **state)
{
    static struct fix f;

    memset(&f, 0, sizeof(f));
    *state = &f;
    return 0;
}

/* Client first, then the server (a held connection ends when the client goes), then the
 * configuration; also what a test that failed half-way left behind. */
static int fix_teardown(void **state)
{
    struct fix *f = *state;

    close_client(f);
    close_server(f);
    cp_k8s_config_deinit(&f->cfg);
    return 0;
}

static const struct cp_k8s_client_opts fast = {.backoff_base_ms = 10, .backoff_max_ms = 40};

/* A new client on the fixture's configuration makes call r and is freed once it is answered. */
static void call_once(struct fix *f, const struct cp_k8s_req *r, struct got *g)
{
    int want = g->n + 1;

    open_client(f, &fast);
    assert_int_equal(cp_k8s_call(f->c, r, on_resp, g, NULL), 0);
    run_until(&g->n, want);
    close_client(f);
}

#define OK_JSON "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n"

static void keep_alive_and_request_shape(void **state)
{
    static const struct step steps[] = {
        {ACT_ANSWER, OK_JSON "{\"n\":1}\n"},
        {ACT_ANSWER, OK_JSON "{\"n\":2}\n"},
    };
    struct fix *f = *state;
    struct got g = {0};

    open_server(f, steps, 2, &pki.srv);
    snprintf(f->cfg.prefix, sizeof(f->cfg.prefix), "/proxy");
    open_client(f, &fast);
    struct cp_k8s_req r = {.method = "PUT", .path = "/api/v1/x", .body = "{\"a\":1}", .bodylen = 7};
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0);
    assert_int_equal(g.n, 0); /* never before the call returns */
    run_until(&g.n, 1);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "{\"n\":1}\n");
    assert_true(g.json);
    assert_non_null(strstr(f->s.last_req, "PUT /proxy/api/v1/x HTTP/1.1\r\n"));
    assert_non_null(strstr(f->s.last_req, "Host: 127.0.0.1:"));
    assert_non_null(strstr(f->s.last_req, "Authorization: Bearer tok\r\n"));
    assert_non_null(strstr(f->s.last_req, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(f->s.last_req, "\r\n\r\n{\"a\":1}"));
    struct cp_k8s_req r2 = {.method = "GET", .path = "/api/v1/y"};
    assert_int_equal(cp_k8s_call(f->c, &r2, on_resp, &g, NULL), 0);
    run_until(&g.n, 2);
    assert_string_equal(g.body, "{\"n\":2}\n");
    assert_int_equal(f->s.nconn, 1); /* the second request reused the connection */
}

static void retries(void **state)
{
    static const struct step steps[] = {
        {ACT_ANSWER, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"},
        {ACT_CUT, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut"},
        {ACT_ANSWER, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
                     "\r\n"},
        {ACT_ANSWER, OK_JSON "{\"n\":3}\n"},
        /* a 409 is the caller's business: no retry */
        {ACT_ANSWER, "HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\n\r\n{}"},
        /* out of attempts: the last answer is what the caller gets */
        {ACT_ANSWER, "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"},
        {ACT_ANSWER, "HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"},
    };
    struct fix *f = *state;
    struct got g = {0};

    open_server(f, steps, sizeof(steps) / sizeof(steps[0]), &pki.srv);
    open_client(f, &fast);
    struct cp_k8s_req r = {.method = "GET", .path = "/a"};
    uint64_t t0 = cl_now_ms();
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0);
    run_until(&g.n, 1);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 4);
    assert_true(cl_now_ms() - t0 >= 1000); /* Retry-After was honoured */
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0);
    run_until(&g.n, 2);
    assert_int_equal(g.status, 409);
    assert_int_equal(g.attempts, 1);
    r.max_attempts = 2;
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0);
    run_until(&g.n, 3);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 502);
    assert_int_equal(g.attempts, 2);
}

static void timeouts_and_refused(void **state)
{
    static const struct step steps[] = {{ACT_HOLD, NULL}, {ACT_HOLD, NULL}};
    struct fix *f = *state;
    struct got g = {0};

    open_server(f, steps, 2, &pki.srv);
    open_client(f, &fast);
    struct cp_k8s_req r = {.method = "GET", .path = "/slow", .timeout_ms = 200, .max_attempts = 2};
    uint64_t t0 = cl_now_ms();
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0);
    run_until(&g.n, 1);
    assert_int_equal(g.err, CL_ETIMEDOUT);
    assert_int_equal(g.attempts, 2);
    assert_true(cl_now_ms() - t0 >= 400 && cl_now_ms() - t0 < 5000);
    close_client(f);
    close_server(f);
    /* nobody listening any more */
    open_client(f, &fast);
    r.max_attempts = 3;
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0);
    run_until(&g.n, 2);
    assert_int_equal(g.err, UV_ECONNREFUSED);
    assert_int_equal(g.attempts, 3);
    assert_non_null(strstr(g.detail, "connect to 127.0.0.1"));
}

/* Replaces a string the configuration owns. */
static void set_str(char **field, const char *value)
{
    cl_free(field);
    *field = cl_strdup(value);
    assert_non_null(*field);
}

static void certificates(void **state)
{
    static const struct step steps[] = {{ACT_ANSWER, OK_JSON "{\"n\":1}\n"}};
    struct fix *f = *state;
    struct got g = {0};
    char err[256];
    struct cp_k8s_req r = {.method = "GET", .path = "/", .max_attempts = 1};

    /* signed by another CA */
    open_server(f, steps, 1, &pki.other);
    call_once(f, &r, &g);
    assert_int_equal(g.err, CL_ETLS_UNKNOWN_CA);
    assert_non_null(strstr(g.detail, "API server certificate is not signed by the configured CA"));
    close_server(f);
    /* the right CA, the wrong name */
    open_server(f, steps, 1, &pki.srv);
    set_str(&f->cfg.server_name, "kubernetes.default.svc");
    call_once(f, &r, &g);
    assert_int_equal(g.err, CL_ETLS_NAME);
    /* an IP literal needs an iPAddress SAN, which this certificate lacks */
    set_str(&f->cfg.server_name, "127.0.0.1");
    call_once(f, &r, &g);
    assert_int_equal(g.err, CL_ETLS_NAME);
    assert_non_null(strstr(g.detail, "no IP address SAN"));
    close_server(f);
    /* ... which this one has */
    open_server(f, steps, 1, &ipsrv);
    set_str(&f->cfg.server_name, "127.0.0.1");
    call_once(f, &r, &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    close_server(f);
    /* a server that wants a client certificate gets the kubeconfig's, and nothing without */
    want_client_cert = true;
    open_server(f, steps, 1, &pki.srv);
    want_client_cert = false;
    call_once(f, &r, &g);
    assert_true(g.err < 0);
    assert_int_equal(f->s.nreq, 0);
    set_str(&f->cfg.cert_pem, pki.cli.cert);
    set_str(&f->cfg.key_pem, pki.cli.key);
    call_once(f, &r, &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    assert_int_equal(f->s.nreq, 1);
    close_server(f);
    assert_int_equal(g.n, 6); /* one answer per call, none lost or doubled */
    /* bad material is refused up front */
    cp_k8s_config_deinit(&f->cfg);
    config(&f->cfg, 1);
    set_str(&f->cfg.ca_pem, "not a certificate");
    assert_int_equal(cp_k8s_client_new(&loop, &f->cfg, &fast, &f->c, err, sizeof(err)),
                     CL_ETLS_BAD_FILE);
    set_str(&f->cfg.ca_pem, pki.ca);
    set_str(&f->cfg.cert_pem, pki.cli.cert);
    set_str(&f->cfg.key_pem, pki.srv.key);
    assert_int_equal(cp_k8s_client_new(&loop, &f->cfg, &fast, &f->c, err, sizeof(err)),
                     CL_ETLS_KEY_MISMATCH);
}

/* ---- watches ---- */

struct wgot {
    int lines;
    int ends;
    int err, status;
    char text[512];
    struct cp_k8s_call *call;
    int cancel_at; /* cancel the watch from inside on_line number n (0: never) */
};

static int on_line(const char *line, size_t len, void *ud)
{
    struct wgot *w = ud;
    size_t l = strlen(w->text);

    w->lines++;
    snprintf(w->text + l, sizeof(w->text) - l, "[%.*s]", (int)len, line);
    if (w->lines == w->cancel_at)
        cp_k8s_call_cancel(w->call);
    return 0;
}

static void on_end(int err, int status, const json_t *body, void *ud)
{
    struct wgot *w = ud;

    w->ends++;
    w->err = err;
    w->status = status;
    if (body != NULL)
        snprintf(w->text, sizeof(w->text), "%s",
                 json_string_value(json_object_get(body, "reason")));
}

static const struct cp_k8s_watch_cbs wcbs = {on_line, on_end};

static void watches(void **state)
{
    static const struct step steps[] = {
        {ACT_WATCH, "{\"type\":\"ADDED\"}\n{\"type\":\"MODIFIED\"}\n{\"type\":\"DELETED\"}\n"},
        {ACT_ANSWER, "HTTP/1.1 410 Gone\r\nContent-Type: application/json\r\nContent-Length: 20\r\n"
                     "\r\n{\"reason\":\"Expired\"}"},
        {ACT_WATCH_ON, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"},
        {ACT_WATCH_ON, "{\"n\":1}\n"},
    };
    struct fix *f = *state;
    struct wgot w = {0};

    open_server(f, steps, sizeof(steps) / sizeof(steps[0]), &pki.srv);
    open_client(f, &fast);
    /* a stream the server ends */
    assert_int_equal(cp_k8s_watch(f->c, "/w?watch=1", 5000, &wcbs, &w, &w.call), 0);
    run_until(&w.ends, 1);
    assert_int_equal(w.lines, 3);
    assert_string_equal(w.text, "[{\"type\":\"ADDED\"}][{\"type\":\"MODIFIED\"}][{\"type\":"
                                "\"DELETED\"}]");
    assert_int_equal(w.err, 0);
    assert_int_equal(w.status, 200);
    /* refused with 410: the body comes with it */
    memset(&w, 0, sizeof(w));
    assert_int_equal(cp_k8s_watch(f->c, "/w?watch=1", 5000, &wcbs, &w, &w.call), 0);
    run_until(&w.ends, 1);
    assert_int_equal(w.status, 410);
    assert_string_equal(w.text, "Expired");
    /* cancelled from inside on_line: nothing more is delivered, on_end never runs */
    memset(&w, 0, sizeof(w));
    w.cancel_at = 1;
    assert_int_equal(cp_k8s_watch(f->c, "/w?watch=1", 5000, &wcbs, &w, &w.call), 0);
    run_for(500);
    assert_int_equal(w.lines, 1);
    assert_int_equal(w.ends, 0);
    /* a silent stream ends after its idle time */
    memset(&w, 0, sizeof(w));
    assert_int_equal(cp_k8s_watch(f->c, "/w?watch=1", 300, &wcbs, &w, &w.call), 0);
    run_until(&w.ends, 1);
    assert_int_equal(w.lines, 1);
    assert_int_equal(w.err, CL_ETIMEDOUT);
    assert_int_equal(f->s.nconn, 4); /* each watch had its own connection */
}

/* Freed with calls queued, waiting to retry, and in flight: no callback, nothing leaks, the
 * loop closes clean. */
/* The CA named as a file (kubeconfig certificate-authority, the pod's ca.crt) is re-read when
 * replaced: idle connections made with the old one are not reused; files that cannot be used
 * are refused once and the old material keeps serving. */
static void reload_tls_files(void **state)
{
    static const struct step steps[] = {
        {ACT_ANSWER, OK_JSON "{\"n\":1}\n"},
        {ACT_ANSWER, OK_JSON "{\"n\":2}\n"},
        {ACT_ANSWER, OK_JSON "{\"n\":3}\n"},
    };
    struct fix *f = *state;
    struct got g = {0};
    struct cp_k8s_req r = {.method = "GET", .path = "/"};
    char *dir = cl_test_mkdtemp("k8stls"), ca[600], tmp[600], err[320];

    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    snprintf(tmp, sizeof(tmp), "%s/ca.tmp", dir);
    cl_test_write_file(ca, pki.ca, strlen(pki.ca));
    open_server(f, steps, 3, &pki.srv);
    set_str(&f->cfg.ca_file, ca);
    open_client(f, &fast);
    assert_int_equal(cp_k8s_client_reload_tls(f->c, err, sizeof(err)), 0); /* unchanged */
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0);
    run_until(&g.n, 1);
    assert_int_equal(f->s.nconn, 1);
    /* the same CA, rewritten and renamed into place: a new file, so a reload */
    cl_test_write_file(tmp, pki.ca, strlen(pki.ca));
    assert_int_equal(rename(tmp, ca), 0);
    assert_int_equal(cp_k8s_client_reload_tls(f->c, err, sizeof(err)), 1);
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0);
    run_until(&g.n, 2);
    assert_int_equal(g.err, 0);
    assert_string_equal(g.body, "{\"n\":2}\n");
    assert_int_equal(f->s.nconn, 2); /* the idle connection was not reused */
    /* not a CA bundle: refused once, and the connection made before is still used */
    cl_test_write_file(tmp, "not a certificate\n", 18);
    assert_int_equal(rename(tmp, ca), 0);
    assert_int_equal(cp_k8s_client_reload_tls(f->c, err, sizeof(err)), CL_ETLS_BAD_FILE);
    assert_non_null(strstr(err, "ca.crt"));
    assert_int_equal(cp_k8s_client_reload_tls(f->c, err, sizeof(err)), 0);
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0);
    run_until(&g.n, 3);
    assert_int_equal(g.err, 0);
    assert_int_equal(f->s.nconn, 2);
    close_client(f);
    cl_test_rmtree(dir);
    cl_free(&dir);
}

static void free_with_calls_in_flight(void **state)
{
    static const struct step steps[] = {
        {ACT_ANSWER, "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"},
        {ACT_HOLD, NULL},
        {ACT_HOLD, NULL},
    };
    struct fix *f = *state;
    struct got g = {0};
    struct wgot w = {0};

    open_server(f, steps, 3, &pki.srv);
    struct cp_k8s_client_opts slow = {.backoff_base_ms = 5000, .max_conns = 1};
    open_client(f, &slow);
    struct cp_k8s_req r = {.method = "GET", .path = "/a"};
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0); /* 500, then waits 5 s */
    run_for(300);
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0); /* held */
    assert_int_equal(cp_k8s_call(f->c, &r, on_resp, &g, NULL), 0); /* queued (max_conns 1) */
    assert_int_equal(cp_k8s_watch(f->c, "/w", 5000, &wcbs, &w, NULL), 0);
    run_for(300);
    close_client(f);
    assert_int_equal(g.n, 0);
    assert_int_equal(w.ends, 0);
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* both ends hang up on each other here, as the daemon may */
    cl_tls_global_init();
    if (cl_test_pki_make(&pki) != 0)
        return -1;
    const char *dns[] = {"srv"}, *ips[] = {"127.0.0.1"};
    struct cl_certgen_opts o = {
        .cn = "srv", .dns = dns, .ndns = 1, .ips = ips, .nips = 1, .server_auth = true};
    if (cl_certgen_leaf(pki.ca, pki.ca_key, &o, &ipsrv.cert, &ipsrv.key) != 0)
        return -1;
    return uv_loop_init(&loop);
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(uv_loop_close(&loop), 0);
    cl_test_pki_free(&pki);
    cl_free(&ipsrv.cert);
    cl_free(&ipsrv.key);
    cl_tls_global_cleanup();
    cl_bufq_pool_drain();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(keep_alive_and_request_shape, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(retries, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(timeouts_and_refused, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(certificates, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(watches, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(reload_tls_files, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(free_with_calls_in_flight, fix_setup, fix_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
