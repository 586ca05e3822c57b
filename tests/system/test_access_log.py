"""The dataplane's access log (cl-dataplane --access-log): one line per client connection on
each gateway it crosses, saying which import or export, which peer, which client, the CONNECT
status, the bytes each way, how long it lasted and how it ended, whatever --log-level says."""
import re
import socket
import time

import clharness as h
from test_checklist import policy, refused
from test_connect_requests import Caller
from test_e2e_basic import link, linked_pair

FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
QUIET = ["--access-log", "--log-level", "warn"]


def access_lines(gw):
    """The access lines of gw's dataplane log, each a dict of its fields."""
    out = []
    with open(gw.dp.log_path, errors="replace") as f:
        for line in f:
            if " mod=dp.access " in line:
                out.append({k: v[1:-1] if v.startswith('"') else v
                            for k, v in FIELD.findall(line)})
    return out


def new_lines(gw, before, match, n=1):
    """Waits until gw has logged n access lines for which match(line) holds, after its first
    `before`; returns those. A connection's line is written when the gateway has closed it,
    which may be just after its client saw the end: an earlier connection's line can still
    arrive after `before` was taken."""
    def found():
        got = [x for x in access_lines(gw)[before:] if match(x)]
        return got if len(got) >= n else None
    return h.wait_for(found, 10, "%d access line(s) on %s" % (n, gw.name))


def test_a_tunnel_is_logged_on_both_gateways(gateways, echo):
    a, b = gateways("gw-a", "gw-b", extra_dp=QUIET)
    tag = b"greetings from gw-b\n"  # the service sends more than it is sent
    srv = echo(tag)
    port = h.free_port()
    link(a, b, srv.port, port)
    h.wait_for(lambda: h.echo_roundtrip(port, b"x") == tag + b"x", 10, "tunnel up")
    na, nb = len(access_lines(a)), len(access_lines(b))
    payload = bytes(range(256)) * 40 + b"tail"  # 10,244 bytes
    s = h.connect(port)
    client = "127.0.0.1:%d" % s.getsockname()[1]
    s.sendall(payload)
    assert h.recv_exact(s, len(tag) + len(payload)) == tag + payload
    time.sleep(0.3)
    s.shutdown(socket.SHUT_WR)
    assert s.recv(1) == b""  # both directions ended: a clean close on both gateways
    s.close()

    eg = new_lines(a, na, lambda x: x.get("client") == client)
    assert len(eg) == 1, access_lines(a)[na:]
    e = eg[0]
    assert (e["level"], e["msg"], e["dir"], e["import"], e["peer"], e["status"]) == \
        ("info", "connection", "egress", "echo", "gw-b", "200"), e
    assert (e["client_bytes"], e["service_bytes"], e["end"]) == \
        (str(len(payload)), str(len(tag) + len(payload)), "closed"), e
    assert 300 <= int(e["ms"]) < 10000, e
    assert int(e["conn"]) > 0

    ing = new_lines(b, nb, lambda x: x.get("client_bytes") == str(len(payload)))
    assert len(ing) == 1, access_lines(b)[nb:]
    i = ing[0]
    assert (i["dir"], i["export"], i["peer"], i["status"], i["service_bytes"], i["end"]) == \
        ("ingress", "echo", "gw-a", "200", str(len(tag) + len(payload)), "closed"), i
    assert "client" not in i and 250 <= int(i["ms"]) <= int(e["ms"]) + 50, i

    # --log-level warn hid everything else: the access log does not hang on the level
    for gw in (a, b):
        with open(gw.dp.log_path, errors="replace") as f:
            chatty = [ln for ln in f if " level=info " in ln and " mod=dp.access " not in ln
                      and " proc=dp worker=" in ln]
        assert chatty == [], chatty[:3]


def test_a_refusal_is_logged_with_its_status_and_reason(gateways, echo):
    a, b, srv, port = linked_pair(gateways, echo, extra_dp=QUIET)
    na, nb = len(access_lines(a)), len(access_lines(b))
    policy(b, "deny-a", "deny", from_peer="gw-a")
    h.wait_for(lambda: refused(port), 10, "the exporting side's deny takes effect")
    eg = [x for x in access_lines(a)[na:] if x["status"] == "403"]
    assert eg, access_lines(a)[na:]
    assert (eg[-1]["dir"], eg[-1]["peer"], eg[-1]["end"], eg[-1]["client_bytes"]) == \
        ("egress", "gw-b", "no candidate left", "0"), eg[-1]
    ing = new_lines(b, nb, lambda x: x["status"] == "403")
    assert ing[-1]["dir"] == "ingress" and ing[-1]["peer"] == "gw-a", ing[-1]
    # the controlplane's reason and the deciding policy, which the peer is not told
    assert ing[-1]["end"] == "denied by ingress policy: deny-a", ing[-1]

    # refused by the importing side's own policy: a line there, no CONNECT, nothing on b
    b.ctl("delete", "policy", "--name", "deny-a")
    h.wait_for(lambda: not refused(port), 10, "deny lifted")
    policy(a, "deny-out", "deny")
    h.wait_for(lambda: refused(port), 10, "the importing side's deny takes effect")
    time.sleep(0.3)  # the last lines of the connections before (new_lines) are written by now
    nb = len(access_lines(b))
    na = len(access_lines(a))
    assert refused(port)
    e = new_lines(a, na, lambda x: x["status"] == "0")[-1]
    assert (e["dir"], e["import"], e["status"], "peer" in e) == ("egress", "echo", "0", False), e
    assert e["end"] == "denied by egress policy: deny-out", e
    time.sleep(0.2)
    assert access_lines(b)[nb:] == []


def test_no_access_log_unless_asked(gateways, echo):
    a, b, srv, port = linked_pair(gateways, echo)
    assert h.echo_roundtrip(port, b"ping") == b"ping"
    time.sleep(0.2)
    assert access_lines(a) == [] and access_lines(b) == []


def test_a_connect_refused_before_its_tunnel_is_logged(gateways, fabric, echo):
    a, b, srv, port = linked_pair(gateways, echo, extra_dp=QUIET)
    nb = len(access_lines(b))
    c = Caller(fabric, b, fabric.peer("gw-a"))  # as gw-a would call, frame by frame
    try:
        c.connect(1, ":443")
        assert c.answer(1)["status"] == 400
        c.connect(3, "echo:443", [("cl-export-namespace", "ns1"),
                                  ("cl-client-attrs", "not json")])
        assert c.answer(3)["status"] == 400
    finally:
        c.close()
    first, second = new_lines(b, nb, lambda x: x["status"] == "400", 2)[:2]
    assert (first["dir"], first["peer"], first["status"], "conn" in first, "export" in first) == \
        ("ingress", "gw-a", "400", False, False), first
    assert first["end"].startswith("CONNECT needs :authority"), first
    assert (second["export"], second["namespace"], second["status"]) == ("echo", "ns1", "400")
    assert "JSON object of strings" in second["end"], second
