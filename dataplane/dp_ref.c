/* {id, generation} references resolved through a per-worker table (dp_ref.h). */
#include "dp_ref.h"

#include <string.h>

#include "cl/mem.h"

#define INITIAL_CAP 64

void dp_refs_init(struct dp_refs *r)
{
    memset(r, 0, sizeof(*r));
}

void dp_refs_deinit(struct dp_refs *r)
{
    if (r == NULL)
        return;
    cl_mem_free(r->slots);
    memset(r, 0, sizeof(*r));
}

uint64_t dp_ref_new(struct dp_refs *r, enum dp_ref_kind kind, void *obj)
{
    struct dp_ref_slot *sl;
    uint32_t idx;

    if (r->free != 0) {
        idx = r->free - 1;
        r->free = r->slots[idx].next_free;
    } else {
        if (r->n == r->cap) {
            uint32_t cap = r->cap != 0 ? r->cap * 2 : INITIAL_CAP;
            struct dp_ref_slot *ns;
            if (cap <= r->cap || cap > UINT32_MAX / 2 ||
                (ns = cl_realloc(r->slots, (size_t)cap * sizeof(*ns))) == NULL)
                return 0;
            memset(ns + r->cap, 0, (size_t)(cap - r->cap) * sizeof(*ns));
            r->slots = ns;
            r->cap = cap;
        }
        idx = r->n++;
        r->slots[idx].gen = 1;
    }
    sl = &r->slots[idx];
    sl->obj = obj;
    sl->kind = kind;
    sl->next_free = 0;
    r->live++;
    return ((uint64_t)sl->gen << 32) | (uint64_t)(idx + 1);
}

static struct dp_ref_slot *slot_of(const struct dp_refs *r, uint64_t ref)
{
    uint32_t idx = (uint32_t)(ref & 0xffffffffu), gen = (uint32_t)(ref >> 32);

    if (idx == 0 || idx > r->n || r->slots[idx - 1].gen != gen ||
        r->slots[idx - 1].kind == DP_REF_NONE)
        return NULL;
    return &r->slots[idx - 1];
}

void *dp_ref_get(const struct dp_refs *r, uint64_t ref, enum dp_ref_kind kind)
{
    struct dp_ref_slot *sl = slot_of(r, ref);

    return sl != NULL && sl->kind == kind ? sl->obj : NULL;
}

void dp_ref_del(struct dp_refs *r, uint64_t ref)
{
    struct dp_ref_slot *sl = slot_of(r, ref);

    if (sl == NULL)
        return;
    sl->obj = NULL;
    sl->kind = DP_REF_NONE;
    if (++sl->gen == 0) /* generations start at 1: keep it so after 2^32 reuses */
        sl->gen = 1;
    sl->next_free = r->free;
    r->free = (uint32_t)(sl - r->slots) + 1;
    r->live--;
}
