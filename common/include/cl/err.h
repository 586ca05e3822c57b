#ifndef CL_ERR_H
#define CL_ERR_H

#include <errno.h>

/*
 * Error convention (STYLE.md section 5): 0 is success, a negative value is an error.
 * Values from errno and libuv are -errno and pass through unchanged. Project codes live in
 * -10000..-10999, as LMDB reserves its own range.
 */
#define CL_EAGAIN    (-EAGAIN)
#define CL_ENOMEM    (-ENOMEM)
#define CL_EINVAL    (-EINVAL)
#define CL_ENOENT    (-ENOENT)
#define CL_EEXIST    (-EEXIST)
#define CL_ETIMEDOUT (-ETIMEDOUT)

enum cl_err {
    CL_EBASE = -10000,
    CL_EOF = -10001,               /* orderly end of stream */
    CL_EFRAME_TOOBIG = -10002,     /* IPC frame longer than the cap */
    CL_EFRAME_BAD = -10003,        /* IPC frame header malformed */
    CL_EVERSION = -10004,          /* protocol version not supported */
    CL_EJSON = -10005,             /* body is not valid JSON */
    CL_ESCHEMA = -10006,           /* JSON valid, but not the expected shape */
    CL_ETLS = -10010,              /* TLS failure, no finer reason */
    CL_ETLS_EXPIRED = -10011,      /* peer certificate expired or not yet valid */
    CL_ETLS_UNKNOWN_CA = -10012,   /* peer certificate not signed by our CA */
    CL_ETLS_NAME = -10013,         /* peer certificate does not carry the expected name */
    CL_ETLS_NO_CERT = -10014,      /* peer sent no certificate */
    CL_ETLS_ALPN = -10015,         /* no common ALPN protocol (we need h2) */
    CL_ETLS_CLOSED = -10016,       /* TLS close_notify received */
    CL_ETLS_BAD_FILE = -10017,     /* certificate, key or CA file unreadable or malformed */
    CL_ETLS_KEY_MISMATCH = -10018, /* private key does not match the certificate */
    CL_EH2 = -10020,               /* HTTP/2 protocol error */
    CL_EH2_GOAWAY = -10021,        /* connection going away */
    CL_EH2_RESET = -10022,         /* stream reset by peer */
    CL_EH2_REFUSED = -10023,       /* stream refused */
    CL_EPOLICY_DENY = -10030,      /* denied by policy */
    CL_ENOTFOUND = -10031,         /* no such object */
    CL_EDUPLICATE = -10032,        /* object exists */
    CL_ECONFLICT = -10033,         /* conflicts with another object (e.g. port taken) */
    CL_EFORBIDDEN = -10034,        /* caller not allowed */
    CL_ESTORE = -10040,            /* state store failure */
    CL_ESTORE_FULL = -10041,       /* state store map full */
    CL_ESTORE_SCHEMA = -10042,     /* state store written by an incompatible version */
    CL_ECLOSED = -10050,           /* object closed or closing */
    CL_EBUSY = -10051,             /* limit reached (queue full, too many) */
    CL_ENOPEER = -10052,           /* no candidate left */
    CL_EHTTP = -10060,             /* malformed HTTP/1.1 message */
    CL_EHTTP_TOOBIG = -10061,      /* HTTP header, line or body over its cap */
    CL_EMAX = -10999,
};

/* Returns a static string for any code: 0, -errno, libuv codes, CL_E*. Never NULL. */
const char *cl_strerror(int err);

#endif
