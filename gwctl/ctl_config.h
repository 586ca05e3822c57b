#ifndef CTL_CONFIG_H
#define CTL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * gwctl contexts: which gateway to talk to and with which files. Stored as JSON in
 * $XDG_CONFIG_HOME/gwctl/config.json (default ~/.config/gwctl/config.json), mode 0600:
 *   {"current-context":"east","contexts":[{"id":"east","host":"10.0.0.1","port":443,
 *     "ca":"/abs/ca.pem","cert":"/abs/cert.pem","key":"/abs/key.pem"}]}
 * `id` is the gateway's peer name: the name its certificate must carry (and the SNI sent).
 */
struct ctl_context {
    char *id;
    char *host;
    uint16_t port;
    char *ca;
    char *cert;
    char *key;
};

struct ctl_config {
    struct ctl_context *ctxs;
    size_t n;
    char *current; /* NULL when none */
};

/* Writes the config file path into out. Returns 0, CL_EINVAL (too long) or CL_ENOENT (no
 * XDG_CONFIG_HOME and no home directory). */
int ctl_config_path(char *out, size_t outlen);

/* Loads path; a missing file gives an empty config. Returns 0, CL_ENOMEM, or CL_ESCHEMA /
 * -errno with err filled. */
int ctl_config_load(const char *path, struct ctl_config *cfg, char *err, size_t errlen);

/* Writes cfg to path (parent directories created 0700, file 0600, replaced atomically).
 * Returns 0 or an error with err filled. */
int ctl_config_save(const char *path, const struct ctl_config *cfg, char *err, size_t errlen);

/* Adds or replaces the context with c->id (copies c). Returns 0 or CL_ENOMEM. */
int ctl_config_put(struct ctl_config *cfg, const struct ctl_context *c);

/* The context named id, or NULL (borrowed, valid until the config changes). */
struct ctl_context *ctl_config_find(const struct ctl_config *cfg, const char *id);

/* Makes id current. Returns 0, CL_ENOENT (no such context) or CL_ENOMEM. */
int ctl_config_use(struct ctl_config *cfg, const char *id);

void ctl_config_deinit(struct ctl_config *cfg); /* NULL-safe, leaves cfg empty */

#endif
