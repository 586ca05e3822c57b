#ifndef CL_LIST_H
#define CL_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* Intrusive circular doubly linked list; a head is a sentinel node. */
struct cl_list {
    struct cl_list *prev;
    struct cl_list *next;
};

static inline void cl_list_init(struct cl_list *h)
{
    h->prev = h->next = h;
}

static inline bool cl_list_is_empty(const struct cl_list *h)
{
    return h->next == h;
}

static inline bool cl_list_is_linked(const struct cl_list *n)
{
    return n->next != NULL && n->next != n;
}

static inline void cl_list_insert_tail(struct cl_list *h, struct cl_list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void cl_list_remove(struct cl_list *n)
{
    if (n->next == NULL)
        return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#define cl_list_foreach_safe(pos, tmp, head)                         \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
