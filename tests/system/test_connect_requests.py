"""Requests on the public port written frame by frame (HPACK from Debian's python3-hpack), as a
peer gateway or anyone holding a fabric certificate could send them: a malformed CONNECT gets 400
with the reason, on a connection that goes on serving (the next, well-formed CONNECT on it opens a
tunnel); a caller whose certificate names no configured peer gets 403; a REST request whose path
or method does not fit is refused whole, never cut short."""
import hpack

import clharness as h
from test_conn_idle import DATA, END_HEADERS, END_STREAM, HEADERS, RST_STREAM, H2Client, frame
from test_e2e_basic import link


class Caller(H2Client):
    """H2Client with real HPACK both ways (the decoder sees every header block, in order)."""

    def __init__(self, *a):
        super().__init__(*a)
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.answers = {}  # stream -> {"status", "body", "ended", "reset"}

    def connect(self, stream, authority, headers=()):
        block = self.enc.encode([(":method", "CONNECT"), (":authority", authority)] +
                                list(headers))
        self.s.sendall(frame(HEADERS, END_HEADERS, stream, block))

    def request(self, stream, method, path):
        block = self.enc.encode([(":method", method), (":scheme", "https"), (":path", path),
                                 (":authority", "gw")])
        self.s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, stream, block))

    def answer(self, stream, until_end=True):
        """The answer on `stream`: its :status and body, read until END_STREAM or RST_STREAM
        (or, with until_end False, until the response headers)."""
        a = self.answers.setdefault(stream, {"status": None, "body": b"", "ended": False,
                                             "reset": None})
        while not (a["ended"] or a["reset"] is not None or
                   (not until_end and a["status"] is not None)):
            f = self.next_frame()
            assert f is not None, "connection ended before the answer on stream %d" % stream
            ftype, flags, sid, payload = f
            got = self.answers.setdefault(sid, {"status": None, "body": b"", "ended": False,
                                                "reset": None})
            if ftype == HEADERS:
                hdrs = dict(self.dec.decode(payload))  # every block, to keep HPACK in step
                got["status"] = int(hdrs[":status"])
            elif ftype == DATA:
                got["body"] += payload
            elif ftype == RST_STREAM:
                got["reset"] = int.from_bytes(payload[:4], "big")
            if ftype in (HEADERS, DATA) and flags & END_STREAM:
                got["ended"] = True
        return a


def test_malformed_connect_gets_400_and_the_connection_goes_on(gateways, fabric, echo):
    a, b = gateways("gw-a", "gw-b")
    srv = echo()
    link(a, b, srv.port, h.free_port())
    # gw-b serves; this client holds gw-a's certificate, as the importing gateway would
    c = Caller(fabric, b, fabric.peer("gw-a"))
    try:
        cases = [
            (":443", [], b"CONNECT needs :authority"),
            ("e" * 64 + ":443", [], b"at most 63 characters"),
            ("echo:443", [("cl-export-namespace", "n" * 64)], b"longer than 63"),
            ("echo:443", [("cl-client-attrs", '{"a": 1}')], b"JSON object of strings"),
            ("echo:443", [("cl-client-attrs", "not json")], b"JSON object of strings"),
            ("echo:443", [("cl-export-namespace", ""), ("cl-export-namespace", "")],
             b"given twice"),
        ]
        stream = 1
        for authority, headers, reason in cases:
            c.connect(stream, authority, headers)
            ans = c.answer(stream)
            assert ans["status"] == 400 and ans["reset"] is None, (authority, headers, ans)
            assert reason in ans["body"], (authority, ans)
            stream += 2
        # the same connection still carries a well-formed CONNECT to a tunnel, bytes and all
        c.connect(stream, "echo:443", [("cl-client-attrs", '{"client.clusterlink.net/x": "y"}')])
        assert c.answer(stream, until_end=False)["status"] == 200
        c.s.sendall(frame(DATA, END_STREAM, stream, b"through"))
        ans = c.answer(stream)
        assert ans["body"] == b"through" and ans["reset"] is None
    finally:
        c.close()
    # the well-formed one made a real tunnel, and only it did
    h.wait_for(lambda: b.ctl_json("status")["counters"].get("exports", {}).get("echo"), 10,
               "export counters")
    assert b.ctl_json("status")["counters"]["exports"]["echo"]["total"] == 1


def test_caller_that_is_no_peer_gets_403(gateways, fabric, echo):
    a, b = gateways("gw-a", "gw-b")
    srv = echo()
    link(a, b, srv.port, h.free_port())
    # a valid fabric certificate, but gw-b has no peer of that name
    c = Caller(fabric, b, fabric.peer("gw-c"))
    try:
        c.connect(1, "echo:443")
        ans = c.answer(1)
        assert ans["status"] == 403 and ans["reset"] is None, ans
        assert b"unknown peer" in ans["body"]
    finally:
        c.close()


def test_rest_request_too_long_is_refused_whole(gateways, fabric):
    a = gateways("gw-a")
    c = Caller(fabric, a, fabric.peer("gw-a") + "/gwctl")  # the admin certificate
    try:
        c.request(1, "GET", "/api/v1/peers")
        assert c.answer(1)["status"] == 200
        # cut to 511 bytes this would still be a valid list request
        c.request(3, "GET", "/api/v1/peers?" + "x" * 600)
        ans = c.answer(3)
        assert ans["status"] == 414 and b"longer than 511" in ans["body"], ans
        c.request(5, "GET", "/api/v1/peers?" + "x" * 490)  # 504 bytes: fits, reaches the API
        assert c.answer(5)["status"] == 200
        c.request(7, "X" * 20, "/api/v1/peers")
        ans = c.answer(7)
        assert ans["status"] == 501 and b"unknown method" in ans["body"], ans
        c.request(9, "GET", "/api/v1/peers")  # and the connection goes on
        assert c.answer(9)["status"] == 200
    finally:
        c.close()
