"""CONNECT requests as a peer gateway could send them, written frame by frame (HPACK from
Debian's python3-hpack): a malformed one gets 400 with the reason, on a connection that goes on
serving (the next, well-formed CONNECT on it opens a tunnel); a caller whose certificate names no
configured peer gets 403."""
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
