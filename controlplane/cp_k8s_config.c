/* Kubernetes API client configuration: in-cluster files or a kubeconfig (libyaml). */
#include "cp_k8s_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "cl/err.h"
#include "cl/log.h"
#include "cl/mem.h"
#include "cl/sockaddr.h"
#include "cl/str.h"

#define FILE_MAX (4 * 1024 * 1024) /* kubeconfigs, CA bundles and tokens are far smaller */

void cp_k8s_config_deinit(struct cp_k8s_config *c)
{
    if (c == NULL)
        return;
    cl_free(&c->server_name);
    cl_free(&c->ca_pem);
    cl_free(&c->cert_pem);
    cl_free(&c->key_pem);
    cl_free(&c->ca_file);
    cl_free(&c->cert_file);
    cl_free(&c->key_file);
    cl_free(&c->token);
    cl_free(&c->token_file);
    cl_free(&c->ns);
    cl_free(&c->file_token);
    memset(c, 0, sizeof(*c));
}

/* Reads a whole file into a new NUL-terminated string. Returns 0, -errno, CL_EINVAL (too big
 * or holds NUL bytes) or CL_ENOMEM. */
static int read_file(const char *path, char **out, size_t *outlen, struct stat *st_out)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd, rc = 0;

    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto done;
    }
    if (st.st_size > FILE_MAX) {
        rc = CL_EINVAL;
        goto done;
    }
    if ((buf = cl_malloc((size_t)st.st_size + 1)) == NULL) {
        rc = CL_ENOMEM;
        goto done;
    }
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (strlen(buf) != len) {
        rc = CL_EINVAL;
        goto done;
    }
    *out = buf;
    buf = NULL;
    if (outlen != NULL)
        *outlen = len;
    if (st_out != NULL)
        *st_out = st;
done:
    cl_mem_free(buf);
    close(fd);
    return rc;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    size_t i = 0;

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
        i++;
    if (i > 0)
        memmove(s, s + i, n - i + 1);
}

int cp_k8s_base64_decode(const char *in, size_t len, char **out, size_t *outlen)
{
    char *buf;
    uint32_t acc = 0;
    size_t n = 0, bits = 0, pad = 0;

    *out = NULL;
    if ((buf = cl_malloc(len / 4 * 3 + 4)) == NULL)
        return CL_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad > 0) /* data after padding */
            goto bad;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else
            goto bad;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    if (bits >= 6 || pad > 2 || (acc & ((1u << bits) - 1)) != 0) /* a lone sextet, or junk */
        goto bad;
    buf[n] = '\0';
    *out = buf;
    if (outlen != NULL)
        *outlen = n;
    return 0;
bad:
    cl_mem_free(buf);
    return CL_EINVAL;
}

int cp_k8s_config_set_server(struct cp_k8s_config *c, const char *url)
{
    static const char scheme[] = "https://";
    char hostport[CL_ADDRSTRLEN];
    const char *h, *slash;
    size_t n;

    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return CL_EINVAL;
    h = url + sizeof(scheme) - 1;
    slash = strchr(h, '/');
    n = slash != NULL ? (size_t)(slash - h) : strlen(h);
    if (n == 0 || n >= sizeof(hostport) || strchr(h, '?') != NULL || strchr(h, '#') != NULL)
        return CL_EINVAL;
    memcpy(hostport, h, n);
    hostport[n] = '\0';
    c->port = 443;
    if (cl_hostport_split(hostport, c->host, sizeof(c->host), &c->port) != 0) {
        /* no port: the whole thing is the host ("[v6]" keeps its brackets off) */
        if (hostport[0] == '[' && hostport[n - 1] == ']') {
            hostport[n - 1] = '\0';
            cl_strlcpy(c->host, hostport + 1, sizeof(c->host));
        } else {
            cl_strlcpy(c->host, hostport, sizeof(c->host));
        }
    }
    if (!cl_host_is_valid(c->host))
        return CL_EINVAL;
    c->prefix[0] = '\0';
    if (slash != NULL) {
        size_t pl = strlen(slash);
        while (pl > 0 && slash[pl - 1] == '/')
            pl--;
        if (pl >= sizeof(c->prefix))
            return CL_EINVAL;
        memcpy(c->prefix, slash, pl);
        c->prefix[pl] = '\0';
        for (size_t i = 0; i < pl; i++) {
            unsigned char ch = (unsigned char)c->prefix[i];
            if (ch <= 0x20 || ch >= 0x7f)
                return CL_EINVAL;
        }
    }
    return 0;
}

const char *cp_k8s_config_token(struct cp_k8s_config *c)
{
    struct stat st;
    char *t = NULL;

    if (c->token_file == NULL)
        return c->token;
    if (stat(c->token_file, &st) == 0 &&
        (c->file_token == NULL || st.st_ino != c->token_ino || st.st_mtime != c->token_mtime ||
         st.st_size != c->token_size)) {
        int rc = read_file(c->token_file, &t, NULL, &st);
        if (rc == 0) {
            trim(t);
            cl_mem_free(c->file_token);
            c->file_token = t;
            c->token_ino = st.st_ino;
            c->token_mtime = st.st_mtime;
            c->token_size = st.st_size;
            CL_DEBUG("cp.k8s", "read the API token from %s", c->token_file);
        } else {
            CL_WARN("cp.k8s", "cannot re-read the API token %s: %s (keeping the old one)",
                    c->token_file, cl_strerror(rc));
        }
    }
    return c->file_token != NULL ? c->file_token : c->token;
}

int cp_k8s_config_in_cluster(const char *sa_dir, const char *host, const char *port,
                             struct cp_k8s_config *out, char *err, size_t errlen)
{
    char path[1024];
    uint16_t p = 443;
    int rc;

    memset(out, 0, sizeof(*out));
    if (host == NULL || host[0] == '\0') {
        snprintf(err, errlen,
                 "KUBERNETES_SERVICE_HOST is not set (not in a pod? use --kubeconfig)");
        return CL_EINVAL;
    }
    if (port != NULL && port[0] != '\0' && cl_parse_port(port, &p) != 0) {
        snprintf(err, errlen, "KUBERNETES_SERVICE_PORT %s is not a port", port);
        return CL_EINVAL;
    }
    if (strlen(host) >= sizeof(out->host) || !cl_host_is_valid(host)) {
        snprintf(err, errlen, "KUBERNETES_SERVICE_HOST %s is not a host", host);
        return CL_EINVAL;
    }
    cl_strlcpy(out->host, host, sizeof(out->host));
    out->port = p;
    if ((out->server_name = cl_strdup(host)) == NULL)
        goto oom;
    snprintf(path, sizeof(path), "%s/ca.crt", sa_dir);
    if ((rc = read_file(path, &out->ca_pem, NULL, NULL)) != 0) {
        snprintf(err, errlen, "cannot read the service-account CA %s: %s", path, cl_strerror(rc));
        goto fail;
    }
    if ((out->ca_file = cl_strdup(path)) == NULL)
        goto oom;
    snprintf(path, sizeof(path), "%s/token", sa_dir);
    if ((out->token_file = cl_strdup(path)) == NULL)
        goto oom;
    if (cp_k8s_config_token(out) == NULL) {
        snprintf(err, errlen, "cannot read the service-account token %s", path);
        rc = CL_ENOENT;
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/namespace", sa_dir);
    if (read_file(path, &out->ns, NULL, NULL) == 0) {
        trim(out->ns);
        if (!cl_str_is_dns_label(out->ns))
            cl_free(&out->ns); /* unusable: the default applies */
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    rc = CL_ENOMEM;
fail:
    cp_k8s_config_deinit(out);
    return rc;
}

/* ---- kubeconfig ------------------------------------------------------------------------ */

struct kc {
    yaml_document_t *doc;
    const char *dir;
    char *err;
    size_t errlen;
};

static yaml_node_t *map_get(struct kc *k, yaml_node_t *m, const char *key)
{
    yaml_node_pair_t *pr;

    if (m == NULL || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(k->doc, pr->key);
        if (kn != NULL && kn->type == YAML_SCALAR_NODE && kn->data.scalar.length == strlen(key) &&
            memcmp(kn->data.scalar.value, key, kn->data.scalar.length) == 0)
            return yaml_document_get_node(k->doc, pr->value);
    }
    return NULL;
}

/* A scalar's text (NUL-terminated by libyaml), NULL when absent, not a scalar, or holding
 * NUL bytes. */
static const char *scalar(yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE ||
        strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
        return NULL;
    return (const char *)n->data.scalar.value;
}

static const char *map_str(struct kc *k, yaml_node_t *m, const char *key)
{
    const char *s = scalar(map_get(k, m, key));
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* The `field` mapping of the element named `name` in the sequence `list` (kubeconfig's
 * clusters / users / contexts). */
static yaml_node_t *named(struct kc *k, yaml_node_t *list, const char *name, const char *field)
{
    yaml_node_item_t *it;

    if (list == NULL || list->type != YAML_SEQUENCE_NODE)
        return NULL;
    for (it = list->data.sequence.items.start; it < list->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(k->doc, *it);
        const char *n = map_str(k, e, "name");
        if (n != NULL && strcmp(n, name) == 0) {
            yaml_node_t *f = map_get(k, e, field);
            return f != NULL && f->type == YAML_MAPPING_NODE ? f : NULL;
        }
    }
    return NULL;
}

/* Reads `<key>-data` (base64) or the file named by `<key>` into *out (PEM text), and in the
 * second case its path into *file_out (new), so the TLS context can re-read it. Absent: 0 with
 * both NULL. */
static int load_pem(struct kc *k, yaml_node_t *m, const char *key, char **out, char **file_out)
{
    char dkey[64], path[1024];
    const char *data, *file;
    int rc;

    *out = NULL;
    *file_out = NULL;
    snprintf(dkey, sizeof(dkey), "%s-data", key);
    if ((data = map_str(k, m, dkey)) != NULL) {
        size_t n;
        if ((rc = cp_k8s_base64_decode(data, strlen(data), out, &n)) != 0) {
            snprintf(k->err, k->errlen, "kubeconfig: %s is not valid base64", dkey);
            return rc;
        }
        if (strlen(*out) != n) {
            cl_free(out);
            snprintf(k->err, k->errlen, "kubeconfig: %s is not PEM text", dkey);
            return CL_EINVAL;
        }
        return 0;
    }
    if ((file = map_str(k, m, key)) == NULL)
        return 0;
    if (file[0] != '/' && k->dir != NULL)
        snprintf(path, sizeof(path), "%s/%s", k->dir, file);
    else
        snprintf(path, sizeof(path), "%s", file);
    if ((rc = read_file(path, out, NULL, NULL)) != 0) {
        snprintf(k->err, k->errlen, "kubeconfig: cannot read %s %s: %s", key, path,
                 cl_strerror(rc));
        return rc;
    }
    if ((*file_out = cl_strdup(path)) == NULL) {
        cl_free(out);
        return CL_ENOMEM;
    }
    return 0;
}

static int kc_apply(struct kc *k, struct cp_k8s_config *c)
{
    yaml_node_t *root = yaml_document_get_root_node(k->doc), *ctx, *cl, *user;
    const char *cur, *cname, *uname, *server, *s;
    int rc;

    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        snprintf(k->err, k->errlen, "kubeconfig: not a mapping");
        return CL_EINVAL;
    }
    if ((cur = map_str(k, root, "current-context")) == NULL) {
        snprintf(k->err, k->errlen, "kubeconfig: no current-context");
        return CL_EINVAL;
    }
    if ((ctx = named(k, map_get(k, root, "contexts"), cur, "context")) == NULL) {
        snprintf(k->err, k->errlen, "kubeconfig: context %s not found", cur);
        return CL_EINVAL;
    }
    if ((cname = map_str(k, ctx, "cluster")) == NULL ||
        (cl = named(k, map_get(k, root, "clusters"), cname, "cluster")) == NULL) {
        snprintf(k->err, k->errlen, "kubeconfig: cluster %s of context %s not found",
                 cname != NULL ? cname : "(none)", cur);
        return CL_EINVAL;
    }
    if ((server = map_str(k, cl, "server")) == NULL || cp_k8s_config_set_server(c, server) != 0) {
        snprintf(k->err, k->errlen, "kubeconfig: cluster %s: server %s is not an https:// URL",
                 cname, server != NULL ? server : "(none)");
        return CL_EINVAL;
    }
    if ((s = map_str(k, cl, "insecure-skip-tls-verify")) != NULL && strcmp(s, "true") == 0) {
        snprintf(k->err, k->errlen,
                 "kubeconfig: cluster %s: insecure-skip-tls-verify is not supported", cname);
        return CL_EINVAL;
    }
    s = map_str(k, cl, "tls-server-name");
    if ((c->server_name = cl_strdup(s != NULL ? s : c->host)) == NULL)
        return CL_ENOMEM;
    if ((rc = load_pem(k, cl, "certificate-authority", &c->ca_pem, &c->ca_file)) != 0)
        return rc;
    if (c->ca_pem == NULL) {
        snprintf(k->err, k->errlen,
                 "kubeconfig: cluster %s has no certificate-authority(-data) (system CAs "
                 "are not used)",
                 cname);
        return CL_EINVAL;
    }
    if ((s = map_str(k, ctx, "namespace")) != NULL) {
        if (!cl_str_is_dns_label(s)) {
            snprintf(k->err, k->errlen, "kubeconfig: context %s: namespace %s is not valid", cur,
                     s);
            return CL_EINVAL;
        }
        if ((c->ns = cl_strdup(s)) == NULL)
            return CL_ENOMEM;
    }
    if ((uname = map_str(k, ctx, "user")) == NULL)
        return 0; /* no credentials: anonymous */
    if ((user = named(k, map_get(k, root, "users"), uname, "user")) == NULL) {
        snprintf(k->err, k->errlen, "kubeconfig: user %s of context %s not found", uname, cur);
        return CL_EINVAL;
    }
    if (map_get(k, user, "exec") != NULL || map_get(k, user, "auth-provider") != NULL ||
        map_get(k, user, "username") != NULL) {
        snprintf(k->err, k->errlen,
                 "kubeconfig: user %s: only token, tokenFile and client certificates are "
                 "supported (not exec, auth-provider or basic auth)",
                 uname);
        return CL_EINVAL;
    }
    if ((s = map_str(k, user, "token")) != NULL && (c->token = cl_strdup(s)) == NULL)
        return CL_ENOMEM;
    if ((s = map_str(k, user, "tokenFile")) != NULL) {
        char path[1024];
        if (s[0] != '/' && k->dir != NULL)
            snprintf(path, sizeof(path), "%s/%s", k->dir, s);
        else
            snprintf(path, sizeof(path), "%s", s);
        if ((c->token_file = cl_strdup(path)) == NULL)
            return CL_ENOMEM;
    }
    if ((rc = load_pem(k, user, "client-certificate", &c->cert_pem, &c->cert_file)) != 0 ||
        (rc = load_pem(k, user, "client-key", &c->key_pem, &c->key_file)) != 0)
        return rc;
    if ((c->cert_pem == NULL) != (c->key_pem == NULL)) {
        snprintf(k->err, k->errlen,
                 "kubeconfig: user %s: client-certificate and client-key "
                 "go together",
                 uname);
        return CL_EINVAL;
    }
    return 0;
}

int cp_k8s_config_kubeconfig_text(const char *text, size_t len, const char *dir,
                                  struct cp_k8s_config *out, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    struct kc k = {.doc = &doc, .dir = dir, .err = err, .errlen = errlen};
    int rc;

    memset(out, 0, sizeof(*out));
    err[0] = '\0';
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "out of memory");
        return CL_ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "kubeconfig: YAML error at line %zu: %s",
                 parser.problem_mark.line + 1, parser.problem != NULL ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        return CL_EINVAL;
    }
    rc = kc_apply(&k, out);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc != 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "kubeconfig: %s", cl_strerror(rc));
        cp_k8s_config_deinit(out);
    }
    return rc;
}

int cp_k8s_config_kubeconfig(const char *path, struct cp_k8s_config *out, char *err, size_t errlen)
{
    char *text = NULL, dir[1024];
    const char *slash;
    size_t len = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = read_file(path, &text, &len, NULL)) != 0) {
        snprintf(err, errlen, "cannot read kubeconfig %s: %s", path, cl_strerror(rc));
        return rc;
    }
    if ((slash = strrchr(path, '/')) != NULL)
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    else
        snprintf(dir, sizeof(dir), ".");
    rc = cp_k8s_config_kubeconfig_text(text, len, dir[0] != '\0' ? dir : "/", out, err, errlen);
    cl_mem_free(text);
    return rc;
}
