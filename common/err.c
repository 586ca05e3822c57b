#include "cl/err.h"

#include <string.h>

#include <uv.h>

const char *cl_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case CL_EOF:
        return "end of stream";
    case CL_EFRAME_TOOBIG:
        return "frame exceeds the size limit";
    case CL_EFRAME_BAD:
        return "malformed frame";
    case CL_EVERSION:
        return "unsupported protocol version";
    case CL_EJSON:
        return "invalid JSON";
    case CL_ESCHEMA:
        return "unexpected message shape";
    case CL_ETLS:
        return "TLS failure";
    case CL_ETLS_EXPIRED:
        return "certificate expired or not yet valid";
    case CL_ETLS_UNKNOWN_CA:
        return "certificate not signed by a trusted CA";
    case CL_ETLS_NAME:
        return "certificate name does not match";
    case CL_ETLS_NO_CERT:
        return "peer sent no certificate";
    case CL_ETLS_ALPN:
        return "no common ALPN protocol (h2 required)";
    case CL_ETLS_CLOSED:
        return "TLS connection closed";
    case CL_ETLS_BAD_FILE:
        return "certificate, key or CA file unreadable or malformed";
    case CL_ETLS_KEY_MISMATCH:
        return "private key does not match the certificate";
    case CL_EH2:
        return "HTTP/2 protocol error";
    case CL_EH2_GOAWAY:
        return "HTTP/2 connection going away";
    case CL_EH2_RESET:
        return "HTTP/2 stream reset";
    case CL_EH2_REFUSED:
        return "HTTP/2 stream refused";
    case CL_EPOLICY_DENY:
        return "denied by policy";
    case CL_ENOTFOUND:
        return "not found";
    case CL_EDUPLICATE:
        return "already exists";
    case CL_ECONFLICT:
        return "conflicts with an existing object";
    case CL_EFORBIDDEN:
        return "forbidden";
    case CL_ESTORE:
        return "state store failure";
    case CL_ESTORE_FULL:
        return "state store full";
    case CL_ESTORE_SCHEMA:
        return "state store schema version not supported";
    case CL_ECLOSED:
        return "closed";
    case CL_EBUSY:
        return "limit reached";
    case CL_ENOPEER:
        return "no candidate left";
    case CL_EHTTP:
        return "malformed HTTP message";
    case CL_EHTTP_TOOBIG:
        return "HTTP header, line or body too large";
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return uv_strerror(err); /* libuv knows every -errno and its own codes */
    return "unknown error";
}
