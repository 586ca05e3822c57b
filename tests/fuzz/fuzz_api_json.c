/* Fuzz target: REST bodies -> cp_model_validate for each object type (first byte picks it). */
#include <stddef.h>
#include <stdint.h>

#include "cl/json.h"
#include "cp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cl_jerr e;
    json_t *j;

    if (size < 1)
        return 0;
    if ((j = cl_json_loadb(data + 1, size - 1, &e)) == NULL)
        return 0;
    enum cp_kind k = (enum cp_kind)(data[0] % 4);
    if (cp_model_validate(k, j, &e) == 0)
        cp_model_defaults(k, j); /* valid objects must also survive defaulting */
    json_decref(j);
    return 0;
}
