"""IPC versions across an upgrade: a worker offers the newest version it speaks, a controlplane
answers with the newest both speak, and a worker refused by an older controlplane offers the
version before. Version 2 added STATS.certificate, which `gwctl status` shows per worker.

One side is the real binary, the other a stand-in speaking the wire format of PROTOCOL.md: a
version-1 controlplane for the real dataplane, a version-1 worker for the real controlplane.
"""
import json
import socket
import struct
import threading

import clharness as h
from test_controlplane_crash import Ipc

HELLO, WELCOME, CONFIG, ACK, STATS = 1, 2, 3, 5, 10
REPLY, ERROR = 1, 2
CL_EVERSION = -10004
V1_STATS_KEYS = {"worker", "imports", "exports", "peers"}


class OldControlplane:
    """A controlplane of IPC version 1 on `path`: refuses any other version as such a
    controlplane does, configures each worker with an empty snapshot, and keeps what it hears
    (list appends: safe from the connection threads)."""

    def __init__(self, path, name):
        self.name = name
        self.hellos = []  # versions offered, in order
        self.stats = []  # STATS bodies
        self.acks = []
        self.errors = []
        self.lsock = socket.socket(socket.AF_UNIX)
        self.lsock.bind(path)
        self.lsock.listen(4)
        self.lsock.settimeout(0.2)
        self.stopping = False
        self.talkers = []  # one thread per worker connection
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopping:
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(0.2)
            t = threading.Thread(target=self.talk_then_close, args=(conn,), daemon=True)
            t.start()
            self.talkers.append(t)

    def talk_then_close(self, conn):
        try:
            self.talk(conn)
        except Exception as e:  # reported by the test, not lost in the thread
            self.errors.append(repr(e))
        finally:
            conn.close()

    @staticmethod
    def frame(t, flags, rid, body):
        b = json.dumps(body).encode()
        return struct.pack(">IHHI", len(b) + 8, t, flags, rid) + b

    def talk(self, conn):
        buf = b""
        while not self.stopping:
            try:
                d = conn.recv(65536)
            except socket.timeout:
                continue
            if not d:
                return
            buf += d
            while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                n, t, flags, rid = struct.unpack(">IHHI", buf[:12])
                body = json.loads(buf[12:4 + n])
                buf = buf[4 + n:]
                if t == HELLO:
                    self.hellos.append(body["version"])
                    if body["version"] != 1:
                        conn.sendall(self.frame(HELLO, REPLY | ERROR, rid, {
                            "code": CL_EVERSION, "message": "unsupported IPC version"}))
                        continue
                    conn.sendall(self.frame(HELLO, REPLY, rid,
                                            {"version": 1, "name": self.name}))
                    conn.sendall(self.frame(CONFIG, 0, 0, {
                        "revision": 1, "name": self.name, "peers": [], "imports": [],
                        "exports": []}))
                elif t == ACK:
                    self.acks.append(body["revision"])
                elif t == STATS:
                    self.stats.append(body)

    def close(self):
        self.stopping = True
        self.lsock.close()
        self.thread.join(5)
        for t in self.talkers:
            t.join(5)


def test_new_worker_offers_the_version_before_to_an_old_controlplane(fabric, workdir):
    g = h.Gateway(fabric, "gw-a", workdir, workers=2)
    old = OldControlplane(g.sock, "gw-a")
    try:
        g.start_dp()  # ready once configured: so once a HELLO was welcome
        h.wait_for(lambda: len(old.stats) >= 4, 10, "STATS from both workers")
        assert not old.errors, old.errors
        # each worker offered 2, was refused, offered 1 on the same connection, was welcome
        assert old.hellos.count(2) == 2 and old.hellos.count(1) == 2, old.hellos
        assert old.acks.count(1) == 2
        # and speaks version 1 from then on: STATS without the certificate
        for s in old.stats:
            assert set(s) == V1_STATS_KEYS, s
        log = open(g.dp.log_path, "rb").read().decode(errors="replace")
        assert "refused IPC version 2, offering 1" in log
        assert "connected to the controlplane (IPC version 1)" in log
    finally:
        rc = g.dp.stop() if g.dp else 0
        old.close()
    assert rc == 0


def test_old_worker_is_answered_in_its_version_and_shows_no_certificate(fabric, workdir):
    g = h.Gateway(fabric, "gw-a", workdir)
    try:
        g.start()
        ipc = Ipc(g.sock)  # offers version 1, as a worker of that release does
        ipc.send(STATS, {"worker": 99, "imports": {}, "exports": {}, "peers": {}})
        status, st = ipc.http("GET", "/api/v1/status")  # answered after the STATS
        assert status == 200
        byid = {w["id"]: w for w in st["workers"]}
        assert byid[99]["ipcVersion"] == 1 and "certificate" not in byid[99], byid
        # the real worker, of this release, agreed on version 2 and reports its certificate
        real = byid[0]
        assert real["ipcVersion"] == 2, real
        h.wait_for(lambda: "certificate" in {w["id"]: w for w in g.ctl_json("status")["workers"]
                                             }[0], 5, "the real worker's certificate")
        cert = {w["id"]: w for w in g.ctl_json("status")["workers"]}[0]["certificate"]
        assert cert["sha256"] == st["certificate"]["sha256"] and cert["reloadError"] == ""
        table = g.ctl("status").stdout
        assert "WORKER" in table and cert["sha256"][:16] in table, table
    finally:
        rcs = g.stop()
    assert all(rc == 0 for rc in rcs.values()), rcs
