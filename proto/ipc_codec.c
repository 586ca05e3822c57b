#include <string.h>

#include "cl/err.h"
#include "cl/ipc.h"
#include "cl/json.h"
#include "cl/mem.h"

static const char *const type_names[CL_IPC_TYPE_COUNT] = {
    [CL_IPC_HELLO] = "HELLO",
    [CL_IPC_WELCOME] = "WELCOME",
    [CL_IPC_CONFIG] = "CONFIG",
    [CL_IPC_CONFIG_DELTA] = "CONFIG_DELTA",
    [CL_IPC_ACK] = "ACK",
    [CL_IPC_AUTHZ_EGRESS] = "AUTHZ_EGRESS",
    [CL_IPC_AUTHZ_INGRESS] = "AUTHZ_INGRESS",
    [CL_IPC_HTTP_REQUEST] = "HTTP_REQUEST",
    [CL_IPC_HTTP_RESPONSE] = "HTTP_RESPONSE",
    [CL_IPC_STATS] = "STATS",
    [CL_IPC_PEER_EVENT] = "PEER_EVENT",
    [CL_IPC_RESYNC] = "RESYNC",
};

const char *cl_ipc_type_name(uint16_t type)
{
    if (type == 0 || type >= CL_IPC_TYPE_COUNT)
        return "?";
    return type_names[type];
}

void cl_ipc_decoder_init(struct cl_ipc_decoder *d)
{
    memset(d, 0, sizeof(*d));
    cl_buf_init(&d->body, CL_IPC_MAX_FRAME);
}

void cl_ipc_decoder_deinit(struct cl_ipc_decoder *d)
{
    if (d != NULL)
        cl_buf_deinit(&d->body);
}

static int deliver(struct cl_ipc_decoder *d, const uint8_t *body, size_t len, cl_ipc_msg_cb cb,
                   void *ud)
{
    struct cl_ipc_msg m;
    json_t *j;
    int rc;

    m.type = cl_read_u16(d->hdr + 4);
    m.flags = cl_read_u16(d->hdr + 6);
    m.req_id = cl_read_u32(d->hdr + 8);
    if ((j = cl_json_loadb(body, len, NULL)) == NULL)
        return CL_EJSON; /* also on out of memory: a frame we cannot read breaks the stream */
    if (!json_is_object(j)) {
        json_decref(j);
        return CL_EJSON;
    }
    m.body = j;
    rc = cb(&m, ud);
    json_decref(j);
    return rc;
}

ssize_t cl_ipc_decode(struct cl_ipc_decoder *d, const uint8_t *data, size_t len, cl_ipc_msg_cb cb,
                      void *ud)
{
    size_t off = 0;
    int rc;

    if (d->err != 0)
        return d->err;
    while (off < len) {
        if (d->hdr_have < CL_IPC_HDR_LEN) {
            size_t n = CL_MIN(CL_IPC_HDR_LEN - d->hdr_have, len - off);
            memcpy(d->hdr + d->hdr_have, data + off, n);
            d->hdr_have += n;
            off += n;
            if (d->hdr_have < CL_IPC_HDR_LEN)
                break;
            uint32_t flen = cl_read_u32(d->hdr);
            uint16_t type = cl_read_u16(d->hdr + 4);
            if (flen > CL_IPC_MAX_FRAME)
                return d->err = CL_EFRAME_TOOBIG; /* before any allocation */
            if (flen < CL_IPC_HDR_LEN - 4 || type == 0 || type >= CL_IPC_TYPE_COUNT)
                return d->err = CL_EFRAME_BAD;
            d->body_len = flen - (CL_IPC_HDR_LEN - 4);
            cl_buf_reset(&d->body);
        }
        size_t want = d->body_len - d->body.len;
        size_t n = CL_MIN(want, len - off);
        if (d->body.len == 0 && n == want) {
            /* whole body available in the input: no copy */
            rc = deliver(d, data + off, n, cb, ud);
            off += n;
        } else {
            if (n > 0 && cl_buf_append(&d->body, data + off, n) != 0)
                return d->err = CL_ENOMEM;
            off += n;
            if (d->body.len < d->body_len)
                break;
            rc = deliver(d, cl_buf_ptr(&d->body), d->body.len, cb, ud);
            cl_buf_reset(&d->body);
        }
        d->hdr_have = 0;
        if (rc == CL_EJSON)
            return d->err = CL_EJSON;
        if (rc != 0)
            return rc;
    }
    return (ssize_t)off;
}

int cl_ipc_encode(struct cl_buf *out, uint16_t type, uint16_t flags, uint32_t req_id,
                  const json_t *body)
{
    char *js = NULL;
    size_t blen;
    uint8_t *p;

    if (type == 0 || type >= CL_IPC_TYPE_COUNT)
        return CL_EINVAL;
    if (body != NULL && (js = cl_json_dumps(body)) == NULL)
        return CL_ENOMEM;
    blen = js != NULL ? strlen(js) : 2;
    if (blen + CL_IPC_HDR_LEN - 4 > CL_IPC_MAX_FRAME) {
        cl_free(&js);
        return CL_EFRAME_TOOBIG;
    }
    if ((p = cl_buf_reserve(out, CL_IPC_HDR_LEN + blen)) == NULL) {
        cl_free(&js);
        return CL_ENOMEM;
    }
    cl_write_u32(p, (uint32_t)(blen + CL_IPC_HDR_LEN - 4));
    cl_write_u16(p + 4, type);
    cl_write_u16(p + 6, flags);
    cl_write_u32(p + 8, req_id);
    memcpy(p + CL_IPC_HDR_LEN, js != NULL ? js : "{}", blen);
    cl_buf_commit(out, CL_IPC_HDR_LEN + blen);
    cl_free(&js);
    return 0;
}

int cl_ipc_error_code(const json_t *body, const char **message)
{
    json_t *c = json_object_get(body, "code");
    json_t *m = json_object_get(body, "message");

    if (message != NULL)
        *message = json_is_string(m) ? json_string_value(m) : "unknown error";
    if (json_is_integer(c) && json_integer_value(c) < 0 && json_integer_value(c) > -20000)
        return (int)json_integer_value(c);
    return CL_ESCHEMA;
}
