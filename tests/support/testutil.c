#define _XOPEN_SOURCE 700
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl/mem.h"

char *cl_test_mkdtemp(const char *tag)
{
    const char *base = getenv("CL_TEST_TMP");
    char tmpl[512];

    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(tmpl, sizeof(tmpl), "%s/cl-%s-XXXXXX", base, tag);
    if (mkdtemp(tmpl) == NULL)
        return NULL;
    return cl_strdup(tmpl);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int cl_test_rmtree(const char *path)
{
    if (path == NULL)
        return 0;
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int cl_test_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const char *p = data;

    if (fd < 0)
        return -errno;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            int rc = -errno;
            close(fd);
            return rc;
        }
        p += n;
        len -= (size_t)n;
    }
    return close(fd) == 0 ? 0 : -errno;
}

static long fail_at = -1;
static long seen;

static int fail_hook(size_t n)
{
    (void)n;
    return seen++ == fail_at;
}

void cl_failalloc_arm(long n)
{
    fail_at = n;
    seen = 0;
    cl_mem_set_fail_hook(n >= 0 ? fail_hook : NULL);
}

long cl_failalloc_count(void)
{
    return seen;
}
