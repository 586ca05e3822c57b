#include "cl/mem.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static cl_mem_fail_cb fail_hook;

void cl_mem_set_fail_hook(cl_mem_fail_cb cb)
{
    fail_hook = cb;
}

void *cl_malloc(size_t n)
{
    if (fail_hook != NULL && fail_hook(n) != 0)
        return NULL;
    return malloc(n != 0 ? n : 1);
}

void *cl_calloc(size_t n, size_t size)
{
    if (fail_hook != NULL && fail_hook(n * size) != 0)
        return NULL;
    return calloc(n != 0 ? n : 1, size != 0 ? size : 1);
}

void *cl_realloc(void *p, size_t n)
{
    if (fail_hook != NULL && fail_hook(n) != 0)
        return NULL;
    return realloc(p, n != 0 ? n : 1);
}

char *cl_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = cl_malloc(len + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *cl_strdup(const char *s)
{
    return cl_strndup(s, strlen(s));
}

void cl_mem_free(void *p)
{
    free(p);
}

/*
 * jansson 2.14 does not survive allocation failure: its lexer crashes (json_loadb, seen with
 * tests/unit/proto/test_ipc_codec.c under failalloc) and its encoder drops object keys. Its
 * allocations therefore bypass the failure-injection hook; everything else is still covered.
 */
static void *jansson_malloc(size_t n)
{
    return malloc(n != 0 ? n : 1);
}

void cl_mem_install_jansson(void)
{
    json_set_alloc_funcs(jansson_malloc, cl_mem_free);
}
