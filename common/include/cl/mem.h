#ifndef CL_MEM_H
#define CL_MEM_H

#include <stddef.h>

/*
 * Every allocation in the project goes through these wrappers so that tests can fail the Nth
 * allocation (tests/support/failalloc.c) and so that jansson and nghttp2 share the hook.
 * All return NULL on failure; cl_free(NULL) is a no-op.
 */
#define CL_MUST_CHECK __attribute__((warn_unused_result))

CL_MUST_CHECK void *cl_malloc(size_t n);
CL_MUST_CHECK void *cl_calloc(size_t n, size_t size);
CL_MUST_CHECK void *cl_realloc(void *p, size_t n);
CL_MUST_CHECK char *cl_strdup(const char *s);
CL_MUST_CHECK char *cl_strndup(const char *s, size_t n);
void cl_mem_free(void *p);

/* Frees *pp and sets it to NULL. */
#define cl_free(pp)         \
    do {                    \
        cl_mem_free(*(pp)); \
        *(pp) = NULL;       \
    } while (0)

/* Allocation hook: when set, called before each allocation; returning nonzero fails it. */
typedef int (*cl_mem_fail_cb)(size_t n);
void cl_mem_set_fail_hook(cl_mem_fail_cb cb);

/* Routes jansson's allocations through this module (without the failure hook: jansson 2.14
 * crashes when an allocation fails). Call once at start-up. */
void cl_mem_install_jansson(void);

/* Recover the owner of an embedded member. */
#define CL_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define CL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CL_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define CL_MAX(a, b)     ((a) > (b) ? (a) : (b))

#endif
