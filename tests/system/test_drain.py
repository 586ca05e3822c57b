"""SIGTERM drains a dataplane: it stops accepting, lets the open tunnels finish up to the drain
deadline, and exits 0 (real gateways on loopback; the master forwards the signal to its
workers)."""
import signal
import socket
import time

import pytest

import clharness as h
from test_checklist import refused
from test_e2e_basic import linked_pair


def recv_until_eof(s):
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            return data
        data += d


def exchange(s, payload):
    s.sendall(payload)
    return h.recv_exact(s, len(payload))


def exit_code(proc, timeout):
    try:
        return proc.p.wait(timeout=timeout * h.MULT)
    except Exception:
        return None


def test_entry_side_finishes_open_tunnels_then_exits(gateways, echo):
    # a deadline far beyond the test: exiting early shows it waited for the tunnels, not the clock
    a, b, _, port = linked_pair(gateways, echo, extra_dp=("--drain-timeout", "60000"))
    s = h.connect(port, timeout=30)
    assert exchange(s, b"before") == b"before"
    a.dp.p.send_signal(signal.SIGTERM)
    # the import port closes in every worker: new clients are refused, not half-served
    h.wait_for(lambda: not h.can_connect(port), 10, "import port closed")
    assert a.dp.alive(), "exited with a tunnel open"
    payload = bytes(range(256)) * 4096  # 1 MiB
    assert exchange(s, payload) == payload  # the open tunnel still carries bytes both ways
    s.sendall(b"last words")
    s.shutdown(socket.SHUT_WR)  # the client ends: the echo answers, then the tunnel closes
    assert recv_until_eof(s) == b"last words"
    s.close()
    assert exit_code(a.dp, 10) == 0, a.dp.tail()  # within 10 s of its last tunnel ending
    assert "drained, exiting" in a.dp.tail(200)
    assert "drain deadline" not in a.dp.tail(200)


def test_drain_deadline_resets_what_is_left(gateways, echo):
    a, b, _, port = linked_pair(gateways, echo, extra_dp=("--drain-timeout", "1000"))
    s = h.connect(port, timeout=30)
    assert exchange(s, b"before") == b"before"
    t0 = time.monotonic()
    a.dp.p.send_signal(signal.SIGTERM)
    assert exit_code(a.dp, 15) == 0, a.dp.tail()
    assert time.monotonic() - t0 >= 0.9  # it waited for the deadline (1 s) ...
    assert "drain deadline: aborting the remaining tunnels" in a.dp.tail(200)
    with pytest.raises(ConnectionResetError):  # ... then reset the tunnel it still had
        s.sendall(b"anyone?")
        recv_until_eof(s)
    s.close()


def test_exporting_side_drains_and_its_successor_serves(gateways, echo):
    a, b, _, port = linked_pair(gateways, echo, extra_dp=("--drain-timeout", "60000"))
    s = h.connect(port, timeout=30)
    assert exchange(s, b"before") == b"before"
    b.dp.p.send_signal(signal.SIGTERM)
    # b takes no new tunnels: its public port closes, its connections get GOAWAY, and a stream
    # that arrives anyway is answered 503 (either alone refuses; this checks what a client
    # sees). With no other gateway to try, a resets its new clients.
    h.wait_for(lambda: not h.can_connect(b.port), 10, "b's public port closed")
    assert refused(port)  # refused, or reset with no reply
    assert b.dp.alive(), "exited with a tunnel open"
    assert exchange(s, b"during") == b"during"  # the tunnel b already carries goes on
    s.shutdown(socket.SHUT_WR)
    assert recv_until_eof(s) == b""
    s.close()
    assert exit_code(b.dp, 10) == 0, b.dp.tail()
    # a new dataplane on the same port: a dials it for the next client
    b.start_dp(port=b.port)
    assert h.wait_for(lambda: h.echo_roundtrip(port, b"again") == b"again", 15,
                      "tunnels through b's new dataplane")
