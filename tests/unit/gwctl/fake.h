#ifndef CTL_TEST_FAKE_H
#define CTL_TEST_FAKE_H

/*
 * Test helpers shared by the gwctl unit tests (header-only, static): a fake transport that
 * records requests and returns canned answers, and a runner that captures stdout/stderr.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/err.h"
#include "cl/mem.h"
#include "ctl.h"
#include "ctl_config.h"
#include "testutil.h"

#define FAKE_MAX_REQ 8

struct fake_req {
    char method[16];
    char path[256];
    char *body;
};

struct fake {
    /* answers, used in order (the last one repeats) */
    int status[FAKE_MAX_REQ];
    const char *resp[FAKE_MAX_REQ];
    int nresp;
    int open_rc;              /* open fails with this when nonzero */
    const char *open_err;     /* and this message */
    int check_rc;             /* check fails with this when nonzero */
    int req_rc[FAKE_MAX_REQ]; /* request i fails with this when nonzero (no answer used) */
    /* what happened */
    struct fake_req req[FAKE_MAX_REQ];
    int nreq;
    int nopen;
    int nclose;
    char opened_id[64];
};

static struct fake fake;

static inline void fake_reset(void)
{
    for (int i = 0; i < fake.nreq; i++)
        free(fake.req[i].body);
    memset(&fake, 0, sizeof(fake));
}

static inline void fake_answer(int status, const char *body)
{
    if (fake.nresp < FAKE_MAX_REQ) {
        fake.status[fake.nresp] = status;
        fake.resp[fake.nresp] = body;
        fake.nresp++;
    }
}

static int fake_check(const struct ctl_context *ctx, char *err, size_t errlen)
{
    if (fake.check_rc != 0) {
        snprintf(err, errlen, "context \"%s\": %s: bad certificate file", ctx->id, ctx->cert);
        return fake.check_rc;
    }
    return 0;
}

static int fake_open(const struct ctl_context *ctx, void **conn, char *err, size_t errlen)
{
    fake.nopen++;
    snprintf(fake.opened_id, sizeof(fake.opened_id), "%s", ctx->id);
    if (fake.open_rc != 0) {
        snprintf(err, errlen, "%s", fake.open_err ? fake.open_err : "fake open failed");
        return fake.open_rc;
    }
    *conn = &fake;
    return 0;
}

static int fake_request(void *conn, const char *method, const char *path, const char *body,
                        size_t len, struct ctl_resp *r, char *err, size_t errlen)
{
    int i = fake.nreq < fake.nresp ? fake.nreq : fake.nresp - 1;
    const char *answer;

    (void)conn;
    if (fake.nreq < FAKE_MAX_REQ) {
        struct fake_req *q = &fake.req[fake.nreq];
        snprintf(q->method, sizeof(q->method), "%s", method);
        snprintf(q->path, sizeof(q->path), "%s", path);
        q->body = body != NULL ? strndup(body, len) : NULL; // libc: not counted by failalloc
        if (fake.req_rc[fake.nreq] != 0) {
            int rc = fake.req_rc[fake.nreq++];
            snprintf(err, errlen, "fake request failed: %s", cl_strerror(rc));
            return rc;
        }
        fake.nreq++;
    }
    r->status = i >= 0 ? fake.status[i] : 200;
    answer = i >= 0 && fake.resp[i] != NULL ? fake.resp[i] : "";
    r->body = cl_strdup(answer);
    r->len = strlen(answer);
    if (r->body == NULL) {
        snprintf(err, errlen, "out of memory");
        return CL_ENOMEM;
    }
    return 0;
}

static void fake_close(void *conn)
{
    (void)conn;
    fake.nclose++;
}

static const struct ctl_transport fake_transport = {
    .check = fake_check,
    .open = fake_open,
    .request = fake_request,
    .close = fake_close,
};

/* Output of the last run_ctl (stdout, stderr), new strings freed by the next run or out_free. */
static char *out_buf, *err_buf;
static FILE *in_file;

static inline void out_free(void)
{
    free(out_buf); // open_memstream allocates with malloc
    free(err_buf);
    out_buf = err_buf = NULL;
}

/* Runs gwctl with the NULL-terminated array of arguments (at most 62); returns the exit
 * status. */
static inline int run_ctl_argv(const char *config_path, const char *const *args)
{
    char *argv[64];
    int argc = 0;
    size_t olen, elen;
    struct ctl ctl;
    int rc;

    out_free();
    argv[argc++] = (char *)"gwctl";
    for (; *args != NULL && argc < 63; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    memset(&ctl, 0, sizeof(ctl));
    ctl.out = open_memstream(&out_buf, &olen);
    ctl.err = open_memstream(&err_buf, &elen);
    ctl.in = in_file != NULL ? in_file : stdin;
    ctl.tr = &fake_transport;
    ctl.config_path = config_path;
    rc = ctl_main(&ctl, argc, argv);
    fclose(ctl.out);
    fclose(ctl.err);
    return rc;
}

/* Runs gwctl with the NULL-terminated arguments; returns the exit status. */
static inline int run_ctl(const char *config_path, ...)
{
    const char *args[64];
    int n = 0;
    va_list ap;

    va_start(ap, config_path);
    for (;;) {
        const char *s = va_arg(ap, const char *);
        if (s == NULL || n == 62)
            break;
        args[n++] = s;
    }
    va_end(ap);
    args[n] = NULL;
    return run_ctl_argv(config_path, args);
}

/*
 * A gwctl test group's fixture is a struct whose first member is `char *dir`, a temporary
 * directory of its own. group_new allocates one of `size` bytes (zeroed) and makes the
 * directory, named after `tag`; NULL on failure. group_free, a cmocka group teardown, frees
 * the fixture in *state, its directory, the fake's recorded requests and the captured output.
 */
static inline void *group_new(size_t size, const char *tag)
{
    char **dir = cl_calloc(1, size); /* the fixture's first member */

    if (dir == NULL)
        return NULL;
    if ((*dir = cl_test_mkdtemp(tag)) == NULL) {
        cl_mem_free(dir);
        return NULL;
    }
    return dir;
}

static inline int group_free(void **state)
{
    char **dir = *state;

    fake_reset();
    out_free();
    cl_test_rmtree(*dir);
    cl_free(dir);
    cl_mem_free(dir);
    return 0;
}

/* Writes a config with contexts "east" (current) and "west". */
static inline void write_two_contexts(const char *path)
{
    struct ctl_config cfg = {0};
    struct ctl_context east = {(char *)"east",
                               (char *)"10.0.0.1",
                               443,
                               (char *)"/f/ca.pem",
                               (char *)"/f/east/gwctl/cert.pem",
                               (char *)"/f/east/gwctl/key.pem"};
    struct ctl_context west = {
        (char *)"west",      (char *)"west.example",           8443,
        (char *)"/f/ca.pem", (char *)"/f/west/gwctl/cert.pem", (char *)"/f/west/gwctl/key.pem"};
    char err[256];

    if (ctl_config_put(&cfg, &east) != 0 || ctl_config_put(&cfg, &west) != 0 ||
        ctl_config_use(&cfg, "east") != 0 || ctl_config_save(path, &cfg, err, sizeof(err)) != 0)
        abort();
    ctl_config_deinit(&cfg);
}

#endif
