#include <string.h>

#include "cl/err.h"
#include "cl/ipc.h"
#include "cl/mem.h"
#include "cm.h"
#include "testutil.h"

struct got {
    int n;
    uint16_t type[8];
    uint16_t flags[8];
    uint32_t id[8];
    char body[8][128];
};

static int collect(const struct cl_ipc_msg *m, void *ud)
{
    struct got *g = ud;
    char *s = json_dumps(m->body, JSON_COMPACT | JSON_SORT_KEYS);

    if (g->n < 8) {
        g->type[g->n] = m->type;
        g->flags[g->n] = m->flags;
        g->id[g->n] = m->req_id;
        snprintf(g->body[g->n], sizeof(g->body[0]), "%s", s ? s : "");
    }
    free(s);
    g->n++;
    return 0;
}

static void encode_three(struct cl_buf *b)
{
    json_t *j1 = json_pack("{s:i,s:i}", "version", 1, "worker", 3);
    json_t *j2 = json_pack("{s:s,s:s}", "import", "web", "client", "127.0.0.1:5000");

    assert_int_equal(cl_ipc_encode(b, CL_IPC_HELLO, 0, 7, j1), 0);
    assert_int_equal(cl_ipc_encode(b, CL_IPC_AUTHZ_EGRESS, CL_IPC_F_REPLY, 0xfffffffeu, j2), 0);
    assert_int_equal(cl_ipc_encode(b, CL_IPC_ACK, 0, 9, NULL), 0);
    json_decref(j1);
    json_decref(j2);
}

static void check_three(const struct got *g)
{
    assert_int_equal(g->n, 3);
    assert_int_equal(g->type[0], CL_IPC_HELLO);
    assert_int_equal(g->id[0], 7);
    assert_string_equal(g->body[0], "{\"version\":1,\"worker\":3}");
    assert_int_equal(g->type[1], CL_IPC_AUTHZ_EGRESS);
    assert_int_equal(g->flags[1], CL_IPC_F_REPLY);
    assert_int_equal(g->id[1], 0xfffffffeu);
    assert_string_equal(g->body[1], "{\"client\":\"127.0.0.1:5000\",\"import\":\"web\"}");
    assert_int_equal(g->type[2], CL_IPC_ACK);
    assert_string_equal(g->body[2], "{}");
}

static void round_trip_every_type(void **state)
{
    (void)state;
    for (uint16_t t = 1; t < CL_IPC_TYPE_COUNT; t++) {
        struct cl_buf b;
        struct cl_ipc_decoder d;
        struct got g = {0};
        json_t *j = json_pack("{s:s}", "k", cl_ipc_type_name(t));
        cl_buf_init(&b, 1 << 20);
        cl_ipc_decoder_init(&d);
        assert_int_equal(cl_ipc_encode(&b, t, 0, t, j), 0);
        assert_int_equal(cl_ipc_decode(&d, cl_buf_ptr(&b), b.len, collect, &g), (ssize_t)b.len);
        assert_int_equal(g.n, 1);
        assert_int_equal(g.type[0], t);
        assert_string_not_equal(cl_ipc_type_name(t), "?");
        json_decref(j);
        cl_ipc_decoder_deinit(&d);
        cl_buf_deinit(&b);
    }
    assert_string_equal(cl_ipc_type_name(0), "?");
}

static void partial_reads_every_boundary(void **state)
{
    struct cl_buf b;
    (void)state;

    cl_buf_init(&b, 1 << 20);
    encode_three(&b);
    /* split the stream in two at every byte, and also feed byte by byte */
    for (size_t cut = 0; cut <= b.len; cut++) {
        struct cl_ipc_decoder d;
        struct got g = {0};
        cl_ipc_decoder_init(&d);
        assert_int_equal(cl_ipc_decode(&d, cl_buf_ptr(&b), cut, collect, &g), (ssize_t)cut);
        assert_int_equal(cl_ipc_decode(&d, cl_buf_ptr(&b) + cut, b.len - cut, collect, &g),
                         (ssize_t)(b.len - cut));
        check_three(&g);
        cl_ipc_decoder_deinit(&d);
    }
    struct cl_ipc_decoder d;
    struct got g = {0};
    cl_ipc_decoder_init(&d);
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(cl_ipc_decode(&d, cl_buf_ptr(&b) + i, 1, collect, &g), 1);
    check_three(&g);
    cl_ipc_decoder_deinit(&d);
    cl_buf_deinit(&b);
}

static void oversize_rejected_before_allocation(void **state)
{
    uint8_t hdr[12];
    struct cl_ipc_decoder d;
    struct got g = {0};
    (void)state;

    cl_write_u32(hdr, CL_IPC_MAX_FRAME + 1);
    cl_write_u16(hdr + 4, CL_IPC_CONFIG);
    cl_write_u16(hdr + 6, 0);
    cl_write_u32(hdr + 8, 1);
    cl_ipc_decoder_init(&d);
    cl_failalloc_arm(0); /* any allocation would fail the test's expectation */
    assert_int_equal(cl_ipc_decode(&d, hdr, sizeof(hdr), collect, &g), CL_EFRAME_TOOBIG);
    cl_failalloc_arm(-1);
    /* sticky */
    assert_int_equal(cl_ipc_decode(&d, hdr, 1, collect, &g), CL_EFRAME_TOOBIG);
    assert_int_equal(g.n, 0);
    cl_ipc_decoder_deinit(&d);
}

static void garbage_rejected(void **state)
{
    struct {
        uint32_t len;
        uint16_t type;
        const char *body;
        int want;
    } cases[] = {
        {4, CL_IPC_HELLO, "", CL_EFRAME_BAD},   /* shorter than the header */
        {10, 0, "{}", CL_EFRAME_BAD},           /* type 0 */
        {10, 999, "{}", CL_EFRAME_BAD},         /* unknown type */
        {12, CL_IPC_HELLO, "{\"a\"", CL_EJSON}, /* truncated JSON */
        {10, CL_IPC_HELLO, "[]", CL_EJSON},     /* not an object */
        {11, CL_IPC_HELLO, "{}x", CL_EJSON},    /* trailing garbage */
    };

    (void)state;

    for (size_t i = 0; i < CL_ARRAY_SIZE(cases); i++) {
        uint8_t f[64];
        struct cl_ipc_decoder d;
        struct got g = {0};
        size_t blen = strlen(cases[i].body);
        cl_write_u32(f, cases[i].len);
        cl_write_u16(f + 4, cases[i].type);
        cl_write_u16(f + 6, 0);
        cl_write_u32(f + 8, 1);
        memcpy(f + 12, cases[i].body, blen);
        cl_ipc_decoder_init(&d);
        assert_int_equal(cl_ipc_decode(&d, f, 12 + blen, collect, &g), cases[i].want);
        assert_int_equal(g.n, 0);
        cl_ipc_decoder_deinit(&d);
    }
    struct cl_buf b;
    cl_buf_init(&b, 64);
    assert_int_equal(cl_ipc_encode(&b, 0, 0, 0, NULL), CL_EINVAL);
    assert_int_equal(cl_ipc_encode(&b, CL_IPC_TYPE_COUNT, 0, 0, NULL), CL_EINVAL);
    cl_buf_deinit(&b);
}

static void allocation_failures(void **state)
{
    struct cl_buf b;
    long total;
    (void)state;

    cl_mem_install_jansson();
    cl_buf_init(&b, 1 << 20);
    encode_three(&b);
    struct cl_ipc_decoder d;
    struct got g = {0};
    cl_ipc_decoder_init(&d);
    cl_failalloc_arm(1000000);
    cl_ipc_decode(&d, cl_buf_ptr(&b), 5, collect, &g);
    cl_ipc_decode(&d, cl_buf_ptr(&b) + 5, b.len - 5, collect, &g);
    total = cl_failalloc_count();
    cl_failalloc_arm(-1);
    cl_ipc_decoder_deinit(&d);
    for (long n = 0; n < total; n++) {
        struct got g2 = {0};
        cl_ipc_decoder_init(&d);
        cl_failalloc_arm(n);
        ssize_t r = cl_ipc_decode(&d, cl_buf_ptr(&b), 5, collect, &g2);
        if (r >= 0)
            r = cl_ipc_decode(&d, cl_buf_ptr(&b) + 5, b.len - 5, collect, &g2);
        cl_failalloc_arm(-1);
        /* either everything arrived intact or the stream failed with a clear code */
        if (r >= 0) { /* bodies are not compared: the test's own json_dumps may fail */
            assert_int_equal(g2.n, 3);
            assert_int_equal(g2.type[1], CL_IPC_AUTHZ_EGRESS);
            assert_int_equal(g2.id[1], 0xfffffffeu);
        } else
            assert_true(r == CL_ENOMEM || r == CL_EJSON);
        cl_ipc_decoder_deinit(&d);
    }
    cl_buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_every_type),
        cmocka_unit_test(partial_reads_every_boundary),
        cmocka_unit_test(oversize_rejected_before_allocation),
        cmocka_unit_test(garbage_rejected),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
