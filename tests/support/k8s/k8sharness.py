"""Test helpers around apiserver.py: start one on port 0, talk to it, stop it by PID.

    srv = ApiServer(workdir).start()        # certificates made with openssl, token generated
    srv.kubeconfig()                        # path of a kubeconfig for kubectl / the controlplane
    code, headers, obj = srv.request("GET", "/api/v1/namespaces/default/services")
    for ev in srv.watch("/api/v1/pods?watch=1&resourceVersion=5", timeout=5): ...
    srv.faults({"method": "PUT", "resource": "services", "codes": [409, 500]})
    srv.expire_watches(); srv.end_watches(); srv.requests(); srv.reset()
    srv.kubectl("apply", "-f", path)        # the repo's .tools/bin/kubectl against this server
    srv.stop()                              # SIGTERM; returns the exit code (0 expected)
"""
import http.client
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
APISERVER = os.path.join(HERE, "apiserver.py")
KUBECTL = os.path.join(REPO, ".tools", "bin", "kubectl")
PYTHON = "/usr/bin/python3"
MULT = float(os.environ.get("CL_TEST_TIMEOUT_MULT", "1"))


def make_certs(d, hosts=("127.0.0.1", "localhost")):
    """A CA and a server certificate for hosts (IPs and DNS names) in d: ca.pem, cert.pem,
    key.pem. Returns (ca, cert, key) paths."""
    os.makedirs(d, exist_ok=True)
    ca, cakey = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    csr, ext = os.path.join(d, "server.csr"), os.path.join(d, "server.ext")

    def run(*cmd):
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", cakey, "-out", ca, "-days", "2", "-subj", "/CN=test-apiserver-ca")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=test-apiserver")
    sans = ",".join(("IP:" if h.replace(".", "").isdigit() or ":" in h else "DNS:") + h
                    for h in hosts)
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                % sans)
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


class ApiServer:
    def __init__(self, workdir, name="apiserver", token=None, state_dir=None, args=()):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.token = token or secrets.token_hex(16)
        self.state_dir = state_dir
        self.args = list(args)
        self.proc = None
        self.port = None
        self.ca = os.path.join(self.dir, "ca.pem")
        self.log_path = os.path.join(self.dir, "apiserver.log")

    def start(self, timeout=30):
        if not os.path.exists(self.ca):
            make_certs(self.dir)
        ready = os.path.join(self.dir, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        cmd = [PYTHON, APISERVER, "--listen", "127.0.0.1:0",
               "--cert", os.path.join(self.dir, "cert.pem"),
               "--key", os.path.join(self.dir, "key.pem"),
               "--token", self.token, "--ready-file", ready, "--verbose"] + self.args
        if self.state_dir:
            cmd += ["--state-dir", self.state_dir]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout * MULT
        while True:
            if os.path.exists(ready):
                with open(ready) as f:
                    txt = f.read().strip()
                if txt:
                    self.port = int(txt)
                    return self
            if self.proc.poll() is not None:
                raise AssertionError("apiserver exited %s:\n%s" % (self.proc.returncode,
                                                                   self.tail()))
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("apiserver not ready in time:\n" + self.tail())
            time.sleep(0.02)

    def stop(self, timeout=20):
        """SIGTERM by PID; returns the exit code (kills the process group if it hangs)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout * MULT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                self.log.close()
                raise AssertionError("apiserver did not stop on SIGTERM")
        self.log.close()
        return self.proc.returncode

    def tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx

    def connect(self, timeout=10):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl_context(),
                                           timeout=timeout * MULT)

    def request(self, method, path, body=None, headers=None, token=True, raw=False, timeout=10):
        """One request; returns (status, headers, parsed JSON body or None). body: an object
        (sent as JSON) or bytes."""
        h = {"Accept": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + (self.token if token is True else token)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        c = self.connect(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            if raw:
                return r.status, r.headers, data
            try:
                obj = json.loads(data) if data else None
            except ValueError:
                obj = data
            return r.status, r.headers, obj
        finally:
            c.close()

    def watch(self, path, timeout=10, token=True, accept="application/json"):
        """Yields watch events ({"type", "object"}) until the server ends the stream or
        timeout passes (then raises TimeoutError)."""
        c = self.connect(timeout)
        h = {"Accept": accept}
        if token:
            h["Authorization"] = "Bearer " + self.token
        c.request("GET", path, headers=h)
        r = c.getresponse()
        if r.status != 200:
            body = r.read()
            c.close()
            raise AssertionError("watch %s: HTTP %d %s" % (path, r.status, body[:300]))
        try:
            while True:
                try:
                    line = r.readline()
                except socket.timeout:
                    raise TimeoutError("watch %s: no event in time" % path)
                if not line:
                    return
                yield json.loads(line)
        finally:
            c.close()

    def control(self, method, path, body=None):
        code, _, obj = self.request(method, "/_test/" + path, body=body, token=False)
        assert code == 200, (code, obj)
        return obj

    def faults(self, rules):
        return self.control("POST", "faults", rules)

    def expire_watches(self):
        return self.control("POST", "expire-watches")

    def end_watches(self):
        return self.control("POST", "end-watches")

    def requests(self):
        return self.control("GET", "requests")

    def reset(self):
        return self.control("POST", "reset")

    def set_tokens(self, tokens):
        """Rotation: only these bearer tokens are accepted from now on (self.token becomes the
        first)."""
        r = self.control("POST", "tokens", {"tokens": list(tokens)})
        self.token = list(tokens)[0]
        return r

    def kubeconfig(self, path=None, namespace="default"):
        path = path or os.path.join(self.dir, "kubeconfig")
        cfg = {"apiVersion": "v1", "kind": "Config",
               "clusters": [{"name": "test", "cluster": {
                   "server": self.url, "certificate-authority": self.ca}}],
               "users": [{"name": "test", "user": {"token": self.token}}],
               "contexts": [{"name": "test", "context": {
                   "cluster": "test", "user": "test", "namespace": namespace}}],
               "current-context": "test"}
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)  # JSON is YAML
        return path

    def kubectl_cmd(self, *args):
        """(argv, env) to run the repo's kubectl against this server."""
        if not os.path.exists(KUBECTL):
            raise AssertionError("kubectl not found at %s (run .ci/install)" % KUBECTL)
        cmd = [KUBECTL, "--kubeconfig", self.kubeconfig(),
               "--cache-dir", os.path.join(self.dir, "kubectl-cache")] + list(args)
        return cmd, dict(os.environ, HOME=self.dir, KUBECONFIG="")

    def kubectl(self, *args, check=True, timeout=60, input=None):
        """Runs kubectl to completion; raises (with the server's log) if it fails and check."""
        cmd, env = self.kubectl_cmd(*args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * MULT,
                           input=input, env=env)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s%s\n--- apiserver log:\n%s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr, self.tail(30)))
        return p


if __name__ == "__main__":
    sys.exit("a module for tests; run apiserver.py to start a server by hand")
