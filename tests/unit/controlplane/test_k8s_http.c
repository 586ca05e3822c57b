/* The Kubernetes client's sans-I/O HTTP/1.1 response parser and watch line splitter: every
 * input fed whole, byte by byte and in odd splits must give the same result; bad input is
 * refused with the right code; caps hold. */
#include <stdio.h>
#include <string.h>

#include "cl/buf.h"
#include "cl/err.h"
#include "cl/mem.h"
#include "cm.h"
#include "cp_k8s_http.h"
#include "testutil.h"

/* What the callbacks saw, as text: "H<status>[c] <hdrs>|B<body>|D" per response. */
struct rec {
    char log[8192];
    int fail_at; /* callback number that fails (-1 never) */
    int ncb;
};

static void put(struct rec *r, const char *s, size_t n)
{
    size_t l = strlen(r->log);
    snprintf(r->log + l, sizeof(r->log) - l, "%.*s", (int)n, s);
}

static int on_head(const struct cp_http_head *h, void *ud)
{
    struct rec *r = ud;
    char b[64];

    if (r->ncb++ == r->fail_at)
        return CL_EINVAL;
    snprintf(b, sizeof(b), "H%d%s", h->status, h->close ? "c" : "");
    put(r, b, strlen(b));
    for (size_t i = 0; i < h->nhdrs; i++) {
        char kv[512];
        snprintf(kv, sizeof(kv), " %s=%s", h->hdrs[i].name, h->hdrs[i].value);
        put(r, kv, strlen(kv));
    }
    put(r, "|", 1);
    return 0;
}

static int on_body(const uint8_t *p, size_t n, void *ud)
{
    struct rec *r = ud;

    if (r->ncb++ == r->fail_at)
        return CL_EINVAL;
    put(r, (const char *)p, n);
    return 0;
}

static int on_done(void *ud)
{
    struct rec *r = ud;

    if (r->ncb++ == r->fail_at)
        return CL_EINVAL;
    put(r, "|D;", 3);
    return 0;
}

static const struct cp_http_cbs cbs = {on_head, on_body, on_done};

/* Feeds `in` in pieces of `step` bytes (0: all at once); returns the first error or 0, then
 * EOF if `eof`. */
static int feed(const char *in, size_t len, size_t step, bool eof, size_t max_head,
                uint64_t max_body, struct rec *r)
{
    struct cp_http_parser p;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    r->fail_at = -1;
    cp_http_parser_init(&p, max_head, max_body, &cbs, r);
    for (size_t off = 0; off < len && rc == 0;) {
        size_t n = step == 0 || len - off < step ? len - off : step;
        while (n > 0) {
            ssize_t c = cp_http_parse(&p, (const uint8_t *)in + off, n);
            if (c < 0) {
                rc = (int)c;
                break;
            }
            off += (size_t)c;
            n -= (size_t)c;
        }
        if (rc != 0)
            break;
    }
    if (rc == 0 && eof)
        rc = cp_http_parse_eof(&p);
    cp_http_parser_deinit(&p);
    return rc;
}

/* Same result whole, byte by byte, and in pieces of 2, 3, 7 and 64. */
static void expect(const char *in, bool eof, int want_rc, const char *want_log)
{
    static const size_t steps[] = {0, 1, 2, 3, 7, 64};
    struct rec r;

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        int rc = feed(in, strlen(in), steps[i], eof, 4096, 1 << 20, &r);
        if (rc != want_rc)
            fail_msg("step %zu: rc %d (%s), want %d, for %s", steps[i], rc, cl_strerror(rc),
                     want_rc, in);
        if (want_log != NULL && strcmp(r.log, want_log) != 0)
            fail_msg("step %zu: got\n%s\nwant\n%s", steps[i], r.log, want_log);
    }
}

static void content_length(void **state)
{
    (void)state;
    expect("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n"
           "{\"a\":1}",
           false, 0, "H200 Content-Type=application/json Content-Length=7|{\"a\":1}|D;");
    /* empty reason, bare LF line ends, OWS around values */
    expect("HTTP/1.1 201\nContent-Length:   2  \n\nok", false, 0, "H201 Content-Length=2|ok|D;");
    /* zero length and no-body statuses complete at the end of the head */
    expect("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 0, "H200 Content-Length=0||D;");
    expect("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false, 0,
           "H204 Content-Length=5||D;");
    /* identical repeated lengths are fine (RFC 9112 6.3) */
    expect("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc", false, 0,
           NULL);
}

static void keep_alive_two_responses(void **state)
{
    (void)state;
    expect("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"
           "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\nBC",
           false, 0, "H200 Content-Length=1|A|D;H404c Content-Length=2 Connection=close|BC|D;");
    /* HTTP/1.0 closes unless keep-alive is asked for */
    expect("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nA", false, 0,
           "H200c Content-Length=1|A|D;");
    expect("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nA", false, 0,
           "H200 Connection=Keep-Alive Content-Length=1|A|D;");
}

static void chunked(void **state)
{
    (void)state;
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n1;ext=1\r\n \r\nA \r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n",
           false, 0, "H200 Transfer-Encoding=chunked|hello 0123456789|D;");
    /* chunked wins over Content-Length; hex in both cases */
    expect("HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
           "a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n",
           false, 0,
           "H200 Content-Length=99 Transfer-Encoding=gzip, chunked|01234567890123456789|D;");
}

static void close_delimited(void **state)
{
    (void)state;
    /* no length: the body runs to EOF, which completes it */
    expect("HTTP/1.1 200 OK\r\n\r\nuntil the end", true, 0, "H200c|until the end|D;");
    /* a final coding other than chunked is close-delimited too */
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz", true, 0,
           "H200c Transfer-Encoding=gzip|xyz|D;");
    /* EOF between responses is fine; inside one it is not */
    expect("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA", true, 0, NULL);
    expect("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nAB", true, CL_EOF, NULL);
    expect("HTTP/1.1 200 OK\r\nContent-", true, CL_EOF, NULL);
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", true, CL_EOF, NULL);
}

static void interim_skipped(void **state)
{
    (void)state;
    expect("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
           "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
           false, 0, "H200 Content-Length=2|ok|D;");
    expect("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", false, CL_EHTTP, NULL);
}

static void malformed(void **state)
{
    static const char *const bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
        "HTTP/1.1 600 High\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nName : x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: b\x01\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1 x\r\nA\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nABC\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect(bad[i], false, CL_EHTTP, NULL);
    /* a NUL byte in the head */
    struct rec r;
    static const char nul[] = "HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n";
    assert_int_equal(feed(nul, sizeof(nul) - 1, 1, false, 4096, 0, &r), CL_EHTTP);
}

static void caps(void **state)
{
    char big[8192];
    struct rec r;
    (void)state;

    /* head over max_head, at any split */
    snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX: %0*d\r\n\r\n", 5000, 0);
    assert_int_equal(feed(big, strlen(big), 0, false, 4096, 0, &r), CL_EHTTP_TOOBIG);
    assert_int_equal(feed(big, strlen(big), 1, false, 4096, 0, &r), CL_EHTTP_TOOBIG);
    assert_int_equal(feed(big, strlen(big), 0, false, 8000, 0, &r), 0);
    /* too many headers */
    size_t n = (size_t)snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < CP_HTTP_MAX_HDRS + 1; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "H%d: v\r\n", i);
    snprintf(big + n, sizeof(big) - n, "\r\n");
    assert_int_equal(feed(big, strlen(big), 0, false, 8000, 0, &r), CL_EHTTP_TOOBIG);
    /* body over max_body: announced, or found out while chunks arrive */
    static const char cl[] = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a";
    assert_int_equal(feed(cl, strlen(cl), 0, false, 4096, 10, &r), CL_EHTTP_TOOBIG);
    assert_int_equal(feed(cl, strlen(cl), 0, false, 4096, 11, &r), 0);
    static const char ch[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "6\r\n012345\r\n6\r\n6789ab\r\n0\r\n\r\n";
    assert_int_equal(feed(ch, strlen(ch), 1, false, 4096, 10, &r), CL_EHTTP_TOOBIG);
    assert_int_equal(feed(ch, strlen(ch), 1, false, 4096, 12, &r), 0);
    static const char eof[] = "HTTP/1.1 200 OK\r\n\r\n0123456789ab";
    assert_int_equal(feed(eof, strlen(eof), 3, true, 4096, 10, &r), CL_EHTTP_TOOBIG);
}

static void callback_errors_stop_and_stick(void **state)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    struct cp_http_parser p;
    struct rec r;
    (void)state;

    for (int at = 0; at < 3; at++) {
        memset(&r, 0, sizeof(r));
        r.fail_at = at;
        cp_http_parser_init(&p, 4096, 0, &cbs, &r);
        assert_int_equal(cp_http_parse(&p, (const uint8_t *)in, strlen(in)), CL_EINVAL);
        /* sticky: nothing more is parsed */
        assert_int_equal(cp_http_parse(&p, (const uint8_t *)in, strlen(in)), CL_EINVAL);
        assert_int_equal(cp_http_parse_eof(&p), CL_EINVAL);
        cp_http_parser_deinit(&p);
    }
}

static void idle_and_header_lookup(void **state)
{
    struct cp_http_parser p;
    struct rec r;
    (void)state;

    memset(&r, 0, sizeof(r));
    r.fail_at = -1;
    cp_http_parser_init(&p, 4096, 0, &cbs, &r);
    assert_true(cp_http_parser_is_idle(&p));
    assert_int_equal(cp_http_parse(&p, (const uint8_t *)"HTTP", 4), 4);
    assert_false(cp_http_parser_is_idle(&p));
    static const char rest[] = "/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(cp_http_parse(&p, (const uint8_t *)rest, strlen(rest)), strlen(rest));
    assert_true(cp_http_parser_is_idle(&p));
    cp_http_parser_deinit(&p);
    cp_http_parser_deinit(NULL);

    struct cp_http_hdr h[] = {{"Retry-After", "3"}, {"content-type", "a/b"}};
    struct cp_http_head head = {.status = 429, .hdrs = h, .nhdrs = 2};
    assert_string_equal(cp_http_head_get(&head, "retry-after"), "3");
    assert_string_equal(cp_http_head_get(&head, "Content-Type"), "a/b");
    assert_null(cp_http_head_get(&head, "X"));
}

/* Allocation failures anywhere fail the parse cleanly (ASan checks nothing leaks). */
static void alloc_failures(void **state)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n0\r\n\r\n";
    struct rec r;
    long total = 0;
    (void)state;

    for (long n = -1;; n++) {
        cl_failalloc_arm(n < 0 ? 1000000 : n);
        int rc = feed(in, strlen(in), 1, false, 4096, 0, &r);
        if (n < 0)
            total = cl_failalloc_count();
        cl_failalloc_arm(-1);
        if (n < 0)
            assert_int_equal(rc, 0);
        else if (n < total)
            assert_true(rc == 0 || rc == CL_ENOMEM);
        else
            break;
    }
    assert_true(total > 0);
}

/* ---- line splitter ---- */

struct lines_rec {
    char out[4096];
    int n;
    int fail_at;
};

static int on_line(const char *line, size_t len, void *ud)
{
    struct lines_rec *r = ud;
    size_t l = strlen(r->out);

    if (r->n++ == r->fail_at)
        return CL_ECLOSED;
    snprintf(r->out + l, sizeof(r->out) - l, "[%.*s]", (int)len, line);
    return 0;
}

static int lines_feed(const char *in, size_t step, size_t max, struct lines_rec *r)
{
    struct cp_lines l;
    size_t len = strlen(in);
    int rc = 0;

    cp_lines_init(&l, max);
    for (size_t off = 0; off < len && rc == 0;) {
        size_t n = step == 0 || len - off < step ? len - off : step;
        rc = cp_lines_feed(&l, (const uint8_t *)in + off, n, on_line, r);
        off += n;
    }
    cp_lines_deinit(&l);
    return rc;
}

static void lines(void **state)
{
    static const char in[] = "{\"type\":\"ADDED\"}\n\r\n\n{\"type\":\"MODIFIED\"}\r\n{\"partial";
    static const size_t steps[] = {0, 1, 2, 5};
    (void)state;

    for (size_t i = 0; i < 4; i++) {
        struct lines_rec r = {.fail_at = -1};
        assert_int_equal(lines_feed(in, steps[i], 64, &r), 0);
        assert_string_equal(r.out, "[{\"type\":\"ADDED\"}][{\"type\":\"MODIFIED\"}]");
    }
    /* a line longer than the cap, complete or not */
    struct lines_rec r = {.fail_at = -1};
    assert_int_equal(lines_feed("0123456789\n", 0, 10, &r), 0);
    assert_int_equal(lines_feed("0123456789A\n", 0, 10, &r), CL_EHTTP_TOOBIG);
    assert_int_equal(lines_feed("0123456789A\n", 1, 10, &r), CL_EHTTP_TOOBIG);
    assert_int_equal(lines_feed("0123456789AB", 3, 10, &r), CL_EHTTP_TOOBIG);
    /* the callback's error stops the feed at once */
    struct lines_rec s = {.fail_at = 1};
    assert_int_equal(lines_feed("a\nb\nc\n", 0, 10, &s), CL_ECLOSED);
    assert_string_equal(s.out, "[a]");
    /* what is pending */
    struct cp_lines l;
    cp_lines_init(&l, 100);
    assert_int_equal(cp_lines_feed(&l, (const uint8_t *)"ab\ncd", 5, on_line, &s), 0);
    assert_int_equal(cp_lines_pending(&l), 2);
    cp_lines_deinit(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(content_length),
        cmocka_unit_test(keep_alive_two_responses),
        cmocka_unit_test(chunked),
        cmocka_unit_test(close_delimited),
        cmocka_unit_test(interim_skipped),
        cmocka_unit_test(malformed),
        cmocka_unit_test(caps),
        cmocka_unit_test(callback_errors_stop_and_stick),
        cmocka_unit_test(idle_and_header_lookup),
        cmocka_unit_test(alloc_failures),
        cmocka_unit_test(lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
