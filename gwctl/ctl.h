#ifndef CTL_H
#define CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * gwctl core: the command table, the argument parser, and the runtime every command gets.
 * Commands never print to stdout/stderr directly: they write to ctl->out / ctl->err, and they
 * reach a gateway only through ctl->tr, so tests run every command against a fake transport.
 */

struct ctl_context;

/* ---- arguments ---- */

enum ctl_flag_kind {
    CTL_FLAG_STR,   /* --flag VALUE, at most once */
    CTL_FLAG_MULTI, /* --flag VALUE, repeatable */
    CTL_FLAG_BOOL,  /* --flag */
};

struct ctl_flag_spec {
    const char *name; /* long name without "--" */
    char shortname;   /* '\0' for none, e.g. 'o' for -o */
    enum ctl_flag_kind kind;
    bool required;
    const char *metavar; /* shown in help: "NAME" */
    const char *help;
};

#define CTL_MAX_FLAGS  16
#define CTL_MAX_VALUES 32
#define CTL_MAX_POS    2

struct ctl_flag_val {
    size_t n;
    const char *v[CTL_MAX_VALUES]; /* borrowed from argv */
};

struct ctl;
struct ctl_args;

/* What a command does with a context, and so whether it takes the global --context. */
enum ctl_context_use {
    CTL_CONTEXT_NONE,    /* none: --context is a usage error and its help omits it */
    CTL_CONTEXT_NAME,    /* --context names the context it reports (config current-context) */
    CTL_CONTEXT_GATEWAY, /* talks to the gateway of the current context, or --context's */
};

/* Runs a parsed command; returns the process exit status (0 ok, 1 failure). */
typedef int (*ctl_run_cb)(struct ctl *ctl, const struct ctl_args *a);

struct ctl_command {
    const char *verb; /* "create" */
    const char *type; /* "peer", or NULL for verbs without a type ("status") */
    const char *summary;
    const struct ctl_flag_spec *flags; /* terminated by a {NULL} entry; may be NULL */
    unsigned npos;                     /* positional arguments required */
    const char *posname;               /* shown in help: "ID" */
    enum ctl_context_use context;
    ctl_run_cb run;
};

struct ctl_args {
    const struct ctl_command *cmd;
    const char *context;                     /* global --context, or NULL */
    bool help;                               /* --help / -h: print help instead of running */
    const char *verb;                        /* when cmd is NULL and help: the verb asked about */
    struct ctl_flag_val vals[CTL_MAX_FLAGS]; /* parallel to cmd->flags */
    const char *pos[CTL_MAX_POS];
    size_t npos;
};

/* Table of every command, terminated by a {NULL} entry. */
extern const struct ctl_command ctl_commands[];

/*
 * Parses argv (argv[0] is the program) into a. On a usage error returns CL_EINVAL with a
 * one-line message in err. `--help` anywhere sets a->help (a->cmd may be NULL then: help for
 * the program or for a->verb). Values are borrowed from argv.
 */
int ctl_args_parse(int argc, char **argv, struct ctl_args *a, char *err, size_t errlen);

/* The value of a STR flag, or NULL when not given (borrowed). */
const char *ctl_args_str(const struct ctl_args *a, const char *name);
/* All values of a MULTI (or STR) flag; returns the count. */
size_t ctl_args_multi(const struct ctl_args *a, const char *name, const char *const **vals);
bool ctl_args_bool(const struct ctl_args *a, const char *name);

/* Writes help for the program (cmd NULL, verb NULL), a verb, or one command. */
void ctl_help(FILE *out, const char *verb, const struct ctl_command *cmd);

/* ---- transport ---- */

struct ctl_resp {
    int status;
    char *body; /* new, NUL-terminated (free with cl_free) */
    size_t len;
};

/*
 * How commands reach a gateway. ctl_http_transport (ctl_http.c) is the real one: HTTP/2 over
 * mutual TLS through cl_h2conn. Every function writes a one-line reason into err on failure.
 */
struct ctl_transport {
    /* Checks the context's CA, certificate and key make a TLS client context. */
    int (*check)(const struct ctl_context *ctx, char *err, size_t errlen);
    /* Connects (TLS handshake included); *conn is the transport's state. */
    int (*open)(const struct ctl_context *ctx, void **conn, char *err, size_t errlen);
    /* One request; body may be NULL. Fills r (caller frees r->body). */
    int (*request)(void *conn, const char *method, const char *path, const char *body, size_t len,
                   struct ctl_resp *r, char *err, size_t errlen);
    void (*close)(void *conn); /* NULL-safe */
};

extern const struct ctl_transport ctl_http_transport;

/* ---- runtime ---- */

struct ctl {
    FILE *out;
    FILE *err;
    FILE *in; /* for `--file -` */
    const struct ctl_transport *tr;
    const char *config_path; /* NULL: $XDG_CONFIG_HOME/gwctl/config.json (ctl_config_path) */
    /* set while a command runs */
    const struct ctl_args *args;
    struct ctl_context *ctx; /* selected context (owned by the loaded config) */
    void *conn;              /* open transport connection, lazily */
};

/* Full run: parse, help, select the context, dispatch. Returns the exit status. */
int ctl_main(struct ctl *ctl, int argc, char **argv);

/* Prints "error: <msg>" as one line on ctl->err; returns 1 (the failure exit status). */
int ctl_fail(struct ctl *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Sends one request on the command's gateway connection (opened on first use). A request the
 * gateway refused without processing it (CL_EH2_REFUSED, CL_EH2_GOAWAY) is sent again on a new
 * connection, up to 3 tries in all. Returns 0 with r filled, or 1 after printing the reason
 * (cannot reach the gateway, certificate problem).
 */
int ctl_request(struct ctl *ctl, const char *method, const char *path, const char *body,
                struct ctl_resp *r);

/*
 * Checks r->status is `expect`; otherwise prints the server's error message (the "message" of
 * {"error":{...}}, or the status) and returns 1. 0 when it matches.
 */
int ctl_expect(struct ctl *ctl, const struct ctl_resp *r, int expect);

/* Exit status for usage errors. */
#define CTL_EXIT_USAGE 2

/* Formats a one-line message into err[errlen] and returns rc (helpers that report what went
 * wrong to their caller). */
int ctl_seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
