/* gwctl contexts: the config file and the init / config commands. */
#include "ctl_config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cl/err.h"
#include "cl/json.h"
#include "cl/mem.h"
#include "cl/str.h"
#include "ctl.h"
#include "ctl_cmd.h"
#include "ctl_out.h"

#define CONFIG_MAX_BYTES (1 << 20)

int ctl_config_path(char *out, size_t outlen)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    int n;

    /* XDG base directory spec: relative values are invalid and ignored */
    if (xdg != NULL && xdg[0] == '/') {
        n = snprintf(out, outlen, "%s/gwctl/config.json", xdg);
    } else {
        if (home == NULL || home[0] == '\0') {
            struct passwd *pw = getpwuid(getuid());
            home = pw != NULL ? pw->pw_dir : NULL;
        }
        if (home == NULL || home[0] == '\0')
            return CL_ENOENT;
        n = snprintf(out, outlen, "%s/.config/gwctl/config.json", home);
    }
    return n > 0 && (size_t)n < outlen ? 0 : CL_EINVAL;
}

static void context_deinit(struct ctl_context *c)
{
    cl_free(&c->id);
    cl_free(&c->host);
    cl_free(&c->ca);
    cl_free(&c->cert);
    cl_free(&c->key);
}

void ctl_config_deinit(struct ctl_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n; i++)
        context_deinit(&cfg->ctxs[i]);
    cl_free(&cfg->ctxs);
    cfg->n = 0;
    cl_free(&cfg->current);
}

struct ctl_context *ctl_config_find(const struct ctl_config *cfg, const char *id)
{
    for (size_t i = 0; id != NULL && i < cfg->n; i++) {
        if (strcmp(cfg->ctxs[i].id, id) == 0)
            return &cfg->ctxs[i];
    }
    return NULL;
}

static int context_copy(struct ctl_context *dst, const struct ctl_context *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->port = src->port;
    if ((dst->id = cl_strdup(src->id)) == NULL || (dst->host = cl_strdup(src->host)) == NULL ||
        (dst->ca = cl_strdup(src->ca)) == NULL || (dst->cert = cl_strdup(src->cert)) == NULL ||
        (dst->key = cl_strdup(src->key)) == NULL) {
        context_deinit(dst);
        return CL_ENOMEM;
    }
    return 0;
}

int ctl_config_put(struct ctl_config *cfg, const struct ctl_context *c)
{
    struct ctl_context tmp, *old = ctl_config_find(cfg, c->id);
    struct ctl_context *n;

    if (context_copy(&tmp, c) != 0)
        return CL_ENOMEM;
    if (old != NULL) {
        context_deinit(old);
        *old = tmp;
        return 0;
    }
    n = cl_realloc(cfg->ctxs, (cfg->n + 1) * sizeof(*n));
    if (n == NULL) {
        context_deinit(&tmp);
        return CL_ENOMEM;
    }
    cfg->ctxs = n;
    cfg->ctxs[cfg->n++] = tmp;
    return 0;
}

int ctl_config_use(struct ctl_config *cfg, const char *id)
{
    char *s;

    if (ctl_config_find(cfg, id) == NULL)
        return CL_ENOENT;
    if ((s = cl_strdup(id)) == NULL)
        return CL_ENOMEM;
    cl_free(&cfg->current);
    cfg->current = s;
    return 0;
}

static int read_all(const char *path, char **out, size_t *outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    size_t len = 0, cap = 0;

    if (fd < 0)
        return -errno;
    for (;;) {
        ssize_t n;
        if (len + 1 >= cap) {
            char *nb;
            cap = cap ? cap * 2 : 4096;
            if (cap > CONFIG_MAX_BYTES + 1 || (nb = cl_realloc(buf, cap)) == NULL) {
                int rc = cap > CONFIG_MAX_BYTES + 1 ? -EFBIG : CL_ENOMEM;
                cl_free(&buf);
                close(fd);
                return rc;
            }
            buf = nb;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int rc = -errno;
            cl_free(&buf);
            close(fd);
            return rc;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

static int load_context(const json_t *o, size_t i, struct ctl_context *c, struct cl_jerr *je)
{
    static const char *const keys[] = {"id", "host", "port", "ca", "cert", "key", NULL};
    const char *id = NULL, *host = NULL, *ca = NULL, *cert = NULL, *key = NULL;
    long long port = 0;
    char path[64];
    int rc;

    snprintf(path, sizeof(path), "contexts[%zu]", i);
    if (!json_is_object(o))
        return cl_jerr_set(je, path, "not an object");
    if ((rc = cl_json_check_keys(o, path, keys, je)) != 0 ||
        (rc = cl_json_get_str(o, path, "id", true, &id, je)) != 0 ||
        (rc = cl_json_get_str(o, path, "host", true, &host, je)) != 0 ||
        (rc = cl_json_get_int(o, path, "port", true, 1, 65535, &port, je)) != 0 ||
        (rc = cl_json_get_str(o, path, "ca", true, &ca, je)) != 0 ||
        (rc = cl_json_get_str(o, path, "cert", true, &cert, je)) != 0 ||
        (rc = cl_json_get_str(o, path, "key", true, &key, je)) != 0)
        return rc;
    struct ctl_context tmp = {(char *)id, (char *)host, (uint16_t)port,
                              (char *)ca, (char *)cert, (char *)key};
    return context_copy(c, &tmp);
}

int ctl_config_load(const char *path, struct ctl_config *cfg, char *err, size_t errlen)
{
    struct cl_jerr je = {{0}, {0}};
    char *text = NULL;
    size_t len = 0;
    json_t *j = NULL, *arr;
    const char *cur = NULL;
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    rc = read_all(path, &text, &len);
    if (rc == CL_ENOENT)
        return 0;
    if (rc != 0)
        return ctl_seterr(err, errlen, rc, "cannot read %s: %s", path, cl_strerror(rc));
    if ((j = ctl_json_loadb(text, len, &je)) == NULL) {
        rc = strcmp(je.msg, "out of memory") == 0 ? CL_ENOMEM : CL_ESCHEMA;
        goto fail;
    }
    if (!json_is_object(j)) {
        rc = cl_jerr_set(&je, "", "not a JSON object");
        goto fail;
    }
    if ((rc = cl_json_get_str(j, "", "current-context", false, &cur, &je)) != 0 ||
        (rc = cl_json_get_typed(j, "", "contexts", false, JSON_ARRAY, &arr, &je)) != 0)
        goto fail;
    if (arr != NULL && json_array_size(arr) > 0) {
        cfg->ctxs = cl_calloc(json_array_size(arr), sizeof(*cfg->ctxs));
        if (cfg->ctxs == NULL) {
            rc = CL_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < json_array_size(arr); i++) {
            if ((rc = load_context(json_array_get(arr, i), i, &cfg->ctxs[i], &je)) != 0)
                goto fail;
            cfg->n++;
        }
    }
    if (cur != NULL && (cfg->current = cl_strdup(cur)) == NULL) {
        rc = CL_ENOMEM;
        goto fail;
    }
    json_decref(j);
    cl_free(&text);
    return 0;
fail:
    if (rc == CL_ENOMEM)
        ctl_seterr(err, errlen, rc, "out of memory reading %s", path);
    else
        ctl_seterr(err, errlen, rc, "bad config file %s: %s%s%s", path, je.field,
                   je.field[0] ? ": " : "", je.msg);
    json_decref(j);
    cl_free(&text);
    ctl_config_deinit(cfg);
    return rc;
}

/* mkdir -p with mode for each created level. */
static int mkdirs(const char *dir, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t len = cl_strlcpy(tmp, dir, sizeof(tmp));

    if (len >= sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static json_t *config_to_json(const struct ctl_config *cfg)
{
    json_t *j = json_object(), *arr = json_array();

    if (j == NULL || arr == NULL)
        goto fail;
    if (cfg->current != NULL &&
        json_object_set_new(j, "current-context", json_string(cfg->current)) != 0)
        goto fail;
    for (size_t i = 0; i < cfg->n; i++) {
        const struct ctl_context *c = &cfg->ctxs[i];
        json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "id", c->id, "host", c->host,
                              "port", (int)c->port, "ca", c->ca, "cert", c->cert, "key", c->key);
        if (o == NULL || json_array_append_new(arr, o) != 0)
            goto fail;
    }
    if (json_object_set_new(j, "contexts", arr) != 0) {
        arr = NULL;
        goto fail;
    }
    return j;
fail:
    json_decref(arr);
    json_decref(j);
    return NULL;
}

int ctl_config_save(const char *path, const struct ctl_config *cfg, char *err, size_t errlen)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 8];
    json_t *j = NULL;
    char *text = NULL;
    const char *slash = strrchr(path, '/');
    int fd = -1, rc;
    size_t len, off = 0;

    if (slash != NULL && slash != path) {
        if ((size_t)(slash - path) >= sizeof(dir))
            return ctl_seterr(err, errlen, CL_EINVAL, "config path too long");
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
        if ((rc = mkdirs(dir, 0700)) != 0)
            return ctl_seterr(err, errlen, rc, "cannot create %s: %s", dir, cl_strerror(rc));
    }
    if ((j = config_to_json(cfg)) == NULL ||
        (text = ctl_json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) == NULL) {
        rc = ctl_seterr(err, errlen, CL_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
        ctl_seterr(err, errlen, rc, "cannot write %s: %s", tmp, cl_strerror(rc));
        goto out;
    }
    /* umask never widens 0600, but an existing file keeps its mode: force it */
    (void)fchmod(fd, 0600);
    len = strlen(text);
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            ctl_seterr(err, errlen, rc, "cannot write %s: %s", tmp, cl_strerror(rc));
            goto out;
        }
        off += (size_t)n;
    }
    if (write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        rc = -errno;
        ctl_seterr(err, errlen, rc, "cannot write %s: %s", tmp, cl_strerror(rc));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = -errno;
        ctl_seterr(err, errlen, rc, "cannot write %s: %s", tmp, cl_strerror(rc));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = -errno;
        ctl_seterr(err, errlen, rc, "cannot replace %s: %s", path, cl_strerror(rc));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    cl_free(&text);
    json_decref(j);
    return rc;
}

/* ---- commands ---- */

static int config_file(struct ctl *ctl, char *path, size_t len)
{
    if (ctl->config_path != NULL) {
        if (cl_strlcpy(path, ctl->config_path, len) >= len)
            return ctl_fail(ctl, "config path too long");
        return 0;
    }
    if (ctl_config_path(path, len) != 0)
        return ctl_fail(ctl, "cannot locate the config file: set XDG_CONFIG_HOME or HOME");
    return 0;
}

/*
 * Absolute path of an existing readable file, for the context (new string) or NULL. Symbolic
 * links are kept, not resolved: a Kubernetes Secret mounts tls.crt as a link through `..data`,
 * which is swapped on rotation, and the context must follow the link to the new file.
 */
static char *abs_file(struct ctl *ctl, const char *flag, const char *file, int *rc)
{
    char cwd[PATH_MAX], buf[PATH_MAX];
    int n;

    if (access(file, R_OK) != 0) {
        *rc = ctl_fail(ctl, "--%s %s: %s", flag, file, strerror(errno));
        return NULL;
    }
    if (file[0] == '/') {
        n = snprintf(buf, sizeof(buf), "%s", file);
    } else {
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            *rc = ctl_fail(ctl, "--%s %s: %s", flag, file, strerror(errno));
            return NULL;
        }
        n = snprintf(buf, sizeof(buf), "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, file);
    }
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        *rc = ctl_fail(ctl, "--%s %s: %s", flag, file, strerror(ENAMETOOLONG));
        return NULL;
    }
    char *s = cl_strdup(buf);
    if (s == NULL)
        *rc = ctl_fail(ctl, "out of memory");
    return s;
}

int ctl_run_init(struct ctl *ctl, const struct ctl_args *a)
{
    struct ctl_config cfg = {0};
    struct ctl_context c = {0};
    char path[PATH_MAX], err[512];
    const char *id = ctl_args_str(a, "id");
    const char *host = ctl_args_str(a, "host");
    int rc = 1;

    if (!cl_str_is_dns_subdomain(id))
        return ctl_fail(ctl, "--id \"%s\" is not a valid peer name (lower-case DNS name)", id);
    if (host[0] == '\0')
        return ctl_fail(ctl, "--host is empty");
    if (cl_parse_port(ctl_args_str(a, "port"), &c.port) != 0)
        return ctl_fail(ctl, "--port \"%s\" is not a port number (1-65535)",
                        ctl_args_str(a, "port"));
    if (config_file(ctl, path, sizeof(path)) != 0)
        return 1;
    c.id = (char *)id;
    c.host = (char *)host;
    if ((c.ca = abs_file(ctl, "ca", ctl_args_str(a, "ca"), &rc)) == NULL ||
        (c.cert = abs_file(ctl, "cert", ctl_args_str(a, "cert"), &rc)) == NULL ||
        (c.key = abs_file(ctl, "key", ctl_args_str(a, "key"), &rc)) == NULL)
        goto out;
    if (ctl->tr != NULL && ctl->tr->check != NULL && ctl->tr->check(&c, err, sizeof(err)) != 0) {
        rc = ctl_fail(ctl, "%s", err);
        goto out;
    }
    if (ctl_config_load(path, &cfg, err, sizeof(err)) != 0) {
        rc = ctl_fail(ctl, "%s", err);
        goto out;
    }
    if (ctl_config_put(&cfg, &c) != 0 || ctl_config_use(&cfg, id) != 0) {
        rc = ctl_fail(ctl, "out of memory");
        goto out;
    }
    if (ctl_config_save(path, &cfg, err, sizeof(err)) != 0) {
        rc = ctl_fail(ctl, "%s", err);
        goto out;
    }
    fprintf(ctl->out, "context \"%s\" saved and set as current (%s)\n", id, path);
    rc = 0;
out:
    cl_free(&c.ca);
    cl_free(&c.cert);
    cl_free(&c.key);
    ctl_config_deinit(&cfg);
    return rc;
}

int ctl_run_use_context(struct ctl *ctl, const struct ctl_args *a)
{
    struct ctl_config cfg = {0};
    char path[PATH_MAX], err[512];
    int rc;

    if (config_file(ctl, path, sizeof(path)) != 0)
        return 1;
    if (ctl_config_load(path, &cfg, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    rc = ctl_config_use(&cfg, a->pos[0]);
    if (rc == CL_ENOENT)
        rc = ctl_fail(ctl, "no context named \"%s\"", a->pos[0]);
    else if (rc != 0)
        rc = ctl_fail(ctl, "out of memory");
    else if (ctl_config_save(path, &cfg, err, sizeof(err)) != 0)
        rc = ctl_fail(ctl, "%s", err);
    else
        fprintf(ctl->out, "current context is now \"%s\"\n", a->pos[0]);
    ctl_config_deinit(&cfg);
    return rc;
}

int ctl_run_current_context(struct ctl *ctl, const struct ctl_args *a)
{
    struct ctl_config cfg = {0};
    char path[PATH_MAX], err[512];
    const char *id;
    int rc = 0;

    if (config_file(ctl, path, sizeof(path)) != 0)
        return 1;
    if (ctl_config_load(path, &cfg, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    id = a->context != NULL ? a->context : cfg.current;
    if (id == NULL)
        rc = ctl_fail(ctl, "no current context: run \"gwctl init\" first");
    else if (ctl_config_find(&cfg, id) == NULL)
        rc = ctl_fail(ctl, "no context named \"%s\"", id);
    else
        fprintf(ctl->out, "%s\n", id);
    ctl_config_deinit(&cfg);
    return rc;
}

int ctl_run_get_contexts(struct ctl *ctl, const struct ctl_args *a)
{
    static const char *const hdr[] = {"CURRENT", "NAME", "GATEWAY", "CA", "CERT"};
    struct ctl_config cfg = {0};
    struct ctl_table t;
    char path[PATH_MAX], err[512];
    const char *fmt = ctl_args_str(a, "output");
    int rc = 0;

    if (fmt != NULL && strcmp(fmt, "json") != 0 && strcmp(fmt, "table") != 0)
        return ctl_fail(ctl, "-o %s: use table or json", fmt);
    if (config_file(ctl, path, sizeof(path)) != 0)
        return 1;
    if (ctl_config_load(path, &cfg, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    if (fmt != NULL && strcmp(fmt, "json") == 0) {
        json_t *j = config_to_json(&cfg);
        if (j == NULL || ctl_out_json(ctl->out, j) != 0)
            rc = ctl_fail(ctl, "out of memory");
        json_decref(j);
        ctl_config_deinit(&cfg);
        return rc;
    }
    ctl_table_init(&t, 5, hdr);
    for (size_t i = 0; i < cfg.n && rc == 0; i++) {
        const struct ctl_context *c = &cfg.ctxs[i];
        char gw[300];
        bool cur = cfg.current != NULL && strcmp(cfg.current, c->id) == 0;
        snprintf(gw, sizeof(gw), "%s:%u", c->host, (unsigned)c->port);
        const char *cells[] = {cur ? "*" : "", c->id, gw, c->ca, c->cert};
        if (ctl_table_add(&t, cells) != 0)
            rc = ctl_fail(ctl, "out of memory");
    }
    if (rc == 0)
        ctl_table_print(&t, ctl->out);
    ctl_table_deinit(&t);
    ctl_config_deinit(&cfg);
    return rc;
}
