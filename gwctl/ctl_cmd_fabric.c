/*
 * Certificates for people who have none: a fabric CA, and per peer a gateway certificate and
 * an admin (gwctl) certificate, all ECDSA P-256 made by cl_certgen.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cl/certgen.h"
#include "cl/err.h"
#include "cl/mem.h"
#include "cl/str.h"
#include "ctl.h"
#include "ctl_cmd.h"

#define DAY_S     (24 * 3600LL)
#define SKEW_S    3600
#define MAX_DAYS  36500
#define PEM_MAX   (64 * 1024)
#define ADMIN_PFX "gwctl."

static int join(char *out, size_t outlen, const char *a, const char *b)
{
    int n = snprintf(out, outlen, "%s/%s", a, b);
    return n > 0 && (size_t)n < outlen ? 0 : -ENAMETOOLONG;
}

/* Writes a new file (never replaces one). */
static int write_new(const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    size_t len = strlen(data), off = 0;

    if (fd < 0)
        return -errno;
    (void)fchmod(fd, mode); // whatever the umask
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int rc = -errno;
            close(fd);
            unlink(path);
            return rc;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0) {
        int rc = -errno;
        unlink(path);
        return rc;
    }
    return 0;
}

static int read_small(const char *path, char **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf;
    size_t len = 0;

    if (fd < 0)
        return -errno;
    if ((buf = cl_malloc(PEM_MAX + 1)) == NULL) {
        close(fd);
        return CL_ENOMEM;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, PEM_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int rc = -errno;
            close(fd);
            cl_mem_free(buf);
            return rc;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == PEM_MAX) {
            close(fd);
            cl_mem_free(buf);
            return -EFBIG;
        }
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    return 0;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int make_dir(const char *path, mode_t mode, char *err, size_t errlen);

/* --dir and its parents are created when missing (like mkdir -p). */
static int make_parents(const char *dir, char *err, size_t errlen)
{
    char p[PATH_MAX];
    int rc;

    if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
        return ctl_seterr(err, errlen, -ENAMETOOLONG, "path too long");
    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        rc = make_dir(p, 0755, err, errlen);
        *s = '/';
        if (rc != 0)
            return rc;
    }
    return make_dir(p, 0755, err, errlen);
}

static int make_dir(const char *path, mode_t mode, char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(path, mode) == 0)
        return 0;
    if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    return ctl_seterr(err, errlen, -errno, "cannot create directory %s: %s", path, strerror(errno));
}

static void validity(int days, int64_t *nb, int64_t *na)
{
    int64_t now = (int64_t)time(NULL);

    *nb = now - SKEW_S;
    *na = now + days * DAY_S;
}

int ctl_fabric_create(const char *dir, const char *name, int days, char *err, size_t errlen)
{
    char fdir[PATH_MAX], cap[PATH_MAX], keyp[PATH_MAX];
    char *cert = NULL, *key = NULL;
    int64_t nb, na;
    int rc;

    if (!cl_str_is_dns_label(name))
        return ctl_seterr(err, errlen, CL_EINVAL,
                          "fabric name \"%s\" is not a DNS label (a-z, 0-9, '-', at most 63)",
                          name);
    if (days < 1 || days > MAX_DAYS)
        return ctl_seterr(err, errlen, CL_EINVAL, "--days must be 1..%d", MAX_DAYS);
    if (join(fdir, sizeof(fdir), dir, name) != 0 || join(cap, sizeof(cap), fdir, "ca.pem") != 0 ||
        join(keyp, sizeof(keyp), fdir, "ca.key") != 0)
        return ctl_seterr(err, errlen, -ENAMETOOLONG, "path too long");
    if (exists(cap) || exists(keyp))
        return ctl_seterr(err, errlen, CL_EEXIST,
                          "fabric \"%s\" already exists (%s): not overwriting", name,
                          exists(cap) ? cap : keyp);
    if ((rc = make_parents(dir, err, errlen)) != 0 || (rc = make_dir(fdir, 0755, err, errlen)) != 0)
        return rc;
    validity(days, &nb, &na);
    if ((rc = cl_certgen_ca(name, nb, na, &cert, &key)) != 0)
        return ctl_seterr(err, errlen, rc, "cannot generate the CA: %s", cl_strerror(rc));
    if ((rc = write_new(keyp, key, 0600)) != 0) {
        ctl_seterr(err, errlen, rc, "cannot write %s: %s", keyp, cl_strerror(rc));
    } else if ((rc = write_new(cap, cert, 0644)) != 0) {
        ctl_seterr(err, errlen, rc, "cannot write %s: %s", cap, cl_strerror(rc));
        unlink(keyp);
    }
    cl_free(&cert);
    cl_free(&key);
    return rc;
}

struct pair {
    char cert_path[PATH_MAX];
    char key_path[PATH_MAX];
    char *cert;
    char *key;
};

int ctl_fabric_peer_cert(const char *fabric, const char *peer, int days, char *err, size_t errlen)
{
    char cap[PATH_MAX], keyp[PATH_MAX], pdir[PATH_MAX], adir[PATH_MAX];
    char admin[128];
    char *ca = NULL, *cakey = NULL;
    struct pair p[2];
    int64_t nb, na;
    int rc;

    memset(p, 0, sizeof(p));
    if (!cl_str_is_dns_label(peer))
        return ctl_seterr(err, errlen, CL_EINVAL,
                          "peer name \"%s\" is not a DNS label (a-z, 0-9, '-', at most 63)", peer);
    if (days < 1 || days > MAX_DAYS)
        return ctl_seterr(err, errlen, CL_EINVAL, "--days must be 1..%d", MAX_DAYS);
    snprintf(admin, sizeof(admin), ADMIN_PFX "%s", peer);
    if (join(cap, sizeof(cap), fabric, "ca.pem") != 0 ||
        join(keyp, sizeof(keyp), fabric, "ca.key") != 0 ||
        join(pdir, sizeof(pdir), fabric, peer) != 0 || join(adir, sizeof(adir), pdir, "gwctl") ||
        join(p[0].cert_path, PATH_MAX, pdir, "cert.pem") != 0 ||
        join(p[0].key_path, PATH_MAX, pdir, "key.pem") != 0 ||
        join(p[1].cert_path, PATH_MAX, adir, "cert.pem") != 0 ||
        join(p[1].key_path, PATH_MAX, adir, "key.pem") != 0)
        return ctl_seterr(err, errlen, -ENAMETOOLONG, "path too long");
    for (int i = 0; i < 2; i++) {
        const char *f = exists(p[i].cert_path)  ? p[i].cert_path
                        : exists(p[i].key_path) ? p[i].key_path
                                                : NULL;
        if (f != NULL)
            return ctl_seterr(err, errlen, CL_EEXIST,
                              "certificates for \"%s\" already exist (%s): not overwriting", peer,
                              f);
    }
    if ((rc = read_small(cap, &ca)) != 0) {
        ctl_seterr(err, errlen, rc, "cannot read the fabric CA %s: %s", cap, cl_strerror(rc));
        goto out;
    }
    if ((rc = read_small(keyp, &cakey)) != 0) {
        ctl_seterr(err, errlen, rc, "cannot read the fabric CA key %s: %s", keyp, cl_strerror(rc));
        goto out;
    }
    validity(days, &nb, &na);
    {
        const char *gw_dns[] = {peer};
        const char *admin_dns[] = {admin};
        struct cl_certgen_opts gw = {.cn = peer,
                                     .dns = gw_dns,
                                     .ndns = 1,
                                     .server_auth = true,
                                     .client_auth = true,
                                     .not_before = nb,
                                     .not_after = na};
        struct cl_certgen_opts adm = {.cn = admin,
                                      .dns = admin_dns,
                                      .ndns = 1,
                                      .client_auth = true,
                                      .not_before = nb,
                                      .not_after = na};
        if ((rc = cl_certgen_leaf(ca, cakey, &gw, &p[0].cert, &p[0].key)) != 0 ||
            (rc = cl_certgen_leaf(ca, cakey, &adm, &p[1].cert, &p[1].key)) != 0) {
            ctl_seterr(err, errlen, rc, "cannot sign with the fabric CA in %s: %s", fabric,
                       rc == CL_EINVAL ? "ca.pem or ca.key is malformed, or they do not match"
                                       : cl_strerror(rc));
            goto out;
        }
    }
    if ((rc = make_dir(pdir, 0755, err, errlen)) != 0 ||
        (rc = make_dir(adir, 0755, err, errlen)) != 0)
        goto out;
    /* all or nothing: on failure remove what this call wrote */
    for (int i = 0; i < 2 && rc == 0; i++) {
        if ((rc = write_new(p[i].key_path, p[i].key, 0600)) != 0) {
            ctl_seterr(err, errlen, rc, "cannot write %s: %s", p[i].key_path, cl_strerror(rc));
        } else if ((rc = write_new(p[i].cert_path, p[i].cert, 0644)) != 0) {
            ctl_seterr(err, errlen, rc, "cannot write %s: %s", p[i].cert_path, cl_strerror(rc));
            unlink(p[i].key_path);
        }
        if (rc != 0 && i == 1) {
            unlink(p[0].key_path);
            unlink(p[0].cert_path);
        }
    }
out:
    for (int i = 0; i < 2; i++) {
        cl_free(&p[i].cert);
        cl_free(&p[i].key);
    }
    if (cakey != NULL)
        memset(cakey, 0, strlen(cakey));
    cl_free(&cakey);
    cl_free(&ca);
    return rc;
}

static int parse_days(struct ctl *ctl, const struct ctl_args *a, int def, int *days)
{
    const char *s = ctl_args_str(a, "days");
    long v;

    *days = def;
    if (s == NULL)
        return 0;
    if (cl_parse_long(s, 1, MAX_DAYS, &v) != 0)
        return ctl_fail(ctl, "--days \"%s\": give a number of days, 1..%d", s, MAX_DAYS);
    *days = (int)v;
    return 0;
}

int ctl_run_create_fabric(struct ctl *ctl, const struct ctl_args *a)
{
    const char *dir = ctl_args_str(a, "dir");
    const char *name = ctl_args_str(a, "name");
    char err[PATH_MAX + 128];
    int days;

    if (parse_days(ctl, a, CTL_CA_DAYS, &days) != 0)
        return 1;
    if (dir == NULL)
        dir = ".";
    if (ctl_fabric_create(dir, name, days, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    fprintf(ctl->out, "fabric \"%s\" created: %s/%s/ca.pem, ca.key\n", name, dir, name);
    return 0;
}

int ctl_run_create_peer_cert(struct ctl *ctl, const struct ctl_args *a)
{
    const char *fabric = ctl_args_str(a, "fabric");
    const char *name = ctl_args_str(a, "name");
    char err[PATH_MAX + 128];
    int days;

    if (parse_days(ctl, a, CTL_CERT_DAYS, &days) != 0)
        return 1;
    if (ctl_fabric_peer_cert(fabric, name, days, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    fprintf(ctl->out,
            "peer \"%s\" certificates created: %s/%s/{cert,key}.pem (gateway), "
            "%s/%s/gwctl/{cert,key}.pem (admin " ADMIN_PFX "%s)\n",
            name, fabric, name, fabric, name, name);
    return 0;
}
