/*
 * Fuzz target: a peer's answer to GET /api/v1/peer/exports (discovery), as the controlplane
 * checks it before relaying it to gwctl (cp_model_remote_exports). Beyond the sanitizers: a
 * refusal always says why, and an accepted list serialises back to JSON that parses as the same
 * list (what gwctl receives is valid JSON whatever the peer sent).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cl/json.h"
#include "cl/mem.h"
#include "cp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cl_jerr e = {{0}, {0}};
    json_t *list, *again;
    char *txt;

    if ((list = cp_model_remote_exports(data, size, &e)) == NULL) {
        if (e.msg[0] == '\0')
            abort();
        return 0;
    }
    if (!json_is_array(list) || (txt = cl_json_dumps(list)) == NULL)
        abort();
    again = cl_json_loadb(txt, strlen(txt), NULL);
    if (again == NULL || !json_equal(list, again))
        abort();
    json_decref(again);
    cl_free(&txt);
    json_decref(list);
    return 0;
}
