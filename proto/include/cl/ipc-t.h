#ifndef CL_IPC_T_H
#define CL_IPC_T_H

#include <stddef.h>
#include <stdint.h>

/* Controlplane <-> dataplane IPC: types and constants (spec: proto/PROTOCOL.md). */

/* The newest version this build speaks, and the oldest it still accepts (PROTOCOL.md,
 * "Versioning"). 2 added STATS.certificate. */
#define CL_IPC_VERSION     2
#define CL_IPC_VERSION_MIN 1
#define CL_IPC_HDR_LEN     12                  /* u32 len | u16 type | u16 flags | u32 req_id */
#define CL_IPC_MAX_FRAME   (16u * 1024 * 1024) /* bytes after the length field */

enum cl_ipc_type {
    CL_IPC_HELLO = 1,         /* dp -> cp request: version, worker id */
    CL_IPC_WELCOME = 2,       /* cp -> dp reply to HELLO */
    CL_IPC_CONFIG = 3,        /* cp -> dp full snapshot */
    CL_IPC_CONFIG_DELTA = 4,  /* cp -> dp changes since a revision */
    CL_IPC_ACK = 5,           /* dp -> cp revision applied */
    CL_IPC_AUTHZ_EGRESS = 6,  /* dp -> cp request / reply */
    CL_IPC_AUTHZ_INGRESS = 7, /* dp -> cp request / reply */
    CL_IPC_HTTP_REQUEST = 8,  /* dp -> cp relayed REST request */
    CL_IPC_HTTP_RESPONSE = 9, /* cp -> dp reply to HTTP_REQUEST */
    CL_IPC_STATS = 10,        /* dp -> cp counters */
    CL_IPC_PEER_EVENT = 11,   /* dp -> cp a peer failed */
    CL_IPC_RESYNC = 12,       /* dp -> cp please send a full snapshot */
    CL_IPC_TYPE_COUNT
};

#define CL_IPC_F_REPLY 0x0001u /* answers the request with the same req_id */
#define CL_IPC_F_ERROR 0x0002u /* body is {"code":int,"message":str} */

#endif
