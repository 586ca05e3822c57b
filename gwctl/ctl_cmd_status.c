/* `gwctl status`: the gateway's name, version, workers, peers and their reachability, counters. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cl/json.h"
#include "cl/mem.h"
#include "ctl.h"
#include "ctl_cmd.h"
#include "ctl_out.h"

int ctl_run_status(struct ctl *ctl, const struct ctl_args *a)
{
    const char *fmt = ctl_args_str(a, "output");
    struct ctl_resp r = {0};
    struct cl_jerr je;
    json_t *j = NULL;
    int rc;

    if (fmt != NULL && strcmp(fmt, "json") != 0 && strcmp(fmt, "table") != 0)
        return ctl_fail(ctl, "-o %s: use table or json", fmt);
    if ((rc = ctl_request(ctl, "GET", "/api/v1/status", NULL, &r)) != 0)
        return rc;
    if ((rc = ctl_expect(ctl, &r, 200)) != 0)
        goto out;
    if ((j = ctl_json_loadb(r.body, r.len, &je)) == NULL || !json_is_object(j)) {
        rc = ctl_fail(ctl, "the gateway sent a bad status answer: %s",
                      j == NULL ? je.msg : "not an object");
        goto out;
    }
    if (fmt != NULL && strcmp(fmt, "json") == 0)
        rc = ctl_out_json(ctl->out, j) != 0 ? ctl_fail(ctl, "out of memory") : 0;
    else
        rc = ctl_out_status(ctl->out, j) != 0 ? ctl_fail(ctl, "out of memory") : 0;
out:
    json_decref(j);
    cl_free(&r.body);
    return rc;
}
