"""HTTP/2 connections with no stream are closed gracefully (--conn-idle-timeout).

- A raw TLS + HTTP/2 client that handshakes and then sits there gets GOAWAY (NO_ERROR, the last
  stream it opened) once the timeout passes, then the end of the connection.
- A connection with a stream open is not closed however quiet it is.
- A pooled connection between two gateways idles out with GOAWAY and the next tunnel dials a
  new one without an error being counted.
(The tunnel idle timeout, --idle-timeout, and its idleClosed counter: test_dataplane_timeouts.)
"""
import os
import socket
import ssl
import struct
import time

import clharness as h
from test_e2e_basic import linked_pair

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, stream) + payload


class H2Client:
    """Just enough HTTP/2 over TLS to open a connection, send a request and watch frames."""

    def __init__(self, fabric, gw, certdir):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(fabric.ca)
        ctx.load_cert_chain(os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem"))
        ctx.set_alpn_protocols(["h2"])
        # Python 3.10+ treats a TCP end without close_notify as a clean one by default: undo that
        ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        raw = socket.create_connection(("127.0.0.1", gw.port), timeout=10 * h.MULT)
        # ragged EOFs raise, so a close without close_notify shows as such (self.end)
        self.s = ctx.wrap_socket(raw, server_hostname=gw.name, suppress_ragged_eofs=False)
        self.end = None  # how the connection ended: "close_notify", "eof" (ragged) or "reset"
        assert self.s.selected_alpn_protocol() == "h2"
        self.buf = b""
        self.s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0))

    def get(self, stream, authority, path):
        """GET with END_STREAM; HPACK literals without indexing, no Huffman."""
        def lit(index, value):
            v = value.encode()
            return bytes([index, len(v)]) + v
        block = b"\x82\x87" + lit(4, path) + lit(1, authority)  # :method GET, :scheme https
        self.s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, stream, block))

    def next_frame(self):
        """(type, flags, stream, payload), or None at the end of the connection."""
        while True:
            if len(self.buf) >= 9:
                n = struct.unpack(">I", b"\0" + self.buf[:3])[0]
                if len(self.buf) >= 9 + n:
                    ftype, flags, stream = struct.unpack(">BBI", self.buf[3:9])
                    payload = self.buf[9:9 + n]
                    self.buf = self.buf[9 + n:]
                    if ftype == SETTINGS and not flags & ACK:
                        self.s.sendall(frame(SETTINGS, ACK, 0))
                    return ftype, flags, stream & 0x7FFFFFFF, payload
            try:
                got = self.s.recv(65536)
                if not got:
                    self.end = "close_notify"
            except ssl.SSLZeroReturnError:
                got, self.end = b"", "close_notify"
            except ssl.SSLEOFError:
                got, self.end = b"", "eof"
            except ssl.SSLError as e:  # OpenSSL 3 names a TCP end without close_notify this way
                if "UNEXPECTED_EOF" not in str(e):
                    raise
                got, self.end = b"", "eof"
            except ConnectionResetError:
                got, self.end = b"", "reset"
            if not got:
                return None
            self.buf += got

    def until_goaway_then_end(self):
        """Reads to the end: the GOAWAY's (last stream id, error code, time), the frame types
        seen after it, and the time the connection ended."""
        goaway, after = None, []
        while True:
            f = self.next_frame()
            if f is None:
                return goaway, after, time.monotonic()
            if goaway is not None:
                after.append(f[0])
            elif f[0] == GOAWAY:
                last, code = struct.unpack(">II", f[3][:8])
                goaway = (last & 0x7FFFFFFF, code, time.monotonic())

    def close(self):
        self.s.close()


def test_idle_connection_gets_goaway_then_eof(gateways, fabric):
    a = gateways("gw-a", extra_dp=["--conn-idle-timeout", "500"])
    c = H2Client(fabric, a, fabric.peer("gw-b"))
    t0 = time.monotonic()
    goaway, after, end = c.until_goaway_then_end()
    c.close()
    assert goaway is not None, "no GOAWAY before the end of the connection"
    assert goaway[:2] == (0, 0)  # no stream was opened; NO_ERROR
    assert 0.4 <= goaway[2] - t0 <= 5 * h.MULT, goaway[2] - t0
    assert after == [] and end - goaway[2] < 2 * h.MULT  # then the end, promptly
    assert c.end == "close_notify", c.end  # a clean TLS end, not a dropped socket

    # with a request first: the GOAWAY names it as the last stream, and the timeout runs
    # from the moment it ended
    c = H2Client(fabric, a, fabric.peer("gw-b"))
    c.get(1, "gw-a", "/api/v1/peer/health")
    ended = None
    while ended is None:
        f = c.next_frame()
        assert f is not None and f[0] != GOAWAY, f
        if f[2] == 1 and (f[0] in (HEADERS, DATA) and f[1] & END_STREAM or f[0] == RST_STREAM):
            ended = time.monotonic()
    goaway, after, end = c.until_goaway_then_end()
    c.close()
    assert goaway is not None and goaway[:2] == (1, 0), goaway
    assert 0.4 <= goaway[2] - ended <= 5 * h.MULT, goaway[2] - ended
    assert after == []
    assert a.dp.alive()


def test_frames_crossing_the_goaway_meet_a_clean_end(gateways, fabric):
    """After its idle GOAWAY the gateway sends close_notify and reads on until the client
    closes (lingering close): PINGs that crossed the GOAWAY do not turn the end into a reset,
    and the gateway serves the next connection."""
    a = gateways("gw-a", extra_dp=["--conn-idle-timeout", "300"])
    c = H2Client(fabric, a, fabric.peer("gw-b"))
    while True:
        f = c.next_frame()
        assert f is not None, c.end
        if f[0] == GOAWAY:
            break
    for i in range(20):  # frames the gateway reads after it has said its last word
        c.s.sendall(frame(PING, 0, 0, struct.pack(">Q", i)))
    while c.next_frame() is not None:
        pass
    assert c.end == "close_notify", c.end
    c.close()
    assert a.dp.alive()
    # the gateway still serves new connections
    c = H2Client(fabric, a, fabric.peer("gw-b"))
    c.get(1, "gw-a", "/api/v1/peer/health")
    f = c.next_frame()
    while f is not None and f[0] in (SETTINGS, WINDOW_UPDATE):
        f = c.next_frame()
    assert f is not None and f[0] == HEADERS and f[2] == 1, f
    c.close()


def test_connection_with_open_stream_is_not_idle(gateways, echo):
    a, b, srv, port = linked_pair(gateways, echo, extra_dp=["--conn-idle-timeout", "400"])
    # a quiet tunnel (one stream on the pooled connection) outlives the connection idle
    # timeout several times over on both gateways
    s = h.connect(port)
    s.sendall(b"1")
    assert s.recv(10) == b"1"
    time.sleep(1.5)
    s.sendall(b"2")
    assert s.recv(10) == b"2"
    s.close()
    # with the tunnel gone, the importing gateway's pooled connection says GOAWAY
    # (after 9/10 of the timeout) and the next tunnel dials a new one, with no error
    closed = "connection to peer gw-b at 127.0.0.1:%d closed\"" % b.port
    h.wait_for(lambda: closed in read(a.dp), 10, "pooled connection idled out")
    assert h.echo_roundtrip(port, b"again") == b"again"

    def counters():
        return a.ctl_json("status")["counters"], b.ctl_json("status")["counters"]
    h.wait_for(lambda: counters()[0]["imports"]["echo"]["total"] >= 3, 10, "stats")
    ca, cb = counters()
    assert ca["imports"]["echo"]["errors"] == 0
    assert ca["peers"]["gw-b"]["errors"] == 0
    assert cb["exports"]["echo"]["errors"] == 0
    assert ca["imports"]["echo"]["idleClosed"] == 0  # the tunnel idle timeout is 1 h


def read(proc):
    try:
        with open(proc.log_path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""
