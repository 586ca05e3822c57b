/* Fuzz target: the first two bytes pick type and flags, the rest is a body to validate. */
#include <stddef.h>
#include <stdint.h>

#include "cl/ipc.h"
#include "cl/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cl_jerr e;
    json_t *body;

    if (size < 2)
        return 0;
    body = cl_json_loadb(data + 2, size - 2, NULL);
    if (body != NULL) {
        cl_ipc_msg_validate((uint16_t)(data[0] % (CL_IPC_TYPE_COUNT + 1)), data[1] & 3, body, &e);
        json_decref(body);
    }
    return 0;
}
