/* gwctl create fabric / peer-cert: files, permissions, contents, refusal to overwrite. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "cl/mem.h"
#include "cm.h"
#include "ctl.h"
#include "ctl_cmd.h"
#include "fake.h"
#include "testutil.h"

struct fx {
    char *dir; /* first, for group_new and group_free (fake.h) */
    char fabric[512];
};

static int setup(void **state)
{
    struct fx *f = group_new(sizeof(*f), "gwctl-fabric");

    if (f == NULL)
        return -1;
    snprintf(f->fabric, sizeof(f->fabric), "%s/fab", f->dir);
    if (wolfSSL_Init() != WOLFSSL_SUCCESS)
        return -1;
    cl_mem_install_jansson();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    group_free(state);
    wolfSSL_Cleanup();
    return 0;
}

static char *path_of(const char *a, const char *b)
{
    static char buf[4][700];
    static int i;
    char *p = buf[i++ % 4];

    snprintf(p, 700, "%s/%s", a, b);
    return p;
}

static int mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return (int)(st.st_mode & 0777);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf = cl_calloc(1, 65536);
    size_t n;

    assert_non_null(fp);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static int verify(const char *ca_path, const char *cert_path)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    int rc;

    assert_non_null(cm);
    assert_int_equal(wolfSSL_CertManagerLoadCA(cm, ca_path, NULL), WOLFSSL_SUCCESS);
    rc = wolfSSL_CertManagerVerify(cm, cert_path, WOLFSSL_FILETYPE_PEM);
    wolfSSL_CertManagerFree(cm);
    return rc;
}

static int openssl_verify(const char *ca, const char *cert)
{
    pid_t pid = fork();
    int st = 0;

    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl("/usr/bin/openssl", "openssl", "verify", "-CAfile", ca, cert, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void fabric_files(void **state)
{
    struct fx *f = *state;
    char err[512];
    char *before, *after;

    assert_int_equal(run_ctl(NULL, "create", "fabric", "--name", "fab", "--dir", f->dir, NULL), 0);
    assert_non_null(strstr(out_buf, "fabric \"fab\" created"));
    assert_int_equal(mode_of(path_of(f->fabric, "ca.key")), 0600);
    assert_int_equal(mode_of(path_of(f->fabric, "ca.pem")), 0644);
    before = slurp(path_of(f->fabric, "ca.pem"));
    assert_non_null(strstr(before, "-----BEGIN CERTIFICATE-----"));

    /* never overwritten */
    assert_int_equal(run_ctl(NULL, "create", "fabric", "--name", "fab", "--dir", f->dir, NULL), 1);
    assert_non_null(strstr(err_buf, "fabric \"fab\" already exists"));
    assert_non_null(strstr(err_buf, "not overwriting"));
    assert_int_equal(ctl_fabric_create(f->dir, "fab", 10, err, sizeof(err)), CL_EEXIST);
    after = slurp(path_of(f->fabric, "ca.pem"));
    assert_string_equal(before, after);
    cl_free(&before);
    cl_free(&after);

    /* names and days are checked */
    assert_int_equal(ctl_fabric_create(f->dir, "Bad.Name", 10, err, sizeof(err)), CL_EINVAL);
    assert_non_null(strstr(err, "not a DNS label"));
    assert_int_equal(
        run_ctl(NULL, "create", "fabric", "--name", "x", "--dir", f->dir, "--days", "0", NULL), 1);
    assert_non_null(strstr(err_buf, "--days \"0\""));
    assert_int_equal(access(path_of(f->dir, "x"), F_OK), -1);
    /* a missing --dir is created, parents included */
    char nested[300], blocked[400];
    snprintf(nested, sizeof(nested), "%s/new/deeper", f->dir);
    assert_int_equal(run_ctl(NULL, "create", "fabric", "--name", "x", "--dir", nested, NULL), 0);
    assert_int_equal(access(path_of(nested, "x/ca.pem"), F_OK), 0);
    /* one that cannot be created is named */
    snprintf(blocked, sizeof(blocked), "%s/new/deeper/x/ca.pem/sub", f->dir);
    assert_int_equal(run_ctl(NULL, "create", "fabric", "--name", "y", "--dir", blocked, NULL), 1);
    assert_non_null(strstr(err_buf, "cannot create directory"));
    assert_non_null(strstr(err_buf, "x/ca.pem")); /* the component that is not a directory */
}

static void check_leaf(const char *fabric, const char *cert_path, const char *name, unsigned eku,
                       long days)
{
    char *pem = slurp(cert_path);
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer((const unsigned char *)pem,
                                                           (int)strlen(pem), WOLFSSL_FILETYPE_PEM);
    char cn[128];
    char *alt;
    WOLFSSL_ASN1_TIME *na;
    struct tm tm;
    time_t exp;

    assert_non_null(x);
    assert_true(wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName,
                                                  cn, sizeof(cn)) > 0);
    assert_string_equal(cn, name);
    alt = wolfSSL_X509_get_next_altname(x);
    assert_non_null(alt);
    assert_string_equal(alt, name);
    assert_null(wolfSSL_X509_get_next_altname(x));
    assert_int_equal(wolfSSL_X509_get_extended_key_usage(x) & 3, eku);
    assert_int_equal(wolfSSL_X509_get_isCA(x), 0);
    na = wolfSSL_X509_get_notAfter(x);
    assert_non_null(na);
    assert_int_equal(wolfSSL_ASN1_TIME_to_tm(na, &tm), WOLFSSL_SUCCESS);
    exp = timegm(&tm);
    assert_true(labs((long)(exp - time(NULL)) - days * 86400) < 300);
    wolfSSL_X509_free(x);
    cl_free(&pem);
    assert_int_equal(verify(path_of(fabric, "ca.pem"), cert_path), WOLFSSL_SUCCESS);
    if (access("/usr/bin/openssl", X_OK) == 0)
        assert_int_equal(openssl_verify(path_of(fabric, "ca.pem"), cert_path), 0);
}

static void peer_cert_files(void **state)
{
    struct fx *f = *state;
    char gw[600], adm[600], err[512];

    snprintf(gw, sizeof(gw), "%s/east", f->fabric);
    snprintf(adm, sizeof(adm), "%s/east/gwctl", f->fabric);
    assert_int_equal(
        run_ctl(NULL, "create", "peer-cert", "--name", "east", "--fabric", f->fabric, NULL), 0);
    assert_non_null(strstr(out_buf, "admin gwctl.east"));
    assert_int_equal(mode_of(path_of(gw, "key.pem")), 0600);
    assert_int_equal(mode_of(path_of(adm, "key.pem")), 0600);
    assert_int_equal(mode_of(path_of(gw, "cert.pem")), 0644);
    check_leaf(f->fabric, path_of(gw, "cert.pem"), "east", 3, CTL_CERT_DAYS);
    check_leaf(f->fabric, path_of(adm, "cert.pem"), "gwctl.east", 2, CTL_CERT_DAYS);

    /* --days */
    assert_int_equal(run_ctl(NULL, "create", "peer-cert", "--name", "west", "--fabric", f->fabric,
                             "--days", "10", NULL),
                     0);
    check_leaf(f->fabric, path_of(f->fabric, "west/cert.pem"), "west", 3, 10);

    /* refuses to overwrite, even when only part exists */
    assert_int_equal(
        run_ctl(NULL, "create", "peer-cert", "--name", "east", "--fabric", f->fabric, NULL), 1);
    assert_non_null(strstr(err_buf, "certificates for \"east\" already exist"));
    assert_int_equal(unlink(path_of(gw, "cert.pem")), 0);
    assert_int_equal(unlink(path_of(gw, "key.pem")), 0);
    assert_int_equal(ctl_fabric_peer_cert(f->fabric, "east", 1, err, sizeof(err)), CL_EEXIST);
    assert_non_null(strstr(err, "gwctl/cert.pem"));
    assert_int_equal(access(path_of(gw, "cert.pem"), F_OK), -1); // nothing half-written

    assert_int_equal(ctl_fabric_peer_cert(f->fabric, "no_underscores", 1, err, sizeof(err)),
                     CL_EINVAL);
    assert_int_equal(ctl_fabric_peer_cert(f->dir, "north", 1, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "cannot read the fabric CA"));
}

static void peer_cert_wrong_key(void **state)
{
    struct fx *f = *state;
    char other[600], err[512];
    char *key;

    /* a second fabric whose key replaces ours: signing must refuse */
    snprintf(other, sizeof(other), "%s/other", f->dir);
    assert_int_equal(ctl_fabric_create(f->dir, "other", 5, err, sizeof(err)), 0);
    key = slurp(path_of(other, "ca.key"));
    assert_int_equal(unlink(path_of(f->fabric, "ca.key")), 0);
    assert_int_equal(cl_test_write_file(path_of(f->fabric, "ca.key"), key, strlen(key)), 0);
    cl_free(&key);
    assert_int_equal(ctl_fabric_peer_cert(f->fabric, "south", 1, err, sizeof(err)), CL_EINVAL);
    assert_non_null(strstr(err, "do not match"));
    assert_int_equal(access(path_of(f->fabric, "south"), F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fabric_files),
        cmocka_unit_test(peer_cert_files),
        cmocka_unit_test(peer_cert_wrong_key),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
