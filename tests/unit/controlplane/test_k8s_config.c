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
    assert_null(c.ns);
    assert_string_equal(cp_k8s_config_token(&c), "static-token");
    cp_k8s_config_deinit(&c);
}

static void expect_err(const char *text, const char *what)
{
    struct cp_k8s_config c;
    char err[256];

    assert_int_not_equal(kc(text, &c, err, sizeof(err)), 0);
    if (strstr(err, what) == NULL)
        fail_msg("expected '%s' in '%s'", what, err);
    assert_null(c.ca_pem); /* nothing left behind */
}

static void kubeconfig_errors(void **state)
{
    static const char ctx[] = "current-context: c\n"
                              "contexts: [{name: c, context: {cluster: k, user: u}}]\n";
    char t[1024];
    (void)state;

    expect_err("just a string", "not a mapping");
    expect_err("a: [", "YAML error");
    expect_err("contexts: []\n", "no current-context");
    expect_err("current-context: x\ncontexts: []\n", "context x not found");
    expect_err(ctx, "cluster k of context c not found");
    snprintf(t, sizeof(t), "%sclusters: [{name: k, cluster: {server: 'http://h:80'}}]\n", ctx);
    expect_err(t, "not an https:// URL");
    snprintf(t, sizeof(t), "%sclusters: [{name: k, cluster: {server: 'https://h'}}]\n", ctx);
    expect_err(t, "no certificate-authority");
    snprintf(t, sizeof(t),
             "%sclusters: [{name: k, cluster: {server: 'https://h', "
             "insecure-skip-tls-verify: true}}]\n",
             ctx);
    expect_err(t, "insecure-skip-tls-verify is not supported");
    snprintf(t, sizeof(t),
             "%sclusters: [{name: k, cluster: {server: 'https://h', "
             "certificate-authority-data: '!!!'}}]\n",
             ctx);
    expect_err(t, "not valid base64");
    snprintf(t, sizeof(t),
             "%sclusters: [{name: k, cluster: {server: 'https://h', "
             "certificate-authority: missing.pem}}]\n",
             ctx);
    expect_err(t, "cannot read certificate-authority");
    snprintf(t, sizeof(t),
             "%sclusters: [{name: k, cluster: {server: 'https://h', certificate-authority: "
             "ca.pem}}]\nusers: [{name: u, user: {exec: {command: aws}}}]\n",
             ctx);
    expect_err(t, "not exec");
    snprintf(t, sizeof(t),
             "%sclusters: [{name: k, cluster: {server: 'https://h', certificate-authority: "
             "ca.pem}}]\nusers: [{name: u, user: {client-certificate: sub/cert.pem}}]\n",
             ctx);
    expect_err(t, "go together");
    snprintf(t, sizeof(t),
             "%sclusters: [{name: k, cluster: {server: 'https://h', certificate-authority: "
             "ca.pem}}]\nusers: []\n",
             ctx);
    expect_err(t, "user u of context c not found");
    snprintf(t, sizeof(t),
             "current-context: c\ncontexts: [{name: c, context: {cluster: k, namespace: "
             "Bad_NS}}]\nclusters: [{name: k, cluster: {server: 'https://h', "
             "certificate-authority: ca.pem}}]\n");
    expect_err(t, "namespace Bad_NS is not valid");
    /* no user at all: anonymous, allowed */
    struct cp_k8s_config c;
    char err[256];
    snprintf(t, sizeof(t),
             "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: "
             "[{name: k, cluster: {server: 'https://h/prefix/x/', certificate-authority: "
             "ca.pem}}]\n");
    assert_int_equal(kc(t, &c, err, sizeof(err)), 0);
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
        assert_int_equal(cp_k8s_base64_decode(ok[i].in, strlen(ok[i].in), &out, &n), 0);
        assert_int_equal(n, strlen(ok[i].out));
        assert_memory_equal(out, ok[i].out, n);
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
    struct cp_k8s_config c;
    (void)state;

    memset(&c, 0, sizeof(c));
    assert_int_equal(cp_k8s_config_set_server(&c, "https://api.example.com"), 0);
    assert_string_equal(c.host, "api.example.com");
    assert_int_equal(c.port, 443);
    assert_int_equal(cp_k8s_config_set_server(&c, "https://127.0.0.1:6443/"), 0);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 6443);
    assert_string_equal(c.prefix, "");
    assert_int_equal(cp_k8s_config_set_server(&c, "https://[::1]"), 0);
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 443);
    assert_int_equal(cp_k8s_config_set_server(&c, "https://h:1/k8s/clusters/c-1"), 0);
    assert_string_equal(c.prefix, "/k8s/clusters/c-1");
    assert_int_equal(cp_k8s_config_set_server(&c, "http://h"), CL_EINVAL);
    assert_int_equal(cp_k8s_config_set_server(&c, "https://"), CL_EINVAL);
    assert_int_equal(cp_k8s_config_set_server(&c, "https://h:99999"), CL_EINVAL);
    assert_int_equal(cp_k8s_config_set_server(&c, "https://h?x=1"), CL_EINVAL);
    assert_int_equal(cp_k8s_config_set_server(&c, "https://bad host"), CL_EINVAL);
    assert_int_equal(cp_k8s_config_set_server(&c, "https://h/a b"), CL_EINVAL);
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
