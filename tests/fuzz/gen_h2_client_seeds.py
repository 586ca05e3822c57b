#!/usr/bin/python3
"""Writes the seed inputs of fuzz_h2_client (tests/fuzz/corpus/h2_client/seed-*): server-side
HTTP/2 byte streams answering the client's streams 1, 3, 5 (CONNECT) and 7, 9 (fetches).
HPACK uses only static-table indexes (:status 200 = 0x88, 404 = 0x8d) and literals without
indexing, so the frames are written by hand."""
import os
import struct
import sys


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 1, 4, 1
S200, S404 = b"\x88", b"\x8d"


def status(code):  # literal without indexing, name = static index 8 (:status)
    v = str(code).encode()
    return b"\x08" + bytes([len(v)]) + v


def hdr(sid, block, end=False):
    return frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, block)


def data(sid, body, end=False):
    return frame(DATA, END_STREAM if end else 0, sid, body)


prelude = frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0)
seeds = {
    # every stream answered: tunnels echo and end, fetches get a body
    "all-answered": prelude + hdr(1, S200) + data(1, b"hello, tunnel") + data(1, b"", True) +
    hdr(3, S200) + data(3, b"", True) + hdr(5, S200) + data(5, b"bye", True) +
    hdr(7, S200) + data(7, b'{"name":"srv","version":"0.1.0","labels":{}}', True) +
    hdr(9, S200) + data(9, b"[]", True),
    # refusals as the ingress gives them
    "refused": prelude + hdr(1, status(403)) + data(1, b'{"error":{"message":"denied"}}', True) +
    hdr(3, S404, True) + hdr(5, status(502), True) + frame(RST, 0, 7, struct.pack(">I", 7)) +
    hdr(9, status(503), True),
    # a fetch body over its limit, then GOAWAY with streams left open
    "body-too-long-goaway": prelude + hdr(9, S200) + data(9, b"x" * 100) +
    frame(GOAWAY, 0, 0, struct.pack(">II", 3, 0)) + hdr(1, S200),
    # resets, window updates and pings
    "resets-pings": prelude + frame(WINDOW, 0, 0, struct.pack(">I", 1 << 20)) +
    frame(PING, 0, 0, b"12345678") + frame(RST, 0, 1, struct.pack(">I", 8)) +
    frame(RST, 0, 3, struct.pack(">I", 2)) + hdr(5, S200) +
    frame(WINDOW, 0, 5, struct.pack(">I", 65535)) + data(5, b"a" * 3000, True),
    # a protocol error: DATA on a stream never opened
    "data-on-idle-stream": prelude + data(11, b"nobody asked"),
    # interim response, then trailers
    "interim-trailers": prelude + hdr(1, status(100)) + hdr(1, S200) + data(1, b"x") +
    hdr(1, b"\x40\x01a\x01b", True),
}
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                          "corpus", "h2_client")
for name, b in seeds.items():
    with open(os.path.join(out, "seed-" + name), "wb") as f:
        f.write(b)
