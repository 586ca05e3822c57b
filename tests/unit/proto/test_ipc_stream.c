/* The libuv IPC stream over a real socketpair: request/reply, timeout, close, validation. */
#include <string.h>
#include <sys/socket.h>

#include "cl/err.h"
#include "cl/ipc.h"
#include "cm.h"

static uv_loop_t loop;
static struct cl_ipc_conn *a, *b;
static int closed;
static bool answer = true;
static int got_msgs;

static void b_on_msg(struct cl_ipc_conn *c, const struct cl_ipc_msg *m, void *ud)
{
    (void)ud;
    got_msgs++;
    if (m->type == CL_IPC_AUTHZ_EGRESS && answer) {
        json_t *r = json_pack("{s:b,s:s,s:s}", "allow", 0, "reason", "no", "policy", "p");
        assert_int_equal(cl_ipc_reply(c, m, CL_IPC_AUTHZ_EGRESS, r), 0);
        json_decref(r);
    }
}

static void on_close(struct cl_ipc_conn *c, int err, void *ud)
{
    (void)c;
    (void)err;
    (void)ud;
    closed++;
}

static const struct cl_ipc_conn_cbs a_cbs = {.on_close = on_close};
static const struct cl_ipc_conn_cbs b_cbs = {.on_msg = b_on_msg, .on_close = on_close};

static int setup(void **state)
{
    int fds[2];
    (void)state;

    uv_loop_init(&loop);
    closed = 0;
    got_msgs = 0;
    answer = true;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    assert_int_equal(cl_ipc_conn_new(&loop, &a_cbs, NULL, &a), 0);
    assert_int_equal(cl_ipc_conn_new(&loop, &b_cbs, NULL, &b), 0);
    assert_int_equal(cl_ipc_conn_open(a, fds[0]), 0);
    assert_int_equal(cl_ipc_conn_open(b, fds[1]), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (a != NULL)
        cl_ipc_conn_close(a, 0);
    if (b != NULL)
        cl_ipc_conn_close(b, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

struct result {
    bool done;
    int err;
    char reason[32];
};

static void on_reply(int err, const struct cl_ipc_msg *m, void *ud)
{
    struct result *r = ud;

    r->done = true;
    r->err = err;
    if (err == 0)
        snprintf(r->reason, sizeof(r->reason), "%s",
                 json_string_value(json_object_get(m->body, "reason")));
}

static void run_until(bool *flag)
{
    for (int i = 0; i < 10000 && !*flag; i++)
        uv_run(&loop, UV_RUN_ONCE);
}

static void request_reply(void **state)
{
    struct result r = {0};
    json_t *q = json_pack("{s:s,s:s}", "import", "web", "client", "1.2.3.4:5");
    (void)state;

    assert_int_equal(cl_ipc_request(a, CL_IPC_AUTHZ_EGRESS, q, 5000, on_reply, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.reason, "no");
    json_decref(q);
}

static void invalid_request_is_answered_with_the_field(void **state)
{
    struct result r = {0};
    json_t *q = json_pack("{s:s}", "import", "web"); /* client missing */
    (void)state;

    assert_int_equal(cl_ipc_request(a, CL_IPC_AUTHZ_EGRESS, q, 5000, on_reply, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.err, CL_ESCHEMA);
    assert_int_equal(got_msgs, 0); /* the handler never saw it */
    json_decref(q);
}

static void timeout_then_late_reply_dropped(void **state)
{
    struct result r = {0};
    json_t *q = json_pack("{s:s,s:s}", "import", "web", "client", "1.2.3.4:5");
    (void)state;

    answer = false;
    assert_int_equal(cl_ipc_request(a, CL_IPC_AUTHZ_EGRESS, q, 20, on_reply, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.err, CL_ETIMEDOUT);
    json_decref(q);
}

static void peer_close_fails_pending(void **state)
{
    struct result r = {0};
    json_t *q = json_pack("{s:s,s:s}", "import", "web", "client", "1.2.3.4:5");
    (void)state;

    answer = false;
    assert_int_equal(cl_ipc_request(a, CL_IPC_AUTHZ_EGRESS, q, 60000, on_reply, &r), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    cl_ipc_conn_close(b, 0); /* a sees EOF, closes itself and fails what is pending */
    b = NULL;
    run_until(&r.done);
    assert_int_equal(r.err, CL_ECLOSED);
    for (int i = 0; i < 1000 && closed < 2; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(closed, 2);
    a = NULL;
    json_decref(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(request_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_request_is_answered_with_the_field, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(timeout_then_late_reply_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(peer_close_fails_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
