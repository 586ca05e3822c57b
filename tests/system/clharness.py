"""Harness for system tests: real cl-controlplane / cl-dataplane / gwctl binaries on loopback.

Every gateway gets its own directory (certificates, LMDB state, IPC socket, logs), binds port 0 and
reports the chosen port through a --ready-file, so there are no guessed ports and no sleeps: waits
poll a condition with a deadline. Processes are stopped by PID with SIGTERM and must exit 0.
"""
import hashlib
import json
import os
import signal
import socket
import subprocess
import threading
import time

BIN = os.environ.get("CL_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
MULT = float(os.environ.get("CL_TEST_TIMEOUT_MULT", "1"))
CONTROLPLANE = os.path.join(BIN, "controlplane/cl-controlplane")
DATAPLANE = os.path.join(BIN, "dataplane/cl-dataplane")
GWCTL = os.path.join(BIN, "gwctl/gwctl")


def wait_for(cond, timeout=10.0, what="condition", interval=0.02):
    """Polls cond() until it returns a truthy value; raises after timeout (scaled)."""
    deadline = time.monotonic() + timeout * MULT
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(interval)


def free_port():
    """A port the kernel considers free now (for services the test itself starts)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, env=None, check=True, input=None, timeout=30):
    p = subprocess.run(cmd, env=env, input=input, capture_output=True, text=True,
                       timeout=timeout * MULT)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d): %s%s" % (" ".join(cmd), p.returncode,
                                                       p.stdout, p.stderr))
    return p


class Proc:
    """A daemon started by a test; stop() sends SIGTERM and checks the exit status."""

    def __init__(self, name, cmd, logdir, env=None):
        self.name = name
        self.cmd = cmd
        self.log_path = os.path.join(logdir, name + ".log")
        self.log = open(self.log_path, "ab")
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            os.kill(self.p.pid, sig)
            self.p.wait(timeout=10 * MULT)

    def stop(self, timeout=20):
        """SIGTERM, wait, and return the exit code (killing the group if it hangs)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout * MULT)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
                self.log.close()
                raise AssertionError("%s did not stop on SIGTERM" % self.name)
        self.log.close()
        if self.p.returncode != 0:  # shown by pytest when the test fails
            print("---- %s exited %s; last log lines:\n%s" % (self.name, self.p.returncode,
                                                            self.tail(60)))
        return self.p.returncode

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


class Fabric:
    """A fabric CA and per-peer certificates, made with `gwctl create ...`."""

    def __init__(self, root, name="fabric"):
        self.root = root
        self.name = name
        self.dir = os.path.join(root, name)
        run([GWCTL, "create", "fabric", "--name", name, "--dir", root])

    def peer(self, peer):
        d = os.path.join(self.dir, peer)
        if not os.path.exists(os.path.join(d, "cert.pem")):
            run([GWCTL, "create", "peer-cert", "--name", peer, "--fabric", self.dir])
        return d

    @property
    def ca(self):
        return os.path.join(self.dir, "ca.pem")


class Gateway:
    """One gateway: a controlplane and a dataplane with its workers, plus a gwctl context."""

    def __init__(self, fabric, name, workdir, workers=1, extra_cp=(), extra_dp=()):
        self.fabric = fabric
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.certdir = fabric.peer(name)
        self.sock = os.path.join(self.dir, "cp.sock")
        self.data = os.path.join(self.dir, "data")
        self.cfghome = os.path.join(self.dir, "gwctl-config")
        self.workers = workers
        self.extra_cp = list(extra_cp)
        self.extra_dp = list(extra_dp)
        self.cp = None
        self.dp = None
        self.port = None

    # --- processes ---
    def start(self):
        self.start_cp()
        self.start_dp()
        self.init_ctl()
        return self

    def cp_command(self, ready):
        """The controlplane's command line (a subclass may build it otherwise)."""
        return [
            CONTROLPLANE, "--name", self.name, "--data-dir", self.data, "--socket", self.sock,
            "--cert", os.path.join(self.certdir, "cert.pem"),
            "--key", os.path.join(self.certdir, "key.pem"), "--ca", self.fabric.ca,
            "--ready-file", ready, "--log-level", "debug"] + self.extra_cp

    def dp_command(self, ready, listen):
        """The dataplane's command line (a subclass may build it otherwise)."""
        return [
            DATAPLANE, "--socket", self.sock, "--listen", listen,
            "--cert", os.path.join(self.certdir, "cert.pem"),
            "--key", os.path.join(self.certdir, "key.pem"), "--ca", self.fabric.ca,
            "--workers", str(self.workers), "--ready-file", ready,
            "--log-level", "debug"] + self.extra_dp

    def start_cp(self):
        ready = os.path.join(self.dir, "cp.ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self.cp = Proc(self.name + "-cp", self.cp_command(ready), self.dir)
        wait_for(lambda: os.path.exists(ready) or not self.cp.alive(), 10, "controlplane ready")
        assert self.cp.alive(), self.cp.tail()

    def start_dp(self, port=None):
        ready = os.path.join(self.dir, "dp.ready")
        if os.path.exists(ready):
            os.unlink(ready)
        listen = "127.0.0.1:%d" % (port if port else (self.port or 0))
        self.dp = Proc(self.name + "-dp", self.dp_command(ready, listen), self.dir)

        def read_port():
            if not self.dp.alive():
                return -1
            try:
                with open(ready) as f:
                    txt = f.read().strip()
                return int(txt.split()[0]) if txt else None
            except (OSError, ValueError):
                return None
        p = wait_for(read_port, 15, "dataplane ready")
        assert p > 0, self.dp.tail()
        self.port = p

    def stop(self):
        rcs = {}
        for proc in (self.dp, self.cp):
            if proc is not None:
                rcs[proc.name] = proc.stop()
        return rcs

    # --- gwctl ---
    def env(self):
        e = dict(os.environ)
        e["XDG_CONFIG_HOME"] = self.cfghome
        return e

    def init_ctl(self):
        admin = os.path.join(self.certdir, "gwctl")
        run([GWCTL, "init", "--id", self.name, "--host", "127.0.0.1", "--port", str(self.port),
             "--ca", self.fabric.ca, "--cert", os.path.join(admin, "cert.pem"),
             "--key", os.path.join(admin, "key.pem")], env=self.env())

    def ctl(self, *args, check=True, input=None):
        return run([GWCTL] + [str(a) for a in args], env=self.env(), check=check, input=input)

    def ctl_json(self, *args):
        return json.loads(self.ctl(*args, "-o", "json").stdout)

    # --- linking helpers ---
    def add_peer(self, other):
        self.ctl("create", "peer", "--name", other.name, "--host", "127.0.0.1",
                 "--port", other.port)

    def allow_all(self, name="allow-all"):
        pol = {"kind": "AccessPolicy", "metadata": {"name": name},
               "spec": {"action": "allow", "from": [{"workloadSelector": {}}],
                        "to": [{"workloadSelector": {}}]}}
        self.ctl("create", "policy", "--file", "-", input=json.dumps(pol))


class EchoServer:
    """Threaded TCP echo server on 127.0.0.1 (optionally prefixes replies with a tag)."""

    def __init__(self, tag=b""):
        self.tag = tag
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        self.closed = False
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            if self.tag:
                c.sendall(self.tag)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.closed = True
        self.sock.close()


def connect(port, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * MULT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def can_connect(port):
    """True when something accepts TCP connections on port (the probe is closed at once)."""
    try:
        connect(port, timeout=2).close()
        return True
    except OSError:
        return False


def echo_roundtrip(port, payload=b"hello", timeout=5):
    """Sends payload through port, half-closes, returns everything read back (b'' on reset)."""
    try:
        s = connect(port, timeout)
    except OSError:
        return None
    def send():
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    # send while reading: with bounded buffers on every hop, an echo of a large payload would
    # deadlock if the client wrote everything before reading anything
    sender = threading.Thread(target=send, daemon=True)
    try:
        sender.start()
        chunks = []
        while True:
            d = s.recv(65536)
            if not d:
                break
            chunks.append(d)
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        sender.join(timeout * MULT)
        s.close()


def recv_exact(s, n):
    """Reads exactly n bytes from s; fails the test if the far end closes first."""
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(min(1 << 20, n - len(buf)))
        assert d, "closed after %d of %d bytes" % (len(buf), n)
        buf += d
    return bytes(buf)


def sha256(b):
    return hashlib.sha256(b).hexdigest()
