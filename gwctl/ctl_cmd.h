#ifndef CTL_CMD_H
#define CTL_CMD_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "ctl.h"

/*
 * The commands. Object builders turn parsed flags into the API object (new reference, or NULL
 * with a one-line reason in err) so tests can check the exact JSON each command sends.
 */

/* An object type of the management API. */
struct ctl_kind {
    const char *type;   /* "peer" (the CLI word) */
    const char *plural; /* "peers" (the REST collection) */
    /* create/update body from flags; policy reads a file instead (ctl->in for "-") */
    json_t *(*build)(struct ctl *ctl, const struct ctl_args *a, char *err, size_t errlen);
    int (*table)(FILE *out, const json_t *list);
};

extern const struct ctl_kind ctl_kind_peer;
extern const struct ctl_kind ctl_kind_export;
extern const struct ctl_kind ctl_kind_import;
extern const struct ctl_kind ctl_kind_policy;

/* The kind for a CLI type word, or NULL. */
const struct ctl_kind *ctl_kind_find(const char *type);

extern const struct ctl_flag_spec ctl_flags_peer[];
extern const struct ctl_flag_spec ctl_flags_export[];
extern const struct ctl_flag_spec ctl_flags_import[];
extern const struct ctl_flag_spec ctl_flags_policy[];

json_t *ctl_peer_build(struct ctl *ctl, const struct ctl_args *a, char *err, size_t errlen);
json_t *ctl_export_build(struct ctl *ctl, const struct ctl_args *a, char *err, size_t errlen);
json_t *ctl_import_build(struct ctl *ctl, const struct ctl_args *a, char *err, size_t errlen);
json_t *ctl_policy_build(struct ctl *ctl, const struct ctl_args *a, char *err, size_t errlen);

/*
 * Parses a policy document, JSON or YAML (one document; plain YAML scalars become numbers,
 * booleans and null as in YAML 1.2's core schema), and checks it is an AccessPolicy or
 * PrivilegedAccessPolicy with a metadata.name. New reference or NULL with err filled.
 */
json_t *ctl_policy_parse(const char *text, size_t len, char *err, size_t errlen);

/* Generic REST verbs (ctl_rest.c): the kind comes from a->cmd->type. */
int ctl_run_create(struct ctl *ctl, const struct ctl_args *a);
int ctl_run_update(struct ctl *ctl, const struct ctl_args *a);
int ctl_run_delete(struct ctl *ctl, const struct ctl_args *a);
int ctl_run_get(struct ctl *ctl, const struct ctl_args *a);
int ctl_run_get_all(struct ctl *ctl, const struct ctl_args *a);
int ctl_run_remote_exports(struct ctl *ctl, const struct ctl_args *a);
int ctl_run_status(struct ctl *ctl, const struct ctl_args *a);

/* Contexts (ctl_config.c). */
int ctl_run_init(struct ctl *ctl, const struct ctl_args *a);
int ctl_run_use_context(struct ctl *ctl, const struct ctl_args *a);
int ctl_run_current_context(struct ctl *ctl, const struct ctl_args *a);
int ctl_run_get_contexts(struct ctl *ctl, const struct ctl_args *a);

/* Certificates (ctl_cmd_fabric.c). */
int ctl_run_create_fabric(struct ctl *ctl, const struct ctl_args *a);
int ctl_run_create_peer_cert(struct ctl *ctl, const struct ctl_args *a);

/*
 * <dir>/<name>/ca.pem (0644) and ca.key (0600), a self-signed CA named `name` valid `days`.
 * Refuses (CL_EEXIST) when either file exists. Returns 0 or an error with err filled.
 */
int ctl_fabric_create(const char *dir, const char *name, int days, char *err, size_t errlen);

/*
 * <fabric>/<peer>/{cert,key}.pem: the gateway (CN and DNS SAN `peer`, server and client use),
 * and <fabric>/<peer>/gwctl/{cert,key}.pem: the admin (CN and DNS SAN `gwctl.<peer>`, client
 * use), signed by <fabric>/ca.pem + ca.key. Keys 0600. Refuses (CL_EEXIST) when any exists;
 * writes all or nothing. Returns 0 or an error with err filled.
 */
int ctl_fabric_peer_cert(const char *fabric, const char *peer, int days, char *err, size_t errlen);

/* Default validity, days. */
#define CTL_CA_DAYS   3650
#define CTL_CERT_DAYS 365

#endif
