/* The subcommand table and the run-time around every command (context, connection, errors). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "cl/json.h"
#include "cl/mem.h"
#include "cl/str.h"
#include "ctl.h"
#include "ctl_cmd.h"
#include "ctl_config.h"
#include "ctl_out.h"

static const struct ctl_flag_spec flags_init[] = {
    {"id", 0, CTL_FLAG_STR, true, "PEER", "the gateway's peer name (its certificate's name)"},
    {"host", 0, CTL_FLAG_STR, true, "HOST", "gateway host name or address"},
    {"port", 0, CTL_FLAG_STR, true, "PORT", "gateway port"},
    {"ca", 0, CTL_FLAG_STR, true, "FILE", "fabric CA certificate (PEM)"},
    {"cert", 0, CTL_FLAG_STR, true, "FILE", "admin certificate (PEM)"},
    {"key", 0, CTL_FLAG_STR, true, "FILE", "admin private key (PEM)"},
    {NULL, 0, 0, false, NULL, NULL},
};

static const struct ctl_flag_spec flags_output[] = {
    {"output", 'o', CTL_FLAG_STR, false, "FORMAT", "table (default) or json"},
    {NULL, 0, 0, false, NULL, NULL},
};

static const struct ctl_flag_spec flags_fabric[] = {
    {"name", 0, CTL_FLAG_STR, true, "NAME", "fabric name (a DNS label)"},
    {"dir", 0, CTL_FLAG_STR, false, "PATH", "parent directory (default: current directory)"},
    {"days", 0, CTL_FLAG_STR, false, "N", "validity in days (default 3650)"},
    {NULL, 0, 0, false, NULL, NULL},
};

static const struct ctl_flag_spec flags_peer_cert[] = {
    {"name", 0, CTL_FLAG_STR, true, "PEER", "peer name (a DNS label)"},
    {"fabric", 0, CTL_FLAG_STR, true, "PATH", "fabric directory (holds ca.pem and ca.key)"},
    {"days", 0, CTL_FLAG_STR, false, "N", "validity in days (default 365)"},
    {NULL, 0, 0, false, NULL, NULL},
};

static const struct ctl_flag_spec flags_delete[] = {
    {"name", 0, CTL_FLAG_STR, true, "NAME", "object name"},
    {NULL, 0, 0, false, NULL, NULL},
};

static const struct ctl_flag_spec flags_get[] = {
    {"name", 0, CTL_FLAG_STR, false, "NAME", "only this object"},
    {"output", 'o', CTL_FLAG_STR, false, "FORMAT", "table (default) or json"},
    {NULL, 0, 0, false, NULL, NULL},
};

static const struct ctl_flag_spec flags_remote_exports[] = {
    {"peer", 0, CTL_FLAG_STR, true, "PEER", "the peer to ask"},
    {"output", 'o', CTL_FLAG_STR, false, "FORMAT", "table (default) or json"},
    {NULL, 0, 0, false, NULL, NULL},
};

static int run_version(struct ctl *ctl, const struct ctl_args *a)
{
    (void)a;
    fprintf(ctl->out, "gwctl %s\n", CL_VERSION);
    return 0;
}

/* clang-format off */
const struct ctl_command ctl_commands[] = {
    {"init", NULL, "store a context for a gateway and make it current", flags_init, 0, NULL, CTL_CONTEXT_NONE, ctl_run_init},
    {"config", "use-context", "make a context current", NULL, 1, "ID", CTL_CONTEXT_NONE, ctl_run_use_context},
    {"config", "current-context", "print the current context", NULL, 0, NULL, CTL_CONTEXT_NAME, ctl_run_current_context},
    {"config", "get-contexts", "list the contexts", flags_output, 0, NULL, CTL_CONTEXT_NONE, ctl_run_get_contexts},
    {"create", "fabric", "create a fabric CA: <dir>/<name>/ca.pem, ca.key", flags_fabric, 0, NULL, CTL_CONTEXT_NONE, ctl_run_create_fabric},
    {"create", "peer-cert", "create a gateway and an admin certificate signed by the fabric CA", flags_peer_cert, 0, NULL, CTL_CONTEXT_NONE, ctl_run_create_peer_cert},
    {"create", "peer", "add a remote peer and its gateways", ctl_flags_peer, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_create},
    {"create", "export", "export a local service to peers", ctl_flags_export, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_create},
    {"create", "import", "import a service that peers export", ctl_flags_import, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_create},
    {"create", "policy", "create an access policy from a JSON or YAML file", ctl_flags_policy, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_create},
    {"update", "peer", "replace a peer", ctl_flags_peer, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_update},
    {"update", "export", "replace an export", ctl_flags_export, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_update},
    {"update", "import", "replace an import", ctl_flags_import, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_update},
    {"update", "policy", "replace an access policy from a JSON or YAML file", ctl_flags_policy, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_update},
    {"delete", "peer", "delete a peer", flags_delete, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_delete},
    {"delete", "export", "delete an export", flags_delete, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_delete},
    {"delete", "import", "delete an import", flags_delete, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_delete},
    {"delete", "policy", "delete an access policy", flags_delete, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_delete},
    {"get", "peer", "show peers, their gateways and reachability", flags_get, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_get},
    {"get", "export", "show exports", flags_get, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_get},
    {"get", "import", "show imports: ports, sources, load balancing", flags_get, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_get},
    {"get", "policy", "show access policies", flags_get, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_get},
    {"get", "all", "show every object", flags_output, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_get_all},
    {"get", "remote-exports", "show what a peer exports", flags_remote_exports, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_remote_exports},
    {"status", NULL, "show the gateway: name, version, workers, peers, counters", flags_output, 0, NULL, CTL_CONTEXT_GATEWAY, ctl_run_status},
    {"version", NULL, "print gwctl's version", NULL, 0, NULL, CTL_CONTEXT_NONE, run_version},
    {NULL, NULL, NULL, NULL, 0, NULL, CTL_CONTEXT_NONE, NULL},
};

/* clang-format on */

int ctl_fail(struct ctl *ctl, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* one line, whatever the server sent, and nothing a terminal would act on */
    for (char *p = msg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    ctl_out_printable(msg);
    fprintf(ctl->err, "error: %s\n", msg);
    return 1;
}

/* Tries of a request the gateway refused unprocessed, each on a new connection. */
#define CTL_ATTEMPTS 3

int ctl_request(struct ctl *ctl, const char *method, const char *path, const char *body,
                struct ctl_resp *r)
{
    char err[512] = "";

    memset(r, 0, sizeof(*r));
    if (ctl->ctx == NULL)
        return ctl_fail(ctl, "no context selected (run gwctl init)");
    for (int attempt = 1;; attempt++) {
        if (ctl->conn == NULL && ctl->tr->open(ctl->ctx, &ctl->conn, err, sizeof(err)) != 0) {
            ctl->conn = NULL;
            return ctl_fail(ctl, "%s", err);
        }
        int rc = ctl->tr->request(ctl->conn, method, path, body, body ? strlen(body) : 0, r, err,
                                  sizeof(err));
        if (rc == 0)
            return 0;
        cl_free(&r->body);
        /* Refused unprocessed (REFUSED_STREAM, or a GOAWAY that did not cover it: e.g. a
         * gateway retiring the connections made before it reloaded its certificate files) is
         * safe to send again on a new connection, whatever the method (RFC 9113, 8.7). */
        if ((rc != CL_EH2_REFUSED && rc != CL_EH2_GOAWAY) || attempt == CTL_ATTEMPTS)
            return ctl_fail(ctl, "%s", err);
        ctl->tr->close(ctl->conn);
        ctl->conn = NULL;
    }
}

int ctl_expect(struct ctl *ctl, const struct ctl_resp *r, int expect)
{
    json_t *j, *e;
    const char *msg = NULL, *field = NULL;
    int rc;

    if (r->status == expect)
        return 0;
    j = r->len > 0 ? ctl_json_loadb(r->body, r->len, NULL) : NULL;
    e = j != NULL ? json_object_get(j, "error") : NULL;
    if (json_is_object(e)) {
        msg = json_string_value(json_object_get(e, "message"));
        field = json_string_value(json_object_get(e, "field"));
    } else if (json_is_string(e)) {
        msg = json_string_value(e);
    }
    if (msg != NULL && field != NULL && field[0] != '\0' && strstr(msg, field) == NULL)
        rc = ctl_fail(ctl, "%s: %s", field, msg);
    else if (msg != NULL)
        rc = ctl_fail(ctl, "%s", msg);
    else if (r->status == 401 || r->status == 403)
        rc = ctl_fail(ctl, "the gateway refused this certificate (HTTP %d)", r->status);
    else
        rc = ctl_fail(ctl, "the gateway answered HTTP %d (expected %d)", r->status, expect);
    json_decref(j);
    return rc;
}

static int select_context(struct ctl *ctl, struct ctl_config *cfg, const struct ctl_args *a)
{
    char path[1024], err[512];
    const char *id;

    if (ctl->config_path != NULL) {
        cl_strlcpy(path, ctl->config_path, sizeof(path));
    } else if (ctl_config_path(path, sizeof(path)) != 0) {
        return ctl_fail(ctl, "cannot locate the config file: set XDG_CONFIG_HOME or HOME");
    }
    if (ctl_config_load(path, cfg, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    id = a->context != NULL ? a->context : cfg->current;
    if (id == NULL)
        return ctl_fail(ctl, "no current context: run \"gwctl init\" first");
    if ((ctl->ctx = ctl_config_find(cfg, id)) == NULL)
        return ctl_fail(ctl, "no context named \"%s\" in %s", id, path);
    return 0;
}

int ctl_main(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_args a;
    struct ctl_config cfg = {0};
    char err[512];
    int rc;

    if (ctl_args_parse(argc, argv, &a, err, sizeof(err)) != 0) {
        fprintf(ctl->err, "error: %s\n", err);
        return CTL_EXIT_USAGE;
    }
    if (a.help) {
        ctl_help(ctl->out, a.verb, a.cmd);
        return 0;
    }
    ctl->args = &a;
    ctl->ctx = NULL;
    ctl->conn = NULL;
    if (a.cmd->context == CTL_CONTEXT_GATEWAY && (rc = select_context(ctl, &cfg, &a)) != 0)
        goto out;
    rc = a.cmd->run(ctl, &a);
out:
    if (ctl->conn != NULL)
        ctl->tr->close(ctl->conn);
    ctl->conn = NULL;
    ctl->ctx = NULL;
    ctl->args = NULL;
    ctl_config_deinit(&cfg);
    return rc;
}
