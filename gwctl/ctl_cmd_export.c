/* Export objects: `gwctl create|update export --name N [--host H] --port P`. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cl/str.h"
#include "ctl.h"
#include "ctl_cmd.h"
#include "ctl_out.h"

const struct ctl_flag_spec ctl_flags_export[] = {
    {"name", 0, CTL_FLAG_STR, true, "NAME", "export name"},
    {"host", 0, CTL_FLAG_STR, false, "HOST",
     "service host name or address (default: the gateway decides, e.g. the name)"},
    {"port", 0, CTL_FLAG_STR, true, "PORT", "service port"},
    {NULL, 0, 0, false, NULL, NULL},
};

json_t *ctl_export_build(struct ctl *ctl, const struct ctl_args *a, char *err, size_t errlen)
{
    const char *name = ctl_args_str(a, "name");
    const char *host = ctl_args_str(a, "host");
    const char *ports = ctl_args_str(a, "port");
    uint16_t port;
    json_t *spec, *o;

    (void)ctl;
    if (name[0] == '\0') {
        snprintf(err, errlen, "--name is empty");
        return NULL;
    }
    if (host != NULL && host[0] == '\0') {
        snprintf(err, errlen, "--host is empty");
        return NULL;
    }
    if (cl_parse_port(ports, &port) != 0) {
        snprintf(err, errlen, "--port \"%s\" is not a port number (1-65535)", ports);
        return NULL;
    }
    spec = host != NULL ? json_pack("{s:s, s:i}", "host", host, "port", (int)port)
                        : json_pack("{s:i}", "port", (int)port);
    o = json_pack("{s:{s:s}, s:o}", "metadata", "name", name, "spec", spec);
    if (o == NULL)
        snprintf(err, errlen, "out of memory");
    return o;
}

const struct ctl_kind ctl_kind_export = {"export", "exports", ctl_export_build, ctl_out_exports};
