#ifndef DP_REF_H
#define DP_REF_H

#include <stdint.h>

/*
 * Safe references for asynchronous hops (skupper's safe pointers, STYLE.md section 8): an
 * object that an IPC reply, a DNS result or a timer may outlive is named by {id, generation},
 * packed into a uint64_t, and resolved through a per-worker table. Deleting an object bumps its
 * slot's generation, so a late callback resolves its reference to NULL instead of a freed
 * pointer. Slots are reused; the table grows (amortised) and never shrinks.
 *
 * A reference is never 0, so 0 can mean "none". References fit a callback's `void *ud`
 * (dp_ref_ud / dp_ref_of_ud) on the 64-bit platforms we build for.
 */

enum dp_ref_kind {
    DP_REF_NONE,
    DP_REF_TUNNEL, /* struct dp_tunnel */
    DP_REF_REST,   /* an ingress REST relay request */
    DP_REF_PCONN,  /* a pooled peer connection */
    DP_REF_KIND_COUNT,
};

struct dp_ref_slot {
    void *obj;
    uint32_t gen;
    uint32_t next_free; /* index + 1 of the next free slot, 0 = none */
    enum dp_ref_kind kind;
};

struct dp_refs {
    struct dp_ref_slot *slots;
    uint32_t n;    /* slots in use or freed */
    uint32_t cap;  /* allocated */
    uint32_t free; /* index + 1 of the first free slot, 0 = none */
    uint32_t live;
};

void dp_refs_init(struct dp_refs *r);
void dp_refs_deinit(struct dp_refs *r); /* frees the table; live objects are not touched */

/* Registers obj. Returns its reference, or 0 when out of memory (CL_ENOMEM). */
uint64_t dp_ref_new(struct dp_refs *r, enum dp_ref_kind kind, void *obj);

/* The object, or NULL when ref is 0, stale (deleted) or of another kind. Borrowed: valid
 * until the object is deleted. */
void *dp_ref_get(const struct dp_refs *r, uint64_t ref, enum dp_ref_kind kind);

/* Unregisters: every copy of ref resolves to NULL from now on. 0 and stale refs are ignored. */
void dp_ref_del(struct dp_refs *r, uint64_t ref);

_Static_assert(sizeof(void *) >= sizeof(uint64_t), "references travel in a void *ud");

static inline void *dp_ref_ud(uint64_t ref)
{
    return (void *)(uintptr_t)ref;
}

static inline uint64_t dp_ref_of_ud(const void *ud)
{
    return (uint64_t)(uintptr_t)ud;
}

#endif
