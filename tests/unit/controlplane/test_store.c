#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "cl/err.h"
#include "cl/mem.h"
#include "cm.h"
#include "cp_store.h"
#include "testutil.h"

static json_t *obj(int i)
{
    return json_pack("{s:{s:s+},s:{s:s,s:i}}", "metadata", "name", "svc-", i % 2 ? "odd" : "even",
                     "spec", "host", "10.0.0.1", "port", 1000 + i);
}

static void put_load_delete(void **state)
{
    char *dir = cl_test_mkdtemp("store");
    struct cp_store *s;
    json_t *all = json_object(), *o = obj(1);
    (void)state;

    assert_int_equal(cp_store_open(dir, CP_STORE_DEFAULT_MIB, &s), 0);
    assert_int_equal(cp_store_put(s, CP_KIND_EXPORT, "a", o), 0);
    assert_int_equal(cp_store_put(s, CP_KIND_PEER, "a", o), 0); /* kinds are separate */
    assert_int_equal(cp_store_load(s, CP_KIND_EXPORT, all), 0);
    assert_int_equal(json_object_size(all), 1);
    assert_true(json_equal(json_object_get(all, "a"), o));
    assert_int_equal(cp_store_del(s, CP_KIND_EXPORT, "a"), 0);
    assert_int_equal(cp_store_del(s, CP_KIND_EXPORT, "a"), CL_ENOTFOUND);
    json_object_clear(all);
    assert_int_equal(cp_store_load(s, CP_KIND_EXPORT, all), 0);
    assert_int_equal(json_object_size(all), 0);
    assert_int_equal(cp_store_load(s, CP_KIND_PEER, all), 0);
    assert_int_equal(json_object_size(all), 1);
    cp_store_close(s);
    json_decref(all);
    json_decref(o);
    cl_test_rmtree(dir);
    cl_free(&dir);
}

static void newer_schema_refused(void **state)
{
    char *dir = cl_test_mkdtemp("store");
    struct cp_store *s;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {6, "schema"}, v = {2, "99"};
    (void)state;

    assert_int_equal(cp_store_open(dir, CP_STORE_DEFAULT_MIB, &s), 0);
    cp_store_close(s);
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(cp_store_open(dir, CP_STORE_DEFAULT_MIB, &s), CL_ESTORE_SCHEMA);
    cl_test_rmtree(dir);
    cl_free(&dir);
}

/* A child writes and dies without closing (exit or abort); everything committed is there. */
static void reopen_after_unclean_stop(void **state)
{
    (void)state;
    for (int how = 0; how < 2; how++) {
        char *dir = cl_test_mkdtemp("store");
        struct cp_store *s;
        json_t *all = json_object();
        int status;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (cp_store_open(dir, CP_STORE_DEFAULT_MIB, &s) != 0)
                _exit(3);
            for (int i = 0; i < 50; i++) {
                char name[16];
                json_t *o = obj(i);
                snprintf(name, sizeof(name), "n%d", i);
                if (cp_store_put(s, CP_KIND_IMPORT, name, o) != 0)
                    _exit(4);
                json_decref(o);
            }
            if (how == 0)
                _exit(0);
            abort();
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(how == 0 ? WIFEXITED(status) && WEXITSTATUS(status) == 0 : WIFSIGNALED(status));
        assert_int_equal(cp_store_open(dir, CP_STORE_DEFAULT_MIB, &s), 0);
        assert_int_equal(cp_store_load(s, CP_KIND_IMPORT, all), 0);
        assert_int_equal(json_object_size(all), 50);
        json_t *o = obj(49);
        assert_true(json_equal(json_object_get(all, "n49"), o));
        json_decref(o);
        cp_store_close(s);
        json_decref(all);
        cl_test_rmtree(dir);
        cl_free(&dir);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_load_delete),
        cmocka_unit_test(newer_schema_refused),
        cmocka_unit_test(reopen_after_unclean_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
