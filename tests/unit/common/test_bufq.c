#include <string.h>

#include "cl/bufq.h"
#include "cl/err.h"
#include "cm.h"

static void write_read_across_chunks(void **state)
{
    struct cl_bufq q;
    uint8_t in[100], out[100];
    (void)state;

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)i;
    cl_bufq_init(&q, 16, 8);
    assert_int_equal(cl_bufq_write(&q, in, sizeof(in)), 100);
    assert_int_equal(cl_bufq_len(&q), 100);
    assert_int_equal(q.nchunks, 7);
    assert_int_equal(cl_bufq_read(&q, out, 37), 37);
    assert_memory_equal(out, in, 37);
    assert_int_equal(cl_bufq_read(&q, out, 100), 63);
    assert_memory_equal(out, in + 37, 63);
    assert_true(cl_bufq_is_empty(&q));
    assert_int_equal(q.nchunks, 0); /* an idle queue holds no chunk */
    cl_bufq_deinit(&q);
}

static void bounded(void **state)
{
    struct cl_bufq q;
    uint8_t in[200];
    (void)state;

    memset(in, 7, sizeof(in));
    cl_bufq_init(&q, 16, 4);
    assert_int_equal(cl_bufq_space(&q), 64);
    assert_int_equal(cl_bufq_write(&q, in, sizeof(in)), 64);
    assert_true(cl_bufq_is_full(&q));
    assert_int_equal(cl_bufq_write(&q, in, 1), 0);
    cl_bufq_consume(&q, 16);
    assert_int_equal(cl_bufq_space(&q), 16);
    assert_int_equal(cl_bufq_write(&q, in, 100), 16);
    cl_bufq_deinit(&q);
}

static void reserve_commit_and_iov(void **state)
{
    struct cl_bufq q;
    struct iovec iov[8];
    uint8_t *p;
    size_t n;
    (void)state;

    cl_bufq_init(&q, 16, 4);
    n = cl_bufq_reserve(&q, &p);
    assert_int_equal(n, 16);
    memset(p, 'a', 10);
    cl_bufq_commit(&q, 10);
    n = cl_bufq_reserve(&q, &p);
    assert_int_equal(n, 6);
    memset(p, 'b', 6);
    cl_bufq_commit(&q, 6);
    n = cl_bufq_reserve(&q, &p);
    assert_int_equal(n, 16);
    memset(p, 'c', 5);
    cl_bufq_commit(&q, 5);
    assert_int_equal(cl_bufq_len(&q), 21);
    assert_int_equal(cl_bufq_peek_iov(&q, 0, iov, 8), 2);
    assert_int_equal(iov[0].iov_len, 16);
    assert_int_equal(iov[1].iov_len, 5);
    /* skip bytes already in flight */
    assert_int_equal(cl_bufq_peek_iov(&q, 12, iov, 8), 2);
    assert_int_equal(iov[0].iov_len, 4);
    assert_int_equal(((uint8_t *)iov[0].iov_base)[0], 'b');
    assert_int_equal(cl_bufq_peek_iov(&q, 16, iov, 8), 1);
    assert_int_equal(iov[0].iov_len, 5);
    assert_int_equal(cl_bufq_peek_iov(&q, 21, iov, 8), 0);
    cl_bufq_consume(&q, 21);
    assert_int_equal(q.nchunks, 0);
    cl_bufq_deinit(&q);
    cl_bufq_pool_drain();
}

static void pooled_chunks_are_reused(void **state)
{
    struct cl_bufq q;
    uint8_t buf[CL_BUFQ_CHUNK];
    (void)state;

    memset(buf, 1, sizeof(buf));
    cl_bufq_init(&q, CL_BUFQ_CHUNK, 4);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(cl_bufq_write(&q, buf, sizeof(buf)), (ssize_t)sizeof(buf));
        assert_int_equal(cl_bufq_read(&q, buf, sizeof(buf)), sizeof(buf));
    }
    cl_bufq_deinit(&q);
    cl_bufq_pool_drain();
}

/* A header written in front of the head's bytes (cl_bufq_head) leaves every queued byte intact;
 * a capacity just under a pooled size takes that size's chunks, back and forth. */
static void head_with_headroom(void **state)
{
    struct cl_bufq q;
    static uint8_t in[3 * 1000], out[sizeof(in)];
    uint8_t *p;
    size_t n;
    (void)state;

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 7);
    cl_bufq_init(&q, 1000, 4);
    assert_int_equal(cl_bufq_write(&q, in, sizeof(in)), (ssize_t)sizeof(in));
    for (size_t off = 0; off < sizeof(in);) {
        n = cl_bufq_head(&q, &p);
        assert_true(n > 0 && n <= 1000);
        assert_memory_equal(p, in + off, n);
        memset(p - CL_BUFQ_HEADROOM, 0xee, CL_BUFQ_HEADROOM); /* a header in front */
        if (n > 300)
            n = 300; /* consume part of a chunk: the next header goes over consumed bytes */
        cl_bufq_consume(&q, n);
        off += n;
        assert_int_equal(cl_bufq_read(&q, out, 0), 0);
        if (off < sizeof(in)) {
            const uint8_t *h;
            assert_true(cl_bufq_peek(&q, &h) > 0);
            assert_int_equal(h[0], in[off]); /* untouched */
        }
    }
    assert_true(cl_bufq_is_empty(&q));
    cl_bufq_deinit(&q);

    cl_bufq_init(&q, CL_BUFQ_BIG_CHUNK - 9, 2);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(cl_bufq_reserve(&q, &p), CL_BUFQ_BIG_CHUNK - 9);
        memset(p, i, CL_BUFQ_BIG_CHUNK - 9);
        cl_bufq_commit(&q, CL_BUFQ_BIG_CHUNK - 9);
        assert_int_equal(cl_bufq_space(&q), CL_BUFQ_BIG_CHUNK - 9);
        cl_bufq_consume(&q, CL_BUFQ_BIG_CHUNK - 9);
    }
    cl_bufq_deinit(&q);
    cl_bufq_pool_drain();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(write_read_across_chunks), cmocka_unit_test(bounded),
        cmocka_unit_test(reserve_commit_and_iov),   cmocka_unit_test(pooled_chunks_are_reused),
        cmocka_unit_test(head_with_headroom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
