#ifndef CL_TEST_TESTUTIL_H
#define CL_TEST_TESTUTIL_H

#include <stddef.h>

/*
 * Makes a fresh temporary directory under $CL_TEST_TMP (or /tmp) named after `tag`; returns a
 * new string (free with cl_free) or NULL. cl_test_rmtree removes it recursively.
 */
char *cl_test_mkdtemp(const char *tag);
int cl_test_rmtree(const char *path);

/* Writes len bytes to path (created 0600). Returns 0 or -errno. */
int cl_test_write_file(const char *path, const void *data, size_t len);

/*
 * Fails the Nth allocation (counting from 0) made through cl_malloc & co after arming;
 * cl_failalloc_arm(-1) disarms. cl_failalloc_count() tells how many allocations were seen,
 * so a test can loop N over 0..count (nghttp2's failmalloc, curl's torture).
 */
void cl_failalloc_arm(long n);
long cl_failalloc_count(void);

#endif
