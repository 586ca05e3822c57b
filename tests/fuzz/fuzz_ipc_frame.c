/* Fuzz target: arbitrary bytes into the IPC decoder, fed in two pieces. */
#include <stddef.h>
#include <stdint.h>

#include "cl/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_msg(const struct cl_ipc_msg *m, void *ud)
{
    (void)ud;
    /* touch what a consumer would */
    return json_object_size(m->body) > 1000000 ? 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cl_ipc_decoder d;
    size_t cut = size > 0 ? data[0] % (size + 1) : 0;

    cl_ipc_decoder_init(&d);
    if (cl_ipc_decode(&d, data, cut, on_msg, NULL) >= 0)
        cl_ipc_decode(&d, data + cut, size - cut, on_msg, NULL);
    cl_ipc_decoder_deinit(&d);
    return 0;
}
