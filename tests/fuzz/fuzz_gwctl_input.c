/*
 * What gwctl parses from outside: policy files (JSON or YAML via libyaml) and the gateway's
 * answers (JSON rendered as tables). The first byte picks the path; the rest is the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cl/mem.h"
#include "ctl_cmd.h"
#include "ctl_out.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    char err[512];
    char *out = NULL;
    size_t outlen = 0;
    FILE *f;
    json_t *j;

    if (!init) {
        cl_mem_install_jansson();
        init = 1;
    }
    if (size < 1)
        return 0;
    if ((data[0] & 1) == 0) {
        j = ctl_policy_parse((const char *)data + 1, size - 1, err, sizeof(err));
        json_decref(j);
        return 0;
    }
    j = ctl_json_loadb(data + 1, size - 1, NULL);
    if (j == NULL)
        return 0;
    f = open_memstream(&out, &outlen);
    if (f != NULL) {
        ctl_out_peers(f, j);
        ctl_out_exports(f, j);
        ctl_out_imports(f, j);
        ctl_out_policies(f, j);
        if (json_is_object(j))
            ctl_out_status(f, j);
        ctl_out_json(f, j);
        fclose(f);
        free(out);
    }
    json_decref(j);
    return 0;
}
