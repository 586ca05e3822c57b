#ifndef CL_IPC_H
#define CL_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <uv.h>

#include "cl/buf.h"
#include "cl/ipc-t.h"

/* ---- sans-I/O codec (ipc_codec.c): no libuv, no globals ---------------------------- */

/* A decoded message. `body` is a JSON object owned by the decoder for the duration of the
 * callback (json_incref it to keep it). */
struct cl_ipc_msg {
    uint16_t type;
    uint16_t flags;
    uint32_t req_id;
    json_t *body;
};

struct cl_ipc_decoder {
    uint8_t hdr[CL_IPC_HDR_LEN];
    size_t hdr_have;
    uint32_t body_len;
    struct cl_buf body;
    int err; /* sticky: once a stream is broken it stays broken */
};

/* Called once per complete frame; returning nonzero stops decoding (cl_ipc_decode returns
 * that value). */
typedef int (*cl_ipc_msg_cb)(const struct cl_ipc_msg *m, void *ud);

void cl_ipc_decoder_init(struct cl_ipc_decoder *d);
void cl_ipc_decoder_deinit(struct cl_ipc_decoder *d);

/*
 * Feeds bytes; calls cb for every complete frame. Returns bytes consumed (== len unless cb
 * stopped early), or: CL_EFRAME_TOOBIG (length over CL_IPC_MAX_FRAME, checked before any
 * allocation), CL_EFRAME_BAD (length < 8 or unknown type), CL_EJSON (body is not a JSON
 * object), CL_ENOMEM. Errors are sticky.
 */
ssize_t cl_ipc_decode(struct cl_ipc_decoder *d, const uint8_t *data, size_t len, cl_ipc_msg_cb cb,
                      void *ud);

/* Appends one frame to out. body may be NULL ("{}"). Returns 0, CL_ENOMEM, CL_EINVAL (bad
 * type), CL_EFRAME_TOOBIG. */
int cl_ipc_encode(struct cl_buf *out, uint16_t type, uint16_t flags, uint32_t req_id,
                  const json_t *body);

/* "HELLO", "CONFIG", ... or "?" */
const char *cl_ipc_type_name(uint16_t type);

/* ---- libuv stream wrapper (ipc_stream.c) ------------------------------------------- */

struct cl_ipc_conn;

struct cl_ipc_conn_cbs {
    /* client: connect finished (err 0 or a libuv error; on error on_close follows) */
    void (*on_connect)(struct cl_ipc_conn *c, int err, void *ud);
    /* a message that is not a reply to one of our requests */
    void (*on_msg)(struct cl_ipc_conn *c, const struct cl_ipc_msg *m, void *ud);
    /* connection gone (err 0 = orderly); every pending request has failed with CL_ECLOSED
     * before this. The object is freed right after it returns. */
    void (*on_close)(struct cl_ipc_conn *c, int err, void *ud);
};

/* Reply callback: err 0 and the reply (body borrowed during the call), CL_ETIMEDOUT,
 * CL_ECLOSED, or the code of an ERROR reply (then m holds it too). */
typedef void (*cl_ipc_reply_cb)(int err, const struct cl_ipc_msg *m, void *ud);

int cl_ipc_conn_new(uv_loop_t *loop, const struct cl_ipc_conn_cbs *cbs, void *ud,
                    struct cl_ipc_conn **out);
/* Connects to a Unix socket path. Returns 0 or an error (then the object is freed). */
int cl_ipc_conn_connect(struct cl_ipc_conn *c, const char *path);
/* Accepts from a listening uv_pipe_t. Returns 0 or an error (then the object is freed). */
int cl_ipc_conn_accept(struct cl_ipc_conn *c, uv_stream_t *server);
/* Wraps an already connected fd (socketpair in tests). */
int cl_ipc_conn_open(struct cl_ipc_conn *c, int fd);

/* Sends a message (copied). Returns 0, CL_ECLOSED or CL_ENOMEM. Never blocks; the amount
 * queued is cl_ipc_conn_queued() — producers of bulk traffic (STATS) skip when it is high. */
int cl_ipc_send(struct cl_ipc_conn *c, uint16_t type, uint16_t flags, uint32_t req_id,
                const json_t *body);
int cl_ipc_reply(struct cl_ipc_conn *c, const struct cl_ipc_msg *req, uint16_t type,
                 const json_t *body);
int cl_ipc_reply_error(struct cl_ipc_conn *c, const struct cl_ipc_msg *req, int code,
                       const char *message);
/* Sends a request and calls cb exactly once (reply, error reply, timeout or close).
 * Returns 0 or an error (then cb is not called). */
int cl_ipc_request(struct cl_ipc_conn *c, uint16_t type, const json_t *body, uint64_t timeout_ms,
                   cl_ipc_reply_cb cb, void *ud);
size_t cl_ipc_conn_queued(const struct cl_ipc_conn *c);
/* Stops/starts reading (backpressure from the consumer). */
void cl_ipc_conn_pause(struct cl_ipc_conn *c, bool pause);
/* Closes; on_close follows asynchronously. */
void cl_ipc_conn_close(struct cl_ipc_conn *c, int err);
void *cl_ipc_conn_ud(const struct cl_ipc_conn *c);
void cl_ipc_conn_set_ud(struct cl_ipc_conn *c, void *ud);

/* ---- small body helpers (ipc_msg.c) ------------------------------------------------ */

/*
 * Validates a body against proto/PROTOCOL.md for its type and flags (request, reply or ERROR):
 * required fields, types, ranges, no unknown fields. Returns 0 or CL_ESCHEMA with e naming the
 * field. cl_ipc_conn runs it on every received frame.
 */
struct cl_jerr;
int cl_ipc_msg_validate(uint16_t type, uint16_t flags, const json_t *body, struct cl_jerr *e);

/* {"code":int,"message":str} from an ERROR reply, with defaults when malformed. */
int cl_ipc_error_code(const json_t *body, const char **message);

#endif
