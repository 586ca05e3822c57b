#ifndef CL_TEST_PKI_H
#define CL_TEST_PKI_H

#include <stdbool.h>

/*
 * A test PKI made with certgen at run time (no committed certificates): a fabric CA, a
 * server leaf for "srv", a client leaf "cli", an unrelated CA with its own leaf, an expired
 * leaf and a not-yet-valid one. All PEM strings; free with cl_test_pki_free.
 */
struct cl_test_leaf {
    char *cert;
    char *key;
};

struct cl_test_pki {
    char *ca;
    char *ca_key;
    struct cl_test_leaf srv, cli, other, expired, future;
    char *other_ca;
    char *other_ca_key;
};

int cl_test_pki_make(struct cl_test_pki *p);
void cl_test_pki_free(struct cl_test_pki *p);

#endif
