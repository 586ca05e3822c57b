/* Peer objects: `gwctl create|update peer --name N --host H --port P [--host H2 --port P2]`. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cl/str.h"
#include "ctl.h"
#include "ctl_cmd.h"
#include "ctl_out.h"

#define DEFAULT_GATEWAY_PORT 443

const struct ctl_flag_spec ctl_flags_peer[] = {
    {"name", 0, CTL_FLAG_STR, true, "NAME", "peer name (the name in its certificate)"},
    {"host", 0, CTL_FLAG_MULTI, true, "HOST", "gateway host name or address"},
    {"port", 0, CTL_FLAG_MULTI, false, "PORT",
     "gateway port, one per --host or one for all (default 443)"},
    {NULL, 0, 0, false, NULL, NULL},
};

json_t *ctl_peer_build(struct ctl *ctl, const struct ctl_args *a, char *err, size_t errlen)
{
    const char *name = ctl_args_str(a, "name");
    const char *const *hosts, *const *ports;
    size_t nh = ctl_args_multi(a, "host", &hosts);
    size_t np = ctl_args_multi(a, "port", &ports);
    json_t *gws = NULL, *o = NULL;

    (void)ctl;
    if (!cl_str_is_dns_subdomain(name)) {
        snprintf(err, errlen, "--name \"%s\" is not a valid peer name (lower-case DNS name)", name);
        return NULL;
    }
    if (np > 1 && np != nh) {
        snprintf(err, errlen,
                 "give one --port per --host (%zu hosts, %zu ports), or a single --port", nh, np);
        return NULL;
    }
    if ((gws = json_array()) == NULL)
        goto oom;
    for (size_t i = 0; i < nh; i++) {
        uint16_t port = DEFAULT_GATEWAY_PORT;
        const char *p = np == 0 ? NULL : ports[np == 1 ? 0 : i];
        if (hosts[i][0] == '\0') {
            snprintf(err, errlen, "--host is empty");
            goto fail;
        }
        if (p != NULL && cl_parse_port(p, &port) != 0) {
            snprintf(err, errlen, "--port \"%s\" is not a port number (1-65535)", p);
            goto fail;
        }
        if (json_array_append_new(
                gws, json_pack("{s:s, s:i}", "host", hosts[i], "port", (int)port)) != 0)
            goto oom;
    }
    o = json_pack("{s:{s:s}, s:{s:O}}", "metadata", "name", name, "spec", "gateways", gws);
    if (o == NULL)
        goto oom;
    json_decref(gws);
    return o;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    json_decref(gws);
    return NULL;
}

const struct ctl_kind ctl_kind_peer = {"peer", "peers", ctl_peer_build, ctl_out_peers};
