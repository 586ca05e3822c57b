#ifndef CP_K8S_CONFIG_H
#define CP_K8S_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/*
 * Where the Kubernetes API server is and how to authenticate: in-cluster (service-account
 * token, CA and namespace files, $KUBERNETES_SERVICE_HOST/PORT) or a kubeconfig file
 * (current-context -> cluster server, certificate-authority(-data), tls-server-name; user
 * token, tokenFile, client-certificate(-data)/client-key(-data); context namespace).
 * Every string is owned by the config (freed by cp_k8s_config_deinit).
 */

#define CP_K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct cp_k8s_config {
    char host[256];    /* API server host name or IP literal (no brackets) */
    uint16_t port;     /* 443 unless given */
    char prefix[256];  /* path before /api (a proxied server URL), "" normally */
    char *server_name; /* name the certificate is checked against (host or tls-server-name) */
    char *ca_pem;      /* CA bundle, PEM */
    char *cert_pem;    /* client certificate, PEM (optional) */
    char *key_pem;     /* its key */
    /* where each of those three came from, when a file (NULL: kubeconfig *-data, or none):
     * the API client's TLS context re-reads them when they are replaced */
    char *ca_file;
    char *cert_file;
    char *key_file;
    char *token;      /* static bearer token (optional) */
    char *token_file; /* bearer token re-read when the file changes (optional) */
    char *ns;         /* namespace of the service account or context (optional) */
    /* token_file state */
    char *file_token;
    time_t token_mtime;
    off_t token_size;
    ino_t token_ino;
};

/*
 * In-cluster configuration: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, CA
 * <sa_dir>/ca.crt, token <sa_dir>/token (re-read when it changes), namespace <sa_dir>/namespace
 * (optional). host/port are the environment values (NULL: unset). Returns 0, CL_EINVAL or
 * CL_ENOENT (err says what is missing or wrong), CL_ENOMEM.
 */
int cp_k8s_config_in_cluster(const char *sa_dir, const char *host, const char *port,
                             struct cp_k8s_config *out, char *err, size_t errlen);

/*
 * Reads a kubeconfig file (YAML or JSON); relative file paths in it are relative to its
 * directory. Returns 0, CL_EINVAL (err names the problem: no current-context, unknown
 * cluster, unsupported auth such as exec plugins, bad base64, ...), -errno for unreadable
 * files, or CL_ENOMEM.
 */
int cp_k8s_config_kubeconfig(const char *path, struct cp_k8s_config *out, char *err, size_t errlen);

/* Same from text in memory (tests, fuzzing); `dir` resolves relative paths (may be NULL). */
int cp_k8s_config_kubeconfig_text(const char *text, size_t len, const char *dir,
                                  struct cp_k8s_config *out, char *err, size_t errlen);

/* Frees every string; NULL-safe, leaves the struct zeroed. */
void cp_k8s_config_deinit(struct cp_k8s_config *c);

/*
 * The bearer token to send now (borrowed until the next call or deinit), NULL when none:
 * the token file is re-read when its inode, mtime or size changed (projected tokens rotate).
 * On a failed re-read the previous value is kept.
 */
const char *cp_k8s_config_token(struct cp_k8s_config *c);

/* Decodes standard base64 (padding optional, whitespace ignored) into a new NUL-terminated
 * buffer; *outlen gets its length. Returns 0, CL_EINVAL or CL_ENOMEM. */
int cp_k8s_base64_decode(const char *in, size_t len, char **out, size_t *outlen);

/* Splits "https://host[:port][/prefix]" into the config's host, port and prefix. Returns 0 or
 * CL_EINVAL. */
int cp_k8s_config_set_server(struct cp_k8s_config *c, const char *url);

#endif
