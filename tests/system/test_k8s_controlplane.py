"""Kubernetes mode of cl-controlplane against the strict test API server.

The real cl-controlplane and cl-dataplane run against tests/support/k8s/apiserver.py (HTTPS,
schemas from the official OpenAPI spec, fault injection under /_test/). Each test gets its own
API server, and at the end the requests the controlplane made are checked against the RBAC of
the chart's RBAC (docs/k8s-controlplane.md): services in the namespace (get, list, watch,
create, update, delete), the gateway's Lease there (get, create, update) and pods everywhere
(list, watch), nothing else.
"""
import json
import os
import signal
import socket
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

import clharness as h

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPORT = os.path.join(HERE, "..", "support", "k8s")
sys.path.insert(0, SUPPORT)
import k8sharness  # noqa: E402
import openapi  # noqa: E402

NS = "clusterlink"
SELECTOR = {"app": "cl-dataplane", "gateway": "east"}
SEL_ARG = ",".join("%s=%s" % kv for kv in sorted(SELECTOR.items()))
MANAGED = "app.kubernetes.io/managed-by"
GATEWAY = "clusterlink.net/gateway"  # the owner label: the controlplane's --name
TOKEN = "test-token-0123456789"
# the contract's RBAC: what the chart grants, and so all the controlplane may use
RBAC = {("services", NS): {"get", "list", "watch", "create", "update", "delete"},
        ("leases", NS): {"get", "create", "update"},
        ("pods", None): {"list", "watch"}}


class ApiServer(k8sharness.ApiServer):
    """The test API server (k8sharness) with a few object helpers, and the list of requests
    this test (not the controlplane) made, so the controlplane's own can be told apart."""

    def __init__(self, workdir, args=()):
        super().__init__(workdir, token=TOKEN, args=args)
        self.start()
        self.mine = []  # (method, path) this test sent
        self.log_from = 0  # the server's request log is read from here on (mark())
        # the context's namespace is where the Services go (no --k8s-namespace given)
        self.kubeconfig_path = self.kubeconfig(namespace=NS)
        self.create_namespace(NS)

    def request(self, method, path, body=None, headers=None, token=True, raw=False,
                timeout=10):
        if not path.startswith("/_test/"):
            self.mine.append((method, path.split("?")[0]))
        if method == "PATCH" and body is not None:
            headers = dict(headers or {}, **{"Content-Type": "application/merge-patch+json"})
            body = json.dumps(body)
        return super().request(method, path, body, headers, token, raw, timeout)

    def ok(self, method, path, body=None):
        st, _, obj = self.request(method, path, body)
        assert 200 <= st < 300, (method, path, st, obj)
        return obj

    # objects
    def create_namespace(self, name):
        self.ok("POST", "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def services(self):
        """Managed Services in NS by name (as the server has them)."""
        lst = self.ok("GET", "/api/v1/namespaces/%s/services?labelSelector=%s%%3Dclusterlink"
                      % (NS, MANAGED.replace("/", "%2F")))
        return {o["metadata"]["name"]: o for o in lst["items"]}

    def service(self, name):
        st, _, obj = self.request("GET", "/api/v1/namespaces/%s/services/%s" % (NS, name))
        return obj if st == 200 else None

    def delete_service(self, name):
        self.ok("DELETE", "/api/v1/namespaces/%s/services/%s" % (NS, name))

    def create_pod(self, ns, name, ip, labels, sa):
        self.ok("POST", "/api/v1/namespaces/%s/pods" % ns, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"serviceAccountName": sa,
                     "containers": [{"name": "c", "image": "busybox"}]}})
        self.ok("PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (ns, name),
                {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})

    def reset(self):
        """Clears the faults and the request log."""
        super().reset()
        self.log_from = 0

    def mark(self):
        """From now on the request log starts here (the faults stay, unlike reset())."""
        self.log_from = len(self.requests())
        self.mine = []

    def controlplane_requests(self):
        """The server's request log (since mark()) minus what this test sent."""
        mine = list(self.mine)
        out = []
        for r in self.requests()[self.log_from:]:
            if r["path"].startswith("/_test/"):
                continue
            key = (r["method"], r["path"])
            if key in mine:
                mine.remove(key)
                continue
            out.append(r)
        return out


def verb_of(r):
    """The request's verb: the server's, or from the path (requests it refused with 401 carry
    none)."""
    if r.get("verb"):
        return r["verb"]
    parts = [p for p in r["path"].split("/") if p]
    if parts[:1] == ["apis"]:  # /apis/<group>/<version>/...: as /api/v1/... one deeper
        parts = parts[1:]
    named = len(parts) in (4, 6)
    if r["method"] == "GET":
        return "watch" if "watch=1" in (r.get("query") or "") else ("get" if named else "list")
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        r["method"], "?")


def resource_of(r):
    """(resource, namespace) from the server's log, or from the path."""
    if r.get("resource"):
        return r["resource"], r.get("namespace") or None
    parts = [p for p in r["path"].split("/") if p]
    if parts[:1] == ["apis"]:  # /apis/<group>/<version>/...: as /api/v1/... one deeper
        parts = parts[1:]
    if parts[2:3] == ["namespaces"] and len(parts) >= 5:
        return parts[4], parts[3]
    return (parts[2] if len(parts) > 2 else "?"), None


def check_rbac(reqs):
    """Every request within the contract's RBAC; returns the (resource, verb) pairs used."""
    used = set()
    for r in reqs:
        (res, ns), verb = resource_of(r), verb_of(r)
        allowed = RBAC.get((res, ns if res in ("services", "leases") else None), set())
        assert verb in allowed, "request outside the RBAC contract: %r" % r
        assert not r.get("subresource"), r
        used.add((res, verb))
    return used


@pytest.fixture
def api(workdir):
    srv = ApiServer(workdir)
    yield srv
    try:
        used = check_rbac(srv.controlplane_requests())
        print("verbs used by the controlplane:", sorted(used))
    finally:
        assert srv.stop() in (0, -signal.SIGTERM)


def k8s_args(api, selector=SEL_ARG):
    return ["--k8s", "--kubeconfig", api.kubeconfig_path, "--k8s-selector", selector,
            "--target-ports", "21000-21999"]


@pytest.fixture
def kgateways(fabric, workdir, api):
    """Factory: kgateways("east", k8s=True) starts gateways; all stop (exit 0) at the end."""
    started = []

    def make(name, k8s=True, workers=1):
        g = h.Gateway(fabric, name, workdir, workers=workers,
                      extra_cp=k8s_args(api) if k8s else ())
        started.append(g)
        return g.start()

    yield make
    stop_all(started)


def stop_all(gws, ok=(0,)):
    """Stops every gateway; each process must have exited with a code in ok."""
    bad = ["%s exited %s" % (n, rc) for g in gws for n, rc in g.stop().items() if rc not in ok]
    assert not bad, bad


def start_cp(g):
    """(Re)starts the controlplane and waits until the dataplane relays REST to it again."""
    g.start_cp()
    h.wait_for(lambda: g.ctl("status", check=False).returncode == 0, 15,
               "dataplane reconnected to the controlplane")


def import_json(g, name):
    return g.ctl_json("get", "import", "--name", name)


def svc_state(g, name):
    return (import_json(g, name).get("status") or {}).get("service", {}).get("state")


def wait_state(g, name, state, timeout=15):
    h.wait_for(lambda: svc_state(g, name) == state, timeout,
               "import %s Service %s (now %s)" % (name, state, svc_state(g, name)))
    return import_json(g, name)["status"]["service"]


def create_import(g, name, port, target=None, peer="west"):
    args = ["create", "import", "--name", name, "--port", port, "--peer", peer]
    if target is not None:
        args += ["--target-port", target]
    return g.ctl(*args)


def check_service(api, svc, name, port, target, owner="east", selector=None):
    """The Service is exactly what the contract says, and valid for the official schema."""
    assert svc["metadata"]["name"] == name
    assert svc["metadata"]["namespace"] == NS
    assert svc["metadata"]["labels"][MANAGED] == "clusterlink"
    assert svc["metadata"]["labels"]["clusterlink.net/import"] == name
    assert svc["metadata"]["labels"][GATEWAY] == owner
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["selector"] == (selector or SELECTOR)
    assert spec["ports"] == [{"name": "tcp", "protocol": "TCP", "port": port,
                              "targetPort": target}]
    assert spec["clusterIP"]
    full = dict(svc, apiVersion="v1", kind="Service")  # list items carry neither
    assert openapi.validate(full) == []


def wait_services(api, want, timeout=20):
    """Waits until the managed Services are exactly `want` {name: (port, targetPort)}."""
    def now():
        return {n: (s["spec"]["ports"][0]["port"], s["spec"]["ports"][0]["targetPort"])
                for n, s in api.services().items()}
    h.wait_for(lambda: now() == want, timeout, "Services %r (now %r)" % (want, now()))
    return api.services()


def writes(reqs, name=None, resource="services"):
    """Writes to Services (or another resource), of one name or all."""
    return [r for r in reqs if r["method"] in ("POST", "PUT", "PATCH", "DELETE") and
            resource_of(r)[0] == resource and (name is None or r.get("name") == name)]


# ---- import lifecycle ---------------------------------------------------------------------

def test_import_create_update_delete(api, kgateways):
    east = kgateways("east")
    create_import(east, "web", 80)
    st = wait_state(east, "web", "ready")
    svc = api.service("web")
    target = import_json(east, "web")["spec"]["targetPort"]
    assert 21000 <= target <= 21999
    check_service(api, svc, "web", 80, target)
    assert st["clusterIP"] == svc["spec"]["clusterIP"] and st["uid"] == svc["metadata"]["uid"]
    assert st["namespace"] == NS and st["name"] == "web"
    # the dataplane listens on the target port (the Service's backend)
    h.wait_for(lambda: h.can_connect(target), 10, "dataplane listening on the target port")

    east.ctl("update", "import", "--name", "web", "--port", 8080, "--peer", "west")
    h.wait_for(lambda: api.service("web")["spec"]["ports"][0]["port"] == 8080, 10,
               "Service updated")
    svc2 = api.service("web")
    check_service(api, svc2, "web", 8080, target)
    assert svc2["metadata"]["uid"] == svc["metadata"]["uid"]  # updated in place
    assert svc2["spec"]["clusterIP"] == svc["spec"]["clusterIP"]
    wait_state(east, "web", "ready")

    east.ctl("delete", "import", "--name", "web")
    h.wait_for(lambda: api.service("web") is None, 10, "Service deleted")
    reqs = api.controlplane_requests()
    assert [r["method"] for r in writes(reqs)] == ["POST", "PUT", "DELETE"], writes(reqs)
    status = east.ctl_json("status")["kubernetes"]
    assert status["synced"] is True and status["namespace"] == NS


def test_conflicting_service_is_never_touched(api, kgateways):
    foreign = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "db", "labels": {"owner": "someone-else"}},
               "spec": {"selector": {"app": "db"},
                        "ports": [{"port": 5432, "targetPort": 5432}]}}
    created = api.ok("POST", "/api/v1/namespaces/%s/services" % NS, foreign)
    east = kgateways("east")
    create_import(east, "db", 5432)
    st = wait_state(east, "db", "conflict")
    assert "not managed by ClusterLink" in st["message"], st
    # still conflicting a while later, the foreign object as it was, no write ever aimed at it
    time.sleep(1.0 * h.MULT)
    assert svc_state(east, "db") == "conflict"
    now = api.service("db")
    assert now["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert now["spec"] == created["spec"] and now["metadata"]["labels"] == {"owner": "someone-else"}
    w = writes(api.controlplane_requests())  # only "db" exists here (a POST names no object)
    assert w and all(r["method"] == "POST" and r["code"] == 409 for r in w), w
    # deleting the import leaves the foreign Service alone
    east.ctl("delete", "import", "--name", "db")
    time.sleep(0.5 * h.MULT)
    assert api.service("db")["metadata"]["uid"] == created["metadata"]["uid"]
    # an import created again, then the owner removes their Service: ours appears
    create_import(east, "db", 5432)
    wait_state(east, "db", "conflict")
    api.delete_service("db")
    wait_state(east, "db", "ready", timeout=20)
    svc = api.service("db")
    assert svc["metadata"]["uid"] != created["metadata"]["uid"]
    check_service(api, svc, "db", 5432, import_json(east, "db")["spec"]["targetPort"])
    # the only writes: creates, refused with 409 while the foreign one stood, then accepted
    w = writes(api.controlplane_requests())
    assert all(r["method"] == "POST" for r in w), w
    assert [r["code"] for r in w if r["code"] != 409] == [201], w


def test_deleted_managed_service_is_recreated(api, kgateways):
    east = kgateways("east")
    create_import(east, "web", 80)
    wait_state(east, "web", "ready")
    old = api.service("web")
    api.delete_service("web")
    h.wait_for(lambda: (api.service("web") or {}).get("metadata", {}).get("uid") not in
               (None, old["metadata"]["uid"]), 10, "Service re-created")
    check_service(api, api.service("web"), "web", 80, old["spec"]["ports"][0]["targetPort"])
    wait_state(east, "web", "ready")
    # someone edits our Service: it is put back (in place)
    svc = api.service("web")
    svc["spec"]["ports"][0]["port"] = 9999
    svc["spec"]["selector"] = {"app": "hijacked"}
    api.ok("PUT", "/api/v1/namespaces/%s/services/web" % NS, svc)
    h.wait_for(lambda: api.service("web")["spec"]["selector"] == SELECTOR, 10,
               "Service repaired")
    check_service(api, api.service("web"), "web", 80, old["spec"]["ports"][0]["targetPort"])


def test_conflicting_target_port(api, kgateways):
    east = kgateways("east")
    create_import(east, "a", 80, target=21500)
    r = east.ctl("create", "import", "--name", "b", "--port", 81, "--peer", "west",
                 "--target-port", 21500, check=False)
    assert r.returncode != 0 and "21500" in (r.stdout + r.stderr), r
    create_import(east, "c", 82)  # allocated: never a port already in use
    svcs = wait_services(api, {"a": (80, 21500), "c": (82, 21000)})
    assert "b" not in svcs
    # an allocated port cannot be taken by an explicit one either
    r = east.ctl("create", "import", "--name", "d", "--port", 83, "--peer", "west",
                 "--target-port", 21000, check=False)
    assert r.returncode != 0
    time.sleep(0.3 * h.MULT)
    assert set(api.services()) == {"a", "c"}
    # the port is free again once its import is gone
    east.ctl("delete", "import", "--name", "a")
    create_import(east, "b", 81, target=21500)
    wait_services(api, {"b": (81, 21500), "c": (82, 21000)})


# ---- restarts, watches, faults ------------------------------------------------------------

def test_restart_adopts_without_writes_and_removes_orphans(api, kgateways):
    east = kgateways("east")
    for i, n in enumerate(("a", "b", "c")):
        create_import(east, n, 80 + i)
    before = wait_services(api, {"a": (80, 21000), "b": (81, 21001), "c": (82, 21002)})
    for n in ("a", "b", "c"):
        wait_state(east, n, "ready")
    # the controlplane runs for a while without Kubernetes mode; an import goes meanwhile
    assert east.cp.stop() == 0
    east.extra_cp = ["--target-ports", "21000-21999"]
    start_cp(east)
    east.ctl("delete", "import", "--name", "c")
    assert east.cp.stop() == 0
    # back in Kubernetes mode: adopt a and b untouched, delete the orphan c
    api.reset()
    api.mine = []
    east.extra_cp = k8s_args(api)
    start_cp(east)
    wait_services(api, {"a": (80, 21000), "b": (81, 21001)})
    for n in ("a", "b"):
        st = wait_state(east, n, "ready")
        assert st["uid"] == before[n]["metadata"]["uid"]
        assert st["clusterIP"] == before[n]["spec"]["clusterIP"]
        assert api.service(n)["metadata"]["resourceVersion"] == \
            before[n]["metadata"]["resourceVersion"]
    time.sleep(0.5 * h.MULT)
    reqs = api.controlplane_requests()
    w = writes(reqs)
    assert [(r["method"], r.get("name")) for r in w] == [("DELETE", "c")], w
    # and a plain restart with nothing changed writes nothing at all
    assert east.cp.stop() == 0
    api.reset()
    api.mine = []
    start_cp(east)
    h.wait_for(lambda: east.ctl_json("status")["kubernetes"]["synced"], 10, "synced")
    for n in ("a", "b"):
        wait_state(east, n, "ready")
    time.sleep(0.5 * h.MULT)
    reqs = api.controlplane_requests()
    assert writes(reqs) == [], writes(reqs)
    # besides the lease (released by the old one, taken by the new one), only reads
    assert {(resource_of(r)[0], verb_of(r)) for r in reqs} <= {
        ("services", "list"), ("services", "watch"), ("pods", "list"), ("pods", "watch"),
        ("leases", "get"), ("leases", "update")}


# ---- ownership: two gateways in one namespace, and the upgrade from unowned Services -----------

TOKENS = {"east": "east-token-0123456789", "west": "west-token-0123456789"}
PORTS = {"east": "21000-21499", "west": "21500-21999"}


def gw_selector(name):
    return {"app": "cl-dataplane", "gateway": name}


def gw_args(api, workdir, name):
    """Kubernetes mode for gateway `name` in NS with its own token (to tell its requests from
    the other's), dataplane selector and target-port range, as a second Helm release would."""
    kc = os.path.join(workdir, name + "-kubeconfig")
    write_kubeconfig(kc, api.port, api.ca, TOKENS[name])
    sel = ",".join("%s=%s" % kv for kv in sorted(gw_selector(name).items()))
    return ["--k8s", "--kubeconfig", kc, "--k8s-selector", sel, "--target-ports", PORTS[name]]


@pytest.fixture
def two_gateways(fabric, workdir, api):
    """east and west, both in Kubernetes mode in namespace NS; all stop (exit 0) at the end."""
    api.set_tokens([TOKEN] + sorted(TOKENS.values()))
    gws = {}
    for name in ("east", "west"):
        gws[name] = h.Gateway(fabric, name, workdir, extra_cp=gw_args(api, workdir, name))
    try:
        for g in gws.values():
            g.start()
        yield gws
    finally:
        stop_all(gws.values())


def writes_by(api, gw):
    return writes([r for r in api.controlplane_requests() if r.get("token") == TOKENS[gw]])


def versions(api):
    """{name: (uid, resourceVersion)} of every Service in NS."""
    items = api.ok("GET", "/api/v1/namespaces/%s/services" % NS)["items"]
    return {o["metadata"]["name"]: (o["metadata"]["uid"], o["metadata"]["resourceVersion"])
            for o in items}


def restart_k8s(api, g, workdir, without=None):
    """Stops g's controlplane; with `without` (a function of g), first runs it once without
    Kubernetes mode to change imports; then starts it in Kubernetes mode with a fresh request
    log."""
    args = list(g.extra_cp)
    assert g.cp.stop() == 0
    if without is not None:
        g.extra_cp = ["--target-ports", PORTS[g.name]]
        start_cp(g)
        without(g)
        assert g.cp.stop() == 0
    api.reset()
    api.mine = []
    g.extra_cp = args
    start_cp(g)
    h.wait_for(lambda: g.ctl_json("status")["kubernetes"]["synced"], 15, "synced")


def test_two_gateways_in_one_namespace_never_touch_each_others_services(api, two_gateways,
                                                                          workdir):
    east, west = two_gateways["east"], two_gateways["west"]
    create_import(east, "shared", 80)
    create_import(east, "e-only", 81)
    wait_state(east, "shared", "ready")
    wait_state(east, "e-only", "ready")
    create_import(west, "shared", 80)  # the same import name on both
    create_import(west, "w-only", 82)
    st = wait_state(west, "shared", "conflict")
    assert "another ClusterLink gateway" in st["message"], st
    assert GATEWAY + "=east" in st["message"], st
    wait_state(west, "w-only", "ready")
    svcs = api.services()
    assert sorted(svcs) == ["e-only", "shared", "w-only"]
    for n, g, port in (("shared", east, 80), ("e-only", east, 81), ("w-only", west, 82)):
        check_service(api, svcs[n], n, port, import_json(g, n)["spec"]["targetPort"],
                      owner=g.name, selector=gw_selector(g.name))
    assert east.ctl_json("status")["kubernetes"]["gateway"] == "east"
    assert west.ctl_json("status")["kubernetes"]["services"] == 1
    # different names: each holds its own lease, and never asks for the other's
    for g in (east, west):
        st = g.ctl_json("status")["kubernetes"]
        assert st["role"] == "holder" and st["lease"] == "clusterlink-gateway-" + g.name, st
        assert lease_of(api, g.name)["spec"]["holderIdentity"] == st["identity"]
        own = [r for r in api.requests() if r.get("token") == TOKENS[g.name] and
               resource_of(r)[0] == "leases"]
        assert own and all(r.get("name") in (None, "clusterlink-gateway-" + g.name)
                           for r in own), own
    # west's "shared" stays a conflict, east's Service as it was
    before = versions(api)
    time.sleep(1.0 * h.MULT)
    assert svc_state(west, "shared") == "conflict" and svc_state(east, "shared") == "ready"
    # west deletes its import: east's Service of that name stays; it comes back as a conflict
    west.ctl("delete", "import", "--name", "shared")
    create_import(west, "shared", 80)
    wait_state(west, "shared", "conflict")
    time.sleep(0.5 * h.MULT)
    assert versions(api) == before
    # each wrote only its own creates; west's create of "shared" was refused (409), never a
    # PUT or DELETE of anything
    ew, ww = writes_by(api, "east"), writes_by(api, "west")
    assert [(r["method"], r["code"]) for r in ew] == [("POST", 201)] * 2, ew
    assert all(r["method"] == "POST" for r in ww), ww
    assert sorted(r["code"] for r in ww) == [201] + [409] * (len(ww) - 1), ww

    # east's restart, after its import e-only went while it was down: it deletes its own orphan
    # and nothing of west's (w-only has no import at east: the old version deleted it)
    restart_k8s(api, east, workdir,
                without=lambda g: g.ctl("delete", "import", "--name", "e-only"))
    h.wait_for(lambda: api.service("e-only") is None, 15, "east's orphan deleted")
    wait_state(east, "shared", "ready")
    time.sleep(0.5 * h.MULT)
    assert [(r["method"], r.get("name")) for r in writes_by(api, "east")] == \
        [("DELETE", "e-only")], writes_by(api, "east")
    assert writes_by(api, "west") == []
    after = versions(api)
    assert after == {n: v for n, v in before.items() if n != "e-only"}
    # west's restart: adopts its own (no write), east's "shared" a conflict again; the only
    # writes are refused creates
    restart_k8s(api, west, workdir)
    wait_state(west, "w-only", "ready")
    st = wait_state(west, "shared", "conflict")
    assert GATEWAY + "=east" in st["message"]
    time.sleep(0.5 * h.MULT)
    assert all(r["method"] == "POST" and r["code"] == 409 for r in writes_by(api, "west")), \
        writes_by(api, "west")
    assert writes_by(api, "east") == []
    assert versions(api) == after
    # east gives "shared" up: west's import gets its own Service (the conflict is re-read)
    east.ctl("delete", "import", "--name", "shared")
    h.wait_for(lambda: (api.service("shared") or {}).get("metadata", {}).get("labels", {})
               .get(GATEWAY) == "west", 25, "west's own Service shared")
    wait_state(west, "shared", "ready")
    check_service(api, api.service("shared"), "shared", 80,
                  import_json(west, "shared")["spec"]["targetPort"], owner="west",
                  selector=gw_selector("west"))
    assert sorted(api.services()) == ["shared", "w-only"]


# ---- one writer per gateway name: the Lease --------------------------------------------------

LEASE_S = max(2, int(round(2 * h.MULT)))  # --k8s-lease-duration in these tests
LEASES = "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % NS
CP_LEASE_PREFIX = "clusterlink-gateway-"
SAME = {"a": ("a-token-0123456789", "21000-21499"), "b": ("b-token-0123456789", "21500-21999")}


def instance_selector(inst):
    return {"app": "cl-dataplane", "instance": inst}


def same_name_gateway(api, fabric, workdir, inst, name="east"):
    """Controlplane + dataplane of gateway `name`, instance `inst` (its own directory, token,
    target ports and dataplane selector, as a second Helm release with the same gateway.name
    would have), with a short lease."""
    tok, ports = SAME[inst]
    kc = os.path.join(workdir, inst + "-kubeconfig")
    write_kubeconfig(kc, api.port, api.ca, tok)
    sel = ",".join("%s=%s" % kv for kv in sorted(instance_selector(inst).items()))
    return h.Gateway(fabric, name, os.path.join(workdir, inst), extra_cp=[
        "--k8s", "--kubeconfig", kc, "--k8s-selector", sel, "--target-ports", ports,
        "--k8s-lease-duration", str(LEASE_S)])


@pytest.fixture
def same_name(fabric, workdir, api):
    """Factory: same_name("a") starts instance a of gateway east; all stop at the end (a
    controlplane the test SIGKILLed excepted: -9 is what it asked for)."""
    api.set_tokens([TOKEN] + [t for t, _ in SAME.values()])
    started = []

    def make(inst):
        g = same_name_gateway(api, fabric, workdir, inst)
        started.append(g)
        return g.start()

    yield make
    stop_all(started, ok=(0, -signal.SIGKILL))


def k8s_status(g):
    return g.ctl_json("status")["kubernetes"]


def lease_of(api, name="east"):
    st, _, obj = api.request("GET", LEASES + "/" + CP_LEASE_PREFIX + name)
    return obj if st == 200 else None



def by_token(api, inst):
    """The requests of instance inst (by its token: the test's own use another)."""
    return [r for r in api.requests() if r.get("token") == SAME[inst][0]]


def wait_role(g, role, timeout):
    """Polls the controlplane's status until role; returns the seconds it took."""
    t0 = time.monotonic()
    h.wait_for(lambda: k8s_status(g)["role"] == role, timeout,
               "%s's controlplane %s (now %s)" % (g.dir, role, k8s_status(g)))
    return time.monotonic() - t0


def wait_renewals(api, n):
    """Waits until the lease record changed n times (the holder renewing): time passing
    through the lease, not a sleep."""
    seen = [lease_of(api)["metadata"]["resourceVersion"]]

    def more():
        rv = lease_of(api)["metadata"]["resourceVersion"]
        if rv != seen[-1]:
            seen.append(rv)
        return len(seen) > n
    h.wait_for(more, LEASE_S * (n + 2), "%d renewals of the lease" % n, interval=0.05)


def test_one_writer_per_gateway_name(api, same_name):
    a = same_name("a")
    wait_role(a, "holder", 10)
    sa = k8s_status(a)
    assert sa["lease"] == "clusterlink-gateway-east" and sa["holder"] == sa["identity"]
    assert sa["identity"].startswith(socket.gethostname() + "-%d_" % a.cp.pid), sa
    lease = lease_of(api)
    assert lease["spec"]["holderIdentity"] == sa["identity"]
    assert lease["spec"]["leaseDurationSeconds"] == LEASE_S
    assert lease["metadata"]["labels"] == {MANAGED: "clusterlink", GATEWAY: "east"}
    assert openapi.validate(dict(lease, apiVersion="coordination.k8s.io/v1", kind="Lease")) == []
    create_import(a, "web", 80)
    wait_state(a, "web", "ready")

    # b, the same gateway name in the same namespace: standby, naming a; its imports wait
    b = same_name("b")
    h.wait_for(lambda: k8s_status(b)["holder"] == sa["identity"], 10, "b sees a's lease")
    sb = k8s_status(b)
    assert sb["role"] == "standby" and sb["identity"] != sa["identity"], sb
    create_import(b, "web", 80)     # a's Service, b's selector: an update b may not send
    create_import(b, "b-only", 81)  # missing: a create b may not send
    for n in ("web", "b-only"):
        st = wait_state(b, n, "standby")
        assert sa["identity"] in st["message"] and "clusterlink-gateway-east" in st["message"]
    assert svc_state(a, "web") == "ready"
    wait_renewals(api, 3)
    # only a wrote: b read the lease and wrote nothing at all
    assert writes(by_token(api, "b")) == [] and writes(by_token(api, "b"), resource="leases") == []
    assert {verb_of(r) for r in by_token(api, "b") if resource_of(r)[0] == "leases"} == {"get"}
    lw = writes(by_token(api, "a"), resource="leases")
    assert [r["method"] for r in lw][:1] == ["POST"] and len(lw) >= 4, lw
    assert all(r["code"] in (200, 201) for r in lw), lw
    assert sorted(api.services()) == ["web"]
    assert api.service("web")["spec"]["selector"] == instance_selector("a")
    # b said once which controlplane holds the lease
    with open(b.cp.log_path) as f:
        said = [ln for ln in f if "level=warn" in ln and "is held by " + sa["identity"] in ln]
    assert len(said) == 1, said

    # a is killed: b takes over about a lease duration later (a's last renew + D, read every
    # D/3) and reconciles what it could not write while standing by
    web_uid = api.service("web")["metadata"]["uid"]
    a.cp.kill()
    took = wait_role(b, "holder", 3 * LEASE_S)
    print("takeover after SIGKILL of the holder: %.2f s (lease %d s)" % (took, LEASE_S))
    assert LEASE_S / 3 <= took <= 2 * LEASE_S * h.MULT, took
    sb = k8s_status(b)
    assert sb["holder"] == sb["identity"]
    lease = lease_of(api)
    assert lease["spec"]["holderIdentity"] == sb["identity"]
    assert lease["spec"]["leaseTransitions"] == 1
    wait_state(b, "b-only", "ready")
    wait_state(b, "web", "ready")
    svcs = api.services()
    assert sorted(svcs) == ["b-only", "web"]
    for n, port in (("web", 80), ("b-only", 81)):
        check_service(api, svcs[n], n, port, import_json(b, n)["spec"]["targetPort"],
                      selector=instance_selector("b"))
    assert svcs["web"]["metadata"]["uid"] == web_uid  # updated in place, not re-created
    assert {(r["method"], r.get("name")) for r in writes(by_token(api, "b"))} == {
        ("POST", None), ("PUT", "web")}

    # a comes back: a new identity (a new process), standby behind b
    api.reset()
    api.mine = []
    start_cp(a)
    h.wait_for(lambda: k8s_status(a)["holder"] == sb["identity"], 10, "a sees b's lease")
    sa2 = k8s_status(a)
    assert sa2["role"] == "standby" and sa2["identity"] not in (sa["identity"], sb["identity"])
    wait_state(a, "web", "standby")
    assert writes(by_token(api, "a")) == []

    # b stops cleanly: it hands the lease back and a takes over well within the duration
    # (at its next read, D/3 at most), then puts its own imports in place: web back to its
    # selector, b-only (no import at a) deleted as this gateway's orphan
    t0 = time.monotonic()
    assert b.cp.stop() == 0
    took = wait_role(a, "holder", 2 * LEASE_S)
    took_all = time.monotonic() - t0
    print("takeover after SIGTERM of the holder: %.2f s from its exit, %.2f s from SIGTERM "
          "(lease %d s)" % (took, took_all, LEASE_S))
    assert took_all < LEASE_S * 0.75, took_all
    rel = [r for r in by_token(api, "b") if resource_of(r)[0] == "leases" and
           r["method"] == "PUT"]
    assert rel and rel[-1]["code"] == 200, rel
    wait_state(a, "web", "ready")
    h.wait_for(lambda: sorted(api.services()) == ["web"], 10, "b's orphan b-only deleted")
    assert api.service("web")["spec"]["selector"] == instance_selector("a")
    assert lease_of(api)["spec"]["leaseTransitions"] == 2
    with open(b.cp.log_path) as f:
        assert any("released" in ln for ln in f)


def test_holder_that_cannot_renew_stops_writing(api, same_name):
    a = same_name("a")
    wait_role(a, "holder", 10)
    create_import(a, "one", 80)
    wait_state(a, "one", "ready")
    # renewals fail (the API server refuses every lease update): a stops being the holder
    # before its lease could expire for anyone else, and writes nothing meanwhile
    api.faults({"method": "PUT", "resource": "leases", "codes": [503], "count": 100000})
    took = wait_role(a, "standby", 2 * LEASE_S)
    print("holder stopped writing %.2f s after renewals began to fail" % took)
    assert took <= LEASE_S * h.MULT, took
    # a fresh request log; not reset(), which would lift the fault for a moment, long enough
    # for a renewal to get through on a loaded machine
    api.mark()
    create_import(a, "two", 81)
    st = wait_state(a, "two", "standby")
    assert "this controlplane" in st["message"]
    h.wait_for(lambda: len(writes(api.controlplane_requests(), resource="leases")) >= 2,
               3 * LEASE_S, "a trying to renew again")
    assert writes(api.controlplane_requests()) == []
    assert "503" in k8s_status(a)["leaseError"], k8s_status(a)
    # the API server accepts updates again: the lease still names a, which renews it and
    # writes what was waiting
    api.reset()
    wait_role(a, "holder", 3 * LEASE_S)
    wait_state(a, "two", "ready")
    assert sorted(api.services()) == ["one", "two"]
    assert lease_of(api)["spec"]["leaseTransitions"] == 0  # never someone else's


def legacy_service(name, port, target, selector=None, import_label=None):
    """A Service as the version before owner labels made it: managed-by, no gateway label."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {MANAGED: "clusterlink",
                                                  "clusterlink.net/import": import_label or name}},
            "spec": {"type": "ClusterIP", "selector": selector or SELECTOR,
                     "ports": [{"name": "tcp", "protocol": "TCP", "port": port,
                                "targetPort": target}]}}


def test_upgrade_adopts_matching_unowned_services_and_leaves_the_rest(api, kgateways):
    # the imports exist (state from before the upgrade; made outside Kubernetes mode, where the
    # target port is the port); their Services were made by the previous version, without the
    # owner label
    east = kgateways("east", k8s=False)
    create_import(east, "a", 21010, target=21010)
    create_import(east, "b", 21011, target=21011)
    assert east.cp.stop() == 0
    svc = "/api/v1/namespaces/%s/services" % NS
    a = api.ok("POST", svc, legacy_service("a", 21010, 21010))
    # b: same name, not this import's (another release's selector): may be another gateway's
    b = api.ok("POST", svc, legacy_service("b", 21011, 21011,
                                           selector={"app": "cl-dataplane", "gateway": "west"}))
    old = api.ok("POST", svc, legacy_service("old", 90, 21090))  # matches no import
    api.reset()
    api.mine = []
    east.extra_cp = k8s_args(api)
    start_cp(east)
    st = wait_state(east, "a", "ready")
    assert st["uid"] == a["metadata"]["uid"] and st["clusterIP"] == a["spec"]["clusterIP"]
    now = api.service("a")
    assert now["metadata"]["labels"][GATEWAY] == "east"
    assert now["spec"] == a["spec"]  # adopted as it was: only the label added
    check_service(api, now, "a", 21010, 21010)
    st = wait_state(east, "b", "conflict")
    assert "no owner label" in st["message"] and GATEWAY + "=east" in st["message"], st
    assert east.ctl_json("status")["kubernetes"]["unownedServices"] == 3
    time.sleep(0.5 * h.MULT)
    assert api.service("b")["metadata"]["resourceVersion"] == b["metadata"]["resourceVersion"]
    assert api.service("old")["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"]
    w = writes(api.controlplane_requests())
    assert [(r["method"], r.get("name"), r["code"]) for r in w] == [("PUT", "a", 200)], w
    # an unowned Service that an import created later matches: found by the create's 409, then
    # adopted
    c = api.ok("POST", svc, legacy_service("c", 83, 21012))
    create_import(east, "c", 83, target=21012)
    wait_state(east, "c", "ready")
    now = api.service("c")
    assert now["metadata"]["uid"] == c["metadata"]["uid"]
    assert now["metadata"]["labels"][GATEWAY] == "east"
    # one that differs: the conflict says how to hand it over; labelled so, it is ours to fix
    api.ok("PATCH", svc + "/b", {"metadata": {"labels": {GATEWAY: "east"}}})
    wait_state(east, "b", "ready")
    now = api.service("b")
    assert now["metadata"]["uid"] == b["metadata"]["uid"]
    check_service(api, now, "b", 21011, 21011)
    # and "old" (no import) is never deleted, now or after a restart, which writes nothing
    assert east.cp.stop() == 0
    api.reset()
    api.mine = []
    start_cp(east)
    for n in ("a", "b", "c"):
        wait_state(east, n, "ready")
    time.sleep(0.5 * h.MULT)
    assert writes(api.controlplane_requests()) == []
    assert api.service("old")["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"]


def test_watch_expired_then_resumed(api, kgateways):
    east = kgateways("east")
    create_import(east, "web", 80)
    wait_state(east, "web", "ready")
    lists_before = sum(1 for r in api.controlplane_requests()
                       if resource_of(r)[0] == "services" and verb_of(r) == "list")
    # something else changes, so the Services watch's resourceVersion falls behind
    api.create_namespace("elsewhere")
    api.expire_watches()
    # the watch is gone and history compacted: resuming gets 410, the controlplane re-lists
    h.wait_for(lambda: sum(1 for r in api.controlplane_requests()
                           if resource_of(r)[0] == "services" and verb_of(r) == "list") > lists_before,
               10, "services re-listed")
    h.wait_for(lambda: sum(1 for r in api.controlplane_requests()
                           if resource_of(r)[0] == "pods" and verb_of(r) == "list") >= 2,
               10, "pods re-listed")
    # and the new watch works: a deleted Service is noticed and re-created
    old = api.service("web")["metadata"]["uid"]
    api.delete_service("web")
    h.wait_for(lambda: (api.service("web") or {}).get("metadata", {}).get("uid") not in
               (None, old), 10, "Service re-created after the watch resumed")
    # expired again with nothing newer: the watch resumes from where it was (no 410)
    wait_state(east, "web", "ready")
    api.expire_watches()
    time.sleep(0.3 * h.MULT)
    api.delete_service("web")
    h.wait_for(lambda: api.service("web") is not None, 10, "re-created after a second expiry")
    assert len(api.services()) == 1


def test_watch_resumes_from_the_last_bookmark(fabric, workdir):
    """A watch that allows bookmarks gets them from the real server (here every second): the
    controlplane resumes its next watch from the last bookmark's resourceVersion, not from its
    last event's, so a quiet watch does not fall behind the history."""
    api = ApiServer(workdir, args=["--watch-bookmark-seconds", "1"])
    started = []
    try:
        east = h.Gateway(fabric, "east", workdir, extra_cp=k8s_args(api))
        started.append(east)
        east.start()
        create_import(east, "web", 80)
        wait_state(east, "web", "ready")

        def services(verb):
            return [r for r in api.controlplane_requests()
                    if resource_of(r)[0] == "services" and verb_of(r) == verb]
        lists = len(services("list"))
        # a change elsewhere: the Services watch sees no event, only the bookmarks after it
        rv = int(api.ok("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "elsewhere"}})["metadata"]["resourceVersion"])
        time.sleep(1.5 * h.MULT)
        api.end_watches()

        def resumed_from():
            ws = services("watch")
            q = urllib.parse.parse_qs(ws[-1]["query"]) if ws else {}
            return int(q.get("resourceVersion", ["0"])[0] or 0)
        h.wait_for(lambda: resumed_from() >= rv, 10,
                   "Services watch resumed from a bookmark (now %d, want >= %d)"
                   % (resumed_from(), rv))
        assert len(services("list")) == lists  # resumed, not re-listed
        # and it still works
        old = api.service("web")["metadata"]["uid"]
        api.delete_service("web")
        h.wait_for(lambda: (api.service("web") or {}).get("metadata", {}).get("uid") not in
                   (None, old), 10, "Service re-created after resuming")
    finally:
        try:
            stop_all(started)
            check_rbac(api.controlplane_requests())
        finally:
            assert api.stop() in (0, -signal.SIGTERM)


def test_fault_bursts_converge(api, kgateways):
    # the first list fails twice before anything else happens
    api.faults([{"method": "GET", "resource": "services", "codes": [500, 503], "count": 2}])
    east = kgateways("east")
    h.wait_for(lambda: east.ctl_json("status")["kubernetes"]["synced"], 20, "synced")
    # creates: 500, 429 (Retry-After) and 409 on a POST while the Service does not exist
    api.faults([{"method": "POST", "resource": "services", "codes": [500, 429, 500, 409],
                 "count": 8}])
    names = ["s%d" % i for i in range(6)]
    for i, n in enumerate(names):
        create_import(east, n, 1000 + i)

    def want():
        w = {}
        for n in east.ctl_json("get", "import"):
            w[n["metadata"]["name"]] = (n["spec"]["port"], n["spec"]["targetPort"])
        return w
    wait_services(api, want(), timeout=40)
    assert api.control("GET", "faults")["faults"] == []
    # updates (409 stale resourceVersion, 500, 429) and deletes (500, 429, 503) in a burst
    api.faults([
        {"method": "PUT", "resource": "services", "codes": [409, 500, 409, 429], "count": 6},
        {"method": "DELETE", "resource": "services", "codes": [500, 429, 503], "count": 3},
    ])
    for n in names[:3]:
        east.ctl("update", "import", "--name", n, "--port", 2000 + int(n[1:]), "--peer", "west")
    for n in names[4:]:
        east.ctl("delete", "import", "--name", n)
    w = want()
    assert sorted(w) == names[:4]
    svcs = wait_services(api, w, timeout=40)
    for n in names[:4]:
        check_service(api, svcs[n], n, *w[n])
        wait_state(east, n, "ready", timeout=20)
    assert api.control("GET", "faults")["faults"] == [], "every injected fault was served"
    # exactly the right set: nothing orphaned, nothing duplicated, no stray unlabelled copies
    allsvc = api.ok("GET", "/api/v1/namespaces/%s/services" % NS)["items"]
    assert sorted(o["metadata"]["name"] for o in allsvc) == names[:4]
    codes = [r["code"] for r in api.controlplane_requests()]
    for c in (409, 429, 500, 503):
        assert c in codes, "fault %d was not exercised" % c


# ---- client attributes -------------------------------------------------------------------------

def connect_from(src_ip, port, payload=b"ping", timeout=5):
    """Echo round trip from a chosen loopback source address; b'' when reset or closed, None
    when nothing came in `timeout` (not a denial: a slow answer on a loaded machine)."""
    s = socket.socket()
    s.settimeout(timeout * h.MULT)
    try:
        s.bind((src_ip, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        return out
    except socket.timeout:
        return None
    except OSError:
        return b""
    finally:
        s.close()


def test_pod_attributes_select_egress_and_reach_the_peer(api, kgateways, echo):
    srv = echo()
    for ns in ("team-a", "team-b"):
        api.create_namespace(ns)
    api.create_pod("team-a", "client-a", "127.0.0.2", {"app": "client", "tier": "web"}, "sa-a")
    api.create_pod("team-b", "client-b", "127.0.0.3", {"app": "client"}, "sa-b")
    west = kgateways("west", k8s=False)
    east = kgateways("east")
    west.ctl("create", "export", "--name", "echo", "--host", "127.0.0.1", "--port", srv.port)
    west.add_peer(east)
    east.add_peer(west)

    def policy(g, name, sel):
        g.ctl("create", "policy", "--file", "-", input=json.dumps({
            "kind": "AccessPolicy", "metadata": {"name": name},
            "spec": {"action": "allow", "from": [{"workloadSelector": sel}],
                     "to": [{"workloadSelector": {}}]}}))
    # east lets both namespaces out; west (the peer) only team-a pods with label tier=web
    policy(east, "teams", {"matchExpressions": [{"key": "client.clusterlink.net/namespace",
                                                 "operator": "In",
                                                 "values": ["team-a", "team-b"]}]})
    policy(west, "team-a-web", {"matchLabels": {
        "client.clusterlink.net/namespace": "team-a",
        "client.clusterlink.net/labels.tier": "web",
        "client.clusterlink.net/service-account": "sa-a"}})
    create_import(east, "echo", 80)
    wait_state(east, "echo", "ready")
    target = import_json(east, "echo")["spec"]["targetPort"]
    h.wait_for(lambda: east.ctl_json("status")["kubernetes"]["podIPs"] >= 2, 10, "pods known")
    h.wait_for(lambda: h.can_connect(target), 10, "import listening")
    h.wait_for(lambda: connect_from("127.0.0.2", target) == b"ping", 15, "team-a allowed")
    # team-b: denied by the peer's ingress; no pod (no attributes): denied at egress
    assert connect_from("127.0.0.3", target, timeout=20) == b""
    assert connect_from("127.0.0.4", target, timeout=20) == b""
    # a pod appearing later (watch) gets its attributes too
    api.create_pod("team-a", "client-c", "127.0.0.5", {"tier": "web"}, "sa-a")
    h.wait_for(lambda: connect_from("127.0.0.5", target) == b"ping", 10, "new team-a pod")
    # and a deleted pod's IP loses them
    api.ok("DELETE", "/api/v1/namespaces/team-a/pods/client-c")
    h.wait_for(lambda: connect_from("127.0.0.5", target) == b"", 10, "deleted pod denied")
    with open(east.cp.log_path, "rb") as f:
        log = f.read().decode(errors="replace")
    assert "egress client=127.0.0.4" in log and "denied" in log
    with open(west.cp.log_path, "rb") as f:
        wlog = f.read().decode(errors="replace")
    assert "denied by" in wlog and "allowed by team-a-web" in wlog


# ---- in-cluster configuration ------------------------------------------------------------------

def test_in_cluster_auto_on_and_token_rotation(api, fabric, workdir):
    sa = os.path.join(workdir, "serviceaccount")
    os.makedirs(sa)
    with open(api.ca) as f, open(os.path.join(sa, "ca.crt"), "w") as g:
        g.write(f.read())
    with open(os.path.join(sa, "namespace"), "w") as f:
        f.write(NS + "\n")
    tok = os.path.join(sa, "token")
    with open(tok, "w") as f:
        f.write("wrong-token\n")
    env = dict(os.environ, KUBERNETES_SERVICE_HOST="127.0.0.1",
               KUBERNETES_SERVICE_PORT=str(api.port), CL_K8S_SA_DIR=sa)
    g = h.Gateway(fabric, "east", workdir, extra_cp=["--target-ports", "21000-21999"])
    cert = os.path.join(g.certdir, "cert.pem")
    key = os.path.join(g.certdir, "key.pem")
    base = [h.CONTROLPLANE, "--name", "east", "--data-dir", os.path.join(workdir, "d0"),
            "--socket", os.path.join(workdir, "s0.sock"), "--cert", cert, "--key", key,
            "--ca", fabric.ca]
    # in a pod, Kubernetes mode is on and needs the selector
    r = subprocess.run(base, env=env, capture_output=True, text=True, timeout=20 * h.MULT)
    assert r.returncode == 2 and "--k8s-selector" in r.stderr, r
    # --no-k8s turns it off (the process starts; stop it at once)
    p = h.Proc("nok8s", base + ["--no-k8s", "--ready-file", os.path.join(workdir, "r0")], workdir,
               env=env)
    h.wait_for(lambda: os.path.exists(os.path.join(workdir, "r0")), 10, "started")
    assert p.stop() == 0
    with open(p.log_path) as f:
        assert "Kubernetes mode" not in f.read()
    # on, with a wrong token: the API server refuses (401), the controlplane keeps going
    g.extra_cp += ["--k8s-selector", SEL_ARG]
    old = dict(os.environ)
    os.environ.update(env)
    try:
        g.start()
    finally:
        os.environ.clear()
        os.environ.update(old)
    try:
        h.wait_for(lambda: "401" in g.ctl_json("status")["kubernetes"]["lastError"], 10,
                   "401 reported")
        assert not g.ctl_json("status")["kubernetes"]["synced"]
        create_import(g, "web", 80)
        assert svc_state(g, "web") == "pending"
        # the kubelet rotates the token: picked up without a restart
        with open(tok + ".new", "w") as f:
            f.write(TOKEN + "\n")
        os.replace(tok + ".new", tok)
        h.wait_for(lambda: g.ctl_json("status")["kubernetes"]["synced"], 40, "synced")
        wait_state(g, "web", "ready")
        check_service(api, api.service("web"), "web", 80,
                      import_json(g, "web")["spec"]["targetPort"])
    finally:
        rcs = g.stop()
    assert all(rc == 0 for rc in rcs.values()), rcs


def test_bad_configuration_is_refused(api, fabric, workdir):
    g = h.Gateway(fabric, "east", workdir)
    base = [h.CONTROLPLANE, "--name", "east", "--data-dir", os.path.join(workdir, "d"),
            "--socket", os.path.join(workdir, "s.sock"),
            "--cert", os.path.join(g.certdir, "cert.pem"),
            "--key", os.path.join(g.certdir, "key.pem"), "--ca", fabric.ca]

    def run(*args):
        return subprocess.run(base + list(args), capture_output=True, text=True,
                              timeout=20 * h.MULT)
    r = run("--k8s", "--kubeconfig", api.kubeconfig_path)
    assert r.returncode == 2 and "--k8s-selector" in r.stderr
    r = run("--k8s", "--kubeconfig", api.kubeconfig_path, "--k8s-selector", "app")
    assert r.returncode == 2 and "k=v" in r.stderr
    r = run("--kubeconfig", api.kubeconfig_path, "--k8s-selector", "a=b")
    assert r.returncode == 2 and "need Kubernetes mode" in r.stderr
    r = run("--no-k8s", "--k8s-lease-duration", "5")
    assert r.returncode == 2 and "need Kubernetes mode" in r.stderr
    r = run("--k8s", "--kubeconfig", os.path.join(workdir, "nope"), "--k8s-selector", "a=b")
    assert r.returncode == 1 and "cannot read kubeconfig" in r.stderr
    r = run("--k8s", "--k8s-namespace", "Bad", "--k8s-selector", "a=b")
    assert r.returncode == 2
    # outside a pod and without --kubeconfig there is nothing to talk to
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    r = subprocess.run(base + ["--k8s", "--k8s-selector", "a=b"], env=env, capture_output=True,
                       text=True, timeout=20 * h.MULT)
    assert r.returncode == 1 and "KUBERNETES_SERVICE_HOST" in r.stderr
    assert "--kubeconfig" in run("--help").stdout


# ---- a misbehaving API server ------------------------------------------------------------------

class FakeApi:
    """A TLS server with the API server's certificate that holds requests unanswered
    ("silent") or answers garbage ("garbage")."""

    def __init__(self, api, mode):
        self.mode = mode
        self.held = []
        self.requests = 0
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(api.dir, "cert.pem"), os.path.join(api.dir, "key.pem"))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.ctx = ctx
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, raw):
        try:
            c = self.ctx.wrap_socket(raw, server_side=True)
            c.settimeout(30)
            data = b""
            while b"\r\n\r\n" not in data:
                d = c.recv(4096)
                if not d:
                    return
                data += d
            self.requests += 1
            if self.mode == "silent":
                self.held.append(c)
                return
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: nonsense\r\n\r\n{}")
            c.close()
        except (OSError, ssl.SSLError):
            pass

    def release(self):
        for c in self.held:
            try:
                c.close()
            except OSError:
                pass
        self.held = []

    def close(self):
        self.closed = True
        self.release()
        self.sock.close()


def write_kubeconfig(path, port, ca, token=TOKEN):
    with open(path, "w") as f:
        f.write("current-context: t\ncontexts: [{name: t, context: {cluster: c, user: u, "
                "namespace: %s}}]\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:%d', "
                "certificate-authority: '%s'}}]\nusers: [{name: u, user: {token: %s}}]\n"
                % (NS, port, ca, token))


def test_misbehaving_api_server_never_blocks_the_controlplane(api, fabric, workdir):
    fake = FakeApi(api, "silent")
    kc = os.path.join(workdir, "fake-kubeconfig")
    write_kubeconfig(kc, fake.port, api.ca)
    g = h.Gateway(fabric, "east", workdir,
                  extra_cp=["--k8s", "--kubeconfig", kc, "--k8s-selector", SEL_ARG])
    try:
        g.start()
        h.wait_for(lambda: fake.requests >= 2, 10, "list requests held by the fake server")
        # every API request hangs; the controlplane still answers at once
        for i in range(5):
            t0 = time.monotonic()
            st = g.ctl_json("status")
            assert time.monotonic() - t0 < 2 * h.MULT
            assert st["kubernetes"]["synced"] is False
        create_import(g, "web", 80)
        assert svc_state(g, "web") == "pending"
        # the server starts talking nonsense: reported, retried, never fatal
        fake.mode = "garbage"
        fake.release()
        h.wait_for(lambda: "malformed HTTP" in g.ctl_json("status")["kubernetes"]["lastError"],
                   30, "bad answers reported")
        assert g.cp.alive()
    finally:
        rcs = g.stop()
        fake.close()
    assert all(rc == 0 for rc in rcs.values()), rcs


def test_replaced_api_server_ca_file_is_picked_up(api, fabric, workdir):
    """The kubeconfig names a CA file that does not sign the API server's certificate; the file
    is then replaced (renamed into place, as a mounted ConfigMap or Secret changes) with the
    right one: the controlplane connects without a restart. A file that is not a CA bundle at
    all is refused once and reported in status meanwhile."""
    other = os.path.join(workdir, "other-ca")
    os.makedirs(other)
    other_ca, _, _ = k8sharness.make_certs(other)
    ca = os.path.join(workdir, "api-ca.pem")
    shutil.copy(other_ca, ca)
    kc = os.path.join(workdir, "reloading-kubeconfig")
    write_kubeconfig(kc, api.port, ca)
    g = h.Gateway(fabric, "east", workdir,
                  extra_cp=["--k8s", "--kubeconfig", kc, "--k8s-selector", SEL_ARG,
                            "--cert-check-interval", "200"])

    def replace(src_text):
        tmp = ca + ".tmp"
        with open(tmp, "w") as f:
            f.write(src_text)
        os.rename(tmp, ca)
    try:
        g.start()
        h.wait_for(lambda: "not signed by the configured CA" in
                   g.ctl_json("status")["kubernetes"]["lastError"], 20, "TLS failure reported")
        assert api.controlplane_requests() == []
        replace("not a certificate\n")
        h.wait_for(lambda: g.ctl_json("status")["kubernetes"]["tlsReloadError"] != "", 10,
                   "refusal in status")
        with open(g.cp.log_path, "rb") as f:
            assert f.read().count(b"API server TLS files changed but cannot be used") == 1
        with open(api.ca) as f:
            replace(f.read())
        h.wait_for(lambda: g.ctl_json("status")["kubernetes"]["synced"] is True, 30,
                   "synced with the replaced CA")
        st = g.ctl_json("status")["kubernetes"]
        assert st["tlsReloadError"] == "", st  # lastError keeps the last failure, by design
        assert api.controlplane_requests() != []
        with open(g.cp.log_path, "rb") as f:
            assert b"API server TLS files reloaded" in f.read()
    finally:
        rcs = g.stop()
    assert all(rc == 0 for rc in rcs.values()), rcs


def test_untrusted_api_server_certificate_is_refused(api, fabric, workdir):
    other = os.path.join(workdir, "other-ca")
    os.makedirs(other)
    other_ca, _, _ = k8sharness.make_certs(other)
    kc = os.path.join(workdir, "wrong-ca-kubeconfig")
    write_kubeconfig(kc, api.port, other_ca)
    g = h.Gateway(fabric, "east", workdir,
                  extra_cp=["--k8s", "--kubeconfig", kc, "--k8s-selector", SEL_ARG])
    try:
        g.start()
        h.wait_for(lambda: "not signed by the configured CA" in
                   g.ctl_json("status")["kubernetes"]["lastError"], 20, "TLS failure reported")
        assert api.controlplane_requests() == []  # not a single request got through
    finally:
        rcs = g.stop()
    assert all(rc == 0 for rc in rcs.values()), rcs
