#ifndef CTL_OUT_H
#define CTL_OUT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "cl/json.h"

/*
 * Output: aligned tables (kubectl style, columns separated by three spaces, missing values as
 * "-") and JSON exactly as the API returned it (indented, key order kept) for `-o json`.
 */

#define CTL_TABLE_MAX_COLS 10

struct ctl_table {
    size_t ncols;
    const char *hdr[CTL_TABLE_MAX_COLS];
    char **cells; /* nrows * ncols, new strings */
    size_t nrows;
    size_t cap;
};

/*
 * Text from a gateway goes to a terminal: in place, every control character (C0, DEL, and C1
 * as UTF-8, e.g. U+009B, which some terminals take as CSI) becomes '?', so an answer can move
 * no cursor and set no title. Other UTF-8 is kept.
 */
void ctl_out_printable(char *s);
/* fputs with ctl_out_printable applied to what is written (s is left alone). */
void ctl_out_puts(FILE *out, const char *s);

void ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *hdr);
/* Adds a row of ncols cells (NULL cell -> "-"); copies them, made printable. Returns 0 or
 * CL_ENOMEM. */
int ctl_table_add(struct ctl_table *t, const char *const *cells);
void ctl_table_print(const struct ctl_table *t, FILE *out);
void ctl_table_deinit(struct ctl_table *t);

/* cl_json_loadb, but NULL (e: "out of memory") when any allocation failed on the way: jansson
 * 2.14 may otherwise return a document with a truncated string. Single-threaded. */
json_t *ctl_json_loadb(const void *buf, size_t len, struct cl_jerr *e);

/* JSON text (new string, cl_free) or NULL on CL_ENOMEM; unlike json_dumps in jansson 2.14 it
 * never returns a string with parts missing after a failed allocation. */
char *ctl_json_dumps(const json_t *j, size_t flags);

/* Indented JSON and a newline. Returns 0 or CL_ENOMEM. */
int ctl_out_json(FILE *out, const json_t *j);

/*
 * Tables for the API objects. `list` is an array of objects, an {"items":[...]} wrapper, or
 * one object. Unknown or missing fields print as "-". Return 0 or CL_ENOMEM.
 */
int ctl_out_peers(FILE *out, const json_t *list);
int ctl_out_exports(FILE *out, const json_t *list);
int ctl_out_imports(FILE *out, const json_t *list);
int ctl_out_policies(FILE *out, const json_t *list);
/* `gwctl status`: name, version, workers, peers and reachability, counters. */
int ctl_out_status(FILE *out, const json_t *status);

/* Normalises a list answer: the array itself, the "items" array, or NULL for a single object.
 * Borrowed. */
const json_t *ctl_out_items(const json_t *list);

#endif
