"""The strict Kubernetes test API server (tests/support/k8s) and its schema validator.

openapi.py, patches.py and selection.py are checked directly; the server is checked with the real
kubectl (<repo>/.tools/bin/kubectl, installed by .ci/install: missing is a failure, not a skip)
and with a small Python client for what kubectl does not show (409 on a stale resourceVersion,
410 on an expired watch, injected faults, the request log). Every test starts its own server on
port 0 and stops it by PID; it must exit 0.
"""
import contextlib
import copy
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support",
                                "k8s"))

import k8sharness  # noqa: E402
import openapi  # noqa: E402
import patches  # noqa: E402
import selection  # noqa: E402

SVC_PATH = "/api/v1/namespaces/default/services"
POD_PATH = "/api/v1/namespaces/default/pods"
CM_PATH = "/api/v1/namespaces/default/configmaps"


def service(name="web", port=80, target=8080, **spec):
    s = {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "labels": {"app": name}},
         "spec": {"selector": {"app": name},
                  "ports": [{"name": "tcp", "protocol": "TCP", "port": port,
                             "targetPort": target}]}}
    s["spec"].update(spec)
    return s


def deployment(name="web", replicas=2, image="nginx:1.27"):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "containers": [{"name": "main", "image": image,
                                         "ports": [{"name": "http", "containerPort": 8080}],
                                         "resources": {"requests": {"cpu": "100m",
                                                                    "memory": "64Mi"},
                                                       "limits": {"cpu": 1}}}]}}}}


def pod(name, ip, labels=None, sa="default"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": "client"}},
            "spec": {"serviceAccountName": sa,
                     "containers": [{"name": "c", "image": "busybox:1.36"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def configmap(name, data=None, **meta):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(meta, name=name),
            "data": data or {"k": "v"}}


@pytest.fixture
def srv(workdir):
    s = k8sharness.ApiServer(workdir).start()
    yield s
    assert s.stop() == 0, s.tail()


def dump(workdir, name, objs):
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        yaml.safe_dump_all(objs, f)
    return path


# ---- openapi.py --------------------------------------------------------------------------------

def test_spec_is_the_published_file():
    with gzip.open(openapi.SPEC_GZ, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == openapi.SPEC_SHA256
    assert len(openapi.definitions()) == 771


def test_valid_objects_pass():
    assert openapi.validate(service()) == []
    assert openapi.validate(deployment()) == []
    s = service(target="http")  # a named target port
    s["metadata"]["creationTimestamp"] = None  # null = unset, as kubectl writes it
    assert openapi.validate(s) == []
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "cl"}}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]}
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"},
           "spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"a": "b"}}}}
    lst = {"apiVersion": "v1", "kind": "List", "items": [sa, role, pdb]}
    assert openapi.validate(lst) == []


def test_unknown_fields_are_errors_with_paths():
    s = service()
    s["spec"]["bogus"] = 1
    s["spec"]["ports"][0]["extra"] = "x"
    s["metadata"]["labelz"] = {}
    errs = openapi.validate(s)
    assert '$.spec.bogus: unknown field "bogus"' in errs
    assert '$.spec.ports[0].extra: unknown field "extra"' in errs
    assert '$.metadata.labelz: unknown field "labelz"' in errs
    assert len(errs) == 3
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["resources"]["request"] = {}
    assert openapi.validate(d) == [
        '$.spec.template.spec.containers[0].resources.request: unknown field "request"']


def test_wrong_types_are_errors():
    s = service(port="80")
    s["spec"]["selector"]["n"] = 3  # map values are strings
    s["spec"]["ports"][0]["targetPort"] = True  # int-or-string, not a boolean
    errs = openapi.validate(s)
    assert "$.spec.ports[0].port: expected integer, got string" in errs
    assert "$.spec.selector.n: expected string, got integer" in errs
    assert "$.spec.ports[0].targetPort: expected integer or string, got boolean" in errs
    assert len(errs) == 3
    s = service(target=1.5)
    assert openapi.validate(s) == ["$.spec.ports[0].targetPort: expected integer or string, "
                                   "got number"]
    s = service(port=2 ** 31)
    assert openapi.validate(s) == ["$.spec.ports[0].port: integer 2147483648 out of int32 range"]
    d = deployment()
    d["spec"]["template"]["spec"]["containers"] = {"name": "x"}
    assert openapi.validate(d) == ["$.spec.template.spec.containers: expected array, got object"]
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "1 core"
    assert len(openapi.validate(d)) == 1
    assert "quantities must match" in openapi.validate(d)[0]


def test_required_kind_and_list_keys():
    d = deployment()
    del d["spec"]["selector"]
    d["spec"]["template"]["spec"]["containers"].append({"image": "x"})
    errs = openapi.validate(d)
    assert "$.spec.selector: required field is missing" in errs
    assert "$.spec.template.spec.containers[1].name: required field is missing" in errs
    assert openapi.validate({"apiVersion": "v1", "kind": "Nope"})[0].startswith(
        "$: no schema for apiVersion")
    assert openapi.validate({"kind": "Service"}) == [
        "$.apiVersion: apiVersion is required (a non-empty string)"]
    s = service()
    s["spec"]["ports"].append({"name": "again", "port": 80, "targetPort": 1})  # protocol TCP
    assert openapi.validate(s) == ["$.spec.ports[1]: duplicate entry for key port=80, "
                                   "protocol=\"TCP\" (same as index 0)"]


def test_prune_and_manifests():
    s = service()
    s["spec"]["bogus"] = {"x": 1}
    assert openapi.prune_unknown(s) == service()
    docs = openapi.load_manifests("a: 1\n---\n---\nb: 2018-01-01\n")
    assert docs == [{"a": 1}, {"b": "2018-01-01"}]
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        openapi.load_manifests("a: 1\na: 2\n")


def test_resources_from_spec_paths():
    rs = {(r.group, r.version, r.plural): r for r in openapi.resources()}
    svc = rs[("", "v1", "services")]
    assert svc.kind == "Service" and svc.namespaced
    assert svc.verbs == ["create", "delete", "deletecollection", "get", "list", "patch",
                         "update", "watch"]
    assert svc.subresources["status"]["verbs"] == ["get", "patch", "update"]
    assert not rs[("", "v1", "namespaces")].namespaced
    assert rs[("apps", "v1", "deployments")].kind == "Deployment"
    assert not rs[("rbac.authorization.k8s.io", "v1", "clusterroles")].namespaced
    assert rs[("rbac.authorization.k8s.io", "v1", "roles")].namespaced
    assert rs[("policy", "v1", "poddisruptionbudgets")].namespaced
    assert rs[("", "v1", "componentstatuses")].verbs == ["get", "list"]
    g = openapi.groups()
    assert g[""] == ["v1"] and g["apps"] == ["v1"] and g["autoscaling"][0] == "v2"


def test_label_and_field_selectors():
    ls = selection.parse_label_selector("app=web,tier!=db,env in (a, b),!legacy,zone")
    assert ls.matches({"app": "web", "env": "a", "zone": "x"})
    assert not ls.matches({"app": "web", "env": "a", "zone": "x", "legacy": ""})
    assert not ls.matches({"app": "web", "env": "c", "zone": "x"})
    assert not ls.matches({"app": "web", "env": "a", "zone": "x", "tier": "db"})
    assert not ls.matches({"app": "web", "env": "a"})
    assert selection.parse_label_selector("a==b,c notin (d)").matches({"a": "b", "c": "e"})
    for bad in ("a in b", "a=(", "=x", "a,", "a in ()", "Bad Key=1"):
        with pytest.raises(selection.SelectorError):
            selection.parse_label_selector(bad)
    fs = selection.parse_field_selector("metadata.name=x,status.podIP!=1.2.3.4",
                                        ["metadata.name", "status.podIP"])
    assert fs.matches({"metadata.name": "x", "status.podIP": "5.6.7.8"})
    assert not fs.matches({"metadata.name": "x", "status.podIP": "1.2.3.4"})
    with pytest.raises(selection.SelectorError, match="field label not supported: spec.x"):
        selection.parse_field_selector("spec.x=1", ["metadata.name"])


def test_patches():
    svc = service()
    svc["spec"]["ports"].append({"name": "m", "port": 9090, "targetPort": 9090})
    # strategic: ports merge by port, $setElementOrder, $patch: delete, null deletes
    p = {"spec": {"$setElementOrder/ports": [{"port": 9090}, {"port": 81}],
                  "ports": [{"port": 9090, "targetPort": 9191}, {"port": 81, "name": "n"},
                            {"$patch": "delete", "port": 80}],
                  "selector": {"app": None, "x": "y"}}}
    out = patches.strategic_merge_patch(svc, p, "io.k8s.api.core.v1.Service")
    assert out["spec"]["ports"] == [{"name": "m", "port": 9090, "targetPort": 9191},
                                    {"port": 81, "name": "n"}]
    assert out["spec"]["selector"] == {"x": "y"}
    d = deployment()
    d["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "s"})
    p = {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "s2"}]}},
                  "strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    d["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}
    out = patches.strategic_merge_patch(d, p, "io.k8s.api.apps.v1.Deployment")
    cs = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == ["main", "side"] and cs[1]["image"] == "s2"
    assert cs[0] == d["spec"]["template"]["spec"]["containers"][0]
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    # lists without a merge strategy are replaced
    out = patches.strategic_merge_patch(svc, {"spec": {"externalIPs": ["1.2.3.4"]}},
                                        "io.k8s.api.core.v1.Service")
    assert out["spec"]["externalIPs"] == ["1.2.3.4"]
    with pytest.raises(patches.PatchError, match="merge key"):
        patches.strategic_merge_patch(svc, {"spec": {"ports": [{"name": "x"}]}},
                                      "io.k8s.api.core.v1.Service")
    # RFC 7386 and RFC 6902
    assert patches.merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {
        "a": {"c": 2, "d": 3}}
    doc = {"a": [1, 2], "b": {"c": "x"}}
    out = patches.json_patch(doc, [{"op": "add", "path": "/a/-", "value": 3},
                                   {"op": "replace", "path": "/b/c", "value": "y"},
                                   {"op": "move", "from": "/b/c", "path": "/d"},
                                   {"op": "test", "path": "/a/2", "value": 3}])
    assert out == {"a": [1, 2, 3], "b": {}, "d": "y"} and doc == {"a": [1, 2], "b": {"c": "x"}}
    with pytest.raises(patches.PatchConflict):
        patches.json_patch(doc, [{"op": "test", "path": "/a/0", "value": 9}])
    with pytest.raises(patches.PatchConflict):
        patches.json_patch(doc, [{"op": "remove", "path": "/nope"}])


# ---- the server, through kubectl ---------------------------------------------------------------

def test_kubectl_is_installed():
    assert os.access(k8sharness.KUBECTL, os.X_OK), \
        "kubectl missing at %s: run .ci/install" % k8sharness.KUBECTL


def test_kubectl_apply_update_get_delete(srv, workdir):
    path = dump(workdir, "app.yaml", [service(), deployment()])
    out = srv.kubectl("apply", "-f", path).stdout
    assert "service/web created" in out and "deployment.apps/web created" in out
    first = json.loads(srv.kubectl("get", "service", "web", "-o", "json").stdout)
    assert first["spec"]["clusterIP"].startswith("10.")
    assert first["spec"]["ports"][0]["targetPort"] == 8080
    assert "kubectl.kubernetes.io/last-applied-configuration" in first["metadata"]["annotations"]

    # apply again with changes: a new port, another target, more replicas, a new env var
    svc = service(target=9090)
    svc["spec"]["ports"].append({"name": "metrics", "port": 9100, "targetPort": 9100})
    dep = deployment(replicas=3)
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": "x"}]
    path = dump(workdir, "app2.yaml", [svc, dep])
    out = srv.kubectl("apply", "-f", path).stdout
    assert "service/web configured" in out and "deployment.apps/web configured" in out
    assert "unchanged" in srv.kubectl("apply", "-f", path).stdout
    now = json.loads(srv.kubectl("get", "service", "web", "-o", "json").stdout)
    assert now["metadata"]["uid"] == first["metadata"]["uid"]
    assert "generation" not in now["metadata"]  # Services have none; Deployments do (below)
    assert now["spec"]["clusterIP"] == first["spec"]["clusterIP"]
    assert [(p["port"], p["targetPort"]) for p in now["spec"]["ports"]] == [(80, 9090),
                                                                          (9100, 9100)]
    assert int(now["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    d = json.loads(srv.kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert d["spec"]["replicas"] == 3 and d["metadata"]["generation"] == 2
    assert d["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE",
                                                                      "value": "x"}]

    lst = json.loads(srv.kubectl("get", "svc", "-l", "app=web", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in lst["items"]] == ["web"]
    out = srv.kubectl("delete", "-f", path).stdout
    assert 'service "web" deleted' in out and 'deployment.apps "web" deleted' in out
    p = srv.kubectl("get", "svc", "web", check=False)
    assert p.returncode != 0 and 'services "web" not found' in p.stderr
    names = srv.kubectl("get", "svc", "-o", "name").stdout.split()
    assert names == ["service/kubernetes"]
    # the protocol kubectl negotiated: client-side apply = strategic merge patch with
    # fieldValidation=Strict, discovery and openapi v3 served as JSON
    log = srv.requests()
    patched = [r for r in log if r["method"] == "PATCH"]
    assert patched and all("fieldValidation=Strict" in r["query"] and r["code"] == 200
                           for r in patched)
    assert any(r["path"] == "/openapi/v3" and r["code"] == 200 for r in log)
    assert not any(r["path"] == "/openapi/v2" for r in log)


@contextlib.contextmanager
def kubectl_watching(srv, out_path, *args):
    """Runs `kubectl <args>` (a --watch) with its output in out_path. The body runs once the
    server has the watch; after it the server ends the stream, which must end kubectl."""
    cmd, env = srv.kubectl_cmd(*args)
    with open(out_path, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env, text=True)
    try:
        k8sharness_wait(lambda: any(r["verb"] == "watch" for r in srv.requests()),
                        "watch opened")
        yield
        srv.expire_watches()
        p.wait(timeout=30 * k8sharness.MULT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_kubectl_watch_sees_events(srv, workdir):
    srv.kubectl("apply", "-f", dump(workdir, "a.yaml", [service("first")]))
    out_path = os.path.join(workdir, "watch.out")
    # the server ending the stream ends `kubectl get --watch`
    with kubectl_watching(srv, out_path, "get", "services", "--watch", "--output-watch-events",
                          "--request-timeout=60s", "-o",
                          "jsonpath={.type} {.object.metadata.name}{\"\\n\"}"):
        srv.kubectl("apply", "-f", dump(workdir, "b.yaml", [service("second")]))
        srv.kubectl("label", "service", "second", "tier=x")
        srv.kubectl("delete", "service", "second")
        k8sharness_wait(lambda: "DELETED second" in open(out_path).read(), "DELETED printed")
    lines = open(out_path).read().split("\n")
    assert "ADDED first" in lines and "ADDED kubernetes" in lines
    i = lines.index("ADDED second")
    assert lines[i + 1:i + 3] == ["MODIFIED second", "DELETED second"], lines


def k8sharness_wait(cond, what, timeout=20):
    import time
    deadline = time.monotonic() + timeout * k8sharness.MULT
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def test_kubectl_refusals(srv, workdir):
    srv.kubectl("apply", "-f", dump(workdir, "ok.yaml", [service()]))
    bad = service()
    bad["spec"]["bogus"] = 1
    p = srv.kubectl("apply", "--validate=strict", "-f", dump(workdir, "u.yaml", [bad]),
                    check=False)
    assert p.returncode != 0 and 'strict decoding error: unknown field "spec.bogus"' in p.stderr
    new = service("fresh")
    new["spec"]["ports"][0]["extra"] = True
    p = srv.kubectl("create", "-f", dump(workdir, "u2.yaml", [new]), check=False)
    assert p.returncode != 0 and 'unknown field "spec.ports[0].extra"' in p.stderr
    p = srv.kubectl("get", "svc", "fresh", check=False)
    assert p.returncode != 0
    # --validate=warn: kept, warned, the field dropped
    p = srv.kubectl("apply", "--validate=warn", "-f", dump(workdir, "w.yaml", [new]))
    assert 'Warning: unknown field "spec.ports[0].extra"' in p.stderr
    got = json.loads(srv.kubectl("get", "svc", "fresh", "-o", "json").stdout)
    assert "extra" not in got["spec"]["ports"][0]

    p = srv.kubectl("apply", "-f", dump(workdir, "n.yaml", [service("1web")]), check=False)
    assert p.returncode != 0 and 'metadata.name: Invalid value: "1web": a DNS-1035 label' \
        in p.stderr
    p = srv.kubectl("apply", "-f", dump(workdir, "n2.yaml", [service("web.x")]), check=False)
    assert p.returncode != 0 and "DNS-1035" in p.stderr

    p = srv.kubectl("apply", "-f", dump(workdir, "p.yaml", [service("big", port=70000)]),
                    check=False)
    assert p.returncode != 0 and \
        "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive" \
        in p.stderr
    p = srv.kubectl("apply", "-f", dump(workdir, "t.yaml", [service("big", target=0)]))
    p = srv.kubectl("apply", "-f", dump(workdir, "t2.yaml", [service("big2", target=65536)]),
                    check=False)
    assert p.returncode != 0 and "spec.ports[0].targetPort: Invalid value: 65536" in p.stderr
    p = srv.kubectl("apply", "-f", dump(workdir, "t3.yaml", [service("big3", target="no_way")]),
                    check=False)
    assert p.returncode != 0 and 'spec.ports[0].targetPort: Invalid value: "no_way"' in p.stderr

    ip = json.loads(srv.kubectl("get", "svc", "web", "-o", "json").stdout)["spec"]["clusterIP"]
    other = "10.96.0.77" if ip != "10.96.0.77" else "10.96.0.78"
    p = srv.kubectl("apply", "-f", dump(workdir, "c.yaml", [service(clusterIP=other)]),
                    check=False)
    assert p.returncode != 0 and 'spec.clusterIP: Invalid value: "%s": field is immutable' \
        % other in p.stderr
    p = srv.kubectl("patch", "svc", "web", "--type=merge", "-p",
                    json.dumps({"spec": {"clusterIP": other, "clusterIPs": [other]}}),
                    check=False)
    assert p.returncode != 0 and "field is immutable" in p.stderr
    got = json.loads(srv.kubectl("get", "svc", "web", "-o", "json").stdout)
    assert got["spec"]["clusterIP"] == ip

    d = deployment()
    d["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    p = srv.kubectl("apply", "-f", dump(workdir, "d.yaml", [d]), check=False)
    assert p.returncode != 0 and "`selector` does not match template `labels`" in p.stderr


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
KUBECTL_ACCEPT = TABLE + ",application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


def kubectl_table(srv, *args):
    """`kubectl get ARGS` as (header, rows), cells split on runs of 2+ spaces."""
    lines = [ln for ln in srv.kubectl("get", *args).stdout.splitlines() if ln.strip()]
    rows = [re.split(r"\s{2,}", ln.strip()) for ln in lines]
    return rows[0], rows[1:]


def server_table(srv, path, accept=TABLE):
    code, _, t = srv.request("GET", path, headers={"Accept": accept})
    assert code == 200 and t["kind"] == "Table", (code, t)
    return t


def cells(table, name):
    rows = [r["cells"] for r in table["rows"] if r["cells"][0] == name]
    assert len(rows) == 1, (name, table["rows"])
    return rows[0]


AGE = re.compile(r"^\d+s$")


def test_printers_cover_every_served_kind():
    """Every kind served gets a Table, from a bare object (what a watch bookmark carries) and
    from one with common fields, with as many cells as columns (but IPAddress, whose upstream
    printer fills one more cell than it defines columns)."""
    import printers
    now = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 90))
    for r in openapi.resources():
        for o in ({"metadata": {"resourceVersion": "7"}},
                  {"metadata": {"name": "x", "creationTimestamp": ts, "labels": {"a": "b"}},
                   "spec": {"selector": {"matchLabels": {"a": "b"}}, "replicas": 2},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}}):
            t = printers.table(r.group, r.version, r.kind, [o], now=now)
            assert t["kind"] == "Table" and len(t["rows"]) == 1, (r, t)
            extra = 1 if r.kind == "IPAddress" else 0
            assert len(t["rows"][0]["cells"]) == len(t["columnDefinitions"]) + extra, (r, t)
            if "name" in o["metadata"]:
                assert t["rows"][0]["cells"][0 if r.kind != "Event" else 9] == "x", (r, t)
    assert printers.human_duration(90) == "90s" and printers.human_duration(150) == "2m30s"
    assert printers.human_duration(3 * 3600 + 60) == "3h1m"
    assert printers.human_duration(50 * 3600) == "2d2h"
    assert printers.human_duration(400 * 86400) == "400d"
    assert printers.human_duration(3 * 365 * 86400 + 86400) == "3y1d"
    assert printers.human_duration(-0.5) == "0s" and printers.human_duration(-5) == "<invalid>"


def test_kubectl_get_prints_the_server_table(srv, workdir):
    """`kubectl get` asks for a meta.k8s.io Table and prints the server's columns: those of
    upstream's printers for the kinds the project uses (Leases: NAME HOLDER AGE, Services, Pods,
    Namespaces, Deployments, ...), NAME CREATED AT for kinds without one (Roles)."""
    objs = [lease("gw", holder="pod-1_ab"),
            service(), service("np", type="NodePort"), service("lb", type="LoadBalancer"),
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
             "spec": {"type": "ExternalName", "externalName": "db.example.com"}},
            service("headless", clusterIP="None"),
            deployment(replicas=3), configmap("cm", {"a": "1", "b": "2"}),
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
             "stringData": {"k": "v"}},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "cl"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "r"},
             "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "rb"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
             "subjects": [{"kind": "ServiceAccount", "name": "cl", "namespace": "default"},
                          {"kind": "User", "name": "alice",
                           "apiGroup": "rbac.authorization.k8s.io"}]},
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Gi"}}}},
            {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
             "metadata": {"name": "pdb"},
             "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}]
    srv.kubectl("apply", "-f", dump(workdir, "all.yaml", objs))
    three_h_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 3600))
    running = pod("run", "10.1.0.7", labels={"app": "web"})
    running["spec"]["nodeName"] = "node-1"
    running["status"].update(containerStatuses=[{
        "name": "c", "image": "busybox:1.36", "imageID": "", "ready": True, "restartCount": 2,
        "state": {"running": {"startedAt": three_h_ago}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": three_h_ago}}}])
    waiting = pod("wait", "10.1.0.8")
    waiting["status"] = {"phase": "Pending", "containerStatuses": [{
        "name": "c", "image": "busybox:1.36", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
    done = pod("done", "10.1.0.9")
    done["status"] = {"phase": "Succeeded", "containerStatuses": [{
        "name": "c", "image": "busybox:1.36", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
    for p in (running, waiting, done):
        assert srv.request("POST", POD_PATH, body=p)[0] == 201

    head, rows = kubectl_table(srv, "lease")
    assert head == ["NAME", "HOLDER", "AGE"] and rows[0][:2] == ["gw", "pod-1_ab"], rows
    assert AGE.match(rows[0][2]), rows

    head, rows = kubectl_table(srv, "svc")
    assert head == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], head
    by = {r[0]: r[1:5] for r in rows}
    svcs = {s["metadata"]["name"]: s for s in srv.request("GET", SVC_PATH)[2]["items"]}
    assert by["web"] == ["ClusterIP", svcs["web"]["spec"]["clusterIP"], "<none>", "80/TCP"]
    assert by["np"] == ["NodePort", svcs["np"]["spec"]["clusterIP"], "<none>",
                        "80:%d/TCP" % svcs["np"]["spec"]["ports"][0]["nodePort"]]
    assert by["lb"][2] == "<pending>" and by["lb"][0] == "LoadBalancer"
    assert by["ext"] == ["ExternalName", "<none>", "db.example.com", "<none>"]
    assert by["headless"][:2] == ["ClusterIP", "None"]
    assert by["kubernetes"] == ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    head, rows = kubectl_table(srv, "svc", "web", "-o", "wide")
    assert head[-1] == "SELECTOR" and rows[0][-1] == "app=web", (head, rows)

    head, rows = kubectl_table(srv, "pods", "-o", "wide")
    assert head == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                    "NOMINATED NODE", "READINESS GATES"], head
    by = {r[0]: r for r in rows}
    assert by["run"][1:4] == ["1/1", "Running", "2 (3h ago)"], by["run"]
    assert by["run"][5:] == ["10.1.0.7", "node-1", "<none>", "<none>"], by["run"]
    assert by["wait"][1:4] == ["0/1", "ImagePullBackOff", "0"], by["wait"]
    assert by["done"][1:4] == ["0/1", "Completed", "0"], by["done"]
    t = server_table(srv, POD_PATH)
    done_row = [r for r in t["rows"] if r["cells"][0] == "done"][0]
    assert done_row["conditions"] == [{"type": "Completed", "status": "True",
                                       "reason": "Succeeded",
                                       "message": "The pod has completed successfully."}]

    head, rows = kubectl_table(srv, "ns")
    assert head == ["NAME", "STATUS", "AGE"] and ["default", "Active"] == rows[0][:2], rows
    head, rows = kubectl_table(srv, "deploy", "-o", "wide")
    assert head == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES",
                    "SELECTOR"], head
    assert rows[0][:4] == ["web", "0/3", "0", "0"] and rows[0][5:] == [
        "main", "nginx:1.27", "app=web"], rows
    assert kubectl_table(srv, "cm", "cm")[1][0][:2] == ["cm", "2"]
    head, rows = kubectl_table(srv, "secret", "s")
    assert head == ["NAME", "TYPE", "DATA", "AGE"] and rows[0][:3] == ["s", "Opaque", "1"]
    head, rows = kubectl_table(srv, "sa", "cl")
    assert head == ["NAME", "SECRETS", "AGE"] and rows[0][:2] == ["cl", "0"]
    head, rows = kubectl_table(srv, "pdb")
    assert head == ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]
    assert rows[0][:4] == ["pdb", "1", "N/A", "0"], rows
    head, rows = kubectl_table(srv, "pvc")
    assert head == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
                    "VOLUMEATTRIBUTESCLASS", "AGE"], head
    assert cells(server_table(srv, "/api/v1/namespaces/default/persistentvolumeclaims"),
                 "data")[:7] == ["data", "Pending", "", "", "", "", "<unset>"]
    head, rows = kubectl_table(srv, "rolebinding", "-o", "wide")
    assert head == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"], head
    assert cells(server_table(srv, "/apis/rbac.authorization.k8s.io/v1/namespaces/default/"
                                   "rolebindings"), "rb")[3:] == ["alice", "", "default/cl"]
    # no printer upstream: the default table, the creation time as RFC 3339
    head, rows = kubectl_table(srv, "role")
    created = srv.request("GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/"
                                 "roles/r")[2]["metadata"]["creationTimestamp"]
    assert head == ["NAME", "CREATED AT"] and rows == [["r", created]], rows
    # kinds together, as `kubectl get all` asks for them
    out = srv.kubectl("get", "all").stdout
    assert "deployment.apps/web" in out and "pod/run" in out and "service/np" in out, out

    # the Table itself: column definitions, the row object, ListMeta
    t = server_table(srv, LEASE_PATH, accept=KUBECTL_ACCEPT)
    assert t["apiVersion"] == "meta.k8s.io/v1" and [
        (c["name"], c["type"], c["format"], c["priority"]) for c in t["columnDefinitions"]] == [
        ("Name", "string", "name", 0), ("Holder", "string", "", 0), ("Age", "string", "", 0)]
    assert t["columnDefinitions"][1]["description"].startswith("holderIdentity")
    row, = t["rows"]
    assert row["object"]["kind"] == "PartialObjectMetadata" and \
        row["object"]["apiVersion"] == "meta.k8s.io/v1beta1" and \
        row["object"]["metadata"]["name"] == "gw" and "spec" not in row["object"]
    assert t["metadata"]["resourceVersion"]
    full = server_table(srv, LEASE_PATH + "?includeObject=Object")["rows"][0]["object"]
    assert full["kind"] == "Lease" and full["spec"]["holderIdentity"] == "pod-1_ab"
    assert "object" not in server_table(srv, LEASE_PATH + "?includeObject=None")["rows"][0]
    code, _, st = srv.request("GET", LEASE_PATH + "?includeObject=All",
                              headers={"Accept": TABLE})
    assert code == 400 and st["message"] == 'unrecognized includeObject value: "All"', st
    page = server_table(srv, POD_PATH + "?limit=2")
    assert len(page["rows"]) == 2 and page["metadata"]["continue"] and \
        page["metadata"]["remainingItemCount"] == 1, page["metadata"]
    one = server_table(srv, LEASE_PATH + "/gw", accept=TABLE.replace("v=v1", "v=v1beta1"))
    assert one["apiVersion"] == "meta.k8s.io/v1beta1" and cells(one, "gw")[1] == "pod-1_ab"
    # a Table of another version is not served; what else the client accepts is
    code, _, st = srv.request("GET", LEASE_PATH, headers={
        "Accept": "application/json;as=Table;v=v2;g=meta.k8s.io"})
    assert code == 406 and st["reason"] == "NotAcceptable", st
    code, _, lst = srv.request("GET", LEASE_PATH, headers={
        "Accept": "application/json;as=Table;v=v2;g=meta.k8s.io,application/json"})
    assert code == 200 and lst["kind"] == "LeaseList", lst
    # metadata only, as client-go's metadata client asks for it
    meta_list = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    code, _, pl = srv.request("GET", LEASE_PATH, headers={"Accept": meta_list})
    assert code == 200 and pl["kind"] == "PartialObjectMetadataList" and \
        [(i["kind"], i["metadata"]["name"]) for i in pl["items"]] == [
            ("PartialObjectMetadata", "gw")] and "spec" not in pl["items"][0], pl
    code, _, po = srv.request("GET", LEASE_PATH + "/gw", headers={
        "Accept": meta_list.replace("MetadataList", "Metadata")})
    assert code == 200 and po["kind"] == "PartialObjectMetadata" and "spec" not in po, po
    code, _, st = srv.request("GET", LEASE_PATH + "/gw", headers={"Accept": meta_list})
    assert code == 406 and "is not a list" in st["message"], st


def test_create_drops_the_status_controllers_own(srv):
    """As the real registry does on create: a Service's or Deployment's status from the client
    is dropped (its defaults follow); the status subresource is how it is set. Pods keep
    theirs here (README)."""
    lb = service("lb", type="LoadBalancer")
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}
    code, _, got = srv.request("POST", SVC_PATH, body=lb)
    assert code == 201 and got["status"] == {"loadBalancer": {}}, got
    d = deployment("d")
    d["status"] = {"replicas": 5, "readyReplicas": 5}
    code, _, got = srv.request("POST", "/apis/apps/v1/namespaces/default/deployments", body=d)
    assert code == 201 and "status" not in got, got
    code, _, got = srv.request("POST", POD_PATH, body=pod("p", "10.1.0.5"))
    assert code == 201 and got["status"]["podIP"] == "10.1.0.5"
    code, _, got = srv.request("PATCH", SVC_PATH + "/lb/status", body=json.dumps(
        {"status": lb["status"]}), headers={"Content-Type": "application/merge-patch+json"})
    assert code == 200 and got["status"] == lb["status"], got
    assert cells(server_table(srv, SVC_PATH), "lb")[3] == "192.0.2.7"


def test_kubectl_get_watch_prints_table_rows(srv, workdir):
    """`kubectl get -w` watches as a Table too: each event a Table of one row, the column
    definitions in the first event only."""
    code, _, first = srv.request("POST", LEASE_PATH, body=lease("gw", holder="a_1"))
    assert code == 201
    out_path = os.path.join(workdir, "watch.out")
    with kubectl_watching(srv, out_path, "get", "leases", "--watch", "--request-timeout=60s"):
        got = copy.deepcopy(first)
        got["spec"]["holderIdentity"] = "b_2"
        assert srv.request("PUT", LEASE_PATH + "/gw", body=got)[0] == 200
        k8sharness_wait(lambda: "b_2" in open(out_path).read(), "the new holder printed")
    lines = [re.split(r"\s{2,}", ln.strip()) for ln in open(out_path) if ln.strip()]
    assert lines[0] == ["NAME", "HOLDER", "AGE"], lines
    assert [ln[:2] for ln in lines[1:]] == [["gw", "a_1"], ["gw", "b_2"]], lines

    # the stream itself (resumed from a list's resourceVersion: the one above was compacted)
    rv = srv.request("GET", LEASE_PATH)[2]["metadata"]["resourceVersion"]
    got = srv.request("GET", LEASE_PATH + "/gw")[2]
    got["spec"]["holderIdentity"] = "c_3"
    assert srv.request("PUT", LEASE_PATH + "/gw", body=got)[0] == 200
    evs = srv.watch(LEASE_PATH + "?watch=1&resourceVersion=%s&timeoutSeconds=3" % rv,
                    timeout=10, accept=TABLE)
    ev = next(evs)
    assert ev["type"] == "MODIFIED" and ev["object"]["kind"] == "Table" and \
        [c["name"] for c in ev["object"]["columnDefinitions"]] == ["Name", "Holder", "Age"]
    assert ev["object"]["rows"][0]["cells"][:2] == ["gw", "c_3"]
    assert srv.request("DELETE", LEASE_PATH + "/gw")[0] == 200
    ev = next(evs)
    assert ev["type"] == "DELETED" and ev["object"]["columnDefinitions"] is None and \
        ev["object"]["rows"][0]["cells"][:2] == ["gw", "c_3"], ev
    assert list(evs) == []


def test_kubectl_discovery_and_explain(srv):
    out = srv.kubectl("api-resources", "--api-group=apps").stdout
    assert "deployments" in out and "deploy" in out
    out = srv.kubectl("api-resources").stdout
    for line in ("services", "svc", "poddisruptionbudgets", "clusterroles"):
        assert line in out
    out = srv.kubectl("api-versions").stdout.split()
    assert "v1" in out and "apps/v1" in out and "rbac.authorization.k8s.io/v1" in out
    out = srv.kubectl("explain", "service.spec.ports.targetPort").stdout
    assert "IntOrString" in out or "<IntOrString>" in out
    out = srv.kubectl("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["gitVersion"].startswith("v1.36.0")


# ---- the server, through HTTP ------------------------------------------------------------------

def test_auth_and_errors(srv):
    code, _, st = srv.request("GET", SVC_PATH, token=False)
    assert code == 401 and st["kind"] == "Status" and st["reason"] == "Unauthorized"
    code, _, st = srv.request("GET", SVC_PATH, token="wrong")
    assert code == 401
    old = srv.token
    srv.set_tokens(["rotated"])
    assert srv.request("GET", SVC_PATH, token=old)[0] == 401
    assert srv.request("GET", SVC_PATH)[0] == 200
    code, _, v = srv.request("GET", "/version", token=False)
    assert code == 200 and v["major"] == "1"
    code, _, st = srv.request("GET", SVC_PATH + "/nope")
    assert code == 404 and st["reason"] == "NotFound" and st["message"] == \
        'services "nope" not found' and st["details"] == {"name": "nope", "kind": "services"}
    code, _, st = srv.request("POST", SVC_PATH, body=b"{nope")
    assert code == 400 and st["reason"] == "BadRequest"
    code, _, st = srv.request("POST", SVC_PATH, body=service())
    assert code == 201
    code, _, st = srv.request("POST", SVC_PATH, body=service())
    assert code == 409 and st["reason"] == "AlreadyExists"
    code, _, st = srv.request("POST", "/api/v1/namespaces/ghost/services", body=service())
    assert code == 404 and st["message"] == 'namespaces "ghost" not found'
    code, _, st = srv.request("POST", SVC_PATH, body=service("x", port=0))
    assert code == 422 and st["reason"] == "Invalid" and st["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "field": "spec.ports[0].port",
         "message": "Invalid value: 0: must be between 1 and 65535, inclusive"}]
    two = service("two")
    two["spec"]["ports"].append({"port": 81, "targetPort": "http"})
    code, _, st = srv.request("POST", SVC_PATH, body=two)
    assert code == 422 and st["details"]["causes"][0]["field"] == "spec.ports[1].name"
    code, _, st = srv.request("POST", SVC_PATH, body=service("y", target="8080"))
    assert code == 422  # a string target port must be an IANA name, not digits
    code, _, st = srv.request("GET", "/apis/apps/v1/namespaces/default/nothings")
    assert code == 404
    code, _, st = srv.request("POST", SVC_PATH, body=service("z"),
                              headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert code == 415


def test_field_validation_modes(srv):
    s = service("a")
    s["spec"]["bogus"] = 1
    code, _, st = srv.request("POST", SVC_PATH + "?fieldValidation=Strict", body=s)
    assert code == 400 and 'unknown field "spec.bogus"' in st["message"]
    code, h, obj = srv.request("POST", SVC_PATH, body=s)  # default Warn
    assert code == 201 and "bogus" not in obj["spec"]
    assert h.get_all("Warning") == ['299 - "unknown field \\"spec.bogus\\""']
    s["metadata"]["name"] = "b"
    code, h, obj = srv.request("POST", SVC_PATH + "?fieldValidation=Ignore", body=s)
    assert code == 201 and not h.get_all("Warning")
    dup = b'{"apiVersion":"v1","kind":"Service","metadata":{"name":"c","name":"c"},' \
          b'"spec":{"ports":[{"port":1}]}}'
    code, _, st = srv.request("POST", SVC_PATH + "?fieldValidation=Strict", body=dup,
                              headers={"Content-Type": "application/json"})
    assert code == 400 and st["message"] == 'Service in version "v1" cannot be handled as a ' \
        'Service: strict decoding error: duplicate field "metadata.name"', st
    nested = b'{"apiVersion":"v1","kind":"Service","metadata":{"name":"c"},' \
             b'"spec":{"ports":[{"port":1,"port":2}]}}'
    code, h, obj = srv.request("POST", SVC_PATH, body=nested,
                               headers={"Content-Type": "application/json"})
    assert code == 201 and obj["spec"]["ports"][0]["port"] == 2  # the last one, warned
    assert h.get_all("Warning") == ['299 - "duplicate field \\"spec.ports[0].port\\""'], \
        h.get_all("Warning")
    code, _, st = srv.request("POST", SVC_PATH + "?fieldValidation=Bogus", body=service("d"))
    assert code == 400
    bad = service("e")
    bad["spec"]["ports"][0]["port"] = "eighty"
    code, _, st = srv.request("POST", SVC_PATH + "?fieldValidation=Ignore", body=bad)
    assert code == 400 and st["message"] == (
        'Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string '
        'into Go struct field ServicePort.spec.ports.port of type int32'), st


def test_update_conflicts_and_noop(srv):
    code, _, obj = srv.request("POST", SVC_PATH, body=service())
    assert code == 201
    uid, rv, ip = obj["metadata"]["uid"], obj["metadata"]["resourceVersion"], \
        obj["spec"]["clusterIP"]
    # a PUT built from scratch (no clusterIP, no resourceVersion) keeps the allocated IP
    code, _, upd = srv.request("PUT", SVC_PATH + "/web", body=service(target=9000))
    assert code == 200 and upd["spec"]["clusterIP"] == ip and upd["metadata"]["uid"] == uid
    assert int(upd["metadata"]["resourceVersion"]) > int(rv)
    # the same object again: nothing written, resourceVersion unchanged
    code, _, same = srv.request("PUT", SVC_PATH + "/web", body=upd)
    assert code == 200 and same["metadata"]["resourceVersion"] == upd["metadata"][
        "resourceVersion"]
    # stale resourceVersion: 409 Conflict
    stale = copy.deepcopy(obj)
    stale["spec"]["ports"][0]["port"] = 81
    code, _, st = srv.request("PUT", SVC_PATH + "/web", body=stale)
    assert code == 409 and st["reason"] == "Conflict" and "the object has been modified" in \
        st["message"]
    code, _, st = srv.request("PATCH", SVC_PATH + "/web", body=json.dumps(
        {"metadata": {"resourceVersion": rv}, "spec": {"selector": {"a": "b"}}}),
        headers={"Content-Type": "application/merge-patch+json"})
    assert code == 409
    code, _, st = srv.request("PUT", SVC_PATH + "/missing", body=service("missing"))
    assert code == 404
    code, _, st = srv.request("PUT", SVC_PATH + "/web", body=service("other"))
    assert code == 400 and "does not match the name on the URL" in st["message"]
    # merge patch and json patch
    code, _, p1 = srv.request("PATCH", SVC_PATH + "/web", body=json.dumps(
        {"metadata": {"labels": {"x": "1"}}}),
        headers={"Content-Type": "application/merge-patch+json"})
    assert code == 200 and p1["metadata"]["labels"] == {"app": "web", "x": "1"}
    code, _, p2 = srv.request("PATCH", SVC_PATH + "/web", body=json.dumps(
        [{"op": "test", "path": "/spec/ports/0/targetPort", "value": 9000},
         {"op": "replace", "path": "/spec/ports/0/targetPort", "value": "http"}]),
        headers={"Content-Type": "application/json-patch+json"})
    assert code == 200 and p2["spec"]["ports"][0]["targetPort"] == "http"
    code, _, st = srv.request("PATCH", SVC_PATH + "/web", body=json.dumps(
        [{"op": "test", "path": "/spec/ports/0/targetPort", "value": 1}]),
        headers={"Content-Type": "application/json-patch+json"})
    assert code == 422
    code, _, st = srv.request("PATCH", SVC_PATH + "/web", body="{}",
                              headers={"Content-Type": "application/apply-patch+yaml"})
    assert code == 415
    # delete with a stale precondition, then for real: services answer with the object
    code, _, st = srv.request("DELETE", SVC_PATH + "/web", body={
        "preconditions": {"resourceVersion": rv}})
    assert code == 409
    code, _, gone = srv.request("DELETE", SVC_PATH + "/web")
    assert code == 200 and gone["kind"] == "Service" and gone["metadata"]["uid"] == uid
    code, _, st = srv.request("DELETE", SVC_PATH + "/web")
    assert code == 404
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
    assert srv.request("POST", "/api/v1/namespaces/default/configmaps", body=cm)[0] == 201
    code, _, st = srv.request("DELETE", "/api/v1/namespaces/default/configmaps/c")
    assert code == 200 and st["kind"] == "Status" and st["status"] == "Success"


LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


def lease(name="gw", holder="a_1", duration=15, **spec):
    ts = "2026-01-02T03:04:05.123456Z"  # MicroTime: RFC 3339 with microseconds
    s = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
         "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                  "acquireTime": ts, "renewTime": ts, "leaseTransitions": 0}}
    s["spec"].update(spec)
    return s


def test_leases_as_leader_election_uses_them(srv, workdir):
    """coordination.k8s.io/v1 leases as client-go's leader election (and the controlplane)
    uses them: create when absent, take over / renew / release with a PUT carrying the
    resourceVersion, 409 to the one that moved second; and validated like the real server."""
    code, _, first = srv.request("POST", LEASE_PATH, body=lease())
    assert code == 201, first
    assert first["spec"]["renewTime"] == "2026-01-02T03:04:05.123456Z"
    code, _, st = srv.request("POST", LEASE_PATH, body=lease(holder="b_2"))
    assert code == 409 and st["reason"] == "AlreadyExists", st
    code, _, got = srv.request("GET", LEASE_PATH + "/gw")
    assert code == 200 and got["spec"]["holderIdentity"] == "a_1"
    # two candidates read the same version; the first PUT wins, the second gets 409
    a, b = copy.deepcopy(got), copy.deepcopy(got)
    a["spec"].update(holderIdentity="b_2", leaseTransitions=1)
    code, _, won = srv.request("PUT", LEASE_PATH + "/gw", body=a)
    assert code == 200 and int(won["metadata"]["resourceVersion"]) > int(
        got["metadata"]["resourceVersion"])
    b["spec"].update(holderIdentity="c_3", leaseTransitions=1)
    code, _, st = srv.request("PUT", LEASE_PATH + "/gw", body=b)
    assert code == 409 and st["reason"] == "Conflict", st
    assert "leases.coordination.k8s.io" in st["message"]
    assert st["details"] == {"name": "gw", "kind": "leases", "group": "coordination.k8s.io"}
    # a no-op PUT writes nothing; a release (holder cleared, as ReleaseOnCancel) is a write
    code, _, same = srv.request("PUT", LEASE_PATH + "/gw", body=won)
    assert code == 200 and same["metadata"]["resourceVersion"] == won["metadata"][
        "resourceVersion"]
    won["spec"].update(holderIdentity="", leaseDurationSeconds=1)
    code, _, rel = srv.request("PUT", LEASE_PATH + "/gw", body=won)
    assert code == 200 and rel["spec"]["holderIdentity"] == ""
    assert "generation" not in rel["metadata"]
    code, _, st = srv.request("PUT", LEASE_PATH + "/missing", body=lease("missing"))
    assert code == 404 and st["details"]["group"] == "coordination.k8s.io", st
    # the real server's validation
    for body, field, msg in [
            (lease("d0", duration=0), "spec.leaseDurationSeconds", "must be greater than 0"),
            (lease("t", leaseTransitions=-1), "spec.leaseTransitions",
             "must be greater than or equal to 0"),
            (lease("p", preferredHolder="x"), "spec.preferredHolder",
             "may only be specified if `strategy` is defined"),
            (lease("s", strategy="Newest"), "spec.strategy", "Unsupported value"),
            (lease("Bad_Name"), "metadata.name", "RFC 1123 subdomain")]:
        code, _, st = srv.request("POST", LEASE_PATH, body=body)
        assert code == 422 and st["reason"] == "Invalid", (body, st)
        causes = st["details"]["causes"]
        assert [c["field"] for c in causes] == [field] and msg in causes[0]["message"], st
    code, _, st = srv.request("POST", LEASE_PATH, body=lease("ok", strategy="OldestEmulationVersion",
                                                            preferredHolder="x"))
    assert code == 201, st
    code, _, st = srv.request("POST", LEASE_PATH + "?fieldValidation=Strict",
                              body=lease("u", holderId="x"))
    assert code == 400 and 'unknown field "spec.holderId"' in st["message"], st
    code, _, st = srv.request("POST", LEASE_PATH, body=lease("w", renewTime="yesterday"))
    assert code == 400 and st["reason"] == "BadRequest", st  # test_time_decoding has more
    # and with kubectl: apply (create, unchanged, configured), get
    path = dump(workdir, "lease.yaml", [lease("kc", holder="pod-1_ab")])
    assert "lease.coordination.k8s.io/kc created" in srv.kubectl("apply", "-f", path).stdout
    assert "unchanged" in srv.kubectl("apply", "-f", path).stdout
    path = dump(workdir, "lease2.yaml", [lease("kc", holder="pod-2_cd", leaseTransitions=1)])
    assert "lease.coordination.k8s.io/kc configured" in srv.kubectl("apply", "-f", path).stdout
    got = json.loads(srv.kubectl("get", "lease", "kc", "-o", "json").stdout)
    assert got["spec"]["holderIdentity"] == "pod-2_cd" and got["spec"]["leaseTransitions"] == 1
    names = srv.kubectl("get", "leases.coordination.k8s.io", "-o", "name").stdout.split()
    assert names == ["lease.coordination.k8s.io/" + n for n in ("gw", "kc", "ok")], names
    assert "kc" in srv.kubectl("get", "lease").stdout


MICRO_LAYOUT = '"2006-01-02T15:04:05.000000Z07:00"'


def test_time_and_quantity_decoding(srv, workdir):
    """Times and quantities are decoded as the real server's Go types do: a value that does not
    parse is a decoding error (400 BadRequest with Go's words, nothing stored) on POST and PUT,
    and a 422 on the field "patch" when a patch produces it; what parses is stored the way Go
    writes it back (UTC; metav1.Time to the second, MicroTime with six fraction digits)."""
    prefix = 'Lease in version "v1" cannot be handled as a Lease: '
    for value, detail in [
            ("yesterday", 'cannot parse "yesterday" as "2006"'),
            # a MicroTime is RFC3339Micro: exactly six fraction digits
            ("2026-01-02T03:04:05Z", 'cannot parse "Z" as ".000000"'),
            ("2026-01-02T03:04:05.123Z", 'cannot parse ".123Z" as ".000000"'),
            ("2026-01-02T03:04:05.1234567Z", 'cannot parse "7Z" as "Z07:00"'),
            ("2026-01-02t03:04:05.123456Z", 'cannot parse "t03:04:05.123456Z" as "T"'),
            ("2026-01-02T03:04:05.123456z", 'cannot parse "z" as "Z07:00"')]:
        code, _, st = srv.request("POST", LEASE_PATH, body=lease("w", renewTime=value))
        assert code == 400 and st["reason"] == "BadRequest", (value, st)
        assert st["message"] == '%sparsing time "%s" as %s: %s' % (
            prefix, value, MICRO_LAYOUT, detail), st
    for value, detail in [("2026-02-30T03:04:05.123456Z", "day out of range"),
                          ("2026-13-02T03:04:05.123456Z", "month out of range"),
                          ("2026-01-02T24:04:05.123456Z", "hour out of range"),
                          ("2026-01-02T03:04:05.123456Zjunk", 'extra text: "junk"')]:
        code, _, st = srv.request("POST", LEASE_PATH, body=lease("w", acquireTime=value))
        assert code == 400 and st["message"] == '%sparsing time "%s": %s' % (
            prefix, value, detail), st
    code, _, st = srv.request("POST", LEASE_PATH, body=lease("w", renewTime=5))
    assert code == 400 and st["message"] == \
        prefix + "json: cannot unmarshal number into Go value of type string", st
    # a time's own decoding error ends decoding: it wins over an earlier type mismatch, which
    # is otherwise the one reported (the first in the document)
    code, _, st = srv.request("POST", LEASE_PATH, body=lease(
        "w", holderIdentity=7, leaseDurationSeconds="x", renewTime="soon"))
    assert code == 400 and st["message"].startswith(prefix + 'parsing time "soon"'), st
    code, _, st = srv.request("POST", LEASE_PATH, body=lease(
        "w", holderIdentity=7, leaseDurationSeconds="x"))
    assert code == 400 and st["message"] == prefix + (
        "json: cannot unmarshal number into Go struct field LeaseSpec.spec.holderIdentity of "
        "type string"), st
    assert srv.request("GET", LEASE_PATH + "/w")[0] == 404  # none of these was stored

    # metav1.Time is RFC3339: any fraction, dropped once stored; offsets become UTC
    code, _, st = srv.request("POST", CM_PATH, body=configmap("t", creationTimestamp="never"))
    assert code == 400 and st["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: parsing time "never" as '
        '"2006-01-02T15:04:05Z07:00": cannot parse "never" as "2006"'), st
    p = pod("p", "10.1.0.5")
    p["status"]["startTime"] = "2026-01-02T05:04:05.75+02:00"
    code, _, got = srv.request("POST", POD_PATH, body=p)
    assert code == 201 and got["status"]["startTime"] == "2026-01-02T03:04:05Z", got
    code, _, got = srv.request("POST", LEASE_PATH, body=lease(
        "n", renewTime="2026-01-02T05:04:05.123456+02:00"))
    assert code == 201 and got["spec"]["renewTime"] == "2026-01-02T03:04:05.123456Z", got
    assert got["spec"]["acquireTime"] == "2026-01-02T03:04:05.123456Z"
    # the same instant written another way is no change: nothing is written
    same = copy.deepcopy(got)
    same["spec"]["renewTime"] = "2026-01-02T04:04:05.123456+01:00"
    code, _, put = srv.request("PUT", LEASE_PATH + "/n", body=same)
    assert code == 200 and put["metadata"]["resourceVersion"] == \
        got["metadata"]["resourceVersion"], put
    rv = got["metadata"]["resourceVersion"]
    bad = copy.deepcopy(got)
    bad["spec"]["renewTime"] = "2026-01-02T03:04:05Z"
    code, _, st = srv.request("PUT", LEASE_PATH + "/n", body=bad)
    assert code == 400 and st["message"] == '%sparsing time "2026-01-02T03:04:05Z" as %s: ' \
        'cannot parse "Z" as ".000000"' % (prefix, MICRO_LAYOUT), st

    # a patch that makes a bad time: 422 Invalid on "patch", no kind, no name
    for ctype, body, shown in [
            ("application/merge-patch+json", {"spec": {"renewTime": "yesterday"}}, "{"),
            ("application/strategic-merge-patch+json", {"spec": {"renewTime": "yesterday"}},
             "map[spec:map[renewTime:yesterday]]"),
            ("application/json-patch+json",
             [{"op": "replace", "path": "/spec/renewTime", "value": "yesterday"}], "{")]:
        code, _, st = srv.request("PATCH", LEASE_PATH + "/n", body=json.dumps(body),
                                  headers={"Content-Type": ctype})
        assert code == 422 and st["reason"] == "Invalid", (ctype, st)
        assert st["message"].startswith(' "" is invalid: patch: Invalid value: "' + shown.replace(
            '"', '\\"')), st
        assert st["message"].endswith(': parsing time "yesterday" as %s: cannot parse '
                                      '"yesterday" as "2006"' % MICRO_LAYOUT), st
        cause, = st["details"]["causes"]
        assert cause["field"] == "patch" and cause["reason"] == "FieldValueInvalid"
        assert "kind" not in st["details"] and "name" not in st["details"], st
    # the merge patch's value is the patched object, as Go writes it (keys sorted)
    code, _, st = srv.request("PATCH", LEASE_PATH + "/n", body=json.dumps(
        {"spec": {"renewTime": "yesterday"}}),
        headers={"Content-Type": "application/merge-patch+json"})
    shown = json.loads(json.loads(st["message"][len(' "" is invalid: patch: Invalid value: '):]
                                  .rsplit(": parsing time", 1)[0]))
    assert shown["spec"]["renewTime"] == "yesterday" and shown["kind"] == "Lease", shown
    # the converter behind strategic merge patches has its own words for a wrong type
    code, _, st = srv.request("PATCH", LEASE_PATH + "/n", body=json.dumps(
        {"spec": {"leaseDurationSeconds": "x"}}),
        headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert code == 422 and st["message"].endswith(
        '"map[spec:map[leaseDurationSeconds:x]]": unrecognized type: int32'), st
    code, _, st = srv.request("PATCH", LEASE_PATH + "/n", body=json.dumps(
        {"spec": {"leaseDurationSeconds": "x"}}),
        headers={"Content-Type": "application/merge-patch+json"})
    assert code == 422 and st["message"].endswith(
        ": json: cannot unmarshal string into Go struct field LeaseSpec.spec.leaseDurationSeconds"
        " of type int32"), st
    # strict decoding errors of a patched object are 422 too (400 for a body)
    code, _, st = srv.request("PATCH", LEASE_PATH + "/n?fieldValidation=Strict", body=json.dumps(
        {"spec": {"holder": "x"}}), headers={"Content-Type": "application/merge-patch+json"})
    assert code == 422 and st["message"].endswith(
        ': strict decoding error: unknown field "spec.holder"'), st
    assert srv.request("GET", LEASE_PATH + "/n")[2]["metadata"]["resourceVersion"] == rv

    # quantities: ParseQuantity's errors, 400 as well
    for value, detail in [("1Gb", "quantities must match the regular expression "
                           "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
                          ("1GG", "unable to parse quantity's suffix")]:
        d = deployment("q")
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = value
        code, _, st = srv.request("POST", "/apis/apps/v1/namespaces/default/deployments", body=d)
        assert code == 400 and st["message"] == \
            'Deployment in version "v1" cannot be handled as a Deployment: ' + detail, st
    # what the real server validates after decoding stays 422
    code, _, st = srv.request("POST", LEASE_PATH, body=lease("z", leaseDurationSeconds=0))
    assert code == 422 and st["reason"] == "Invalid", st

    # kubectl shows the real server's answers
    path = dump(workdir, "badtime.yaml", [lease("kc", renewTime="2026-01-02T03:04:05Z")])
    p = srv.kubectl("apply", "-f", path, check=False)
    assert p.returncode != 0 and "Error from server (BadRequest)" in p.stderr and \
        'cannot parse "Z" as ".000000"' in p.stderr, p.stderr
    p = srv.kubectl("patch", "lease", "n", "--type=merge", "-p",
                    '{"spec":{"renewTime":"yesterday"}}', check=False)
    assert p.returncode != 0 and "The request is invalid: patch: Invalid value:" in p.stderr \
        and 'cannot parse "yesterday" as "2006"' in p.stderr, p.stderr


def test_node_ports_and_cluster_ips(srv):
    code, _, a = srv.request("POST", SVC_PATH, body=service("a", type="NodePort"))
    assert code == 201 and 30000 <= a["spec"]["ports"][0]["nodePort"] <= 32767
    taken = a["spec"]["ports"][0]["nodePort"]
    b = service("b", type="NodePort")
    b["spec"]["ports"][0]["nodePort"] = taken
    code, _, st = srv.request("POST", SVC_PATH, body=b)
    assert code == 422 and "provided port is already allocated" in st["message"]
    b["spec"]["ports"][0]["nodePort"] = 80
    code, _, st = srv.request("POST", SVC_PATH, body=b)
    assert code == 422 and "valid ports is 30000-32767" in st["message"]
    c = service("c")
    c["spec"]["ports"][0]["nodePort"] = 31000
    code, _, st = srv.request("POST", SVC_PATH, body=c)
    assert code == 422 and "may not be used when `type` is 'ClusterIP'" in st["message"]
    code, _, st = srv.request("POST", SVC_PATH, body=service("d", clusterIP=a["spec"][
        "clusterIP"]))
    assert code == 422 and "provided IP is already allocated" in st["message"]
    code, _, st = srv.request("POST", SVC_PATH, body=service("e", clusterIP="192.168.0.1"))
    assert code == 422 and "not in the valid range" in st["message"]
    code, _, f = srv.request("POST", SVC_PATH, body=service("f", clusterIP="None"))
    assert code == 201 and f["spec"]["clusterIP"] == "None"
    code, _, g = srv.request("POST", SVC_PATH, body=service("g", clusterIP="10.96.1.1"))
    assert code == 201 and g["spec"]["clusterIPs"] == ["10.96.1.1"]
    # NodePort -> ClusterIP wipes the node port; the update keeps clusterIP
    code, _, a2 = srv.request("PUT", SVC_PATH + "/a", body=service("a"))
    assert code == 200 and "nodePort" not in a2["spec"]["ports"][0]
    assert a2["spec"]["clusterIP"] == a["spec"]["clusterIP"]


def test_list_selectors_and_pod_status(srv):
    for name, ip, labels in (("p1", "10.244.0.5", {"app": "client", "tier": "a"}),
                             ("p2", "10.244.0.6", {"app": "client", "tier": "b"}),
                             ("p3", "10.244.0.7", {"app": "other"})):
        code, _, obj = srv.request("POST", POD_PATH, body=pod(name, ip, labels))
        assert code == 201, obj
        assert obj["status"]["podIP"] == ip
    code, _, lst = srv.request("GET", "/api/v1/pods?fieldSelector=status.podIP%3D10.244.0.6")
    assert code == 200 and [i["metadata"]["name"] for i in lst["items"]] == ["p2"]
    assert "kind" not in lst["items"][0] and lst["kind"] == "PodList"
    assert int(lst["metadata"]["resourceVersion"]) > 0

    def names(q):
        code, _, lst = srv.request("GET", POD_PATH + "?labelSelector=" + q)
        assert code == 200, lst
        return [i["metadata"]["name"] for i in lst["items"]]
    assert names("app%3Dclient") == ["p1", "p2"]
    assert names("app%3D%3Dclient,tier!%3Da") == ["p2"]
    assert names("tier%20in%20(a,b)") == ["p1", "p2"]
    assert names("tier%20notin%20(a)") == ["p2", "p3"]
    assert names("tier") == ["p1", "p2"]
    assert names("!tier") == ["p3"]
    code, _, st = srv.request("GET", POD_PATH + "?labelSelector=a%20in%20b")
    assert code == 400
    code, _, st = srv.request("GET", SVC_PATH + "?fieldSelector=status.podIP%3D1.2.3.4")
    assert code == 400 and "field label not supported" in st["message"]
    # paging
    code, _, page = srv.request("GET", POD_PATH + "?limit=2")
    assert len(page["items"]) == 2 and page["metadata"]["remainingItemCount"] == 1
    code, _, rest = srv.request("GET", POD_PATH + "?limit=2&continue=" +
                                page["metadata"]["continue"])
    assert [i["metadata"]["name"] for i in rest["items"]] == ["p3"]
    # pods/status: PUT and PATCH change status only
    code, _, p = srv.request("GET", POD_PATH + "/p1")
    p["status"]["podIP"] = "10.244.1.1"
    p["status"]["podIPs"] = [{"ip": "10.244.1.1"}]
    p["spec"]["containers"][0]["image"] = "ignored:1"
    code, _, p2 = srv.request("PUT", POD_PATH + "/p1/status", body=p)
    assert code == 200 and p2["status"]["podIP"] == "10.244.1.1"
    assert p2["spec"]["containers"][0]["image"] == "busybox:1.36"
    code, _, p3 = srv.request("PATCH", POD_PATH + "/p1/status", body=json.dumps(
        {"status": {"podIP": "10.244.1.2", "podIPs": [{"ip": "10.244.1.2"}]}}),
        headers={"Content-Type": "application/merge-patch+json"})
    assert code == 200 and p3["status"]["podIP"] == "10.244.1.2"
    # a strategic merge patch merges podIPs by ip: two IPs, the first no longer podIP
    code, _, st = srv.request("PATCH", POD_PATH + "/p1/status", body=json.dumps(
        {"status": {"podIP": "10.244.1.3", "podIPs": [{"ip": "10.244.1.3"}]}}),
        headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert code == 422 and st["details"]["causes"][0]["field"] == "status.podIPs[0].ip"
    # the main resource keeps status on update; spec changes other than image are refused
    p3["status"]["podIP"] = "1.1.1.1"
    code, _, p4 = srv.request("PUT", POD_PATH + "/p1", body=p3)
    assert code == 200 and p4["status"]["podIP"] == "10.244.1.2"
    p4["spec"]["serviceAccountName"] = "other"
    code, _, st = srv.request("PUT", POD_PATH + "/p1", body=p4)
    assert code == 422 and "pod updates may not change fields" in st["message"]
    code, _, st = srv.request("POST", POD_PATH, body=pod("bad", "not-an-ip"))
    assert code == 422 and st["details"]["causes"][0]["field"] == "status.podIP"


def test_watch_resume_transitions_and_expiry(srv):
    code, _, lst = srv.request("GET", SVC_PATH)
    rv0 = lst["metadata"]["resourceVersion"]
    srv.request("POST", SVC_PATH, body=service("a"))
    code, _, b = srv.request("POST", SVC_PATH, body=service("b"))
    srv.request("PATCH", SVC_PATH + "/b", body=json.dumps({"metadata": {"labels": {"w": "1"}}}),
                headers={"Content-Type": "application/merge-patch+json"})
    srv.request("PATCH", SVC_PATH + "/b", body=json.dumps({"metadata": {"labels": {"w": None}}}),
                headers={"Content-Type": "application/merge-patch+json"})
    srv.request("DELETE", SVC_PATH + "/a")
    # resume from the list's resourceVersion: every change since, in order
    evs = list(srv.watch(SVC_PATH + "?watch=1&resourceVersion=%s&timeoutSeconds=1" % rv0))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
        ("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "b"), ("MODIFIED", "b"), ("DELETED", "a")]
    assert all(e["object"]["kind"] == "Service" for e in evs)
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
    assert rvs == sorted(rvs) and len(set(rvs)) == 5
    # with a label selector, entering and leaving the selection are ADDED and DELETED
    evs = list(srv.watch(SVC_PATH + "?watch=1&labelSelector=w%%3D1&resourceVersion=%s"
                         "&timeoutSeconds=1" % rv0))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
        ("ADDED", "b"), ("DELETED", "b")]
    # the DELETED of one leaving is what it was (it matched), at the change's resourceVersion
    assert evs[1]["object"]["metadata"]["labels"]["w"] == "1" and \
        evs[1]["object"]["metadata"]["resourceVersion"] == str(rvs[3])
    # no resourceVersion: the current state as ADDED, then live events
    w = srv.watch(SVC_PATH + "?watch=1&timeoutSeconds=5")
    first = [next(w), next(w)]
    assert sorted(e["object"]["metadata"]["name"] for e in first) == ["b", "kubernetes"]
    srv.request("POST", SVC_PATH, body=service("c"))
    e = next(w)
    assert e["type"] == "ADDED" and e["object"]["metadata"]["name"] == "c"
    last_rv = e["object"]["metadata"]["resourceVersion"]
    # expire: the open watch ends; resuming from before now gets 410 Gone as an ERROR event
    srv.expire_watches()
    assert list(w) == []
    evs = list(srv.watch(SVC_PATH + "?watch=1&resourceVersion=%s" % last_rv))
    assert len(evs) == 1 and evs[0]["type"] == "ERROR"
    st = evs[0]["object"]
    assert st["code"] == 410 and st["reason"] == "Expired" and \
        st["message"].startswith("too old resource version")
    # re-list and watch from the new resourceVersion works
    code, _, lst = srv.request("GET", SVC_PATH)
    w = srv.watch(SVC_PATH + "?watch=1&timeoutSeconds=5&resourceVersion=" +
                  lst["metadata"]["resourceVersion"])
    srv.request("DELETE", SVC_PATH + "/c")
    e = next(w)
    assert e["type"] == "DELETED" and e["object"]["metadata"]["name"] == "c"
    w.close()
    # a continue token from before the compaction is gone too
    code, _, page = srv.request("GET", SVC_PATH + "?limit=1")
    srv.expire_watches()
    srv.request("POST", SVC_PATH, body=service("d"))
    code, _, st = srv.request("GET", SVC_PATH + "?limit=1&continue=" +
                              page["metadata"]["continue"])
    assert code == 410 and st["reason"] == "Expired"


def test_watch_bookmarks_and_end(srv):
    """allowWatchBookmarks=true gets BOOKMARKs as from the real server: about every minute
    (--watch-bookmark-seconds) and 2 s before the timeout, an empty object of the kind at the
    current resourceVersion; none without it. /_test/end-watches ends watches as a timeout
    does: they resume from where they were."""
    code, _, lst = srv.request("GET", LEASE_PATH)
    rv = lst["metadata"]["resourceVersion"]
    w = srv.watch(LEASE_PATH + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=3"
                  "&resourceVersion=" + rv)
    assert srv.request("POST", LEASE_PATH, body=lease("a"))[0] == 201
    code, _, cm = srv.request("POST", CM_PATH, body=configmap("elsewhere"))
    evs = list(w)
    assert [e["type"] for e in evs] == ["ADDED", "BOOKMARK"], evs
    assert evs[1]["object"] == {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                                "metadata": {"resourceVersion": cm["metadata"][
                                    "resourceVersion"]}}, evs
    evs = list(srv.watch(LEASE_PATH + "?watch=1&timeoutSeconds=3&resourceVersion=" + rv))
    assert [e["type"] for e in evs] == ["ADDED"], evs
    # a timeout of 2 s or less leaves no time for one
    evs = list(srv.watch(LEASE_PATH + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=2"
                         "&resourceVersion=" + rv))
    assert [e["type"] for e in evs] == ["ADDED"], evs
    # ended, not expired: resuming from the last resourceVersion seen gets what came since
    w = srv.watch(LEASE_PATH + "?watch=1&timeoutSeconds=30&resourceVersion=" + rv)
    first = next(w)
    srv.end_watches()
    assert list(w) == []
    assert srv.request("POST", LEASE_PATH, body=lease("b"))[0] == 201
    evs = list(srv.watch(LEASE_PATH + "?watch=1&timeoutSeconds=1&resourceVersion=" +
                         first["object"]["metadata"]["resourceVersion"]))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [("ADDED", "b")], evs


def test_watch_bookmarks_every_interval(workdir):
    s = k8sharness.ApiServer(workdir, args=["--watch-bookmark-seconds", "1"]).start()
    try:
        evs = list(s.watch(LEASE_PATH + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=5",
                           timeout=15))
        # at 1 s, 2 s and 3 s (2 s before the end); nothing else to see
        assert [e["type"] for e in evs] == ["BOOKMARK"] * 3, evs
    finally:
        assert s.stop() == 0, s.tail()


def test_answers_framed_as_go_does(srv):
    """The real server sets no Content-Length: Go's net/http gives small answers one and
    sends bigger ones chunked (HTTP/1.1), gzip from 128 KiB when the client accepts it."""
    code, h, obj = srv.request("GET", SVC_PATH + "/kubernetes")
    assert code == 200 and h.get("Content-Length") and not h.get("Transfer-Encoding")
    for i in range(8):
        assert srv.request("POST", CM_PATH, body=configmap("c%d" % i, {"k": "v" * 300}))[0] == 201
    code, h, lst = srv.request("GET", CM_PATH)
    assert code == 200 and h.get("Transfer-Encoding") == "chunked" and \
        not h.get("Content-Length") and len(lst["items"]) == 8, h
    big = configmap("big", {"k": "x" * (140 * 1024)})
    assert srv.request("POST", CM_PATH, body=big)[0] == 201
    code, h, data = srv.request("GET", CM_PATH + "/big", raw=True,
                                headers={"Accept-Encoding": "gzip"})
    assert code == 200 and h.get("Content-Encoding") == "gzip", h
    assert json.loads(gzip.decompress(data))["data"]["k"] == big["data"]["k"]
    code, h, data = srv.request("GET", CM_PATH + "/big", raw=True)
    assert code == 200 and not h.get("Content-Encoding") and json.loads(data)["data"] == \
        big["data"]
    # kubectl reads both
    assert len(srv.kubectl("get", "cm", "-o", "name").stdout.split()) == 9


def test_faults_and_request_log(srv):
    srv.request("POST", SVC_PATH, body=service())
    srv.reset()
    srv.faults({"method": "PUT", "resource": "services", "codes": [409, 429, 500], "count": 3})
    body = service(target=9999)
    got = []
    for _ in range(4):
        code, h, st = srv.request("PUT", SVC_PATH + "/web", body=body)
        got.append(code)
        if code == 429:
            assert h["Retry-After"] == "1" and st["reason"] == "TooManyRequests"
            assert st["details"]["retryAfterSeconds"] == 1
        elif code == 409:
            assert st["reason"] == "Conflict"
        elif code == 500:
            assert st["reason"] == "InternalError"
    assert got == [409, 429, 500, 200]
    # other methods and resources are not affected; count cycles through codes
    srv.faults([{"resource": "pods", "verb": "list", "codes": [503], "count": 2}])
    assert srv.request("GET", SVC_PATH)[0] == 200
    assert [srv.request("GET", POD_PATH)[0] for _ in range(3)] == [503, 503, 200]
    code, _, st = srv.request("POST", "/_test/faults", body={"codes": []}, token=False)
    assert code == 400
    log = srv.requests()
    assert [(r["method"], r["path"], r["code"]) for r in log[:4]] == [
        ("PUT", SVC_PATH + "/web", c) for c in (409, 429, 500, 200)]
    assert log[0]["verb"] == "update" and log[0]["resource"] == "services" and \
        log[0]["namespace"] == "default" and log[0]["name"] == "web"
    srv.request("GET", SVC_PATH + "?labelSelector=app%3Dweb")
    assert srv.requests()[-1]["query"] == "labelSelector=app%3Dweb"
    srv.reset()
    assert srv.requests() == []
    assert srv.control("GET", "faults") == {"faults": []}


def test_state_dir_keeps_objects(workdir):
    state = os.path.join(workdir, "state")
    s = k8sharness.ApiServer(workdir, state_dir=state).start()
    try:
        code, _, obj = s.request("POST", SVC_PATH, body=service())
        assert code == 201
    finally:
        assert s.stop() == 0
    s = k8sharness.ApiServer(workdir, state_dir=state, token=s.token).start()
    try:
        code, _, again = s.request("GET", SVC_PATH + "/web")
        assert code == 200 and again == obj
        code, _, lst = s.request("GET", SVC_PATH)
        rv = int(lst["metadata"]["resourceVersion"])
        assert rv >= int(obj["metadata"]["resourceVersion"])
        evs = list(s.watch(SVC_PATH + "?watch=1&resourceVersion=1"))
        assert evs[0]["type"] == "ERROR" and evs[0]["object"]["code"] == 410
    finally:
        assert s.stop() == 0


def test_rbac_and_namespaces(srv):
    rb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
          "metadata": {"name": "cl"},
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cl"},
          "subjects": [{"kind": "ServiceAccount", "name": "cl", "namespace": "default"}]}
    path = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings"
    code, _, obj = srv.request("POST", path, body=rb)
    assert code == 201
    obj["roleRef"]["name"] = "other"
    code, _, st = srv.request("PUT", path + "/cl", body=obj)
    assert code == 422 and "cannot change roleRef" in st["message"]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "x", "namespace": "ignored"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": []}]}
    code, _, st = srv.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                              body=role)
    assert code == 422 and st["details"]["causes"][0]["field"] == "rules[0].verbs"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad_NS"}}
    code, _, st = srv.request("POST", "/api/v1/namespaces", body=ns)
    assert code == 422
    ns["metadata"]["name"] = "team"
    assert srv.request("POST", "/api/v1/namespaces", body=ns)[0] == 201
    assert srv.request("POST", "/api/v1/namespaces/team/services", body=service())[0] == 201
    code, _, gone = srv.request("DELETE", "/api/v1/namespaces/team")
    assert code == 200 and gone["status"]["phase"] == "Terminating"
    assert srv.request("GET", "/api/v1/namespaces/team/services/web")[0] == 404


def test_concurrent_writers_and_watchers(srv):
    """Writers on several connections (keep-alive, many requests each) while two watchers (one
    namespaced, one cluster-wide) follow: every change seen once, in resourceVersion order."""
    code, _, lst = srv.request("GET", "/api/v1/pods")
    rv0 = lst["metadata"]["resourceVersion"]
    errors = []

    def writer(n):
        c = srv.connect()
        h = {"Authorization": "Bearer " + srv.token, "Content-Type": "application/json"}
        try:
            for i in range(10):
                name = "w%d-%d" % (n, i)
                c.request("POST", POD_PATH, body=json.dumps(pod(name, "10.1.%d.%d" % (n, i))),
                          headers=h)
                r = c.getresponse()
                r.read()
                if r.status != 201:
                    errors.append((name, r.status))
                c.request("DELETE", POD_PATH + "/" + name, headers=h)
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    errors.append((name, r.status))
        finally:
            c.close()
    seen = {}

    def watcher(key, path):
        evs = []
        for e in srv.watch(path + "?watch=1&timeoutSeconds=30&resourceVersion=" + rv0):
            evs.append((e["type"], e["object"]["metadata"]["name"],
                        int(e["object"]["metadata"]["resourceVersion"])))
            if len(evs) == 80:
                break
        seen[key] = evs
    watchers = [threading.Thread(target=watcher, args=("ns", POD_PATH)),
                threading.Thread(target=watcher, args=("all", "/api/v1/pods"))]
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in watchers + writers:
        t.start()
    for t in writers + watchers:
        t.join(60)
    assert errors == []
    for key in ("ns", "all"):
        evs = seen[key]
        assert len(evs) == 80, key
        rvs = [e[2] for e in evs]
        assert rvs == sorted(rvs) and len(set(rvs)) == 80
        for n in range(4):
            for i in range(10):
                name = "w%d-%d" % (n, i)
                assert [e[0] for e in evs if e[1] == name] == ["ADDED", "DELETED"]


def test_sigterm_ends_open_watches(workdir):
    s = k8sharness.ApiServer(workdir).start()
    w = s.watch(SVC_PATH + "?watch=1", timeout=30)
    assert next(w)["object"]["metadata"]["name"] == "kubernetes"
    assert s.stop(timeout=10) == 0
    assert list(w) == []


def test_initial_events_finalizers_and_deletecollection(srv):
    path = "/api/v1/namespaces/default/configmaps"
    for n in ("a", "b"):
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": n, "labels": {"x": n}}}
        if n == "b":
            cm["metadata"]["finalizers"] = ["example.com/keep"]
        assert srv.request("POST", path, body=cm)[0] == 201
    evs = list(srv.watch(path + "?watch=1&sendInitialEvents=true&resourceVersionMatch="
                         "NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"))
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in evs] == [
        ("ADDED", "a"), ("ADDED", "b"), ("BOOKMARK", None)]
    assert evs[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert srv.request("GET", path + "?watch=1&sendInitialEvents=true")[0] == 422
    # a finalizer holds the object (202, deletionTimestamp) until an update removes it
    code, _, b = srv.request("DELETE", path + "/b")
    assert code == 202 and b["metadata"]["deletionTimestamp"]
    code, _, b = srv.request("GET", path + "/b")
    assert code == 200
    b["metadata"]["finalizers"] = []
    assert srv.request("PUT", path + "/b", body=b)[0] == 200
    assert srv.request("GET", path + "/b")[0] == 404
    assert srv.request("POST", path, body={"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": "c"}})[0] == 201
    code, _, lst = srv.request("DELETE", path + "?labelSelector=x%3Da")
    assert code == 200 and [i["metadata"]["name"] for i in lst["items"]] == ["a"]
    assert [i["metadata"]["name"] for i in srv.request("GET", path)[2]["items"]] == ["c"]
