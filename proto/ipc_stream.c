/* libuv wrapper for the IPC framing: one uv_pipe_t, request/reply matching with timeouts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/err.h"
#include "cl/ipc.h"
#include "cl/json.h"
#include "cl/list.h"
#include "cl/log.h"
#include "cl/mem.h"

#define READ_CHUNK (64 * 1024)

struct cl_ipc_conn {
    uv_loop_t *loop;
    uv_pipe_t pipe;
    uv_connect_t creq;
    struct cl_ipc_decoder dec;
    const struct cl_ipc_conn_cbs *cbs;
    void *ud;
    uint32_t next_id;
    struct cl_list pending;
    size_t queued;
    bool closing;
    bool paused;
    bool reading;
    int close_err;
    uint8_t rbuf[READ_CHUNK];
};

struct wreq {
    uv_write_t req;
    struct cl_ipc_conn *c;
    size_t len;
    uint8_t data[];
};

struct preq {
    struct cl_list link;
    uint32_t id;
    uv_timer_t timer;
    cl_ipc_reply_cb cb;
    void *ud;
};

static void on_preq_timer_close(uv_handle_t *h)
{
    cl_mem_free(CL_CONTAINER_OF((uv_timer_t *)h, struct preq, timer));
}

/* Removes the request, calls its callback once, and releases it. */
static void preq_finish(struct preq *p, int err, const struct cl_ipc_msg *m)
{
    cl_list_remove(&p->link);
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_preq_timer_close);
    p->cb(err, m, p->ud);
}

static void on_preq_timeout(uv_timer_t *t)
{
    preq_finish(CL_CONTAINER_OF(t, struct preq, timer), CL_ETIMEDOUT, NULL);
}

static void fail_pending(struct cl_ipc_conn *c)
{
    while (!cl_list_is_empty(&c->pending))
        preq_finish(CL_CONTAINER_OF(c->pending.next, struct preq, link), CL_ECLOSED, NULL);
}

static void on_pipe_close(uv_handle_t *h)
{
    struct cl_ipc_conn *c = CL_CONTAINER_OF((uv_pipe_t *)h, struct cl_ipc_conn, pipe);

    if (c->cbs->on_close != NULL)
        c->cbs->on_close(c, c->close_err, c->ud);
    cl_ipc_decoder_deinit(&c->dec);
    cl_mem_free(c);
}

void cl_ipc_conn_close(struct cl_ipc_conn *c, int err)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    c->close_err = err;
    fail_pending(c);
    uv_close((uv_handle_t *)&c->pipe, on_pipe_close);
}

/* Frees without on_close, for failures before the caller got the object going. */
static void on_pipe_close_silent(uv_handle_t *h)
{
    struct cl_ipc_conn *c = CL_CONTAINER_OF((uv_pipe_t *)h, struct cl_ipc_conn, pipe);

    cl_ipc_decoder_deinit(&c->dec);
    cl_mem_free(c);
}

static void close_silent(struct cl_ipc_conn *c)
{
    c->closing = true;
    uv_close((uv_handle_t *)&c->pipe, on_pipe_close_silent);
}

int cl_ipc_conn_new(uv_loop_t *loop, const struct cl_ipc_conn_cbs *cbs, void *ud,
                    struct cl_ipc_conn **out)
{
    struct cl_ipc_conn *c = cl_calloc(1, sizeof(*c));
    int rc;

    if (c == NULL)
        return CL_ENOMEM;
    c->loop = loop;
    c->cbs = cbs;
    c->ud = ud;
    c->next_id = 1;
    cl_list_init(&c->pending);
    cl_ipc_decoder_init(&c->dec);
    if ((rc = uv_pipe_init(loop, &c->pipe, 0)) != 0) {
        cl_mem_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int on_frame(const struct cl_ipc_msg *m, void *ud)
{
    struct cl_ipc_conn *c = ud;

    struct cl_jerr e;
    int verr;

    if (c->closing)
        return 1;
    if ((verr = cl_ipc_msg_validate(m->type, m->flags, m->body, &e)) != 0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s%s%s", e.field, e.field[0] ? ": " : "", e.msg);
        CL_WARN("ipc", "invalid %s%s: %s", cl_ipc_type_name(m->type),
                (m->flags & CL_IPC_F_REPLY) ? " reply" : "", msg);
        if (!(m->flags & CL_IPC_F_REPLY)) {
            if (m->req_id != 0)
                cl_ipc_reply_error(c, m, CL_ESCHEMA, msg);
            return 0;
        }
    }
    if (m->flags & CL_IPC_F_REPLY) {
        struct cl_list *pos, *tmp;
        cl_list_foreach_safe(pos, tmp, &c->pending)
        {
            struct preq *p = CL_CONTAINER_OF(pos, struct preq, link);
            if (p->id == m->req_id) {
                int err = verr;
                if (err == 0 && (m->flags & CL_IPC_F_ERROR))
                    err = cl_ipc_error_code(m->body, NULL);
                preq_finish(p, err, m);
                break;
            }
        }
        /* a late reply to a request that timed out is dropped */
    } else if (c->cbs->on_msg != NULL) {
        c->cbs->on_msg(c, m, c->ud);
    }
    return c->closing ? 1 : 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct cl_ipc_conn *c = CL_CONTAINER_OF((uv_pipe_t *)h, struct cl_ipc_conn, pipe);

    (void)hint;
    buf->base = (char *)c->rbuf;
    buf->len = sizeof(c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cl_ipc_conn *c = CL_CONTAINER_OF((uv_pipe_t *)s, struct cl_ipc_conn, pipe);
    ssize_t rc;

    if (c->closing)
        return;
    if (nread < 0) {
        cl_ipc_conn_close(c, nread == UV_EOF ? 0 : (int)nread);
        return;
    }
    if (nread == 0)
        return;
    rc = cl_ipc_decode(&c->dec, (const uint8_t *)buf->base, (size_t)nread, on_frame, c);
    if (rc < 0 && !c->closing) {
        CL_WARN("ipc", "closing IPC connection: %s", cl_strerror((int)rc));
        cl_ipc_conn_close(c, (int)rc);
    }
}

static int start_reading(struct cl_ipc_conn *c)
{
    int rc = 0;

    if (!c->paused && !c->reading && !c->closing) {
        rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
        c->reading = rc == 0;
    }
    return rc;
}

void cl_ipc_conn_pause(struct cl_ipc_conn *c, bool pause)
{
    c->paused = pause;
    if (pause && c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = false;
    } else if (!pause) {
        start_reading(c);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct cl_ipc_conn *c = CL_CONTAINER_OF(req, struct cl_ipc_conn, creq);

    if (c->closing)
        return;
    if (status == 0)
        status = start_reading(c);
    if (c->cbs->on_connect != NULL)
        c->cbs->on_connect(c, status, c->ud);
    if (status != 0)
        cl_ipc_conn_close(c, status);
}

int cl_ipc_conn_connect(struct cl_ipc_conn *c, const char *path)
{
    uv_pipe_connect(&c->creq, &c->pipe, path, on_connect);
    return 0;
}

int cl_ipc_conn_accept(struct cl_ipc_conn *c, uv_stream_t *server)
{
    int rc = uv_accept(server, (uv_stream_t *)&c->pipe);

    if (rc == 0)
        rc = start_reading(c);
    if (rc != 0)
        close_silent(c);
    return rc;
}

int cl_ipc_conn_open(struct cl_ipc_conn *c, int fd)
{
    int rc = uv_pipe_open(&c->pipe, fd);

    if (rc == 0)
        rc = start_reading(c);
    if (rc != 0)
        close_silent(c);
    return rc;
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = CL_CONTAINER_OF(req, struct wreq, req);
    struct cl_ipc_conn *c = w->c;

    c->queued -= w->len;
    cl_mem_free(w);
    if (status < 0 && !c->closing)
        cl_ipc_conn_close(c, status);
}

int cl_ipc_send(struct cl_ipc_conn *c, uint16_t type, uint16_t flags, uint32_t req_id,
                const json_t *body)
{
    struct cl_buf b;
    struct wreq *w;
    uv_buf_t ub;
    int rc;

    if (c->closing)
        return CL_ECLOSED;
    cl_buf_init(&b, CL_IPC_MAX_FRAME + CL_IPC_HDR_LEN);
    if ((rc = cl_ipc_encode(&b, type, flags, req_id, body)) != 0) {
        cl_buf_deinit(&b);
        return rc;
    }
    if ((w = cl_malloc(sizeof(*w) + b.len)) == NULL) {
        cl_buf_deinit(&b);
        return CL_ENOMEM;
    }
    w->c = c;
    w->len = b.len;
    memcpy(w->data, cl_buf_ptr(&b), b.len);
    cl_buf_deinit(&b);
    ub = uv_buf_init((char *)w->data, (unsigned)w->len);
    if ((rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &ub, 1, on_write)) != 0) {
        cl_mem_free(w);
        return rc;
    }
    c->queued += w->len;
    return 0;
}

int cl_ipc_reply(struct cl_ipc_conn *c, const struct cl_ipc_msg *req, uint16_t type,
                 const json_t *body)
{
    return cl_ipc_send(c, type, CL_IPC_F_REPLY, req->req_id, body);
}

int cl_ipc_reply_error(struct cl_ipc_conn *c, const struct cl_ipc_msg *req, int code,
                       const char *message)
{
    json_t *b = json_pack("{s:i,s:s}", "code", code, "message", message);
    int rc;

    if (b == NULL)
        return CL_ENOMEM;
    rc = cl_ipc_send(c, req->type, CL_IPC_F_REPLY | CL_IPC_F_ERROR, req->req_id, b);
    json_decref(b);
    return rc;
}

int cl_ipc_request(struct cl_ipc_conn *c, uint16_t type, const json_t *body, uint64_t timeout_ms,
                   cl_ipc_reply_cb cb, void *ud)
{
    struct preq *p;
    int rc;

    if (c->closing)
        return CL_ECLOSED;
    if ((p = cl_calloc(1, sizeof(*p))) == NULL)
        return CL_ENOMEM;
    p->id = c->next_id++;
    if (c->next_id == 0)
        c->next_id = 1;
    p->cb = cb;
    p->ud = ud;
    if ((rc = cl_ipc_send(c, type, 0, p->id, body)) != 0) {
        cl_mem_free(p);
        return rc;
    }
    uv_timer_init(c->loop, &p->timer);
    uv_timer_start(&p->timer, on_preq_timeout, timeout_ms, 0);
    cl_list_insert_tail(&c->pending, &p->link);
    return 0;
}

size_t cl_ipc_conn_queued(const struct cl_ipc_conn *c)
{
    return c->queued;
}

void *cl_ipc_conn_ud(const struct cl_ipc_conn *c)
{
    return c->ud;
}

void cl_ipc_conn_set_ud(struct cl_ipc_conn *c, void *ud)
{
    c->ud = ud;
}
