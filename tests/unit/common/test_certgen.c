/* Unit tests for cl_certgen: CA and leaf generation, parsed back with wolfSSL, verified with
 * wolfSSL's certificate manager and (when installed) `openssl verify`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>

#include "cl/certgen.h"
#include "cl/err.h"
#include "cl/mem.h"
#include "cm.h"
#include "testutil.h"

#define DAY (24 * 3600LL)

struct fx {
    char *dir;
    char *ca_cert;
    char *ca_key;
};

static int setup(void **state)
{
    struct fx *f = cl_calloc(1, sizeof(*f));

    if (f == NULL || wolfSSL_Init() != WOLFSSL_SUCCESS)
        return -1;
    f->dir = cl_test_mkdtemp("certgen");
    if (f->dir == NULL)
        return -1;
    if (cl_certgen_ca("test-fabric", 0, 0, &f->ca_cert, &f->ca_key) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    cl_test_rmtree(f->dir);
    cl_free(&f->dir);
    cl_free(&f->ca_cert);
    cl_free(&f->ca_key);
    cl_mem_free(f);
    wolfSSL_Cleanup();
    return 0;
}

static WOLFSSL_X509 *parse(const char *pem)
{
    return wolfSSL_X509_load_certificate_buffer((const unsigned char *)pem, (int)strlen(pem),
                                                WOLFSSL_FILETYPE_PEM);
}

/* Verifies leaf against ca with wolfSSL; returns wolfSSL's result code. */
static int wolf_verify(const char *ca, const char *leaf)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    int rc;

    assert_non_null(cm);
    assert_int_equal(wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)ca,
                                                     (long)strlen(ca), WOLFSSL_FILETYPE_PEM),
                     WOLFSSL_SUCCESS);
    rc = wolfSSL_CertManagerVerifyBuffer(cm, (const unsigned char *)leaf, (long)strlen(leaf),
                                         WOLFSSL_FILETYPE_PEM);
    wolfSSL_CertManagerFree(cm);
    return rc;
}

static bool have_openssl(void)
{
    return access("/usr/bin/openssl", X_OK) == 0;
}

/* Runs argv, returns exit status; stdout+stderr captured into out (NUL-terminated). */
static int run(char *const argv[], char *out, size_t outlen)
{
    int pfd[2];
    pid_t pid;
    size_t used = 0;
    int st = 0;

    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    for (;;) {
        ssize_t n = read(pfd[0], out + used, outlen - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        if (used == outlen - 1)
            break;
    }
    out[used] = '\0';
    close(pfd[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *write_tmp(struct fx *f, const char *name, const char *pem)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    assert_int_equal(cl_test_write_file(path, pem, strlen(pem)), 0);
    return cl_strdup(path);
}

static void ca_is_ca(void **state)
{
    struct fx *f = *state;
    WOLFSSL_X509 *x = parse(f->ca_cert);
    char cn[64];

    assert_non_null(x);
    assert_int_equal(wolfSSL_X509_get_isCA(x), 1);
    assert_true(wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName,
                                                  cn, sizeof(cn)) > 0);
    assert_string_equal(cn, "test-fabric");
    assert_true(wolfSSL_X509_get_keyUsage(x) & KEYUSE_KEY_CERT_SIGN);
    assert_non_null(strstr(f->ca_key, "-----BEGIN EC PRIVATE KEY-----"));
    assert_non_null(strstr(f->ca_cert, "-----BEGIN CERTIFICATE-----"));
    wolfSSL_X509_free(x);
}

static void leaf_fields_and_verify(void **state)
{
    struct fx *f = *state;
    const char *dns[] = {"peer1", "peer1.example.com"};
    struct cl_certgen_opts o = {
        .cn = "peer1", .dns = dns, .ndns = 2, .server_auth = true, .client_auth = true};
    char *cert = NULL, *key = NULL;
    WOLFSSL_X509 *x;
    char cn[64];
    char *alt;

    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), 0);
    x = parse(cert);
    assert_non_null(x);
    assert_int_equal(wolfSSL_X509_get_isCA(x), 0);
    assert_true(wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName,
                                                  cn, sizeof(cn)) > 0);
    assert_string_equal(cn, "peer1");
    assert_true(wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_issuer_name(x), NID_commonName,
                                                  cn, sizeof(cn)) > 0);
    assert_string_equal(cn, "test-fabric");
    alt = wolfSSL_X509_get_next_altname(x);
    assert_non_null(alt);
    assert_string_equal(alt, "peer1");
    alt = wolfSSL_X509_get_next_altname(x);
    assert_non_null(alt);
    assert_string_equal(alt, "peer1.example.com");
    assert_null(wolfSSL_X509_get_next_altname(x));
    assert_int_equal(wolfSSL_X509_get_extended_key_usage(x) & 3, 3); // server + client
    assert_int_equal(wolfSSL_X509_get_isCA(x), 0);
    wolfSSL_X509_free(x);

    assert_int_equal(wolf_verify(f->ca_cert, cert), WOLFSSL_SUCCESS);

    if (have_openssl()) {
        char *cap = write_tmp(f, "ca.pem", f->ca_cert);
        char *lp = write_tmp(f, "leaf.pem", cert);
        char out[16384];
        char *verify[] = {"/usr/bin/openssl", "verify", "-CAfile", cap, lp, NULL};
        char *text[] = {"/usr/bin/openssl", "x509", "-noout", "-text", "-in", lp, NULL};
        char *catext[] = {"/usr/bin/openssl", "x509", "-noout", "-text", "-in", cap, NULL};

        assert_int_equal(run(verify, out, sizeof(out)), 0);
        assert_non_null(strstr(out, ": OK"));
        assert_int_equal(run(text, out, sizeof(out)), 0);
        assert_non_null(strstr(out, "DNS:peer1, DNS:peer1.example.com"));
        assert_non_null(strstr(out, "CA:FALSE"));
        assert_non_null(
            strstr(out, "TLS Web Server Authentication, TLS Web Client Authentication"));
        assert_non_null(strstr(out, "Subject: O = ClusterLink, CN = peer1"));
        assert_non_null(strstr(out, "ecdsa-with-SHA256"));
        assert_non_null(strstr(out, "Authority Key Identifier"));
        assert_non_null(strstr(out, "Subject Key Identifier"));
        assert_int_equal(run(catext, out, sizeof(out)), 0);
        assert_non_null(strstr(out, "CA:TRUE, pathlen:0"));
        assert_non_null(strstr(out, "Certificate Sign"));
        cl_free(&cap);
        cl_free(&lp);
    }
    cl_free(&cert);
    cl_free(&key);
}

static void client_only_no_sans(void **state)
{
    struct fx *f = *state;
    struct cl_certgen_opts o = {.cn = "gwctl.peer1", .client_auth = true};
    char *cert = NULL, *key = NULL;
    WOLFSSL_X509 *x;

    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), 0);
    x = parse(cert);
    assert_non_null(x);
    assert_null(wolfSSL_X509_get_next_altname(x));
    assert_int_equal(wolfSSL_X509_get_extended_key_usage(x) & 3, 2); // XKU_SSL_CLIENT only
    wolfSSL_X509_free(x);
    assert_int_equal(wolf_verify(f->ca_cert, cert), WOLFSSL_SUCCESS);
    cl_free(&cert);
    cl_free(&key);
}

static void explicit_validity(void **state)
{
    struct fx *f = *state;
    /* 2030-01-02 03:04:05Z .. 2060-01-02 03:04:05Z: UTCTime then GeneralizedTime */
    struct cl_certgen_opts o = {
        .cn = "p", .server_auth = true, .not_before = 1893553445, .not_after = 2840238245};
    char *cert = NULL, *key = NULL;
    WOLFSSL_X509 *x;
    WOLFSSL_ASN1_TIME *t;

    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), 0);
    x = parse(cert);
    assert_non_null(x);
    t = wolfSSL_X509_get_notBefore(x);
    assert_non_null(t);
    assert_int_equal(t->type, ASN_UTC_TIME);
    assert_int_equal(t->length, 13);
    assert_memory_equal(t->data, "300102030405Z", 13);
    t = wolfSSL_X509_get_notAfter(x);
    assert_non_null(t);
    assert_int_equal(t->type, ASN_GENERALIZED_TIME);
    assert_int_equal(t->length, 15);
    assert_memory_equal(t->data, "20600102030405Z", 15);
    wolfSSL_X509_free(x);
    /* not yet valid */
    assert_int_equal(wolf_verify(f->ca_cert, cert), ASN_BEFORE_DATE_E);
    cl_free(&cert);
    cl_free(&key);
}

static void expired_rejected(void **state)
{
    struct fx *f = *state;
    int64_t now = (int64_t)time(NULL);
    struct cl_certgen_opts o = {.cn = "old",
                                .server_auth = true,
                                .client_auth = true,
                                .not_before = now - 10 * DAY,
                                .not_after = now - DAY};
    char *cert = NULL, *key = NULL;

    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), 0);
    assert_int_equal(wolf_verify(f->ca_cert, cert), ASN_AFTER_DATE_E);
    if (have_openssl()) {
        char *cap = write_tmp(f, "ca2.pem", f->ca_cert);
        char *lp = write_tmp(f, "old.pem", cert);
        char out[4096];
        char *verify[] = {"/usr/bin/openssl", "verify", "-CAfile", cap, lp, NULL};

        assert_int_not_equal(run(verify, out, sizeof(out)), 0);
        assert_non_null(strstr(out, "expired"));
        cl_free(&cap);
        cl_free(&lp);
    }
    cl_free(&cert);
    cl_free(&key);
}

static void wrong_ca_rejected(void **state)
{
    struct fx *f = *state;
    char *ca2 = NULL, *ca2key = NULL, *cert = NULL, *key = NULL;
    struct cl_certgen_opts o = {.cn = "x", .client_auth = true};

    assert_int_equal(cl_certgen_ca("other-fabric", 0, 0, &ca2, &ca2key), 0);
    assert_int_equal(cl_certgen_leaf(ca2, ca2key, &o, &cert, &key), 0);
    assert_int_not_equal(wolf_verify(f->ca_cert, cert), WOLFSSL_SUCCESS);
    assert_int_equal(wolf_verify(ca2, cert), WOLFSSL_SUCCESS);
    cl_free(&ca2);
    cl_free(&ca2key);
    cl_free(&cert);
    cl_free(&key);
}

static void bad_input(void **state)
{
    struct fx *f = *state;
    const char *bad_dns[] = {"has space"};
    struct cl_certgen_opts o = {.cn = "ok"};
    char *cert = NULL, *key = NULL;
    char longcn[200];

    assert_int_equal(cl_certgen_ca("", 0, 0, &cert, &key), CL_EINVAL);
    assert_int_equal(cl_certgen_ca("ca", 100, 50, &cert, &key), CL_EINVAL);
    memset(longcn, 'a', sizeof(longcn) - 1);
    longcn[sizeof(longcn) - 1] = '\0';
    assert_int_equal(cl_certgen_ca(longcn, 0, 0, &cert, &key), CL_EINVAL);
    assert_int_equal(cl_certgen_leaf("not a pem", f->ca_key, &o, &cert, &key), CL_EINVAL);
    assert_int_equal(cl_certgen_leaf(f->ca_cert, "not a key", &o, &cert, &key), CL_EINVAL);
    /* a key that is not the CA's */
    assert_int_equal(cl_certgen_ca("ca3", 0, 0, &cert, &key), 0);
    {
        char *k3 = key, *c3 = cert;
        cert = key = NULL;
        assert_int_equal(cl_certgen_leaf(f->ca_cert, k3, &o, &cert, &key), CL_EINVAL);
        assert_int_equal(cl_certgen_leaf(c3, f->ca_key, &o, &cert, &key), CL_EINVAL);
        cl_free(&k3);
        cl_free(&c3);
    }
    o.dns = bad_dns;
    o.ndns = 1;
    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), CL_EINVAL);
    o.dns = NULL;
    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), CL_EINVAL);
    o.cn = NULL;
    o.ndns = 0;
    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), CL_EINVAL);
    assert_null(cert);
    assert_null(key);
}

/* IP address SANs: written as [7] iPAddress, shown by openssl, bad literals refused. */
static void ip_sans(void **state)
{
    struct fx *f = *state;
    const char *dns[] = {"apiserver"};
    const char *ips[] = {"10.96.0.1", "fd00::1"};
    struct cl_certgen_opts o = {
        .cn = "apiserver", .dns = dns, .ndns = 1, .ips = ips, .nips = 2, .server_auth = true};
    char *cert = NULL, *key = NULL;

    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), 0);
    assert_int_equal(wolf_verify(f->ca_cert, cert), WOLFSSL_SUCCESS);
    if (have_openssl()) {
        char *lp = write_tmp(f, "ip.pem", cert);
        char out[16384];
        char *text[] = {"/usr/bin/openssl", "x509", "-noout", "-text", "-in", lp, NULL};
        assert_int_equal(run(text, out, sizeof(out)), 0);
        assert_non_null(
            strstr(out, "DNS:apiserver, IP Address:10.96.0.1, IP Address:FD00:0:0:0:0:0:0:1"));
        cl_free(&lp);
    }
    cl_free(&cert);
    cl_free(&key);
    const char *bad[] = {"10.96.0", "fd00::1::2", "[::1]", "kubernetes", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.ips = &bad[i];
        o.nips = 1;
        assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), CL_EINVAL);
        assert_null(cert);
    }
    const char *many[CL_CERTGEN_MAX_IPS + 1];
    for (size_t i = 0; i < CL_CERTGEN_MAX_IPS + 1; i++)
        many[i] = "10.0.0.1";
    o.ips = many;
    o.nips = CL_CERTGEN_MAX_IPS + 1;
    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), CL_EINVAL);
    o.nips = CL_CERTGEN_MAX_IPS;
    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), 0);
    cl_free(&cert);
    cl_free(&key);
    o.ips = NULL;
    o.nips = 1;
    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), CL_EINVAL);
}

/* Every allocation failure is reported as CL_ENOMEM with nothing leaked (ASan checks). */
static void alloc_failures(void **state)
{
    struct fx *f = *state;
    const char *dns[] = {"peer1"};
    struct cl_certgen_opts o = {.cn = "peer1", .dns = dns, .ndns = 1, .server_auth = true};
    char *cert = NULL, *key = NULL;
    long total;

    cl_failalloc_arm(1000000);
    assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), 0);
    total = cl_failalloc_count();
    cl_failalloc_arm(-1);
    cl_free(&cert);
    cl_free(&key);
    assert_true(total > 0);
    for (long n = 0; n < total; n++) {
        cl_failalloc_arm(n);
        assert_int_equal(cl_certgen_leaf(f->ca_cert, f->ca_key, &o, &cert, &key), CL_ENOMEM);
        cl_failalloc_arm(-1);
        assert_null(cert);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ca_is_ca),
        cmocka_unit_test(leaf_fields_and_verify),
        cmocka_unit_test(client_only_no_sans),
        cmocka_unit_test(explicit_validity),
        cmocka_unit_test(expired_rejected),
        cmocka_unit_test(wrong_ca_rejected),
        cmocka_unit_test(bad_input),
        cmocka_unit_test(ip_sans),
        cmocka_unit_test(alloc_failures),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
