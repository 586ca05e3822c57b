/*
 * Fuzz target: kubeconfig files (YAML or JSON), as the controlplane reads them in Kubernetes
 * mode: the YAML loader, the context/cluster/user lookups, the server URL, base64 *-data
 * fields. Relative file paths resolve under a directory that does not exist, so the input
 * cannot make the target read files next to the corpus.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp_k8s_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cp_k8s_config c;
    char err[512];

    memset(&c, 0, sizeof(c));
    if (cp_k8s_config_kubeconfig_text((const char *)data, size, "/nonexistent-fuzz-dir", &c, err,
                                      sizeof(err)) == 0) {
        /* what a successful parse promises the client */
        if (c.host[0] == '\0' || c.server_name == NULL || c.port == 0)
            abort();
    }
    if (memchr(err, '\0', sizeof(err)) == NULL)
        abort();
    cp_k8s_config_deinit(&c);
    return 0;
}
