/* Kubernetes client configuration: kubeconfig (libyaml), in-cluster files, token re-reads,
 * base64, server URLs. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl/err.h"
#include "cl/mem.h"
#include "cm.h"
#include "cp_k8s_config.h"
#include "rows.h"
#include "testutil.h"

static char *dir;

static int setup(void **state)
{
    char p[600];
    (void)state;
    if ((dir = cl_test_mkdtemp("k8scfg")) == NULL)
        return -1;
    snprintf(p, sizeof(p), "%s/ca.pem", dir);
    cl_test_write_file(p, "CA-PEM\n", 7);
    snprintf(p, sizeof(p), "%s/sub", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/sub/cert.pem", dir);
    cl_test_write_file(p, "CERT-PEM\n", 9);
    snprintf(p, sizeof(p), "%s/sub/key.pem", dir);
    cl_test_write_file(p, "KEY-PEM\n", 8);
    snprintf(p, sizeof(p), "%s/tok", dir);
    cl_test_write_file(p, "file-token\n", 11);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cl_test_rmtree(dir);
    cl_free(&dir);
    return 0;
}

static int kc(const char *text, struct cp_k8s_config *c, char *err, size_t errlen)
{
    return cp_k8s_config_kubeconfig_text(text, strlen(text), dir, c, err, errlen);
}

static const char full[] = "apiVersion: v1\n"
                           "kind: Config\n"
                           "current-context: b\n"
                           "contexts:\n"
                           "- name: a\n"
                           "  context: {cluster: one, user: alice}\n"
                           "- name: b\n"
                           "  context:\n"
                           "    cluster: two\n"
                           "    user: bob\n"
                           "    namespace: team-x\n"
                           "clusters:\n"
                           "- name: one\n"
                           "  cluster: {server: 'https://one.example:6443'}\n"
                           "- name: two\n"
                           "  cluster:\n"
                           "    server: https://[fd00::1]:8443/\n"
                           "    certificate-authority: ca.pem\n"
                           "    tls-server-name: kubernetes.default.svc\n"
                           "users:\n"
                           "- name: alice\n"
                           "  user: {token: nope}\n"
                           "- name: bob\n"
                           "  user:\n"
                           "    client-certificate: sub/cert.pem\n"
                           "    client-key: sub/key.pem\n"
                           "    tokenFile: tok\n";

static void kubeconfig_current_context(void **state)
{
    struct cp_k8s_config c;
    char err[256];
    (void)state;

    assert_int_equal(kc(full, &c, err, sizeof(err)), 0);
    assert_string_equal(c.host, "fd00::1");
    assert_int_equal(c.port, 8443);
    assert_string_equal(c.prefix, "");
    assert_string_equal(c.server_name, "kubernetes.default.svc");
    assert_string_equal(c.ca_pem, "CA-PEM\n");
    assert_string_equal(c.cert_pem, "CERT-PEM\n");
    assert_string_equal(c.key_pem, "KEY-PEM\n");
    /* the files they came from, relative to the kubeconfig's directory, for reloads */
    char want[1024];
    snprintf(want, sizeof(want), "%s/ca.pem", dir);
    assert_string_equal(c.ca_file, want);
    snprintf(want, sizeof(want), "%s/sub/cert.pem", dir);
    assert_string_equal(c.cert_file, want);
    snprintf(want, sizeof(want), "%s/sub/key.pem", dir);
    assert_string_equal(c.key_file, want);
    assert_string_equal(c.ns, "team-x");
    assert_null(c.token);
    assert_non_null(strstr(c.token_file, "/tok"));
    assert_string_equal(cp_k8s_config_token(&c), "file-token");
    cp_k8s_config_deinit(&c);
    assert_null(c.ca_pem);
    cp_k8s_config_deinit(NULL);
}

static void kubeconfig_data_fields(void **state)
{
    /* base64 of "-----BEGIN CERTIFICATE-----\nAAA\n", of "CERT\n", of "KEY\n" */
    static const char text[] =
        "{\"current-context\": \"c\", \"contexts\": [{\"name\": \"c\", \"context\": "
        "{\"cluster\": \"k\", \"user\": \"u\"}}], \"clusters\": [{\"name\": \"k\", \"cluster\": "
        "{\"server\": \"https://10.96.0.1\", \"certificate-authority-data\": "
        "\"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFBQQo=\"}}], \"users\": [{\"name\": \"u\", "
        "\"user\": {\"token\": \"static-token\", \"client-certificate-data\": \"Q0VSVAo=\", "
        "\"client-key-data\": \"S0VZ\\nCg==\"}}]}";
    struct cp_k8s_config c;
    char err[256];
    (void)state;

    assert_int_equal(kc(text, &c, err, sizeof(err)), 0);
    assert_string_equal(c.host, "10.96.0.1");
    assert_int_equal(c.port, 443);
    assert_string_equal(c.server_name, "10.96.0.1");
    assert_string_equal(c.ca_pem, "-----BEGIN CERTIFICATE-----\nAAA\n");
    assert_string_equal(c.cert_pem, "CERT\n");
    assert_string_equal(c.key_pem, "KEY\n");
    assert_null(c.ca_file); /* *-data: nothing to re-read */
    assert_null(c.cert_file);
    assert_null(c.key_file);
    assert_null(c.ns);
    assert_string_equal(cp_k8s_config_token(&c), "static-token");
    cp_k8s_config_deinit(&c);
}

/* A context "c" with cluster "k" and user "u", and a cluster "k" with a CA file, to build
 * kubeconfigs that are wrong in one place. */
#define CTX_C "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
#define CLUSTER_CA \
    "clusters: [{name: k, cluster: {server: 'https://h', certificate-authority: ca.pem}}]\n"

static void kubeconfig_errors(void **state)
{
    /* each kubeconfig is refused with an error that says `what` */
    static const struct {
        const char *text, *what;
    } rows[] = {
        {"just a string", "not a mapping"},
        {"a: [", "YAML error"},
        {"contexts: []\n", "no current-context"},
        {"current-context: x\ncontexts: []\n", "context x not found"},
        {CTX_C, "cluster k of context c not found"},
        {CTX_C "clusters: [{name: k, cluster: {server: 'http://h:80'}}]\n", "not an https:// URL"},
        {CTX_C "clusters: [{name: k, cluster: {server: 'https://h'}}]\n",
         "no certificate-authority"},
        {CTX_C "clusters: [{name: k, cluster: {server: 'https://h', "
               "insecure-skip-tls-verify: true}}]\n",
         "insecure-skip-tls-verify is not supported"},
        {CTX_C "clusters: [{name: k, cluster: {server: 'https://h', "
               "certificate-authority-data: '!!!'}}]\n",
         "not valid base64"},
        {CTX_C "clusters: [{name: k, cluster: {server: 'https://h', "
               "certificate-authority: missing.pem}}]\n",
         "cannot read certificate-authority"},
        {CTX_C CLUSTER_CA "users: [{name: u, user: {exec: {command: aws}}}]\n", "not exec"},
        {CTX_C CLUSTER_CA "users: [{name: u, user: {client-certificate: sub/cert.pem}}]\n",
         "go together"},
        {CTX_C CLUSTER_CA "users: []\n", "user u of context c not found"},
        {"current-context: c\ncontexts: [{name: c, context: {cluster: k, namespace: "
         "Bad_NS}}]\n" CLUSTER_CA,
         "namespace Bad_NS is not valid"},
    };
    struct cp_k8s_config c;
    char err[256];
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *row = rows[i].what;
        CL_TEST_ROW_TRUE(row, kc(rows[i].text, &c, err, sizeof(err)) != 0);
        CL_TEST_ROW_HAS(row, err, rows[i].what);
        CL_TEST_ROW_TRUE(row, c.ca_pem == NULL); /* nothing left behind */
    }
    assert_int_equal(i, 14); /* every row ran */
    /* no user at all: anonymous, allowed */
    static const char anon[] =
        "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: "
        "[{name: k, cluster: {server: 'https://h/prefix/x/', certificate-authority: "
        "ca.pem}}]\n";
    assert_int_equal(kc(anon, &c, err, sizeof(err)), 0);
    assert_string_equal(c.prefix, "/prefix/x");
    assert_null(cp_k8s_config_token(&c));
    cp_k8s_config_deinit(&c);
}

static void kubeconfig_file(void **state)
{
    char path[600], err[256];
    struct cp_k8s_config c;
    (void)state;

    snprintf(path, sizeof(path), "%s/kubeconfig", dir);
    cl_test_write_file(path, full, strlen(full));
    assert_int_equal(cp_k8s_config_kubeconfig(path, &c, err, sizeof(err)), 0);
    assert_string_equal(c.cert_pem, "CERT-PEM\n"); /* relative to the file's directory */
    cp_k8s_config_deinit(&c);
    snprintf(path, sizeof(path), "%s/none", dir);
    assert_int_equal(cp_k8s_config_kubeconfig(path, &c, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "cannot read kubeconfig"));
}

static void in_cluster(void **state)
{
    char sa[600], p[700], err[256];
    struct cp_k8s_config c;
    (void)state;

    snprintf(sa, sizeof(sa), "%s/sa", dir);
    mkdir(sa, 0700);
    /* nothing mounted yet */
    assert_int_equal(cp_k8s_config_in_cluster(sa, NULL, NULL, &c, err, sizeof(err)), CL_EINVAL);
    assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));
    assert_int_not_equal(cp_k8s_config_in_cluster(sa, "10.96.0.1", "443", &c, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "ca.crt"));
    snprintf(p, sizeof(p), "%s/ca.crt", sa);
    cl_test_write_file(p, "SA-CA\n", 6);
    assert_int_equal(cp_k8s_config_in_cluster(sa, "10.96.0.1", "443", &c, err, sizeof(err)),
                     CL_ENOENT);
    assert_non_null(strstr(err, "token"));
    snprintf(p, sizeof(p), "%s/token", sa);
    cl_test_write_file(p, "tok-1", 5);
    assert_int_equal(cp_k8s_config_in_cluster(sa, "10.96.0.1", "x", &c, err, sizeof(err)),
                     CL_EINVAL);
    assert_int_equal(cp_k8s_config_in_cluster(sa, "10.96.0.1", NULL, &c, err, sizeof(err)), 0);
    assert_int_equal(c.port, 443);
    assert_null(c.ns); /* no namespace file */
    cp_k8s_config_deinit(&c);
    snprintf(p, sizeof(p), "%s/namespace", sa);
    cl_test_write_file(p, "clusterlink\n", 12);
    assert_int_equal(cp_k8s_config_in_cluster(sa, "fd00::10", "6443", &c, err, sizeof(err)), 0);
    assert_string_equal(c.host, "fd00::10");
    assert_int_equal(c.port, 6443);
    assert_string_equal(c.server_name, "fd00::10");
    assert_string_equal(c.ca_pem, "SA-CA\n");
    snprintf(p, sizeof(p), "%s/ca.crt", sa);
    assert_string_equal(c.ca_file, p); /* re-read when the kubelet replaces it */
    assert_string_equal(c.ns, "clusterlink");
    assert_string_equal(cp_k8s_config_token(&c), "tok-1");
    /* the kubelet rotates the token: replaced files are picked up, a vanished one keeps the
     * last value */
    snprintf(p, sizeof(p), "%s/token.new", sa);
    cl_test_write_file(p, "tok-2-longer\n", 13);
    char tok[700];
    snprintf(tok, sizeof(tok), "%s/token", sa);
    assert_int_equal(rename(p, tok), 0);
    assert_string_equal(cp_k8s_config_token(&c), "tok-2-longer");
    unlink(tok);
    assert_string_equal(cp_k8s_config_token(&c), "tok-2-longer");
    cp_k8s_config_deinit(&c);
}

static void base64(void **state)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"", ""},        {"YQ==", "a"},      {"YQ", "a"},          {"YWI=", "ab"},
        {"YWJj", "abc"}, {"YW Jj\n", "abc"}, {"Pz8/Pw==", "????"}, {"+/8=", "\xfb\xff"},
    };

    static const char *const bad[] = {"Y", "YQ=a", "Y*==", "YQ===", "YR==", "YWJjZ"};
    char *out;
    size_t n;
    (void)state;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const char *row = ok[i].in;
        CL_TEST_ROW_INT(row, cp_k8s_base64_decode(ok[i].in, strlen(ok[i].in), &out, &n), 0);
        CL_TEST_ROW_INT(row, n, strlen(ok[i].out));
        CL_TEST_ROW_TRUE(row, memcmp(out, ok[i].out, n) == 0);
        cl_free(&out);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (cp_k8s_base64_decode(bad[i], strlen(bad[i]), &out, &n) != CL_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_null(out);
    }
}

static void server_urls(void **state)
{
    /* set one after the other on the same configuration; host NULL: refused with CL_EINVAL */
    static const struct {
        const char *url, *host;
        int port;
        const char *prefix;
    } rows[] = {
        {"https://api.example.com", "api.example.com", 443, ""},
        {"https://127.0.0.1:6443/", "127.0.0.1", 6443, ""},
        {"https://[::1]", "::1", 443, ""},
        {"https://h:1/k8s/clusters/c-1", "h", 1, "/k8s/clusters/c-1"},
        {"http://h", NULL, 0, NULL},
        {"https://", NULL, 0, NULL},
        {"https://h:99999", NULL, 0, NULL},
        {"https://h?x=1", NULL, 0, NULL},
        {"https://bad host", NULL, 0, NULL},
        {"https://h/a b", NULL, 0, NULL},
    };
    struct cp_k8s_config c;
    size_t i;
    (void)state;

    memset(&c, 0, sizeof(c));
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *row = rows[i].url;
        int rc = cp_k8s_config_set_server(&c, rows[i].url);
        if (rows[i].host == NULL) {
            CL_TEST_ROW_INT(row, rc, CL_EINVAL);
            continue;
        }
        CL_TEST_ROW_INT(row, rc, 0);
        CL_TEST_ROW_STR(row, c.host, rows[i].host);
        CL_TEST_ROW_INT(row, c.port, rows[i].port);
        CL_TEST_ROW_STR(row, c.prefix, rows[i].prefix);
    }
    assert_int_equal(i, 10); /* every row ran */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kubeconfig_current_context),
        cmocka_unit_test(kubeconfig_data_fields),
        cmocka_unit_test(kubeconfig_errors),
        cmocka_unit_test(kubeconfig_file),
        cmocka_unit_test(in_cluster),
        cmocka_unit_test(base64),
        cmocka_unit_test(server_urls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
