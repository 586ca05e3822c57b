/* The generic management verbs: create, update, delete, get, get all, get remote-exports. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cl/json.h"
#include "cl/mem.h"
#include "ctl.h"
#include "ctl_cmd.h"
#include "ctl_out.h"

#define API "/api/v1/"

static const struct ctl_kind *const kinds[] = {&ctl_kind_peer, &ctl_kind_export, &ctl_kind_import,
                                               &ctl_kind_policy};

const struct ctl_kind *ctl_kind_find(const char *type)
{
    for (size_t i = 0; type != NULL && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(kinds[i]->type, type) == 0)
            return kinds[i];
    }
    return NULL;
}

/* Percent-encodes a path segment (RFC 3986 unreserved characters pass). */
static void path_segment(char *out, size_t outlen, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s != '\0' && o + 4 < outlen; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* -o: returns 0 and sets *json, or prints the error and returns 1. */
static int output_json(struct ctl *ctl, const struct ctl_args *a, bool *json)
{
    const char *fmt = ctl_args_str(a, "output");

    *json = false;
    if (fmt == NULL || strcmp(fmt, "table") == 0)
        return 0;
    if (strcmp(fmt, "json") == 0) {
        *json = true;
        return 0;
    }
    return ctl_fail(ctl, "-o %s: use table or json", fmt);
}

static int send_object(struct ctl *ctl, const struct ctl_args *a, bool update)
{
    const struct ctl_kind *k = ctl_kind_find(a->cmd->type);
    char err[512], path[512], seg[256];
    struct ctl_resp r = {0};
    json_t *o;
    char *body = NULL;
    const char *name;
    int rc;

    if (k == NULL)
        return ctl_fail(ctl, "unknown type %s", a->cmd->type);
    if ((o = k->build(ctl, a, err, sizeof(err))) == NULL)
        return ctl_fail(ctl, "%s", err);
    name = json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
    if ((body = ctl_json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL) {
        json_decref(o);
        return ctl_fail(ctl, "out of memory");
    }
    path_segment(seg, sizeof(seg), name);
    if (update)
        snprintf(path, sizeof(path), API "%s/%s", k->plural, seg);
    else
        snprintf(path, sizeof(path), API "%s", k->plural);
    rc = ctl_request(ctl, update ? "PUT" : "POST", path, body, &r);
    if (rc == 0 && (rc = ctl_expect(ctl, &r, update ? 204 : 201)) == 0)
        fprintf(ctl->out, "%s \"%s\" %s\n", k->type, name, update ? "updated" : "created");
    cl_free(&r.body);
    cl_free(&body);
    json_decref(o);
    return rc;
}

int ctl_run_create(struct ctl *ctl, const struct ctl_args *a)
{
    return send_object(ctl, a, false);
}

int ctl_run_update(struct ctl *ctl, const struct ctl_args *a)
{
    return send_object(ctl, a, true);
}

int ctl_run_delete(struct ctl *ctl, const struct ctl_args *a)
{
    const struct ctl_kind *k = ctl_kind_find(a->cmd->type);
    const char *name = ctl_args_str(a, "name");
    char path[512], seg[256];
    struct ctl_resp r = {0};
    int rc;

    if (k == NULL)
        return ctl_fail(ctl, "unknown type %s", a->cmd->type);
    if (name[0] == '\0')
        return ctl_fail(ctl, "--name is empty");
    path_segment(seg, sizeof(seg), name);
    snprintf(path, sizeof(path), API "%s/%s", k->plural, seg);
    rc = ctl_request(ctl, "DELETE", path, NULL, &r);
    if (rc == 0 && (rc = ctl_expect(ctl, &r, 204)) == 0)
        fprintf(ctl->out, "%s \"%s\" deleted\n", k->type, name);
    cl_free(&r.body);
    return rc;
}

/* GET path, expect 200 and a JSON body; *out is a new reference. */
static int get_json(struct ctl *ctl, const char *path, json_t **out)
{
    struct ctl_resp r = {0};
    struct cl_jerr je;
    int rc;

    *out = NULL;
    rc = ctl_request(ctl, "GET", path, NULL, &r);
    if (rc == 0 && (rc = ctl_expect(ctl, &r, 200)) == 0) {
        *out = ctl_json_loadb(r.body, r.len, &je);
        if (*out == NULL)
            rc = ctl_fail(ctl, "the gateway sent a bad answer to GET %s: %s", path, je.msg);
    }
    cl_free(&r.body);
    return rc;
}

int ctl_run_get(struct ctl *ctl, const struct ctl_args *a)
{
    const struct ctl_kind *k = ctl_kind_find(a->cmd->type);
    const char *name = ctl_args_str(a, "name");
    char path[512], seg[256];
    json_t *j = NULL;
    bool json;
    int rc;

    if (k == NULL)
        return ctl_fail(ctl, "unknown type %s", a->cmd->type);
    if (output_json(ctl, a, &json) != 0)
        return 1;
    if (name != NULL) {
        path_segment(seg, sizeof(seg), name);
        snprintf(path, sizeof(path), API "%s/%s", k->plural, seg);
    } else {
        snprintf(path, sizeof(path), API "%s", k->plural);
    }
    if ((rc = get_json(ctl, path, &j)) != 0)
        return rc;
    if ((json ? ctl_out_json(ctl->out, j) : k->table(ctl->out, j)) != 0)
        rc = ctl_fail(ctl, "out of memory");
    json_decref(j);
    return rc;
}

int ctl_run_get_all(struct ctl *ctl, const struct ctl_args *a)
{
    json_t *all = NULL, *j[4] = {NULL, NULL, NULL, NULL};
    char path[128];
    bool json;
    int rc = 0;

    if (output_json(ctl, a, &json) != 0)
        return 1;
    for (size_t i = 0; i < 4 && rc == 0; i++) {
        snprintf(path, sizeof(path), API "%s", kinds[i]->plural);
        rc = get_json(ctl, path, &j[i]);
    }
    if (rc == 0 && json) {
        all = json_object();
        for (size_t i = 0; i < 4 && all != NULL; i++) {
            if (json_object_set(all, kinds[i]->plural, j[i]) != 0) {
                json_decref(all);
                all = NULL;
            }
        }
        if (all == NULL || ctl_out_json(ctl->out, all) != 0)
            rc = ctl_fail(ctl, "out of memory");
    } else if (rc == 0) {
        for (size_t i = 0; i < 4 && rc == 0; i++) {
            fprintf(ctl->out, "%s%c%s:\n", i > 0 ? "\n" : "", kinds[i]->plural[0] - 32,
                    kinds[i]->plural + 1);
            if (kinds[i]->table(ctl->out, j[i]) != 0)
                rc = ctl_fail(ctl, "out of memory");
        }
    }
    json_decref(all);
    for (size_t i = 0; i < 4; i++)
        json_decref(j[i]);
    return rc;
}

int ctl_run_remote_exports(struct ctl *ctl, const struct ctl_args *a)
{
    const char *peer = ctl_args_str(a, "peer");
    char path[512], seg[256];
    struct ctl_resp r = {0};
    struct cl_jerr je;
    json_t *j = NULL;
    bool json;
    int rc;

    if (output_json(ctl, a, &json) != 0)
        return 1;
    path_segment(seg, sizeof(seg), peer);
    snprintf(path, sizeof(path), API "peers/%s/exports", seg);
    if ((rc = ctl_request(ctl, "GET", path, NULL, &r)) != 0)
        return rc;
    if (r.status == 404 || r.status == 405 || r.status == 501) {
        /* a JSON error names the problem (no such peer); a bare 404 means no such route */
        j = r.len > 0 ? ctl_json_loadb(r.body, r.len, NULL) : NULL;
        if (j == NULL || json_object_get(j, "error") == NULL)
            rc = ctl_fail(ctl, "get remote-exports is not supported by this gateway");
        else
            rc = ctl_expect(ctl, &r, 200);
        goto out;
    }
    if ((rc = ctl_expect(ctl, &r, 200)) != 0)
        goto out;
    if ((j = ctl_json_loadb(r.body, r.len, &je)) == NULL) {
        rc = ctl_fail(ctl, "the gateway sent a bad answer to GET %s: %s", path, je.msg);
        goto out;
    }
    if ((json ? ctl_out_json(ctl->out, j) : ctl_out_exports(ctl->out, j)) != 0)
        rc = ctl_fail(ctl, "out of memory");
out:
    json_decref(j);
    cl_free(&r.body);
    return rc;
}
