#ifndef DP_TEST_WORKER_H
#define DP_TEST_WORKER_H

/*
 * The worker the dataplane unit tests run the splice engine in (header-only, static, like
 * tests/unit/gwctl/fake.h): a fresh loop and the parts of struct dp_worker the engine uses
 * (counters, tunnel list, reference table), with no IPC, TLS or listeners.
 */
#include <string.h>

#include "cl/list.h"
#include "cm.h"
#include "dp.h"

/* Makes `loop`, sets `w` up on it and makes it the current worker (dp_w). */
static inline void start_worker(struct dp_worker *w, uv_loop_t *loop)
{
    assert_int_equal(uv_loop_init(loop), 0);
    memset(w, 0, sizeof(*w));
    w->loop = loop;
    w->stats = json_pack("{s:{},s:{},s:{}}", "imports", "exports", "peers");
    assert_non_null(w->stats);
    cl_list_init(&w->tunnels);
    dp_refs_init(&w->refs);
    dp_xprt_sched_init(&w->xsched, loop);
    dp_w = w;
}

/* Checks that no tunnel and no reference is left, frees what start_worker made and closes
 * `loop`, which must hold no handle any more. */
static inline void stop_worker(struct dp_worker *w, uv_loop_t *loop)
{
    assert_true(cl_list_is_empty(&w->tunnels));
    assert_int_equal(w->refs.live, 0);
    json_decref(w->stats);
    dp_refs_deinit(&w->refs);
    dp_xprt_sched_close(&w->xsched, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* its close */
    assert_int_equal(uv_loop_close(loop), 0);
}

#endif
