/* Fuzz target: the Kubernetes client's HTTP/1.1 response parser (cp_k8s_http.c). The first
 * byte picks how the rest is split; the same bytes fed whole must give the same outcome, and
 * when both succeed the same heads, bodies and completions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cl/err.h"
#include "cp_k8s_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sum {
    uint64_t h; /* running FNV-1a over everything the callbacks saw */
    int heads, dones;
};

static void mix(struct sum *s, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        s->h = (s->h ^ b[i]) * 1099511628211ULL;
}

static int on_head(const struct cp_http_head *h, void *ud)
{
    struct sum *s = ud;
    s->heads++;
    mix(s, &h->status, sizeof(h->status));
    mix(s, &h->close, sizeof(h->close));
    for (size_t i = 0; i < h->nhdrs; i++) {
        mix(s, h->hdrs[i].name, strlen(h->hdrs[i].name) + 1);
        mix(s, h->hdrs[i].value, strlen(h->hdrs[i].value) + 1);
    }
    (void)cp_http_head_get(h, "Retry-After");
    return 0;
}

static int on_body(const uint8_t *p, size_t n, void *ud)
{
    mix(ud, p, n);
    return 0;
}

static int on_done(void *ud)
{
    struct sum *s = ud;
    s->dones++;
    mix(s, "|", 1);
    return 0;
}

static const struct cp_http_cbs cbs = {on_head, on_body, on_done};

static int run(const uint8_t *data, size_t size, size_t step, struct sum *s)
{
    struct cp_http_parser p;
    int rc = 0;

    memset(s, 0, sizeof(*s));
    s->h = 1469598103934665603ULL;
    cp_http_parser_init(&p, 2048, 1 << 16, &cbs, s);
    for (size_t off = 0; off < size && rc == 0;) {
        size_t n = step == 0 || size - off < step ? size - off : step;
        const uint8_t *q = data + off;
        off += n;
        while (n > 0) {
            ssize_t c = cp_http_parse(&p, q, n);
            if (c < 0) {
                rc = (int)c;
                break;
            }
            if (c == 0) /* progress is guaranteed on non-empty input */
                abort();
            q += c;
            n -= (size_t)c;
        }
    }
    if (rc == 0)
        rc = cp_http_parse_eof(&p);
    cp_http_parser_deinit(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sum whole, split;
    int a, b;

    if (size < 1)
        return 0;
    a = run(data + 1, size - 1, 0, &whole);
    b = run(data + 1, size - 1, (size_t)(data[0] % 17) + 1, &split);
    if ((a == 0) != (b == 0))
        abort();
    if (a == 0 && (whole.h != split.h || whole.heads != split.heads || whole.dones != split.dones))
        abort();
    return 0;
}
