/*
 * Import objects: `gwctl create|update import --name N --port P [--target-port T] --peer P1
 * [--peer P2 ...] [--export-name E] [--export-namespace NS] [--lb round-robin|random|static]`.
 * Every peer is a source for the same export (name defaults to the import's name).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cl/str.h"
#include "ctl.h"
#include "ctl_cmd.h"
#include "ctl_out.h"

const struct ctl_flag_spec ctl_flags_import[] = {
    {"name", 0, CTL_FLAG_STR, true, "NAME", "import name"},
    {"port", 0, CTL_FLAG_STR, true, "PORT", "local port clients connect to"},
    {"target-port", 0, CTL_FLAG_STR, false, "PORT",
     "port the gateway listens on in Kubernetes mode (default: allocated)"},
    {"peer", 0, CTL_FLAG_MULTI, true, "PEER", "a peer exporting the service"},
    {"export-name", 0, CTL_FLAG_STR, false, "NAME", "the export's name (default: --name)"},
    {"export-namespace", 0, CTL_FLAG_STR, false, "NS", "the export's namespace"},
    {"lb", 0, CTL_FLAG_STR, false, "SCHEME", "round-robin (default), random or static"},
    {NULL, 0, 0, false, NULL, NULL},
};

static bool lb_ok(const char *s)
{
    return strcmp(s, "round-robin") == 0 || strcmp(s, "random") == 0 || strcmp(s, "static") == 0;
}

json_t *ctl_import_build(struct ctl *ctl, const struct ctl_args *a, char *err, size_t errlen)
{
    const char *name = ctl_args_str(a, "name");
    const char *ports = ctl_args_str(a, "port");
    const char *tports = ctl_args_str(a, "target-port");
    const char *ename = ctl_args_str(a, "export-name");
    const char *ens = ctl_args_str(a, "export-namespace");
    const char *lb = ctl_args_str(a, "lb");
    const char *const *peers;
    size_t npeers = ctl_args_multi(a, "peer", &peers);
    uint16_t port, tport = 0;
    json_t *srcs = NULL, *spec = NULL, *o;

    (void)ctl;
    if (name[0] == '\0') {
        snprintf(err, errlen, "--name is empty");
        return NULL;
    }
    if (cl_parse_port(ports, &port) != 0) {
        snprintf(err, errlen, "--port \"%s\" is not a port number (1-65535)", ports);
        return NULL;
    }
    if (tports != NULL && cl_parse_port(tports, &tport) != 0) {
        snprintf(err, errlen, "--target-port \"%s\" is not a port number (1-65535)", tports);
        return NULL;
    }
    if (lb != NULL && !lb_ok(lb)) {
        snprintf(err, errlen, "--lb \"%s\": use round-robin, random or static", lb);
        return NULL;
    }
    if (ename != NULL && ename[0] == '\0') {
        snprintf(err, errlen, "--export-name is empty");
        return NULL;
    }
    if ((srcs = json_array()) == NULL)
        goto oom;
    for (size_t i = 0; i < npeers; i++) {
        json_t *s;
        if (!cl_str_is_dns_subdomain(peers[i])) {
            snprintf(err, errlen, "--peer \"%s\" is not a valid peer name", peers[i]);
            goto fail;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(peers[k], peers[i]) == 0) {
                snprintf(err, errlen, "--peer \"%s\" given twice", peers[i]);
                goto fail;
            }
        }
        s = json_pack("{s:s, s:s}", "peer", peers[i], "exportName", ename != NULL ? ename : name);
        if (s == NULL ||
            (ens != NULL && json_object_set_new(s, "exportNamespace", json_string(ens)) != 0)) {
            json_decref(s);
            goto oom;
        }
        if (json_array_append_new(srcs, s) != 0)
            goto oom;
    }
    if ((spec = json_pack("{s:i}", "port", (int)port)) == NULL)
        goto oom;
    if (tport != 0 && json_object_set_new(spec, "targetPort", json_integer(tport)) != 0)
        goto oom;
    if (json_object_set_new(spec, "sources", srcs) != 0) {
        srcs = NULL;
        goto oom;
    }
    srcs = NULL;
    if (json_object_set_new(spec, "lbScheme", json_string(lb != NULL ? lb : "round-robin")) != 0)
        goto oom;
    o = json_pack("{s:{s:s}, s:o}", "metadata", "name", name, "spec", spec);
    if (o == NULL)
        snprintf(err, errlen, "out of memory");
    return o;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    json_decref(srcs);
    json_decref(spec);
    return NULL;
}

const struct ctl_kind ctl_kind_import = {"import", "imports", ctl_import_build, ctl_out_imports};
