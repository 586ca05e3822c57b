#include "pki.h"

#include <string.h>
#include <time.h>

#include "cl/certgen.h"
#include "cl/mem.h"

static int leaf(const char *ca, const char *ca_key, const char *name, int64_t nb, int64_t na,
                struct cl_test_leaf *out)
{
    const char *dns[] = {name};
    struct cl_certgen_opts o = {.cn = name,
                                .dns = dns,
                                .ndns = 1,
                                .server_auth = true,
                                .client_auth = true,
                                .not_before = nb,
                                .not_after = na};

    return cl_certgen_leaf(ca, ca_key, &o, &out->cert, &out->key);
}

int cl_test_pki_make(struct cl_test_pki *p)
{
    int64_t now = (int64_t)time(NULL);
    int rc;

    memset(p, 0, sizeof(*p));
    if ((rc = cl_certgen_ca("test-ca", 0, 0, &p->ca, &p->ca_key)) != 0 ||
        (rc = cl_certgen_ca("other-ca", 0, 0, &p->other_ca, &p->other_ca_key)) != 0 ||
        (rc = leaf(p->ca, p->ca_key, "srv", 0, 0, &p->srv)) != 0 ||
        (rc = leaf(p->ca, p->ca_key, "cli", 0, 0, &p->cli)) != 0 ||
        (rc = leaf(p->other_ca, p->other_ca_key, "srv", 0, 0, &p->other)) != 0 ||
        (rc = leaf(p->ca, p->ca_key, "srv", now - 20 * 86400, now - 10 * 86400, &p->expired)) !=
            0 ||
        (rc = leaf(p->ca, p->ca_key, "srv", now + 10 * 86400, now + 20 * 86400, &p->future)) != 0)
        cl_test_pki_free(p);
    return rc;
}

static void leaf_free(struct cl_test_leaf *l)
{
    cl_free(&l->cert);
    cl_free(&l->key);
}

void cl_test_pki_free(struct cl_test_pki *p)
{
    cl_free(&p->ca);
    cl_free(&p->ca_key);
    cl_free(&p->other_ca);
    cl_free(&p->other_ca_key);
    leaf_free(&p->srv);
    leaf_free(&p->cli);
    leaf_free(&p->other);
    leaf_free(&p->expired);
    leaf_free(&p->future);
}
