/*
 * The master: starts N workers by re-executing this binary with --worker-id, restarts any that
 * dies (exponential backoff), writes the ready file once every worker is ready (it listens and
 * has its first configuration, or found no controlplane), and on SIGTERM
 * forwards it to the workers (they drain) and exits 0 when all are gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "dp.h"

#define BACKOFF_MIN 100
#define BACKOFF_MAX 5000

struct child {
    uv_process_t proc;
    uv_pipe_t out;
    uv_timer_t restart;
    int id;
    bool running;
    bool ready;
    uint64_t backoff;
    char rbuf[64];
};

static struct {
    uv_loop_t *loop;
    struct child *kids;
    int n;
    char **argv; /* worker argv template; the id slot is rewritten */
    int id_slot;
    const char *ready_file;
    uint16_t port;
    bool ready_written;
    bool stopping;
    int alive;
    uv_signal_t sigterm, sigint;
} m;

static void spawn(struct child *k);

static void check_ready(void)
{
    FILE *f;

    if (m.ready_written || m.ready_file == NULL)
        return;
    for (int i = 0; i < m.n; i++) {
        if (!m.kids[i].ready)
            return;
    }
    m.ready_written = true;
    if ((f = fopen(m.ready_file, "w")) == NULL || fprintf(f, "%u\n", m.port) < 0 || fclose(f) != 0)
        CL_ERROR("dp.master", "cannot write %s", m.ready_file);
    CL_INFO("dp.master", "%d workers ready on port %u", m.n, m.port);
}

static void on_out_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct child *k = h->data;

    (void)hint;
    buf->base = k->rbuf;
    buf->len = sizeof(k->rbuf);
}

static void on_out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct child *k = s->data;

    if (nread > 0 && memmem(buf->base, (size_t)nread, "ready", 5) != NULL) {
        k->ready = true;
        k->backoff = BACKOFF_MIN;
        check_ready();
    }
    if (nread < 0)
        uv_close((uv_handle_t *)s, NULL);
}

static void on_restart(uv_timer_t *t)
{
    spawn(t->data);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct child *k = p->data;

    k->running = false;
    m.alive--;
    uv_close((uv_handle_t *)p, NULL);
    if (m.stopping) {
        CL_INFO("dp.master", "worker %d exited (status %lld)", k->id, (long long)status);
        if (m.alive == 0) {
            for (int i = 0; i < m.n; i++)
                uv_close((uv_handle_t *)&m.kids[i].restart, NULL);
            uv_close((uv_handle_t *)&m.sigterm, NULL);
            uv_close((uv_handle_t *)&m.sigint, NULL);
        }
        return;
    }
    CL_WARN("dp.master", "worker %d died (status %lld, signal %d); restarting in %llu ms", k->id,
            (long long)status, sig, (unsigned long long)k->backoff);
    uv_timer_start(&k->restart, on_restart, k->backoff, 0);
    k->backoff = k->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : k->backoff * 2;
}

static void spawn(struct child *k)
{
    char id[16];
    uv_stdio_container_t io[3];
    uv_process_options_t po;
    int rc;

    if (m.stopping)
        return;
    snprintf(id, sizeof(id), "%d", k->id);
    m.argv[m.id_slot] = id;
    uv_pipe_init(m.loop, &k->out, 0);
    k->out.data = k;
    io[0].flags = UV_IGNORE;
    io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    io[1].data.stream = (uv_stream_t *)&k->out;
    io[2].flags = UV_INHERIT_FD;
    io[2].data.fd = 2;
    memset(&po, 0, sizeof(po));
    po.file = "/proc/self/exe";
    po.args = m.argv;
    po.exit_cb = on_exit_cb;
    po.stdio = io;
    po.stdio_count = 3;
    k->proc.data = k;
    if ((rc = uv_spawn(m.loop, &k->proc, &po)) != 0) {
        CL_ERROR("dp.master", "cannot start worker %d: %s", k->id, uv_strerror(rc));
        uv_close((uv_handle_t *)&k->out, NULL);
        uv_timer_start(&k->restart, on_restart, k->backoff, 0);
        return;
    }
    k->running = true;
    m.alive++;
    uv_read_start((uv_stream_t *)&k->out, on_out_alloc, on_out_read);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (m.stopping)
        return;
    m.stopping = true;
    CL_INFO("dp.master", "signal %d: draining workers", signum);
    for (int i = 0; i < m.n; i++) {
        uv_timer_stop(&m.kids[i].restart);
        if (m.kids[i].running)
            uv_process_kill(&m.kids[i].proc, SIGTERM);
    }
    if (m.alive == 0) {
        for (int i = 0; i < m.n; i++)
            uv_close((uv_handle_t *)&m.kids[i].restart, NULL);
        uv_close((uv_handle_t *)&m.sigterm, NULL);
        uv_close((uv_handle_t *)&m.sigint, NULL);
    }
}

int dp_master_run(int argc, char **argv, const struct dp_opts *o, int workers,
                  const char *ready_file)
{
    char listen[300];
    int slot = -1;

    m.loop = uv_default_loop();
    m.n = workers;
    m.ready_file = ready_file;
    m.port = o->listen_port;
    /* worker argv: ours, minus --ready-file/--workers, with the chosen port, plus the id */
    m.argv = calloc((size_t)argc + 8, sizeof(char *));
    m.kids = calloc((size_t)workers, sizeof(*m.kids));
    if (m.argv == NULL || m.kids == NULL)
        cl_fatal("out of memory");
    int j = 0;
    m.argv[j++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--ready-file") == 0 || strcmp(argv[i], "--workers") == 0 ||
             strcmp(argv[i], "--listen") == 0) &&
            i + 1 < argc) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--ready-file=", 13) == 0 || strncmp(argv[i], "--workers=", 10) == 0 ||
            strncmp(argv[i], "--listen=", 9) == 0)
            continue;
        m.argv[j++] = argv[i];
    }
    snprintf(listen, sizeof(listen), strchr(o->listen_host, ':') ? "[%s]:%u" : "%s:%u",
             o->listen_host, o->listen_port);
    m.argv[j++] = "--listen";
    m.argv[j++] = listen;
    m.argv[j++] = "--worker-id";
    slot = j++;
    m.argv[j] = NULL;
    m.id_slot = slot;
    for (int i = 0; i < workers; i++) {
        m.kids[i].id = i;
        m.kids[i].backoff = BACKOFF_MIN;
        uv_timer_init(m.loop, &m.kids[i].restart);
        m.kids[i].restart.data = &m.kids[i];
    }
    uv_signal_init(m.loop, &m.sigterm);
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    uv_signal_init(m.loop, &m.sigint);
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    for (int i = 0; i < workers; i++)
        spawn(&m.kids[i]);
    uv_run(m.loop, UV_RUN_DEFAULT);
    CL_INFO("dp.master", "all workers stopped");
    free(m.argv);
    free(m.kids);
    return 0;
}
