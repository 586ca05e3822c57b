/* gwctl contexts: the XDG path, init, switching, permissions, and bad config files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl/mem.h"
#include "cm.h"
#include "ctl.h"
#include "ctl_config.h"
#include "fake.h"
#include "testutil.h"

struct fx {
    char *dir; /* first, for group_new and group_free (fake.h) */
    char xdg[512];
    char cfg[600];
    char ca[600], cert[600], key[600];
};

static int setup(void **state)
{
    struct fx *f = group_new(sizeof(*f), "gwctl-config");

    if (f == NULL)
        return -1;
    snprintf(f->xdg, sizeof(f->xdg), "%s/xdg", f->dir);
    snprintf(f->cfg, sizeof(f->cfg), "%s/gwctl/config.json", f->xdg);
    snprintf(f->ca, sizeof(f->ca), "%s/ca.pem", f->dir);
    snprintf(f->cert, sizeof(f->cert), "%s/cert.pem", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/key.pem", f->dir);
    if (cl_test_write_file(f->ca, "x", 1) != 0 || cl_test_write_file(f->cert, "x", 1) != 0 ||
        cl_test_write_file(f->key, "x", 1) != 0)
        return -1;
    cl_mem_install_jansson();
    *state = f;
    return 0;
}

static void xdg_path(void **state)
{
    char p[512];
    (void)state;

    setenv("XDG_CONFIG_HOME", "/x/conf", 1);
    setenv("HOME", "/home/u", 1);
    assert_int_equal(ctl_config_path(p, sizeof(p)), 0);
    assert_string_equal(p, "/x/conf/gwctl/config.json");
    setenv("XDG_CONFIG_HOME", "relative/ignored", 1);
    assert_int_equal(ctl_config_path(p, sizeof(p)), 0);
    assert_string_equal(p, "/home/u/.config/gwctl/config.json");
    unsetenv("XDG_CONFIG_HOME");
    assert_int_equal(ctl_config_path(p, sizeof(p)), 0);
    assert_string_equal(p, "/home/u/.config/gwctl/config.json");
    assert_int_equal(ctl_config_path(p, 10), CL_EINVAL);
}

static int init_ctx(struct fx *f, const char *id, const char *port)
{
    return run_ctl(NULL, "init", "--id", id, "--host", "127.0.0.1", "--port", port, "--ca", f->ca,
                   "--cert", f->cert, "--key", f->key, NULL);
}

static void init_use_switch(void **state)
{
    struct fx *f = *state;
    struct ctl_config cfg;
    struct stat st;
    char err[256], dir[600];

    setenv("XDG_CONFIG_HOME", f->xdg, 1);
    /* nothing yet */
    assert_int_equal(run_ctl(NULL, "config", "current-context", NULL), 1);
    assert_string_equal(err_buf, "error: no current context: run \"gwctl init\" first\n");

    assert_int_equal(init_ctx(f, "east", "8443"), 0);
    assert_non_null(strstr(out_buf, "context \"east\" saved and set as current"));
    assert_int_equal(stat(f->cfg, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(dir, sizeof(dir), "%s/gwctl", f->xdg);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(run_ctl(NULL, "config", "current-context", NULL), 0);
    assert_string_equal(out_buf, "east\n");

    assert_int_equal(init_ctx(f, "west", "9443"), 0);
    assert_int_equal(run_ctl(NULL, "config", "current-context", NULL), 0);
    assert_string_equal(out_buf, "west\n");
    assert_int_equal(run_ctl(NULL, "--context", "east", "config", "current-context", NULL), 0);
    assert_string_equal(out_buf, "east\n");

    assert_int_equal(run_ctl(NULL, "config", "use-context", "east", NULL), 0);
    assert_string_equal(out_buf, "current context is now \"east\"\n");
    assert_int_equal(run_ctl(NULL, "config", "current-context", NULL), 0);
    assert_string_equal(out_buf, "east\n");
    assert_int_equal(run_ctl(NULL, "config", "use-context", "north", NULL), 1);
    assert_string_equal(err_buf, "error: no context named \"north\"\n");

    /* re-init replaces, no duplicates; the file holds absolute paths */
    assert_int_equal(init_ctx(f, "east", "1234"), 0);
    assert_int_equal(ctl_config_load(f->cfg, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.n, 2);
    assert_string_equal(cfg.current, "east");
    assert_int_equal(ctl_config_find(&cfg, "east")->port, 1234);
    assert_int_equal(ctl_config_find(&cfg, "west")->port, 9443);
    assert_string_equal(ctl_config_find(&cfg, "west")->host, "127.0.0.1");
    assert_true(ctl_config_find(&cfg, "west")->ca[0] == '/');
    assert_non_null(strstr(ctl_config_find(&cfg, "west")->key, "/key.pem"));
    ctl_config_deinit(&cfg);

    assert_int_equal(run_ctl(NULL, "config", "get-contexts", NULL), 0);
    assert_non_null(strstr(out_buf, "CURRENT   NAME   GATEWAY"));
    assert_non_null(strstr(out_buf, "*         east   127.0.0.1:1234"));
    assert_non_null(strstr(out_buf, "          west   127.0.0.1:9443"));
    assert_int_equal(run_ctl(NULL, "config", "get-contexts", "-o", "json", NULL), 0);
    assert_non_null(strstr(out_buf, "\"current-context\": \"east\""));

    /* commands use the current context, --context another */
    fake_reset();
    fake_answer(200, "{}");
    assert_int_equal(run_ctl(NULL, "status", NULL), 0);
    assert_string_equal(fake.opened_id, "east");
    assert_int_equal(run_ctl(NULL, "status", "--context", "west", NULL), 0);
    assert_string_equal(fake.opened_id, "west");
    unsetenv("XDG_CONFIG_HOME");
}

static void init_checks_files(void **state)
{
    struct fx *f = *state;
    char cfg[600], missing[600];

    snprintf(cfg, sizeof(cfg), "%s/check/config.json", f->dir);
    snprintf(missing, sizeof(missing), "%s/nope.pem", f->dir);
    assert_int_equal(run_ctl(cfg, "init", "--id", "e", "--host", "h", "--port", "1", "--ca",
                             missing, "--cert", f->cert, "--key", f->key, NULL),
                     1);
    assert_non_null(strstr(err_buf, "--ca "));
    assert_non_null(strstr(err_buf, "No such file or directory"));
    assert_int_equal(run_ctl(cfg, "init", "--id", "e", "--host", "h", "--port", "0", "--ca", f->ca,
                             "--cert", f->cert, "--key", f->key, NULL),
                     1);
    assert_non_null(strstr(err_buf, "--port \"0\""));
    assert_int_equal(run_ctl(cfg, "init", "--id", "Not_A_Name", "--host", "h", "--port", "1",
                             "--ca", f->ca, "--cert", f->cert, "--key", f->key, NULL),
                     1);
    assert_non_null(strstr(err_buf, "not a valid peer name"));
    /* the TLS check's reason is shown as is */
    fake_reset();
    fake.check_rc = CL_ETLS_BAD_FILE;
    assert_int_equal(run_ctl(cfg, "init", "--id", "e", "--host", "h", "--port", "1", "--ca", f->ca,
                             "--cert", f->cert, "--key", f->key, NULL),
                     1);
    assert_non_null(strstr(err_buf, "bad certificate file"));
    fake_reset();
    assert_int_equal(access(cfg, F_OK), -1); // nothing written on failure
}

static void bad_files(void **state)
{
    struct fx *f = *state;
    struct ctl_config cfg;
    char path[600], err[512];
    const char *bad_json = "{\"contexts\": [";
    const char *bad_port = "{\"current-context\":\"a\",\"contexts\":[{\"id\":\"a\",\"host\":\"h\","
                           "\"port\":70000,\"ca\":\"c\",\"cert\":\"c\",\"key\":\"k\"}]}";
    const char *extra = "{\"contexts\":[{\"id\":\"a\",\"host\":\"h\",\"port\":1,\"ca\":\"c\","
                        "\"cert\":\"c\",\"key\":\"k\",\"colour\":\"red\"}]}";

    snprintf(path, sizeof(path), "%s/bad.json", f->dir);
    assert_int_equal(cl_test_write_file(path, bad_json, strlen(bad_json)), 0);
    assert_int_not_equal(ctl_config_load(path, &cfg, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "bad config file"));
    assert_non_null(strstr(err, path));
    assert_int_equal(cfg.n, 0);
    assert_int_equal(run_ctl(path, "status", NULL), 1);
    assert_non_null(strstr(err_buf, "bad config file"));

    assert_int_equal(cl_test_write_file(path, bad_port, strlen(bad_port)), 0);
    assert_int_not_equal(ctl_config_load(path, &cfg, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "contexts[0].port"));

    assert_int_equal(cl_test_write_file(path, extra, strlen(extra)), 0);
    assert_int_not_equal(ctl_config_load(path, &cfg, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "colour"));

    /* missing file: empty config */
    snprintf(path, sizeof(path), "%s/none.json", f->dir);
    assert_int_equal(ctl_config_load(path, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.n, 0);
    assert_null(cfg.current);
}

static void save_forces_0600(void **state)
{
    struct fx *f = *state;
    struct ctl_config cfg = {0};
    struct ctl_context c = {(char *)"a", (char *)"h", 1, (char *)"c", (char *)"c", (char *)"k"};
    struct stat st;
    char path[600], err[256];

    snprintf(path, sizeof(path), "%s/wide.json", f->dir);
    assert_int_equal(cl_test_write_file(path, "{}", 2), 0);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(ctl_config_put(&cfg, &c), 0);
    assert_int_equal(ctl_config_use(&cfg, "a"), 0);
    assert_int_equal(ctl_config_use(&cfg, "b"), CL_ENOENT);
    assert_int_equal(ctl_config_save(path, &cfg, err, sizeof(err)), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    ctl_config_deinit(&cfg);
    ctl_config_deinit(&cfg); // idempotent
    assert_int_equal(ctl_config_load(path, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.n, 1);
    assert_string_equal(cfg.current, "a");
    ctl_config_deinit(&cfg);
}

/* Allocation failures during init fail it cleanly and never leave a broken file behind. */
static void init_alloc_failures(void **state)
{
    struct fx *f = *state;
    struct ctl_config cfg;
    char cfgpath[600], err[256];
    long total = 0;

    snprintf(cfgpath, sizeof(cfgpath), "%s/fa/config.json", f->dir);
    write_two_contexts(cfgpath);
    for (long n = -1;; n++) {
        int rc;
        cl_failalloc_arm(n < 0 ? 1000000 : n);
        rc = run_ctl(cfgpath, "init", "--id", "north", "--host", "h", "--port", "1", "--ca", f->ca,
                     "--cert", f->cert, "--key", f->key, NULL);
        if (n < 0)
            total = cl_failalloc_count();
        cl_failalloc_arm(-1);
        if (n >= total)
            break;
        if (n >= 0)
            assert_int_equal(rc, 1);
        else
            assert_int_equal(rc, 0);
        /* the file is always whole: the old two contexts or all three */
        assert_int_equal(ctl_config_load(cfgpath, &cfg, err, sizeof(err)), 0);
        assert_int_equal(cfg.n, n < 0 ? 3 : 2);
        ctl_config_deinit(&cfg);
        if (n < 0)
            write_two_contexts(cfgpath);
    }
}

/* Paths are made absolute but links are kept: a Kubernetes Secret's files are links through
 * `..data`, swapped on rotation, and the context must follow them to the new files. */
static void init_keeps_links(void **state)
{
    struct fx *f = *state;
    struct ctl_config cfg = {0};
    char cwd[512], here[512], want[700], link[620], err[256];

    setenv("XDG_CONFIG_HOME", f->xdg, 1);
    snprintf(link, sizeof(link), "%s/ca-link.pem", f->dir);
    assert_int_equal(symlink("ca.pem", link), 0);
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->dir), 0);
    assert_non_null(getcwd(here, sizeof(here))); /* what init sees as the directory */
    assert_int_equal(run_ctl(NULL, "init", "--id", "links", "--host", "h", "--port", "1", "--ca",
                             "ca-link.pem", "--cert", f->cert, "--key", "./key.pem", NULL),
                     0);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(ctl_config_load(f->cfg, &cfg, err, sizeof(err)), 0);
    const struct ctl_context *c = ctl_config_find(&cfg, "links");
    assert_non_null(c);
    snprintf(want, sizeof(want), "%s/ca-link.pem", here);
    assert_string_equal(c->ca, want);
    assert_string_equal(c->cert, f->cert);
    snprintf(want, sizeof(want), "%s/./key.pem", here);
    assert_string_equal(c->key, want);
    ctl_config_deinit(&cfg);
    unlink(link);
    unsetenv("XDG_CONFIG_HOME");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(xdg_path),          cmocka_unit_test(init_use_switch),
        cmocka_unit_test(init_checks_files), cmocka_unit_test(bad_files),
        cmocka_unit_test(save_forces_0600),  cmocka_unit_test(init_alloc_failures),
        cmocka_unit_test(init_keeps_links),
    };

    return cmocka_run_group_tests(tests, setup, group_free);
}
