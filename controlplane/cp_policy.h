#ifndef CP_POLICY_H
#define CP_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "cl/json.h"

/*
 * Policy engine (ClusterLink semantics). Policies are AccessPolicy / PrivilegedAccessPolicy
 * JSON objects validated by cp_policy_validate; decisions walk them in tier order:
 * privileged deny -> privileged allow -> deny -> allow -> default deny.
 * Attributes are a flat JSON object of string -> string.
 */

#define CP_ATTR_PEER_NAME   "peer.clusterlink.net/name"
#define CP_ATTR_EXPORT_NAME "export.clusterlink.net/name"
#define CP_ATTR_EXPORT_NS   "export.clusterlink.net/namespace"
#define CP_ATTR_CLIENT_NS   "client.clusterlink.net/namespace"

enum cp_tier {
    CP_TIER_PRIV_DENY,
    CP_TIER_PRIV_ALLOW,
    CP_TIER_DENY,
    CP_TIER_ALLOW,
    CP_TIER_DEFAULT,
    CP_TIER_COUNT,
};

struct cp_decision {
    bool allow;
    enum cp_tier tier;
    char policy[64]; /* deciding policy name, or "default-deny" */
};

/* Validates a policy object strictly (kind, metadata.name as a DNS label, spec.action,
 * spec.from / spec.to label selectors). Returns 0 or CL_ESCHEMA with e naming the field. */
int cp_policy_validate(const json_t *obj, struct cl_jerr *e);

/* True when the selector ({"matchLabels":{},"matchExpressions":[]}) matches attrs. */
bool cp_selector_matches(const json_t *sel, const json_t *attrs);

/* Decides over `policies` (a JSON object name -> policy, all validated). */
void cp_policy_decide(const json_t *policies, const json_t *from, const json_t *to,
                      struct cp_decision *out);

const char *cp_tier_name(enum cp_tier t);

#endif
