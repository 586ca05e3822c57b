/*
 * The CONNECT request of a tunnel, as a peer gateway sends it (docs/protocol.md), checked and
 * taken apart without any I/O, so that it can be unit tested and fuzzed (fuzz_h2_server feeds
 * it through a real HTTP/2 server connection).
 */
#include <string.h>

#include "cl/err.h"
#include "cl/json.h"
#include "dp.h"

static bool hdr_is(const struct cl_h2_hdr *h, const char *name)
{
    return h->namelen == strlen(name) && memcmp(h->name, name, h->namelen) == 0;
}

/* A JSON object whose every value is a string (what AUTHZ_INGRESS carries). */
static bool is_string_map(const json_t *o)
{
    const char *k;
    json_t *v;

    if (!json_is_object(o))
        return false;
    json_object_foreach((json_t *)o, k, v)
    {
        if (!json_is_string(v))
            return false;
    }
    return true;
}

int dp_connect_parse(const struct cl_h2_req *req, struct dp_connect_req *out, const char **why)
{
    const char *auth = req->authority != NULL ? req->authority : "";
    const char *colon = strrchr(auth, ':');
    size_t n = colon != NULL ? (size_t)(colon - auth) : strlen(auth);
    bool have_ns = false, have_attrs = false;

    memset(out, 0, sizeof(*out));
    if (n == 0 || n >= sizeof(out->name)) {
        *why = "CONNECT needs :authority <export>:<port>, the export name at most 63 characters";
        return CL_EINVAL;
    }
    memcpy(out->name, auth, n);
    for (size_t i = 0; i < req->nhdrs; i++) {
        const struct cl_h2_hdr *h = &req->hdrs[i];
        if (hdr_is(h, "cl-export-namespace")) {
            if (have_ns || h->valuelen >= sizeof(out->ns)) {
                *why = have_ns ? "cl-export-namespace given twice"
                               : "cl-export-namespace is longer than 63 characters";
                goto fail;
            }
            have_ns = true;
            memcpy(out->ns, h->value, h->valuelen);
        } else if (hdr_is(h, "cl-client-attrs")) {
            if (have_attrs) {
                *why = "cl-client-attrs given twice";
                goto fail;
            }
            have_attrs = true;
            out->attrs = cl_json_loadb(h->value, h->valuelen, NULL);
            if (!is_string_map(out->attrs)) {
                *why = "cl-client-attrs must be a JSON object of strings";
                goto fail;
            }
        }
    }
    if (out->attrs == NULL && (out->attrs = json_object()) == NULL) {
        *why = "out of memory";
        return CL_ENOMEM;
    }
    return 0;
fail:
    dp_connect_req_deinit(out);
    return CL_EINVAL;
}

void dp_connect_req_deinit(struct dp_connect_req *r)
{
    if (r == NULL)
        return;
    json_decref(r->attrs);
    r->attrs = NULL;
}
