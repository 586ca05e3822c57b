"""CONNECT requests as a peer gateway could send them, written frame by frame: a malformed one
gets 400 with the reason, on a connection that goes on serving (the next, well-formed CONNECT
on it opens a tunnel)."""
import clharness as h
from test_conn_idle import END_HEADERS, HEADERS, RST_STREAM, H2Client, frame
from test_e2e_basic import link

STATUS_200, STATUS_400 = 0x88, 0x8C  # HPACK static table entries 8 and 12, indexed


def lit(index, value):
    """Literal header field without indexing, name from the static table (RFC 7541 6.2.2)."""
    v = value.encode()
    assert index < 15 and len(v) < 127
    return bytes([index, len(v)]) + v


def lit_new(name, value):
    """Literal header field without indexing, new name."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return bytes([0, len(n)]) + n + bytes([len(v)]) + v


def connect(c, stream, authority, headers=()):
    block = lit(2, "CONNECT") + lit(1, authority)  # :method, :authority
    for name, value in headers:
        block += lit_new(name, value)
    c.s.sendall(frame(HEADERS, END_HEADERS, stream, block))


def response(c, stream):
    """(first header byte, DATA) of the answer on `stream`; RST_STREAM ends it too."""
    status, body = None, b""
    while True:
        f = c.next_frame()
        assert f is not None, "connection ended before the answer on stream %d" % stream
        ftype, flags, sid, payload = f
        if sid != stream:
            continue
        if ftype == HEADERS:
            status = payload[0]
            if flags & 0x1:
                return status, body
        elif ftype == 0:  # DATA
            body += payload
            if flags & 0x1:
                return status, body
        elif ftype == RST_STREAM:
            return status, body


def test_malformed_connect_gets_400_and_the_connection_goes_on(gateways, fabric, echo):
    a, b = gateways("gw-a", "gw-b")
    srv = echo()
    link(a, b, srv.port, h.free_port())
    # gw-b serves; this client holds gw-a's certificate, as the importing gateway would
    c = H2Client(fabric, b, fabric.peer("gw-a"))
    try:
        cases = [
            (":443", (), b"CONNECT needs :authority"),
            ("e" * 64 + ":443", (), b"at most 63 characters"),
            ("echo:443", [("cl-export-namespace", "n" * 64)], b"longer than 63"),
            ("echo:443", [("cl-client-attrs", '{"a": 1}')], b"JSON object of strings"),
            ("echo:443", [("cl-client-attrs", "not json")], b"JSON object of strings"),
            ("echo:443", [("cl-export-namespace", ""), ("cl-export-namespace", "")],
             b"given twice"),
        ]
        stream = 1
        for authority, headers, reason in cases:
            connect(c, stream, authority, headers)
            status, body = response(c, stream)
            assert status == STATUS_400, (authority, headers, status)
            assert reason in body, (authority, body)
            stream += 2
        # the same connection still carries a well-formed CONNECT to a tunnel
        connect(c, stream, "echo:443", [("cl-client-attrs", '{"client.clusterlink.net/x": "y"}')])
        status, _ = response_headers(c, stream)
        assert status == STATUS_200
    finally:
        c.close()
    # the well-formed one made a real tunnel, and only it did
    h.wait_for(lambda: b.ctl_json("status")["counters"].get("exports", {}).get("echo"), 10,
               "export counters")
    assert b.ctl_json("status")["counters"]["exports"]["echo"]["total"] == 1


def response_headers(c, stream):
    """The first header byte of the answer on `stream` (a tunnel's answer has no END_STREAM)."""
    while True:
        f = c.next_frame()
        assert f is not None
        if f[2] == stream and f[0] in (HEADERS, RST_STREAM):
            return (f[3][0] if f[0] == HEADERS else None), f[1]
