/*
 * Fuzz target: relayed REST requests -> cp_api_handle. Input: "METHOD PATH\nIDENTITY\nBODY".
 * One LMDB store in a temp dir is shared by all runs; every run deletes what it created, so
 * no state carries over from one input to the next.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl/log.h"
#include "cl/mem.h"
#include "cp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cp cp;
static char *admins[] = {"gwctl.east"};
static char dir[] = "/tmp/cl-fuzz-api-XXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    cp_state_free(&cp);
    cp_store_close(cp.store);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void init(void)
{
    if (cp.store != NULL)
        return;
    cl_log_set_level(CL_LOG_ERROR);
    if (mkdtemp(dir) == NULL || cp_store_open(dir, CP_STORE_DEFAULT_MIB, &cp.store) != 0 ||
        cp_state_load(&cp) != 0)
        abort();
    cp.name = "east";
    cp.admins = admins;
    cp.nadmins = 1;
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = cl_malloc(size + 1), *nl, *nl2, *sp;
    struct cp_http_resp r;

    init();
    if (in == NULL)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    if ((nl = strchr(in, '\n')) != NULL && (sp = memchr(in, ' ', (size_t)(nl - in))) != NULL &&
        (nl2 = strchr(nl + 1, '\n')) != NULL) {
        *sp = *nl = *nl2 = '\0';
        cp_api_handle(&cp, in, sp + 1, nl + 1, nl2 + 1, size - (size_t)(nl2 + 1 - in), &r);
        if (r.status < 200 || r.status > 599)
            abort();
        json_decref(r.body);
        cl_mem_free(r.text);
    }
    cl_mem_free(in);
    for (int k = 0; k < CP_KIND_COUNT; k++) { /* back to empty */
        const char *n;
        json_t *o;
        void *tmp;
        json_object_foreach_safe(cp.objs[k], tmp, n, o)
        {
            cp_state_del(&cp, (enum cp_kind)k, n);
        }
    }
    return 0;
}
