/* Fuzz target: policy documents -> validation -> decisions against a few attribute sets. */
#include <stddef.h>
#include <stdint.h>

#include "cl/json.h"
#include "cp_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *p = cl_json_loadb(data, size, NULL), *set, *attrs[3];
    struct cp_decision d;

    if (p == NULL)
        return 0;
    if (cp_policy_validate(p, NULL) != 0) {
        json_decref(p);
        return 0;
    }
    set = json_object();
    json_object_set_new(set, "p", p);
    attrs[0] = json_object();
    attrs[1] = json_pack("{s:s,s:s}", CP_ATTR_PEER_NAME, "west", "env", "prod");
    attrs[2] = json_pack("{s:s,s:s}", CP_ATTR_EXPORT_NAME, "web", "tier", "");
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            cp_policy_decide(set, attrs[i], attrs[j], &d);
    for (int i = 0; i < 3; i++)
        json_decref(attrs[i]);
    json_decref(set);
    return 0;
}
