"""The Helm chart (charts/clusterlink) and the image it runs (charts/Containerfile), without a
cluster:
  - the real helm lints the chart and renders it over a matrix of values; the rendered objects
    are checked for what makes a gateway work (selectors, ports, the shared socket, certificate
    paths, RBAC verbs, non-root) and validated strictly against the official OpenAPI spec
    (tests/support/k8s/openapi.py);
  - every rendering is applied with the real kubectl to the strict test API server
    (tests/support/k8s/apiserver.py) and read back;
  - the schema must reject bad values; NOTES.txt renders for each Service type;
  - the rendered pods run on loopback with their exact command lines, volumes mapped to
    directories and probes run as the kubelet would, and are linked with gwctl as in
    docs/kubernetes.md;
  - the Containerfile is checked against the binaries this build produced (ldd + dpkg -S).
helm and kubectl are .tools/bin/{helm,kubectl} (.ci/install puts them there): the tests fail,
not skip, when they are missing."""
import copy
import functools
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest
import yaml

import clharness as h

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support", "k8s"))
import openapi  # noqa: E402  (the official spec, strict: tests/support/k8s)
HELM = os.path.join(ROOT, ".tools", "bin", "helm")
KUBECTL = os.path.join(ROOT, ".tools", "bin", "kubectl")
APISERVER = os.path.join(ROOT, "tests", "support", "k8s", "apiserver.py")
CHART = os.path.join(ROOT, "charts", "clusterlink")
CONTAINERFILE = os.path.join(ROOT, "charts", "Containerfile")
BIN = os.environ.get("CL_BIN_DIR", os.path.join(ROOT, "build"))
MULT = float(os.environ.get("CL_TEST_TIMEOUT_MULT", "1"))

# K8S_CONTRACT.md
SERVICE_VERBS = ["get", "list", "watch", "create", "update", "delete"]
POD_VERBS = ["list", "watch"]
LEASE_VERBS = ["get", "create", "update"]  # the Lease that elects one writer per gateway name
RUN = "/run/clusterlink"
STATE = "/var/lib/clusterlink"
TLS = "/etc/clusterlink/tls"
DP_PORT = 8443
UID = 10001
# what every render needs
REQUIRED = {"gateway": {"name": "east"}, "tls": {"existingSecret": "east-tls"}}

NAMESPACED = {"ServiceAccount", "Role", "RoleBinding", "Service", "Deployment",
              "PersistentVolumeClaim"}
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def helm(*args, check=True):
    if not os.access(HELM, os.X_OK):
        pytest.fail("helm not found at %s: run .ci/install (it fetches helm v3.17.2)" % HELM)
    p = subprocess.run([HELM] + list(args), capture_output=True, text=True,
                       timeout=60 * MULT, env=dict(os.environ, HELM_CACHE_HOME=_tmp("cache"),
                                                   HELM_CONFIG_HOME=_tmp("config"),
                                                   HELM_DATA_HOME=_tmp("data")))
    if check and p.returncode != 0:
        raise AssertionError("helm %s failed (%d):\n%s%s" % (" ".join(args), p.returncode,
                                                             p.stdout, p.stderr))
    return p


_TMP = None  # created on first use, removed after the module's tests


def _tmpdir():
    global _TMP
    if _TMP is None:
        _TMP = tempfile.mkdtemp(prefix="cl-helm-", dir=os.environ.get("CL_TEST_TMP") or None)
    return _TMP


def _tmp(name):
    d = os.path.join(_tmpdir(), name)
    os.makedirs(d, exist_ok=True)
    return d


def teardown_module(module):
    if _TMP is not None:
        shutil.rmtree(_TMP, ignore_errors=True)


def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def values_file(values):
    fd, path = tempfile.mkstemp(suffix=".yaml", dir=_tmpdir())
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(values, f)
    return path


def template(values, release="gw", namespace="clusterlink", chart=CHART, check=True):
    """helm template with these values (a file, so types are exact); the parsed objects."""
    p = helm("template", release, chart, "--namespace", namespace, "-f", values_file(values),
             check=check)
    if not check:
        return p
    objs = openapi.load_manifests(p.stdout)  # duplicate keys are errors too
    assert objs
    return objs


def chart_values():
    with open(os.path.join(CHART, "values.yaml")) as f:
        return yaml.safe_load(f)


def by_kind(objs):
    out = {}
    for o in objs:
        assert o["kind"] not in out, "two objects of kind %s" % o["kind"]
        out[o["kind"]] = o
    return out


def container(dep, name):
    cs = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(cs) == 1, "container %s: %d" % (name, len(cs))
    return cs[0]


def flag(cmd, name):
    """The value of a flag that takes one (the only occurrence)."""
    idx = [i for i, a in enumerate(cmd) if a == name]
    assert len(idx) == 1, "%s appears %d times in %s" % (name, len(idx), cmd)
    return cmd[idx[0] + 1]


def mounts(c):
    return {m["name"]: m for m in c.get("volumeMounts", [])}


def volumes(dep):
    return {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}


def contract_cp_command(name, namespace, selector, admins, level, store_mib):
    cmd = ["cl-controlplane", "--name", name, "--data-dir", STATE,
           "--store-size", str(store_mib), "--socket", RUN + "/cp.sock",
           "--cert", TLS + "/cert.pem", "--key", TLS + "/key.pem", "--ca", TLS + "/ca.pem",
           "--k8s", "--k8s-namespace", namespace, "--k8s-selector", selector,
           "--ready-file", RUN + "/cp.ready"]
    for a in admins:
        cmd += ["--admin", a]
    return cmd + ["--log-level", level]


def contract_dp_command(workers, idle_ms, conn_idle_ms, level, access_log):
    return ["cl-dataplane", "--socket", RUN + "/cp.sock", "--listen", "0.0.0.0:%d" % DP_PORT,
            "--import-bind", "0.0.0.0", "--cert", TLS + "/cert.pem", "--key", TLS + "/key.pem",
            "--ca", TLS + "/ca.pem", "--workers", str(workers), "--idle-timeout", str(idle_ms),
            "--conn-idle-timeout", str(conn_idle_ms), "--ready-file", RUN + "/dp.ready",
            "--log-level", level] + (["--access-log"] if access_log else [])


def resolve_port(c, port):
    """A container port by number or by name."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == port]
    assert len(named) == 1, "port %r not declared by %s" % (port, c["name"])
    return named[0]


def check_gateway(objs, values, release, namespace):
    """Everything that must hold for any values; returns the objects by kind."""
    v = merge(chart_values(), values)
    k = by_kind(objs)
    persist = v["state"]["persistence"]
    want = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
            "Service", "Deployment"}
    if persist["enabled"] and not persist["existingClaim"]:
        want.add("PersistentVolumeClaim")
    assert set(k) == want

    for o in objs:
        errors = openapi.validate(o)
        assert not errors, "%s %s: %s" % (o["kind"], o["metadata"]["name"], errors)
        md = o["metadata"]
        if o["kind"] in NAMESPACED:
            assert md.get("namespace") == namespace, (o["kind"], md)
        else:
            assert "namespace" not in md
        assert DNS1123_SUB.match(md["name"]), md["name"]
        assert md["labels"]["app.kubernetes.io/instance"] == release
        assert md["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert DNS1035.match(k["Service"]["metadata"]["name"])

    dep = k["Deployment"]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    sel = spec["selector"]["matchLabels"]
    assert sel and set(spec["selector"]) == {"matchLabels"}
    labels = spec["template"]["metadata"]["labels"]
    assert all(labels.get(key) == val for key, val in sel.items()), (sel, labels)
    assert sel == {"app.kubernetes.io/name": v["nameOverride"] or "clusterlink",
                   "app.kubernetes.io/instance": release,
                   "app.kubernetes.io/component": "gateway"}

    cp = container(dep, "controlplane")
    dp = container(dep, "dataplane")
    assert [c["name"] for c in pod["containers"]] == ["controlplane", "dataplane"]
    assert not pod.get("initContainers")
    image = "%s:%s" % (v["image"]["repository"], v["image"]["tag"] or "0.1.0")
    for c in (cp, dp):
        assert c["image"] == image
        assert c["imagePullPolicy"] == v["image"]["pullPolicy"]
        assert "args" not in c

    # the command lines, exactly as in the contract
    cpc, dpc = cp["command"], dp["command"]
    selector = flag(cpc, "--k8s-selector")
    assert selector == ",".join("%s=%s" % kv for kv in sorted(sel.items()))
    assert dict(kv.split("=", 1) for kv in selector.split(",")) == sel
    assert cpc == contract_cp_command(v["gateway"]["name"], namespace, selector,
                                      v["gateway"]["admins"], v["gateway"]["logLevel"],
                                      v["state"]["maxSizeMiB"])
    d = v["dataplane"]
    assert dpc == contract_dp_command(d["workers"], d["idleTimeoutMs"], d["connIdleTimeoutMs"],
                                      v["gateway"]["logLevel"], d["accessLog"])

    # the external Service selects the gateway pod and maps service.port to --listen's port
    svc = k["Service"]
    assert svc["spec"]["type"] == v["service"]["type"]
    assert svc["spec"]["selector"] == sel
    assert len(svc["spec"]["ports"]) == 1
    sp = svc["spec"]["ports"][0]
    assert sp["port"] == v["service"]["port"] and sp["protocol"] == "TCP"
    listen_port = int(flag(dpc, "--listen").rsplit(":", 1)[1])
    assert resolve_port(dp, sp["targetPort"]) == listen_port == DP_PORT
    assert [p["containerPort"] for p in dp["ports"]] == [DP_PORT]
    assert not cp.get("ports")
    if v["service"]["type"] != "ClusterIP" and v["service"]["nodePort"] is not None:
        assert sp["nodePort"] == v["service"]["nodePort"]
    else:
        assert "nodePort" not in sp
    assert svc["metadata"].get("annotations", {}) == v["service"]["annotations"]

    # the IPC socket: one emptyDir, mounted at the same path in both containers
    vols = volumes(dep)
    assert set(vols) == {"run", "state", "tls"}
    assert vols["run"] == {"name": "run", "emptyDir": {}}
    assert mounts(cp)["run"]["mountPath"] == mounts(dp)["run"]["mountPath"] == RUN
    sock = flag(cpc, "--socket")
    assert sock == flag(dpc, "--socket") and os.path.dirname(sock) == RUN
    for c, f in ((cp, cpc), (dp, dpc)):
        assert os.path.dirname(flag(f, "--ready-file")) == mounts(c)["run"]["mountPath"]
        assert not mounts(c)["run"].get("readOnly")

    # state: PVC or emptyDir, mounted where --data-dir points, in the controlplane only
    assert mounts(cp)["state"]["mountPath"] == flag(cpc, "--data-dir")
    assert "state" not in mounts(dp)
    if persist["enabled"]:
        claim = persist["existingClaim"] or k["PersistentVolumeClaim"]["metadata"]["name"]
        assert vols["state"] == {"name": "state", "persistentVolumeClaim": {"claimName": claim}}
        if not persist["existingClaim"]:
            pvc = k["PersistentVolumeClaim"]["spec"]
            assert pvc["accessModes"] == ["ReadWriteOnce"]
            assert pvc["resources"] == {"requests": {"storage": persist["size"]}}
            sc = persist["storageClass"]
            if sc == "-":
                assert pvc["storageClassName"] == ""
            elif sc:
                assert pvc["storageClassName"] == sc
            else:
                assert "storageClassName" not in pvc
    else:
        assert vols["state"] == {"name": "state", "emptyDir": {}}

    # certificates: the Secret's keys land where the flags point, read-only, in both containers
    sec = vols["tls"]["secret"]
    assert sec["secretName"] == v["tls"]["existingSecret"]
    items = {i["key"]: i["path"] for i in sec["items"]}
    assert set(items) == {"ca.pem", "cert.pem", "key.pem"}
    for c, f in ((cp, cpc), (dp, dpc)):
        m = mounts(c)["tls"]
        assert m["readOnly"] is True
        for fl, key in (("--cert", "cert.pem"), ("--key", "key.pem"), ("--ca", "ca.pem")):
            assert flag(f, fl) == os.path.join(m["mountPath"], items[key])

    # RBAC: exactly the contract's verbs, bound to the pod's ServiceAccount
    sa = k["ServiceAccount"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert pod.get("automountServiceAccountToken", True) is True
    assert sa.get("automountServiceAccountToken", True) is True
    assert sa["metadata"].get("annotations", {}) == v["serviceAccount"]["annotations"]
    role, crole = k["Role"], k["ClusterRole"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["services"],
                              "verbs": SERVICE_VERBS},
                             {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                              "verbs": LEASE_VERBS}]
    assert crole["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": POD_VERBS}]
    for binding, target in ((k["RoleBinding"], role), (k["ClusterRoleBinding"], crole)):
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                      "kind": target["kind"],
                                      "name": target["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount",
                                        "name": sa["metadata"]["name"],
                                        "namespace": namespace}]
    # and the spec serves those verbs on those resources (core v1)
    assert set(SERVICE_VERBS) <= set(openapi.find_resource("", "v1", "services").verbs)
    assert set(POD_VERBS) <= set(openapi.find_resource("", "v1", "pods").verbs)
    leases = openapi.find_resource("coordination.k8s.io", "v1", "leases")
    assert set(LEASE_VERBS) <= set(leases.verbs) and leases.namespaced
    assert openapi.find_resource("", "v1", "services").namespaced
    # cluster-wide names carry the namespace: same release name in two namespaces, no clash
    assert namespace in crole["metadata"]["name"]

    # non-root, read-only, no capabilities
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == UID and UID != 0
    assert psc["fsGroup"] == UID
    for c in (cp, dp):
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == UID
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert "privileged" not in sc

    # probes (the controlplane has no HTTP port)
    assert cp["readinessProbe"]["exec"]["command"] == ["test", "-f", flag(cpc, "--ready-file")]
    assert cp["livenessProbe"]["exec"]["command"] == ["test", "-S", sock]
    assert dp["readinessProbe"]["exec"]["command"] == ["test", "-f", flag(dpc, "--ready-file")]
    assert resolve_port(dp, dp["livenessProbe"]["tcpSocket"]["port"]) == listen_port

    # resources and scheduling pass through
    assert cp.get("resources", {}) == v["controlplane"]["resources"]
    assert dp.get("resources", {}) == v["dataplane"]["resources"]
    for key in ("nodeSelector", "tolerations", "affinity"):
        assert pod.get(key, type(v[key])()) == v[key], key
    assert pod.get("imagePullSecrets", []) == v["imagePullSecrets"]
    assert spec["template"]["metadata"].get("annotations", {}) == v["podAnnotations"]
    return k


MATRIX = [
    ("defaults", {}, "gw", "clusterlink"),
    ("nodeport", {"service": {"type": "NodePort", "nodePort": 30443}}, "gw", "clusterlink"),
    ("nodeport-allocated", {"service": {"type": "NodePort"}}, "gw", "clusterlink"),
    ("loadbalancer", {"service": {"type": "LoadBalancer", "nodePort": 31443, "port": 9443,
                                  "annotations": {"example.com/lb": "internal"}}},
     "gw", "clusterlink"),
    ("clusterip", {"service": {"type": "ClusterIP", "nodePort": 30443}}, "gw", "clusterlink"),
    ("persistence-off", {"state": {"persistence": {"enabled": False}}}, "gw", "clusterlink"),
    ("existing-claim", {"state": {"persistence": {"existingClaim": "my-state"}}},
     "gw", "clusterlink"),
    ("storage-class", {"state": {"persistence": {"storageClass": "fast-ssd", "size": "5Gi"}}},
     "gw", "clusterlink"),
    ("storage-class-none", {"state": {"persistence": {"storageClass": "-"}}},
     "gw", "clusterlink"),
    ("workers-4", {"dataplane": {"workers": 4}}, "gw", "clusterlink"),
    ("store-size", {"state": {"maxSizeMiB": 2048, "persistence": {"size": "4Gi"}}},
     "gw", "clusterlink"),
    ("timeouts", {"dataplane": {"idleTimeoutMs": 604800000, "connIdleTimeoutMs": 0}},
     "gw", "clusterlink"),
    ("access-log", {"dataplane": {"accessLog": True}}, "gw", "clusterlink"),
    ("admins", {"gateway": {"admins": ["gwctl.east", "ops.example"]}}, "gw", "clusterlink"),
    ("resources", {"controlplane": {"resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                  "limits": {"memory": "256Mi"}}},
                   "dataplane": {"workers": 2,
                                 "resources": {"requests": {"cpu": 2, "memory": "256Mi"},
                                               "limits": {"cpu": "2", "memory": "1Gi"}}}},
     "gw", "clusterlink"),
    ("no-resources", {"controlplane": {"resources": {}}, "dataplane": {"resources": {}}},
     "gw", "clusterlink"),
    ("custom-names", {"nameOverride": "cl", "gateway": {"name": "west"},
                      "tls": {"existingSecret": "west.tls"}}, "prod-gateway", "edge-west"),
    ("fullname-override", {"fullnameOverride": "gateway-west"}, "r", "team-a"),
    ("release-has-chart-name", {}, "clusterlink-east", "default"),
    ("scheduling", {"nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"key": "dedicated", "operator": "Equal",
                                     "value": "gateway", "effect": "NoSchedule"}],
                    "affinity": {"nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [
                                {"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}},
                    "podAnnotations": {"example.com/scrape": "false"},
                    "imagePullSecrets": [{"name": "registry"}],
                    "serviceAccount": {"annotations": {"example.com/role": "gw"}}},
     "gw", "clusterlink"),
    ("image-and-logs", {"image": {"repository": "registry.example/cl/clusterlink-c",
                                  "tag": "0.1.0-rc1", "pullPolicy": "Always"},
                        "gateway": {"logLevel": "debug"}}, "gw", "clusterlink"),
]


@pytest.fixture(params=MATRIX, ids=[m[0] for m in MATRIX])
def rendered(request):
    _, over, release, ns = request.param
    values = merge(REQUIRED, over)
    return template(values, release=release, namespace=ns), values, release, ns


def test_lint_strict():
    req = ["--set", "gateway.name=east", "--set", "tls.existingSecret=east-tls"]
    p = helm("lint", "--strict", CHART, *req)
    assert "0 chart(s) failed" in p.stdout, p.stdout
    assert "[WARNING]" not in p.stdout and "[ERROR]" not in p.stdout, p.stdout
    # with every matrix entry too (lint renders the templates and runs the schema)
    for name, over, _, ns in MATRIX:
        p = helm("lint", "--strict", CHART, "--namespace", ns, "-f",
                 values_file(merge(REQUIRED, over)))
        assert "0 chart(s) failed" in p.stdout, (name, p.stdout)
    # without the required values lint (which relaxes `required`) still names them;
    # helm template and install fail on them (test_required_values)
    p = helm("lint", "--strict", CHART, check=False)
    out = p.stdout + p.stderr
    assert "gateway.name is required" in out and "tls.existingSecret is required" in out, out


def test_template_matrix(rendered):
    objs, values, release, ns = rendered
    check_gateway(objs, values, release, ns)


def test_names_and_nodeport_details():
    k = by_kind(template(merge(REQUIRED, {}), release="gw", namespace="a"))
    assert k["Deployment"]["metadata"]["name"] == "gw-clusterlink"
    assert k["PersistentVolumeClaim"]["metadata"]["name"] == "gw-clusterlink-state"
    k = by_kind(template(merge(REQUIRED, {}), release="clusterlink-east", namespace="a"))
    assert k["Service"]["metadata"]["name"] == "clusterlink-east"
    k = by_kind(template(merge(REQUIRED, {"fullnameOverride": "gateway-west"}), release="r"))
    assert k["Service"]["metadata"]["name"] == "gateway-west"
    # two releases of the same name in two namespaces: the cluster-wide objects differ
    a = by_kind(template(REQUIRED, release="gw", namespace="a"))
    b = by_kind(template(REQUIRED, release="gw", namespace="b"))
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        assert a[kind]["metadata"]["name"] != b[kind]["metadata"]["name"]
    # a 53-character release name (helm's maximum) still gives DNS-1035 object names
    long_release = "r" + "x" * 52
    k = by_kind(template(REQUIRED, release=long_release))
    assert DNS1035.match(k["Service"]["metadata"]["name"])
    check_gateway(list(k.values()), REQUIRED, long_release, "clusterlink")


BAD = [
    ("replicas-0", {"replicas": 0}, "replicas: Must be greater than or equal to 1"),
    ("replicas-2", {"replicas": 2}, "replicas: Must be less than or equal to 1"),
    ("port-70000", {"service": {"port": 70000}},
     "service.port: Must be less than or equal to 65535"),
    ("port-0", {"service": {"port": 0}}, "service.port: Must be greater than or equal to 1"),
    ("nodeport-70000", {"service": {"type": "NodePort", "nodePort": 70000}}, "service.nodePort"),
    ("port-string", {"service": {"port": "443"}}, "service.port: Invalid type"),
    ("workers-0", {"dataplane": {"workers": 0}},
     "dataplane.workers: Must be greater than or equal to 1"),
    # cl-dataplane refuses more than 256: the schema must not let a pod crash-loop on it
    ("workers-257", {"dataplane": {"workers": 257}},
     "dataplane.workers: Must be less than or equal to 256"),
    ("store-size-0", {"state": {"maxSizeMiB": 0}},
     "state.maxSizeMiB: Must be greater than or equal to 1"),
    ("store-size-string", {"state": {"maxSizeMiB": "1Gi"}}, "state.maxSizeMiB: Invalid type"),
    ("idle-timeout-negative", {"dataplane": {"idleTimeoutMs": -1}},
     "dataplane.idleTimeoutMs: Must be greater than or equal to 0"),
    ("conn-idle-timeout-huge", {"dataplane": {"connIdleTimeoutMs": 604800001}},
     "dataplane.connIdleTimeoutMs: Must be less than or equal to"),  # helm prints 6.048e+08
    ("idle-timeout-string", {"dataplane": {"idleTimeoutMs": "1h"}},
     "dataplane.idleTimeoutMs: Invalid type"),
    ("access-log-string", {"dataplane": {"accessLog": "yes"}},
     "dataplane.accessLog: Invalid type"),
    ("unknown-top", {"replica": 1}, "Additional property replica is not allowed"),
    ("unknown-nested", {"service": {"loadBalancerIP": "1.2.3.4"}},
     "service: Additional property loadBalancerIP is not allowed"),
    ("unknown-deep", {"state": {"persistence": {"sizee": "1Gi"}}},
     "state.persistence: Additional property sizee is not allowed"),
    ("unknown-in-k8s-type", {"tolerations": [{"key": "a", "operatr": "Exists"}]},
     "Additional property operatr is not allowed"),
    ("unknown-in-affinity", {"affinity": {"nodeAfinity": {}}},
     "Additional property nodeAfinity is not allowed"),
    ("unknown-in-resources", {"dataplane": {"resources": {"request": {"cpu": 1}}}},
     "Additional property request is not allowed"),
    ("bad-quantity", {"dataplane": {"resources": {"requests": {"cpu": "lots"}}}},
     "Does not match pattern"),
    ("service-type", {"service": {"type": "ExternalName"}}, "service.type must be one of"),
    ("log-level", {"gateway": {"logLevel": "verbose"}}, "gateway.logLevel must be one of"),
    ("gateway-name-not-dns", {"gateway": {"name": "East_1"}}, "gateway.name: Does not match"),
    ("pull-policy", {"image": {"pullPolicy": "Sometimes"}}, "image.pullPolicy must be one of"),
    ("admins-not-list", {"gateway": {"admins": "gwctl.east"}}, "gateway.admins: Invalid type"),
    ("admins-duplicate", {"gateway": {"admins": ["a", "a"]}}, "gateway.admins"),
]


@pytest.mark.parametrize("over,msg", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_schema_rejects(over, msg):
    p = template(merge(REQUIRED, over), check=False)
    assert p.returncode != 0, "accepted: %r" % (over,)
    assert "values don't meet the specifications of the schema" in p.stderr, p.stderr
    assert msg in p.stderr, p.stderr


@pytest.mark.parametrize("missing,msg", [
    ("gateway", "gateway.name is required"),
    ("tls", "tls.existingSecret is required"),
])
def test_required_values(missing, msg):
    values = {k: v for k, v in REQUIRED.items() if k != missing}
    p = template(values, check=False)
    assert p.returncode != 0
    assert msg in p.stderr, p.stderr


def test_schema_is_strict_at_every_level():
    """Every object schema lists its properties and rejects others; the only open objects are
    string maps (labels, annotations, nodeSelector) and quantity maps (resources)."""
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    seen = []

    def walk(node, where):
        if isinstance(node, list):
            for i, n in enumerate(node):
                walk(n, "%s[%d]" % (where, i))
            return
        if not isinstance(node, dict):
            return
        if "properties" in node:
            assert node.get("additionalProperties") is False, where
            seen.append(where)
        elif node.get("type") == "object":
            ap = node.get("additionalProperties")
            quantity = "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"
            assert ap in ({"type": "string"}, {"$ref": quantity}), \
                "%s: an open object (%r)" % (where, ap)
        for key, sub in node.items():
            if key == "properties":
                for p, s in sub.items():
                    walk(s, where + "." + p)
            elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf",
                         "definitions"):
                if key == "definitions":
                    for d, s in sub.items():
                        walk(s, "#" + d)
                else:
                    walk(sub, where + "/" + key)
    walk(schema, "(root)")
    assert len(seen) > 20, seen
    # every leaf of values.yaml is described by the schema

    def leaves(v, prefix=""):
        if isinstance(v, dict) and v:
            for key, sub in v.items():
                yield from leaves(sub, prefix + key + ".")
        else:
            yield prefix[:-1]
    for leaf in leaves(chart_values()):
        node = schema
        for part in leaf.split("."):
            if "$ref" in node:  # a Kubernetes type: helm validated the defaults against it
                break
            node = node["properties"][part]
        assert node.get("type") or node.get("$ref") or node.get("anyOf"), leaf


def test_docs_list_every_value():
    """docs/kubernetes.md has a table row for every leaf of values.yaml, with its default."""
    with open(os.path.join(ROOT, "docs", "kubernetes.md")) as f:
        rows = dict(re.findall(r"^\| `([A-Za-z.]+)` \| ([^|]*) \|", f.read(), re.M))

    def leaves(v, prefix=""):
        if isinstance(v, dict) and v and not prefix.endswith("resources."):
            for key, sub in v.items():
                yield from leaves(sub, prefix + key + ".")
        else:
            yield prefix[:-1], v
    want = dict(leaves(chart_values()))
    assert set(rows) == set(want), set(rows) ^ set(want)
    for key, default in want.items():
        if key.endswith("resources"):
            continue  # described in words
        if isinstance(default, str):
            shown = default if default else '""'
        else:
            shown = json.dumps(default)
        assert rows[key].strip().startswith("`%s`" % shown), (key, rows[key], shown)


def test_schema_definitions_match_the_official_spec():
    """The Kubernetes types in values.schema.json are what charts/schema_defs.py derives from
    the official OpenAPI spec (tests/support/k8s)."""
    mod_spec = importlib.util.spec_from_file_location(
        "schema_defs", os.path.join(ROOT, "charts", "schema_defs.py"))
    schema_defs = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(schema_defs)
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    assert schema["definitions"] == schema_defs.definitions(openapi.spec())


def test_validation_is_not_vacuous():
    """The strict validation the matrix relies on does reject what the real API server would."""
    k = by_kind(template(REQUIRED))
    dep = copy.deepcopy(k["Deployment"])
    dep["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    assert openapi.validate(dep)
    svc = copy.deepcopy(k["Service"])
    svc["spec"]["ports"][0]["port"] = "443"
    assert openapi.validate(svc)
    role = copy.deepcopy(k["Role"])
    role["rules"][0]["verb"] = ["get"]
    assert openapi.validate(role)


# ---- applied to the strict test API server ----------------------------------------------

class ApiServerProc:
    """tests/support/k8s/apiserver.py on loopback (its own self-signed certificate, a bearer
    token) and a kubeconfig for the real kubectl."""

    def __init__(self, d):
        self.dir = d
        cert, key = os.path.join(d, "server.pem"), os.path.join(d, "server.key")
        h.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
               "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
               "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        ready = os.path.join(d, "apiserver.ready")
        self.proc = h.Proc("apiserver", ["/usr/bin/python3", APISERVER, "--listen",
                                         "127.0.0.1:0", "--cert", cert, "--key", key,
                                         "--token", "chart-test-token", "--ready-file", ready],
                           d)

        def port():
            assert self.proc.alive(), self.proc.tail()
            try:
                with open(ready) as f:
                    return int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                return None
        self.port = h.wait_for(port, 30, "test API server ready")
        self.kubeconfig = os.path.join(d, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "test",
                "clusters": [{"name": "test", "cluster": {
                    "server": "https://127.0.0.1:%d" % self.port,
                    "certificate-authority": cert}}],
                "users": [{"name": "test", "user": {"token": "chart-test-token"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]},
                f)

    def kubectl(self, *args, input=None, check=True):
        if not os.access(KUBECTL, os.X_OK):
            pytest.fail("kubectl not found at %s: run .ci/install" % KUBECTL)
        p = subprocess.run([KUBECTL, "--kubeconfig", self.kubeconfig] + list(args),
                           input=input, capture_output=True, text=True, timeout=180 * MULT,
                           env=dict(os.environ, KUBECACHEDIR=os.path.join(self.dir, "cache"),
                                    HOME=self.dir))
        if check and p.returncode != 0:
            raise AssertionError("kubectl %s failed (%d):\n%s%s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def apply(self, objs, check=True):
        return self.kubectl("apply", "--validate=strict", "-f", "-",
                            input=yaml.safe_dump_all(objs), check=check)

    def stop(self):
        return self.proc.stop()


@pytest.fixture(scope="module")
def apiserver():
    d = tempfile.mkdtemp(prefix="apiserver-", dir=_tmpdir())
    srv = ApiServerProc(d)
    yield srv
    assert srv.stop() == 0


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _applied(out, objs, verb):
    """kubectl apply's output names every object once, with this verb."""
    lines = sorted(out.strip().splitlines())
    want = sorted("%s/%s %s" % (o["kind"].lower(), o["metadata"]["name"], verb) for o in objs)
    got = sorted(re.sub(r"^([a-z]+)\.[a-z0-9.]+/", r"\1/", ln) for ln in lines)
    assert got == want, (got, want)


@pytest.fixture(scope="module")
def applied(apiserver):
    """Every matrix rendering, each in a namespace of its own so they coexist, applied to the
    test API server in one `kubectl apply --validate=strict` (kubectl's client-side work
    dominates the cost), applied again, and read back: {case: (values, rendered, stored)}."""
    cases, stream = {}, []
    for name, over, release, _ in MATRIX:
        ns = "m-" + name
        values = merge(REQUIRED, over)
        objs = template(values, release=release, namespace=ns)
        cases[name] = (values, objs)
        stream += [namespace(ns)] + objs
    _applied(apiserver.apply(stream).stdout, stream, "created")
    _applied(apiserver.apply(stream).stdout, stream, "unchanged")
    objs = [o for o in stream if o["kind"] != "Namespace"]
    stored = json.loads(apiserver.kubectl("get", "-f", "-", "-o", "json",
                                          input=yaml.safe_dump_all(objs)).stdout)["items"]
    assert [(o["kind"], o["metadata"]["name"]) for o in stored] == \
        [(o["kind"], o["metadata"]["name"]) for o in objs]
    out, i = {}, 0
    for name, (values, rendered) in cases.items():
        out[name] = (values, rendered, stored[i:i + len(rendered)])
        i += len(rendered)
    return out


@pytest.mark.parametrize("case", [m[0] for m in MATRIX])
def test_applies_to_the_test_api_server(applied, case):
    """Each rendering is accepted by the strict test API server through the real kubectl
    (apply --validate=strict: unknown fields are errors), re-applies unchanged, and reads back
    with what makes the gateway work intact (the server fills in defaults, allocates the
    clusterIP and node ports)."""
    values, objs, stored = applied[case]
    for o in stored:  # what the server stores still validates strictly
        assert openapi.validate(o) == [], (o["kind"], openapi.validate(o))
    k, got = by_kind(objs), by_kind(stored)
    svc, dep = got["Service"], got["Deployment"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels[key] == val for key, val in svc["spec"]["selector"].items())
    assert svc["spec"]["type"] == values.get("service", {}).get("type", "LoadBalancer")
    assert svc["spec"]["clusterIP"]
    sp = svc["spec"]["ports"][0]
    if svc["spec"]["type"] == "ClusterIP":
        assert "nodePort" not in sp
    else:
        want = values.get("service", {}).get("nodePort")
        assert sp["nodePort"] == want if want else 30000 <= sp["nodePort"] <= 32767
    # the server kept everything the chart rendered (it only adds defaults)
    for kind in k:
        want_o = {f: v for f, v in k[kind].items() if f not in ("metadata", "status")}
        got_o = {f: v for f, v in got[kind].items() if f not in ("metadata", "status")}
        assert _with_defaults(want_o, got_o) == got_o, kind
        for f in ("labels", "annotations"):
            want_m = k[kind]["metadata"].get(f, {})
            assert {x: got[kind]["metadata"].get(f, {}).get(x) for x in want_m} == want_m


def _with_defaults(rendered, stored):
    """rendered, with the fields the server added to stored (defaults) copied in: equal to
    stored iff the server kept everything the chart rendered."""
    def fill(r, st):
        if isinstance(r, dict) and isinstance(st, dict):
            out = {k: fill(r[k], st.get(k)) if k in r else st[k] for k in st}
            for k in r:
                out.setdefault(k, r[k])
            return out
        if isinstance(r, list) and isinstance(st, list) and len(r) == len(st):
            return [fill(a, b) for a, b in zip(r, st)]
        return r
    return fill(rendered, stored)


def test_test_api_server_rejects_what_the_real_one_would(apiserver):
    """The apply path above is not a rubber stamp: the same objects, broken, are refused."""
    ns = "m-broken"
    apiserver.apply([namespace(ns)])
    k = by_kind(template(REQUIRED, namespace=ns))
    svc = copy.deepcopy(k["Service"])
    svc["spec"]["ports"][0]["targetPort"] = 70000
    dep = copy.deepcopy(k["Deployment"])
    dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] = "other"
    role = copy.deepcopy(k["Role"])
    role["rules"][0]["verbz"] = ["get"]
    for bad in (svc, dep, role):
        p = apiserver.apply([bad], check=False)
        assert p.returncode != 0, (bad["kind"], p.stdout)


# ---- NOTES.txt -------------------------------------------------------------------------

def render_notes(values, release="gw", namespace="clusterlink"):
    """NOTES.txt is not printed by `helm template`: render it through a copy of the chart
    where a ConfigMap carries it (tpl with the same context)."""
    d = tempfile.mkdtemp(dir=_tmpdir())
    chart = os.path.join(d, "clusterlink")
    shutil.copytree(CHART, chart)
    shutil.copy(os.path.join(chart, "templates", "NOTES.txt"), os.path.join(chart, "notes.txt"))
    with open(os.path.join(chart, "templates", "zz-notes.yaml"), "w") as f:
        f.write('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n'
                'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n')
    objs = template(values, release=release, namespace=namespace, chart=chart)
    return [o for o in objs if o["kind"] == "ConfigMap"][0]["data"]["notes"]


@pytest.mark.parametrize("stype", ["LoadBalancer", "NodePort", "ClusterIP"])
def test_notes(stype):
    notes = render_notes(merge(REQUIRED, {"service": {"type": stype}}), namespace="edge")
    assert "gwctl init --id east --host $HOST --port $PORT" in notes
    assert "kubectl -n edge rollout status deployment/gw-clusterlink" in notes
    assert "gwctl create peer --name east" in notes
    assert "gwctl.east" in notes
    assert "clusterlink.net/gateway=east" in notes
    if stype == "LoadBalancer":
        assert "status.loadBalancer.ingress" in notes
    elif stype == "NodePort":
        assert "nodePort" in notes
    else:
        assert "port-forward service/gw-clusterlink 8443:443" in notes
    notes = render_notes(merge(REQUIRED, {"gateway": {"admins": ["ops.a", "ops.b"]},
                                          "state": {"persistence": {"enabled": False}}}))
    assert "ops.a, ops.b" in notes and "WARNING" in notes


# ---- the chart against the binaries it runs ----------------------------------------------

def _flag_pairs(cmd):
    """[(flag, [value])...] of a command line (a flag takes the next word unless it is a flag)."""
    out, i = [], 1
    while i < len(cmd):
        assert cmd[i].startswith("--"), "stray argument %r in %s" % (cmd[i], cmd)
        if i + 1 < len(cmd) and not cmd[i + 1].startswith("--"):
            out.append((cmd[i], [cmd[i + 1]]))
            i += 2
        else:
            out.append((cmd[i], []))
            i += 1
    return out


def rejected_flags(binary, cmd):
    """The flags of cmd the binary's option parser refuses (`<flag> [value] --help` must exit 0:
    getopt reads left to right, so --help is reached only when the flag was accepted)."""
    path = os.path.join(BIN, binary)
    assert os.access(path, os.X_OK), "%s not built" % path
    bad = []
    for f, val in _flag_pairs(cmd):
        p = subprocess.run([path, f] + val + ["--help"], capture_output=True, text=True,
                           timeout=10 * MULT)
        if p.returncode != 0:
            bad.append(f)
    return sorted(set(bad))




def test_rendered_flags_exist_in_the_binaries():
    k = by_kind(template(merge(REQUIRED, {"gateway": {"admins": ["a"]}})))
    dep = k["Deployment"]
    dp_cmd = container(dep, "dataplane")["command"]
    assert rejected_flags("dataplane/cl-dataplane", dp_cmd) == []
    missing = rejected_flags("controlplane/cl-controlplane",
                             container(dep, "controlplane")["command"])
    assert missing == [], "cl-controlplane rejects %s" % missing


# ---- the rendered pod, run on loopback ---------------------------------------------------

BINARIES = {"cl-controlplane": "controlplane/cl-controlplane",
            "cl-dataplane": "dataplane/cl-dataplane"}


class LoopbackPod:
    """The chart's Deployment run on this machine: each container's exact command with the
    pod's volumes mapped to directories (the Secret's items written as files), and the two
    addresses that are the pod's own (--listen 0.0.0.0:8443, --import-bind 0.0.0.0) put on
    127.0.0.1 with a free port. Every path argument must lie on a volume of its container:
    the root filesystem is read-only."""

    def __init__(self, dep, secret_files, workdir, name):
        self.dep = dep
        self.name = name
        self.dir = os.path.join(workdir, name)
        self.host = {}
        for vname, vol in volumes(dep).items():
            d = os.path.join(self.dir, "vol-" + vname)
            os.makedirs(d)
            if "secret" in vol:
                for item in vol["secret"]["items"]:
                    shutil.copy(secret_files[item["key"]], os.path.join(d, item["path"]))
            self.host[vname] = d
        self.procs = {}
        self.port = None

    def map_path(self, c, arg):
        for m in sorted(c["volumeMounts"], key=lambda m: -len(m["mountPath"])):
            mp = m["mountPath"]
            if arg == mp or arg.startswith(mp + "/"):
                return self.host[m["name"]] + arg[len(mp):]
        raise AssertionError("%s: %s is on no volume (read-only root filesystem)" %
                             (c["name"], arg))

    def command(self, cname, drop=()):
        c = container(self.dep, cname)
        out = [os.path.join(BIN, BINARIES[c["command"][0]])]
        for f, val in _flag_pairs(c["command"]):
            if f in drop:  # a flag left out on purpose by the caller
                continue
            out.append(f)
            for a in val:
                if a.startswith("/"):
                    a = self.map_path(c, a)
                elif f == "--listen":
                    assert a == "0.0.0.0:%d" % DP_PORT
                    a = "127.0.0.1:0"
                elif f == "--import-bind":
                    assert a == "0.0.0.0"
                    a = "127.0.0.1"
                out.append(a)
        return out

    def start(self, cp_drop=(), cp_extra=()):
        # in a pod both containers start at once: the dataplane first here, it must wait
        self.procs["dataplane"] = h.Proc(self.name + "-dp", self.command("dataplane"), self.dir)
        self.procs["controlplane"] = h.Proc(
            self.name + "-cp", self.command("controlplane", cp_drop) + list(cp_extra), self.dir)
        h.wait_for(lambda: self.ready() or not all(p.alive() for p in self.procs.values()),
                   20, "%s ready (readiness probes)" % self.name)
        for cname, p in self.procs.items():
            assert p.alive(), "%s exited:\n%s" % (cname, p.tail())
        with open(self.map_path(container(self.dep, "dataplane"),
                                flag(container(self.dep, "dataplane")["command"],
                                     "--ready-file"))) as f:
            self.port = int(f.read().split()[0])
        return self

    def probe(self, cname, kind):
        """Runs a container's probe as the kubelet would; True when it passes."""
        c = container(self.dep, cname)
        pr = c[kind]
        if "exec" in pr:
            cmd = [self.map_path(c, a) if a.startswith("/") else a for a in pr["exec"]["command"]]
            return subprocess.run(cmd, timeout=10).returncode == 0
        port = resolve_port(c, pr["tcpSocket"]["port"])
        assert port == DP_PORT
        try:
            h.connect(self.port, 2).close()  # the pod's 8443 is self.port here
            return True
        except OSError:
            return False

    def ready(self):
        return all(self.probe(c, "readinessProbe") for c in ("controlplane", "dataplane"))

    def stop(self):
        """SIGTERM to each container's process; their exit codes. A process of the group
        still alive afterwards (an orphaned worker) is killed and reported as exit code
        'leftover'."""
        rcs = {n: p.stop() for n, p in self.procs.items()}
        for n, p in self.procs.items():
            try:
                os.killpg(p.pid, signal.SIGKILL)
                rcs[n] = "leftover"
            except ProcessLookupError:
                pass
        return rcs


def test_rendered_pods_link_on_loopback(workdir, request):
    """Two gateways from the chart (east, west), their pods run on loopback with the rendered
    command lines, probes and volumes; linked with the gwctl steps of docs/kubernetes.md, bytes
    cross from east's import to a service behind west. When the controlplane has its
    Kubernetes mode, each gateway also gets the test API server (--kubeconfig: the one flag a
    pod does not need) and east's import must become the Service of the contract."""
    cp_cmd = container(by_kind(template(REQUIRED))["Deployment"], "controlplane")["command"]
    pending = rejected_flags("controlplane/cl-controlplane", cp_cmd)
    assert pending == [], "cl-controlplane rejects %s" % pending
    k8s = True  # the controlplane has its Kubernetes mode: the pods use it
    api, extra_cp = None, []
    if k8s:
        kc = ["cl-controlplane", "--kubeconfig", "/dev/null"]
        assert not rejected_flags("controlplane/cl-controlplane", kc), \
            "cl-controlplane has --k8s-selector but no --kubeconfig (K8S_CONTRACT.md)"
        api = request.getfixturevalue("apiserver")
        extra_cp = ["--kubeconfig", api.kubeconfig]
    fabric = h.Fabric(workdir)
    pods, sel = {}, {}
    srv = h.EchoServer()
    try:
        for gw in ("east", "west"):
            d = fabric.peer(gw)
            secret = {"ca.pem": fabric.ca, "cert.pem": os.path.join(d, "cert.pem"),
                      "key.pem": os.path.join(d, "key.pem")}
            # a namespace per gateway: two clusters, one test API server
            dep = by_kind(template({"gateway": {"name": gw},
                                    "tls": {"existingSecret": gw + "-tls"}},
                                   release="clusterlink", namespace=gw))["Deployment"]
            sel[gw] = dep["spec"]["selector"]["matchLabels"]
            if api:
                api.apply([namespace(gw)])
            pods[gw] = LoopbackPod(dep, secret, workdir, gw)  # stopped in finally
            pods[gw].start(cp_drop=pending, cp_extra=extra_cp)
            for c in ("controlplane", "dataplane"):
                assert pods[gw].probe(c, "livenessProbe"), (gw, c)

        env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(workdir, "xdg"))

        def ctl(*args):
            return h.run([h.GWCTL] + [str(a) for a in args], env=env)
        for gw, pod in pods.items():  # docs step 6
            admin = os.path.join(fabric.dir, gw, "gwctl")
            ctl("init", "--id", gw, "--host", "127.0.0.1", "--port", pod.port,
                "--ca", fabric.ca, "--cert", os.path.join(admin, "cert.pem"),
                "--key", os.path.join(admin, "key.pem"))
            assert json.loads(ctl("--context", gw, "status", "-o", "json").stdout)
        ctl("--context", "east", "create", "peer", "--name", "west", "--host", "127.0.0.1",
            "--port", pods["west"].port)  # step 7
        ctl("--context", "west", "create", "peer", "--name", "east", "--host", "127.0.0.1",
            "--port", pods["east"].port)
        policy = os.path.join(workdir, "allow.yaml")  # step 8, the file as in the docs
        with open(policy, "w") as f:
            f.write("kind: AccessPolicy\nmetadata: {name: allow-all}\n"
                    "spec: {action: allow, from: [{workloadSelector: {}}], "
                    "to: [{workloadSelector: {}}]}\n")
        for gw in pods:
            ctl("--context", gw, "create", "policy", "--file", policy)
        ctl("--context", "west", "create", "export", "--name", "web", "--host", "127.0.0.1",
            "--port", srv.port)  # step 9 (the service is an echo server here)
        # step 10; the target port is allocated in the docs, fixed here (a shared machine).
        target = h.free_port()
        port = 80 if k8s else target
        ctl("--context", "east", "create", "import", "--name", "web", "--port", port,
            "--target-port", target, "--peer", "west")
        imp = json.loads(ctl("--context", "east", "get", "import", "--name", "web",
                             "-o", "json").stdout)
        assert imp["spec"]["port"] == port and imp["spec"]["targetPort"] == target
        # the import's Service would map 80 -> target on the pod: the dataplane listens there
        got = h.wait_for(lambda: h.echo_roundtrip(target, b"through the chart"), 15,
                         "bytes through east's import")
        assert got == b"through the chart"
        if api:  # the import's Service, as K8S_CONTRACT.md says, in east's namespace only
            def service():
                p = api.kubectl("-n", "east", "get", "service", "web", "-o", "json",
                                check=False)
                return json.loads(p.stdout) if p.returncode == 0 else None
            svc = h.wait_for(service, 15, "the import's Service")
            assert svc["spec"]["type"] == "ClusterIP"
            assert svc["spec"]["selector"] == sel["east"]
            assert [(x["port"], x["targetPort"], x.get("protocol", "TCP"))
                    for x in svc["spec"]["ports"]] == [(80, target, "TCP")]
            assert svc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "clusterlink"
            assert svc["metadata"]["labels"]["clusterlink.net/import"] == "web"
            # the owner label: gateway.name, the controlplane's --name
            assert svc["metadata"]["labels"]["clusterlink.net/gateway"] == "east"
            p = api.kubectl("-n", "west", "get", "service", "web", check=False)
            assert p.returncode != 0 and "NotFound" in p.stderr
    finally:
        srv.close()
        bad = {}
        for gw, pod in pods.items():
            for cname, rc in pod.stop().items():
                if rc != 0:
                    bad["%s/%s" % (gw, cname)] = rc
    assert not bad, bad


# ---- the Containerfile -----------------------------------------------------------------

def containerfile_stages():
    """[(from_line_words, [(instruction, args_text), ...]), ...] with continuations joined."""
    with open(CONTAINERFILE) as f:
        text = f.read()
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append(cur + s)
        cur = ""
    assert not cur, "dangling continuation"
    stages = []
    for ln in lines:
        instr, _, rest = ln.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append((rest.split(), []))
        else:
            assert stages, "instruction before FROM: " + ln
            stages[-1][1].append((instr, rest.strip()))
    return stages


@functools.lru_cache(maxsize=None)
def linked_runtime_packages():
    """Debian packages providing the shared libraries cl-controlplane, cl-dataplane and gwctl
    link (ldd, then dpkg -S on the resolved path)."""
    pkgs = set()
    for b in ("controlplane/cl-controlplane", "dataplane/cl-dataplane", "gwctl/gwctl"):
        out = subprocess.run(["ldd", os.path.join(BIN, b)], capture_output=True, text=True,
                             check=True, timeout=10 * MULT).stdout
        for line in out.splitlines():
            m = re.search(r"(/\S+)\s+\(0x", line)
            if not m:
                assert "linux-vdso" in line or "statically" in line, line
                continue
            pkgs.add(_dpkg_owner(m.group(1)))
    return frozenset(pkgs)


@functools.lru_cache(maxsize=None)
def _dpkg_owner(path):
    cands = [path, os.path.realpath(path)]
    for p in list(cands):  # merged /usr: dpkg knows one spelling of the path
        cands.append("/usr" + p if not p.startswith("/usr/") else p[4:])
    for p in cands:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].strip()
    raise AssertionError("no Debian package owns %s" % path)


def _build_is_the_images():
    """The Containerfile builds with .ci/install's configuration (RelWithDebInfo, wolfSSL
    linked statically, no sanitizers): True when BIN was configured the same way."""
    cache = os.path.join(BIN, "CMakeCache.txt")
    with open(cache) as f:
        c = dict(re.findall(r"^([A-Za-z_]+):[A-Z]+=(.*)$", f.read(), re.M))
    return (c.get("CMAKE_BUILD_TYPE") == "RelWithDebInfo" and not c.get("CL_SANITIZE")
            and c.get("CL_SYSTEM_WOLFSSL", "OFF").upper() in ("OFF", "0", "FALSE", "")
            and c.get("CL_COVERAGE", "OFF").upper() in ("OFF", "0", "FALSE", ""))


def test_containerfile_mirrors_the_install_script():
    stages = containerfile_stages()
    assert len(stages) == 2
    (build_from, build), (final_from, final) = stages
    assert build_from[0] in ("debian:12", "docker.io/library/debian:12")
    assert build_from[1:] == ["AS", "build"] or build_from[1:] == ["as", "build"]
    assert final_from == ["docker.io/library/debian:12-slim"] or final_from == ["debian:12-slim"]

    # build stage: copies the sources CMake reads and runs .ci/install, nothing else
    workdir = [a for i, a in build if i == "WORKDIR"]
    assert len(workdir) == 1
    copied = set()
    for instr, args in build:
        assert instr in ("WORKDIR", "COPY", "RUN"), instr
        if instr == "COPY":
            parts = args.split()
            assert not parts[0].startswith("--"), args
            copied.update(p.rstrip("/") for p in parts[:-1])
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        subdirs = re.findall(r"^add_subdirectory\((\S+)\)", f.read(), re.M)
    assert subdirs and set(subdirs) | {"CMakeLists.txt", ".ci"} == copied, copied
    runs = [a for i, a in build if i == "RUN"]
    assert runs == [".ci/install"], runs
    with open(os.path.join(ROOT, ".ci", "install")) as f:
        install = f.read()
    # .ci/install builds into build/ by default; the final stage copies from there
    assert 'BUILD_DIR=${BUILD_DIR:-build}' in install
    build_dir = workdir[0].rstrip("/") + "/build/"

    # final stage: apt-get install exactly the runtime packages, the three binaries, the user
    runs = [a for i, a in final if i == "RUN"]
    apt = [r for r in runs if "apt-get install" in r]
    assert len(apt) == 1
    words = shlex.split(apt[0].split("apt-get install", 1)[1].split("&&", 1)[0])
    packages = {w for w in words if not w.startswith("-")}
    linked = linked_runtime_packages()
    if _build_is_the_images():
        assert packages == linked
    else:
        # a sanitizer or system-wolfSSL build links more (the gcc RelWithDebInfo run of
        # .ci/test checks equality): the image's packages must still all be needed
        assert packages <= linked, packages - linked
    for p in packages:  # each is a real Debian package installed here (same release)
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                           text=True)
        assert "install ok installed" in r.stdout, p

    copies = [a for i, a in final if i == "COPY"]
    assert len(copies) == 1
    parts = copies[0].split()
    assert parts[0] == "--from=build"
    srcs, dest = parts[1:-1], parts[-1]
    assert dest == "/usr/local/bin/"
    assert sorted(srcs) == sorted(build_dir + b for b in (
        "controlplane/cl-controlplane", "dataplane/cl-dataplane", "gwctl/gwctl"))
    users = [a for i, a in final if i == "USER"]
    assert users == ["%d:%d" % (UID, UID)]
    useradd = [r for r in runs if "useradd" in r]
    assert len(useradd) == 1 and "--uid %d" % UID in useradd[0]
    assert "--gid %d" % UID in useradd[0]
    assert not any(i == "ADD" for i, _ in final)

    # the chart runs as that uid
    pod = by_kind(template(REQUIRED))["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == UID
    assert pod["securityContext"]["runAsGroup"] == UID
    # and the binaries the chart's commands name are the ones the image has
    names = {c["command"][0] for c in pod["containers"]}
    assert names <= {os.path.basename(s) for s in srcs}
