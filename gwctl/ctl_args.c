/*
 * Argument parsing: `gwctl [global flags] <verb> [<type>] [flags] [positionals]`.
 * Global flags (--context, --help) go anywhere; command flags follow the command words.
 * Flags take `--flag value` or `--flag=value`; short flags `-o value` or `-ovalue`.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cl/err.h"
#include "ctl.h"

static int usage(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int usage(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return CL_EINVAL;
}

static bool verb_exists(const char *verb)
{
    for (const struct ctl_command *c = ctl_commands; c->verb != NULL; c++) {
        if (strcmp(c->verb, verb) == 0)
            return true;
    }
    return false;
}

static bool verb_has_types(const char *verb)
{
    for (const struct ctl_command *c = ctl_commands; c->verb != NULL; c++) {
        if (strcmp(c->verb, verb) == 0 && c->type != NULL)
            return true;
    }
    return false;
}

static const struct ctl_command *find_cmd(const char *verb, const char *type)
{
    for (const struct ctl_command *c = ctl_commands; c->verb != NULL; c++) {
        if (strcmp(c->verb, verb) != 0)
            continue;
        if (c->type == NULL && type == NULL)
            return c;
        if (c->type != NULL && type != NULL && strcmp(c->type, type) == 0)
            return c;
    }
    return NULL;
}

/* "peer, export, import" for error messages. */
static void list_types(const char *verb, char *out, size_t outlen)
{
    size_t used = 0;

    out[0] = '\0';
    for (const struct ctl_command *c = ctl_commands; c->verb != NULL; c++) {
        if (strcmp(c->verb, verb) != 0 || c->type == NULL)
            continue;
        int n = snprintf(out + used, outlen - used, "%s%s", used > 0 ? ", " : "", c->type);
        if (n < 0 || (size_t)n >= outlen - used)
            break;
        used += (size_t)n;
    }
}

/* "create peer", "status": the words that name a command. */
static void cmd_words(const struct ctl_command *c, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s%s%s", c->verb, c->type ? " " : "", c->type ? c->type : "");
}

static int find_flag(const struct ctl_command *cmd, const char *name, size_t namelen,
                     char shortname)
{
    if (cmd == NULL || cmd->flags == NULL)
        return -1;
    for (int i = 0; cmd->flags[i].name != NULL && i < CTL_MAX_FLAGS; i++) {
        const struct ctl_flag_spec *f = &cmd->flags[i];
        if (shortname != '\0') {
            if (f->shortname == shortname)
                return i;
        } else if (strlen(f->name) == namelen && strncmp(f->name, name, namelen) == 0) {
            return i;
        }
    }
    return -1;
}

static int add_value(struct ctl_args *a, int idx, const char *value, char *err, size_t errlen)
{
    const struct ctl_flag_spec *f = &a->cmd->flags[idx];
    struct ctl_flag_val *v = &a->vals[idx];

    if (f->kind != CTL_FLAG_MULTI && v->n > 0)
        return usage(err, errlen, "--%s given more than once", f->name);
    if (v->n >= CTL_MAX_VALUES)
        return usage(err, errlen, "--%s given too many times (at most %d)", f->name,
                     CTL_MAX_VALUES);
    v->v[v->n++] = value;
    return 0;
}

/* Handles one flag token at argv[*i]; advances *i past a separate value. */
static int parse_flag(struct ctl_args *a, int argc, char **argv, int *i, char *err, size_t errlen)
{
    const char *tok = argv[*i];
    const char *name, *eq, *value = NULL;
    size_t namelen;
    char shortname = '\0';
    int idx;

    if (tok[1] == '-') {
        name = tok + 2;
        eq = strchr(name, '=');
        namelen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        if (eq != NULL)
            value = eq + 1;
    } else {
        name = tok + 1;
        namelen = 1;
        shortname = name[0];
        if (name[1] != '\0')
            value = name + 1;
    }
    /* global flags */
    if ((namelen == 4 && strncmp(name, "help", 4) == 0 && shortname == '\0') || shortname == 'h') {
        a->help = true;
        return 0;
    }
    if (shortname == '\0' && namelen == 7 && strncmp(name, "context", 7) == 0) {
        if (value == NULL) {
            if (*i + 1 >= argc)
                return usage(err, errlen, "--context needs a value");
            value = argv[++*i];
        }
        if (a->context != NULL)
            return usage(err, errlen, "--context given more than once");
        a->context = value;
        return 0;
    }
    if (a->cmd == NULL) {
        if (a->verb != NULL && verb_has_types(a->verb))
            return usage(err, errlen, "%s: flag %s comes before the type", a->verb, tok);
        return usage(err, errlen, "unknown flag %s (flags follow the command)", tok);
    }
    idx = find_flag(a->cmd, name, namelen, shortname);
    if (idx < 0) {
        char words[64];
        cmd_words(a->cmd, words, sizeof(words));
        if (shortname != '\0')
            return usage(err, errlen, "unknown flag -%c for \"%s\"", shortname, words);
        return usage(err, errlen, "unknown flag --%.*s for \"%s\"", (int)namelen, name, words);
    }
    if (a->cmd->flags[idx].kind == CTL_FLAG_BOOL) {
        if (value != NULL)
            return usage(err, errlen, "--%s takes no value", a->cmd->flags[idx].name);
        return add_value(a, idx, "true", err, errlen);
    }
    if (value == NULL) {
        if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0)
            return usage(err, errlen, "--%s needs a value", a->cmd->flags[idx].name);
        value = argv[++*i];
    }
    return add_value(a, idx, value, err, errlen);
}

static int check_complete(struct ctl_args *a, char *err, size_t errlen)
{
    char types[256], words[64];

    if (a->cmd == NULL) {
        if (a->verb == NULL)
            return usage(err, errlen, "no command given (see gwctl --help)");
        list_types(a->verb, types, sizeof(types));
        return usage(err, errlen, "\"%s\" needs a type: %s", a->verb, types);
    }
    /* --context is global, so it may come before the command words: checked once they are known */
    if (a->context != NULL && a->cmd->context == CTL_CONTEXT_NONE) {
        cmd_words(a->cmd, words, sizeof(words));
        return usage(err, errlen, "--context does not apply to \"%s\"", words);
    }
    for (int i = 0; a->cmd->flags != NULL && a->cmd->flags[i].name != NULL; i++) {
        if (a->cmd->flags[i].required && a->vals[i].n == 0)
            return usage(err, errlen, "missing --%s", a->cmd->flags[i].name);
    }
    if (a->npos < a->cmd->npos)
        return usage(err, errlen, "missing %s", a->cmd->posname ? a->cmd->posname : "argument");
    return 0;
}

int ctl_args_parse(int argc, char **argv, struct ctl_args *a, char *err, size_t errlen)
{
    int rc;

    memset(a, 0, sizeof(*a));
    err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *tok = argv[i];

        if (tok[0] == '-' && tok[1] != '\0') {
            if ((rc = parse_flag(a, argc, argv, &i, err, errlen)) != 0)
                goto fail;
            continue;
        }
        if (a->verb == NULL) {
            if (!verb_exists(tok)) {
                rc = usage(err, errlen, "unknown command \"%s\" (see gwctl --help)", tok);
                goto fail;
            }
            a->verb = tok;
            if (!verb_has_types(tok))
                a->cmd = find_cmd(tok, NULL);
            continue;
        }
        if (a->cmd == NULL) {
            char types[256];
            a->cmd = find_cmd(a->verb, tok);
            if (a->cmd == NULL) {
                list_types(a->verb, types, sizeof(types));
                rc = usage(err, errlen, "unknown type \"%s\" for \"%s\" (one of: %s)", tok, a->verb,
                           types);
                goto fail;
            }
            continue;
        }
        if (a->npos >= a->cmd->npos || a->npos >= CTL_MAX_POS) {
            rc = usage(err, errlen, "unexpected argument \"%s\"", tok);
            goto fail;
        }
        a->pos[a->npos++] = tok;
    }
    if (a->help)
        return 0;
    return check_complete(a, err, errlen);
fail:
    /* `--help` later on the line still wins over a usage error before it */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            a->help = true;
            err[0] = '\0';
            return 0;
        }
    }
    return rc;
}

static int flag_index(const struct ctl_args *a, const char *name)
{
    if (a->cmd == NULL || a->cmd->flags == NULL)
        return -1;
    for (int i = 0; a->cmd->flags[i].name != NULL && i < CTL_MAX_FLAGS; i++) {
        if (strcmp(a->cmd->flags[i].name, name) == 0)
            return i;
    }
    return -1;
}

const char *ctl_args_str(const struct ctl_args *a, const char *name)
{
    int i = flag_index(a, name);

    if (i < 0 || a->vals[i].n == 0)
        return NULL;
    return a->vals[i].v[0];
}

size_t ctl_args_multi(const struct ctl_args *a, const char *name, const char *const **vals)
{
    int i = flag_index(a, name);

    if (i < 0) {
        *vals = NULL;
        return 0;
    }
    *vals = a->vals[i].v;
    return a->vals[i].n;
}

bool ctl_args_bool(const struct ctl_args *a, const char *name)
{
    return ctl_args_str(a, name) != NULL;
}

static void help_command_line(FILE *out, const struct ctl_command *c)
{
    char words[64];

    cmd_words(c, words, sizeof(words));
    fprintf(out, "  %-24s %s\n", words, c->summary);
}

/* "-o, --output FORMAT", "    --name NAME", "    --force": a flag as its help line shows it. */
static void help_flag(FILE *out, const char *name, char shortname, const char *metavar,
                      const char *help)
{
    char lhs[64];
    bool value = metavar != NULL && metavar[0] != '\0';

    if (shortname != '\0')
        snprintf(lhs, sizeof(lhs), "-%c, --%s%s%s", shortname, name, value ? " " : "",
                 value ? metavar : "");
    else
        snprintf(lhs, sizeof(lhs), "    --%s%s%s", name, value ? " " : "", value ? metavar : "");
    fprintf(out, "  %-30s %s\n", lhs, help);
}

void ctl_help(FILE *out, const char *verb, const struct ctl_command *cmd)
{
    if (cmd != NULL) {
        char words[64], help[512];

        cmd_words(cmd, words, sizeof(words));
        fprintf(out, "Usage: gwctl %s%s%s [flags]\n\n%s\n", words, cmd->npos ? " " : "",
                cmd->npos ? cmd->posname : "", cmd->summary);
        if (cmd->flags != NULL && cmd->flags[0].name != NULL) {
            fprintf(out, "\nFlags:\n");
            for (const struct ctl_flag_spec *f = cmd->flags; f->name != NULL; f++) {
                snprintf(help, sizeof(help), "%s%s%s", f->help,
                         f->kind == CTL_FLAG_MULTI ? " (repeatable)" : "",
                         f->required ? " (required)" : "");
                help_flag(out, f->name, f->shortname, f->kind == CTL_FLAG_BOOL ? NULL : f->metavar,
                          help);
            }
        }
        /* the global flags this command takes: check_complete refuses --context elsewhere */
        fprintf(out, "\nGlobal flags:\n");
        if (cmd->context == CTL_CONTEXT_NAME)
            help_flag(out, "context", '\0', "ID", "print this context (if it exists) instead");
        else if (cmd->context == CTL_CONTEXT_GATEWAY)
            help_flag(out, "context", '\0', "ID", "use this context instead of the current one");
        help_flag(out, "help", 'h', NULL, "show this help");
        return;
    }
    if (verb != NULL && verb_exists(verb)) {
        fprintf(out, "Usage: gwctl %s <type> [flags]\n\nCommands:\n", verb);
        for (const struct ctl_command *c = ctl_commands; c->verb != NULL; c++) {
            if (strcmp(c->verb, verb) == 0)
                help_command_line(out, c);
        }
        fprintf(out, "\nRun \"gwctl %s <type> --help\" for the flags of each.\n", verb);
        return;
    }
    fprintf(out, "gwctl: manage a ClusterLink gateway (peers, exports, imports, policies) and\n"
                 "create fabric certificates.\n\nUsage: gwctl [--context ID] <command> [flags]\n\n"
                 "Commands:\n");
    for (const struct ctl_command *c = ctl_commands; c->verb != NULL; c++)
        help_command_line(out, c);
    fprintf(out, "\nRun \"gwctl <command> --help\" for its flags.\n");
}
