#!/usr/bin/python3
"""A strict Kubernetes API server for tests (no cluster can run on the build machines).

    /usr/bin/python3 tests/support/k8s/apiserver.py --listen 127.0.0.1:0 --cert C --key K
        --token T --ready-file F [--state-dir D]

HTTPS (HTTP/1.1, JSON only, a thread per connection). Every resource of the official OpenAPI v2
spec (openapi.py) is served from generic storage: get, list, watch, create, update (PUT), patch
(merge, JSON and strategic merge), delete, deletecollection, and the status subresource.
Discovery (/api, /apis, aggregated discovery v2, /openapi/v2 as JSON, /openapi/v3 derived from
v2) comes from the same spec. Objects are checked strictly against the schema (unknown fields per
fieldValidation=Strict|Warn|Ignore, default Warn like the real server) and by semantics.py (names,
Service ports and cluster IPs, ...). See README.md for what it does and does not do.

Test control endpoints (no token needed, loopback clients only):
  POST /_test/faults          {"method":"PUT","resource":"services","codes":[409,429,500],
                               "count":3} (or a list of such rules): the next matching requests
                               get these codes in turn (429 with Retry-After: 1)
  GET  /_test/faults          the rules still pending
  POST /_test/expire-watches  closes every open watch and compacts history: resuming from any
                               older resourceVersion gets 410 Gone
  POST /_test/end-watches     closes every open watch (clean end of stream, as a server-side
                               timeout); the history stays, so they resume
  GET  /_test/requests        [{method, path, query, code, verb, resource, subresource,
                                namespace, name, token}] served so far (token: the bearer token
                                sent, so tests can tell clients apart; null without one)
  POST /_test/reset           clears faults and the request log (not the objects)
  POST /_test/tokens          {"tokens": ["new", ...]}: the bearer tokens accepted from now on
                               (token rotation)
"""
import argparse
import base64
import bisect
import copy
import datetime
import gzip
import hashlib
import http.server
import ipaddress
import json
import os
import select
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import godecode  # noqa: E402
import openapi  # noqa: E402
import patches  # noqa: E402
import printers  # noqa: E402
import selection  # noqa: E402
import semantics  # noqa: E402

SERVER_VERSION = {
    "major": "1", "minor": "36", "gitVersion": "v1.36.0-clusterlink-test",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z", "goVersion": "python", "compiler": "python",
    "platform": "linux/amd64"}

# Discovery data the spec does not carry (the real server's values).
SHORT_NAMES = {
    ("", "componentstatuses"): ["cs"], ("", "configmaps"): ["cm"], ("", "endpoints"): ["ep"],
    ("", "events"): ["ev"], ("", "limitranges"): ["limits"], ("", "namespaces"): ["ns"],
    ("", "nodes"): ["no"], ("", "persistentvolumeclaims"): ["pvc"],
    ("", "persistentvolumes"): ["pv"], ("", "pods"): ["po"],
    ("", "replicationcontrollers"): ["rc"], ("", "resourcequotas"): ["quota"],
    ("", "serviceaccounts"): ["sa"], ("", "services"): ["svc"],
    ("apps", "daemonsets"): ["ds"], ("apps", "deployments"): ["deploy"],
    ("apps", "replicasets"): ["rs"], ("apps", "statefulsets"): ["sts"],
    ("autoscaling", "horizontalpodautoscalers"): ["hpa"], ("batch", "cronjobs"): ["cj"],
    ("certificates.k8s.io", "certificatesigningrequests"): ["csr"],
    ("apiextensions.k8s.io", "customresourcedefinitions"): ["crd", "crds"],
    ("events.k8s.io", "events"): ["ev"], ("networking.k8s.io", "ingresses"): ["ing"],
    ("networking.k8s.io", "networkpolicies"): ["netpol"],
    ("policy", "poddisruptionbudgets"): ["pdb"], ("scheduling.k8s.io", "priorityclasses"): ["pc"],
    ("storage.k8s.io", "storageclasses"): ["sc"]}
CATEGORY_ALL = {("", "pods"), ("", "services"), ("", "replicationcontrollers"),
                ("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"),
                ("apps", "daemonsets"), ("batch", "jobs"), ("batch", "cronjobs"),
                ("autoscaling", "horizontalpodautoscalers")}
# Field selectors the real server supports beyond metadata.name / metadata.namespace.
EXTRA_FIELDS = {
    ("", "pods"): ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                   "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
                   "status.nominatedNodeName"],
    ("", "secrets"): ["type"], ("", "namespaces"): ["status.phase"],
    ("", "nodes"): ["spec.unschedulable"], ("", "events"): [
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"]}
# DELETE answers with the deleted object for these (the real server's ReturnDeletedObject and
# graceful deletion); the others answer with a Status.
RETURNS_DELETED = {("", "services"), ("", "pods"), ("", "namespaces")}
# Kinds whose real create (the registry strategy's PrepareForCreate) drops the status the
# client sent. Pods are left out on purpose: here they keep theirs (README), and Nodes keep theirs
# on the real server too.
STATUS_RESET_ON_CREATE = {
    ("", "services"), ("", "namespaces"), ("", "persistentvolumeclaims"),
    ("", "persistentvolumes"), ("", "replicationcontrollers"), ("", "resourcequotas"),
    ("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"),
    ("apps", "daemonsets"), ("batch", "jobs"), ("batch", "cronjobs"),
    ("autoscaling", "horizontalpodautoscalers"), ("policy", "poddisruptionbudgets"),
    ("networking.k8s.io", "ingresses"), ("certificates.k8s.io", "certificatesigningrequests")}
INITIAL_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"]
FIELD_VALIDATION = ("Strict", "Warn", "Ignore")
# Framing of answers, as Go's net/http and the real server's response writer do it.
CHUNKED_ABOVE = 2048  # net/http's buffer before it chunks (no Content-Length set)
GZIP_FROM = 128 * 1024  # the apiserver compresses answers this big (APIResponseCompression)
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
           415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
           500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def gv_string(group, version):
    return "%s/%s" % (group, version) if group else version


def qualified(r):
    """'services' or 'deployments.apps', as the real server names resources in messages."""
    return r.plural if not r.group else "%s.%s" % (r.plural, r.group)


def status_obj(code, reason, message, details=None, status="Failure"):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status,
         "message": message, "reason": reason, "code": code}
    if status == "Success":
        s.pop("reason")
        s.pop("message")
    if details:
        s["details"] = details
    return s


class ApiError(Exception):
    def __init__(self, code, message, reason=None, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason or REASONS.get(code, "Unknown")
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        return status_obj(self.code, self.reason, self.message, self.details)


def _details(r, name, **extra):
    d = {"name": name, "kind": r.plural}
    if r.group:
        d["group"] = r.group
    d.update(extra)
    return d


def not_found(r, name):
    return ApiError(404, '%s "%s" not found' % (qualified(r), name), "NotFound",
                    _details(r, name))


def conflict(r, name, why="the object has been modified; please apply your changes to the "
             "latest version and try again"):
    return ApiError(409, 'Operation cannot be fulfilled on %s "%s": %s' % (qualified(r), name, why),
                    "Conflict", _details(r, name))


def invalid(r, name, errs):
    d = {"name": name, "kind": r.kind, "causes": [
        {"reason": c["reason"], "message": c["message"], "field": c["field"]} for c in errs]}
    if r.group:
        d["group"] = r.group
    return ApiError(422, '%s "%s" is invalid: %s' % (r.kind, name, errs.text()), "Invalid", d)


def bad_request(message):
    return ApiError(400, message, "BadRequest")


def decode_error(types):
    """What the real server's JSON decoder reports for these TYPE problems (document order):
    the first failure of a type's own UnmarshalJSON (a time, a quantity, an int-or-string),
    which ends decoding, else the first type mismatch."""
    aborts = [p for p in types if p.aborts]
    return (aborts or types)[0].go


def patch_invalid(value, detail):
    """A patched object that does not decode: 422 Invalid on the field "patch" with no kind or
    name, as the real server answers (value: the patched object for JSON and merge patches, the
    patch itself for strategic merge patches)."""
    msg = "Invalid value: %s: %s" % (godecode.go_quote(value), detail)
    return ApiError(422, ' "" is invalid: patch: ' + msg, "Invalid",
                    {"causes": [{"reason": "FieldValueInvalid", "message": msg,
                                 "field": "patch"}]})


def strip_path(p):
    return p[2:] if p.startswith("$.") else ("" if p == "$" else p)


def parse_json(raw):
    """(value, the paths of duplicate fields in document order, as the real server's strict
    decoder names them: "metadata.name", "spec.ports[0].port") or ApiError 400."""
    with_dups = []  # (dict, its repeated keys); holding the dicts keeps their ids unique

    def hook(pairs):
        d, dups = {}, []
        for k, v in pairs:
            if k in d:
                dups.append(k)
            d[k] = v
        if dups:
            with_dups.append((d, dups))
        return d
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("couldn't get version/kind; json parse error: invalid UTF-8")
    try:
        value = json.loads(text, object_pairs_hook=hook)
    except ValueError as e:
        raise bad_request("couldn't get version/kind; json parse error: %s" % e)
    paths = []
    if with_dups:
        repeated = {id(d): dups for d, dups in with_dups}

        def walk(v, path):
            if isinstance(v, dict):
                for k in repeated.get(id(v), ()):
                    paths.append(path + "." + k if path else k)
                for k, x in v.items():
                    walk(x, path + "." + k if path else k)
            elif isinstance(v, list):
                for i, x in enumerate(v):
                    walk(x, "%s[%d]" % (path, i))
        walk(value, "")
    return value, paths


# ---- storage -----------------------------------------------------------------------------------

class Event:
    __slots__ = ("rv", "gvr", "type", "obj", "old")

    def __init__(self, rv, gvr, typ, obj, old):
        self.rv, self.gvr, self.type, self.obj, self.old = rv, gvr, typ, obj, old


class Store:
    """All objects, one global resourceVersion counter, and a bounded event history for watches.
    Guarded by one Condition; watchers wait on it."""

    def __init__(self, history_limit, state_path):
        self.cond = threading.Condition()
        self.objects = {}  # (group, version, plural) -> {(namespace, name): obj}
        self.rv = 0
        self.history = []  # Event, ascending rv
        self.history_rvs = []
        self.oldest = 0  # a watch may resume from any rv >= oldest
        self.epoch = 0  # bumped by expire-watches: open watches end
        self.closing = False
        self.history_limit = history_limit
        self.state_path = state_path

    def bucket(self, gvr):
        return self.objects.setdefault(gvr, {})

    def next_rv(self):
        self.rv += 1
        return self.rv

    def record(self, gvr, typ, obj, old):
        self.history.append(Event(self.rv, gvr, typ, copy.deepcopy(obj),
                                  copy.deepcopy(old) if old is not None else None))
        self.history_rvs.append(self.rv)
        if len(self.history) > self.history_limit:
            drop = len(self.history) - self.history_limit // 2
            self.oldest = self.history_rvs[drop - 1]
            del self.history[:drop]
            del self.history_rvs[:drop]
        self.persist()
        self.cond.notify_all()

    def events_after(self, rv):
        i = bisect.bisect_right(self.history_rvs, rv)
        return self.history[i:]

    def expire(self):
        """Compaction past everything any client has seen: the counter moves on, so resuming
        from any resourceVersion handed out before gets 410; a fresh list gives a good one."""
        self.epoch += 1
        self.history = []
        self.history_rvs = []
        self.oldest = self.next_rv()
        self.cond.notify_all()

    def persist(self):
        if not self.state_path:
            return
        data = {"rv": self.rv, "objects": [
            {"gvr": list(gvr), "object": o} for gvr, b in sorted(self.objects.items())
            for _, o in sorted(b.items())]}
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.state_path)

    def load(self):
        with open(self.state_path) as f:
            data = json.load(f)
        self.rv = data["rv"]
        for e in data["objects"]:
            o = e["object"]
            self.bucket(tuple(e["gvr"]))[(o["metadata"].get("namespace", ""),
                                          o["metadata"]["name"])] = o
        self.oldest = self.rv  # no history survives a restart


_GENERATION = {}


def tracks_generation(r):
    """Whether objects of r carry metadata.generation: the kinds whose status reports an
    observedGeneration (Deployments, Pods, PodDisruptionBudgets, ...), not Services or
    ConfigMaps, as on the real server."""
    key = (r.group, r.version, r.plural)
    if key not in _GENERATION:
        d = openapi.find_definition(gv_string(r.group, r.version), r.kind)
        _, st = openapi.field_schema(d, ["status"]) if d else (None, None)
        _GENERATION[key] = bool(st and "observedGeneration" in (st.get("properties") or {}))
    return _GENERATION[key]


def object_fields(r, obj):
    meta = obj.get("metadata") or {}
    f = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", "")}
    for path in EXTRA_FIELDS.get((r.group, r.plural), []):
        v = obj
        for part in path.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        f[path] = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
    return f


# ---- the server --------------------------------------------------------------------------------

class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []

    def add(self, rule):
        codes = rule.get("codes")
        if not isinstance(codes, list) or not codes or not all(
                isinstance(c, int) and 100 <= c <= 599 for c in codes):
            raise ValueError("codes must be a non-empty list of HTTP status codes")
        count = rule.get("count", len(codes))
        if not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        known = {"method", "resource", "verb", "namespace", "name", "codes", "count"}
        if set(rule) - known:
            raise ValueError("unknown keys %s" % sorted(set(rule) - known))
        with self.lock:
            self.rules.append({"method": (rule.get("method") or "*").upper(),
                               "resource": rule.get("resource") or "*",
                               "verb": rule.get("verb") or "*",
                               "namespace": rule.get("namespace") or "*",
                               "name": rule.get("name") or "*",
                               "codes": codes, "count": count, "served": 0})

    def take(self, method, info):
        res = info.get("resource") or ""
        if info.get("subresource"):
            res += "/" + info["subresource"]
        with self.lock:
            for rule in self.rules:
                if rule["served"] >= rule["count"]:
                    continue
                if rule["method"] not in ("*", method):
                    continue
                if rule["resource"] not in ("*", res, info.get("resource")):
                    continue
                if rule["verb"] not in ("*", info.get("verb")):
                    continue
                if rule["namespace"] not in ("*", info.get("namespace")):
                    continue
                if rule["name"] not in ("*", info.get("name")):
                    continue
                code = rule["codes"][rule["served"] % len(rule["codes"])]
                rule["served"] += 1
                return code
        return None

    def pending(self):
        with self.lock:
            return [dict(r) for r in self.rules if r["served"] < r["count"]]

    def clear(self):
        with self.lock:
            self.rules = []


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, args):
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.address_family = family
        super().__init__(addr, handler)
        self.args = args
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(args.cert, args.key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.tokens = {args.token}
        self.store = Store(args.watch_history, os.path.join(args.state_dir, "state.json")
                           if args.state_dir else None)
        self.sem = semantics.Semantics(args.service_cidr, tuple(
            int(x) for x in args.node_port_range.split("-")))
        self.faults = Faults()
        self.log_lock = threading.Lock()
        self.request_log = []
        self.v3_index = None
        self.v3_lock = threading.Lock()
        if self.store.state_path and os.path.exists(self.store.state_path):
            self.store.load()
        else:
            self.seed()

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def seed(self):
        """What a fresh cluster has: the usual namespaces and the kubernetes Service."""
        ns_res = openapi.find_resource("", "v1", "namespaces")
        for n in INITIAL_NAMESPACES:
            self.create_internal(ns_res, "", {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": n}})
        svc = openapi.find_resource("", "v1", "services")
        self.create_internal(svc, "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {
                "component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": self.sem.kubernetes_service_ip(), "ports": [
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}})

    def create_internal(self, r, ns, obj):
        st = self.store
        with st.cond:
            obj["metadata"]["namespace"] = ns if r.namespaced else None
            if not r.namespaced:
                obj["metadata"].pop("namespace")
            errs = semantics.FieldErrors()
            if r.plural == "services":
                # the kubernetes Service takes the reserved first address of the range
                spec = obj["spec"]
                for p in spec["ports"]:
                    p.setdefault("protocol", "TCP")
                spec.update({"type": "ClusterIP", "sessionAffinity": "None",
                             "clusterIPs": [spec["clusterIP"]], "ipFamilies": ["IPv4"],
                             "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"})
                obj["status"] = {"loadBalancer": {}}
            else:
                self.sem.prepare(r.group, r.plural, obj, None, self.list_stored, errs)
            assert not errs, errs
            self.finish_create(r, ns, obj)

    def list_stored(self, group, plural):
        out = []
        for (g, _, p), b in self.store.objects.items():
            if g == group and p == plural:
                out.extend(b.values())
        return out

    def finish_create(self, r, ns, obj):
        st = self.store
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(st.next_rv())
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("generation", None)
        if tracks_generation(r):
            meta["generation"] = 1
        for k in ("selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(k, None)
        st.bucket((r.group, r.version, r.plural))[(ns if r.namespaced else "",
                                                   meta["name"])] = obj
        st.record((r.group, r.version, r.plural), "ADDED", obj, None)

    def log_request(self, entry):
        with self.log_lock:
            self.request_log.append(entry)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cl-test-apiserver/1"
    timeout = 90  # the real server's IdleTimeout: an idle keep-alive connection is closed

    # ---- plumbing --

    def setup(self):
        super().setup()
        self.connection.settimeout(30)
        try:
            self.connection.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            self.rfile = None
        self.connection.settimeout(self.timeout)

    def handle(self):
        if self.rfile is None:
            return
        super().handle()

    def log_message(self, fmt, *args):
        if self.server.args.verbose:
            sys.stderr.write("apiserver: %s\n" % (fmt % args))

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, code, obj, headers=None, content_type="application/json", raw=None):
        """An answer. An object (raw=None) is framed as Go's net/http frames the real server's
        (which sets no Content-Length): a Content-Length up to 2048 bytes, chunked above that on
        HTTP/1.1, gzip from 128 KiB when the client accepts it. raw bytes (discovery
        documents) always get a Content-Length."""
        if raw is not None:
            body, chunked, gz = raw, False, False
        else:
            body = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
            accept = [t.split(";")[0].strip().lower()
                      for t in (self.headers.get("Accept-Encoding") or "").split(",")]
            gz = "gzip" in accept and len(body) >= GZIP_FROM
            if gz:
                body = gzip.compress(body, compresslevel=1, mtime=0)
            chunked = len(body) > CHUNKED_ABOVE and self.request_version == "HTTP/1.1"
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        if gz:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Vary", "Accept-Encoding")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            if isinstance(v, list):
                for x in v:
                    self.send_header(k, x)
            else:
                self.send_header(k, v)
        self.end_headers()
        if chunked:
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        else:
            self.wfile.write(body)
        self.code = code

    def send_error_status(self, e):
        self.send(e.code, e.status(), headers=e.headers)

    def accepts(self, media):
        """Whether the Accept header admits a plain media type (ignores as=Table variants the
        client also accepts plain)."""
        acc = self.headers.get("Accept") or "*/*"
        for part in acc.split(","):
            fields = [x.strip() for x in part.split(";")]
            t = fields[0].lower()
            params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
            if "as" in params:
                continue
            if t in ("*/*", media) or (t.endswith("/*") and media.startswith(t[:-1])):
                return True
        return False

    def negotiate(self):
        """The representation a resource request asks for, as the real server negotiates it
        (clauses by q, most specific first; a clause with parameters it does not know is
        skipped): ("json", None), ("Table" | "PartialObjectMetadata" |
        "PartialObjectMetadataList", "v1" | "v1beta1"), or a 406."""
        clauses = []
        for i, part in enumerate((self.headers.get("Accept") or "*/*").split(",")):
            fields = [x.strip() for x in part.split(";")]
            if not fields[0]:
                continue
            params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
            try:
                q = float(params.pop("q", "1"))
            except ValueError:
                q = 0.0
            t, _, sub = fields[0].lower().partition("/")
            clauses.append((-q, t == "*", sub == "*", i, t, sub, params))
        for _, _, _, _, t, sub, params in sorted(clauses):
            if t not in ("application", "*") or sub not in ("json", "*"):
                continue
            params.pop("pretty", None)
            if set(params) - {"as", "g", "v"}:
                continue
            if not params:
                return "json", None
            if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1") and \
                    params.get("as") in ("Table", "PartialObjectMetadata",
                                         "PartialObjectMetadataList"):
                return params["as"], params["v"]
        raise ApiError(406, "only application/json (also as=Table, PartialObjectMetadata and "
                       "PartialObjectMetadataList of meta.k8s.io/v1 or v1beta1) is served by "
                       "the test API server", "NotAcceptable")

    def table_options(self):
        inc = self.query.get("includeObject", ["Metadata"])[0] or "Metadata"
        if inc not in printers.INCLUDE_OBJECT:
            raise bad_request('unrecognized includeObject value: "%s"' % inc)
        return inc

    def not_acceptable_shape(self, r, what, is_list):
        t = "*%s.%s%s" % (r.group.split(".")[0] if r.group else "core", r.kind,
                          "List" if is_list else "")
        if is_list:
            msg = "you requested %s, but the requested object is a list (%s)" % (what, t)
        else:
            msg = "you requested %s, but the requested object is not a list (%s)" % (what, t)
        return ApiError(406, msg, "NotAcceptable")

    def render_object(self, r, obj, as_, version, headers=True):
        """One object in the negotiated form (a Table of one row, its metadata, or itself)."""
        if as_ == "Table":
            return printers.table(r.group, r.version, r.kind, [obj],
                                  include=self.table_options(), headers=headers,
                                  table_version=version)
        if as_ == "PartialObjectMetadata":
            return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/" + version,
                    "metadata": obj.get("metadata") or {}}
        if as_ == "PartialObjectMetadataList":
            raise self.not_acceptable_shape(r, as_, False)
        return obj

    def send_object(self, code, r, obj, headers=None):
        """A resource request's answer (an object, not a Status) in the negotiated form."""
        as_, version = self.negotiate()
        if obj.get("kind") != "Status":
            obj = self.render_object(r, obj, as_, version)
        self.send(code, obj, headers=headers)

    def accepts_aggregated(self):
        acc = self.headers.get("Accept") or ""
        for part in acc.split(","):
            fields = [x.strip() for x in part.split(";")]
            params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
            if (fields[0] == "application/json" and params.get("as") == "APIGroupDiscoveryList"
                    and params.get("g") == "apidiscovery.k8s.io" and params.get("v") in (
                        "v2", "v2beta1")):
                return params["v"]
        return None

    # ---- dispatch --

    def dispatch(self, method):
        self.code = 0
        self.logged = False
        self.url = url = urllib.parse.urlsplit(self.path)
        path = url.path
        self.query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        self.info = {}
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        if path.startswith("/_test/"):
            self.control(method, path, body)
            return
        srv = self.server
        try:
            try:
                if path.rstrip("/") not in ("/version", "/healthz", "/livez", "/readyz"):
                    auth = self.headers.get("Authorization") or ""
                    if not auth.startswith("Bearer ") or auth[7:] not in srv.tokens:
                        raise ApiError(401, "Unauthorized", "Unauthorized")
                self.info = self.parse_resource_path(method, path)
                code = srv.faults.take(method, self.info) if self.info else None
                if code is None and not self.info:
                    code = srv.faults.take(method, {"resource": path})
                if code is not None:
                    self.injected(code)
                else:
                    self.route(method, path, body)
            except ApiError as e:
                self.send_error_status(e)
        except (ConnectionError, ssl.SSLError, socket.timeout, TimeoutError):
            self.close_connection = True
        finally:
            self.log_once()

    def log_once(self):
        """Adds this request to the request log (once; a watch is logged when it starts)."""
        if self.logged:
            return
        self.logged = True
        info = self.info
        hdrs = getattr(self, "headers", None)
        auth = (hdrs.get("Authorization") if hdrs is not None else None) or ""
        self.server.log_request({"method": self.command, "path": self.url.path,
                                 "query": self.url.query, "code": self.code,
                                 "verb": info.get("verb"), "resource": info.get("resource"),
                                 "subresource": info.get("subresource"),
                                 "namespace": info.get("namespace"), "name": info.get("name"),
                                 "token": auth[7:] if auth.startswith("Bearer ") else None})

    def injected(self, code):
        info = self.info
        name = info.get("name") or ""
        headers = {}
        details = None
        if code == 409:
            msg = ('Operation cannot be fulfilled on %s "%s": the object has been modified; please '
                   'apply your changes to the latest version and try again' % (
                       info.get("resource", "?"), name))
        elif code == 429:
            msg = "Too many requests, please try again later."
            headers["Retry-After"] = "1"
            details = {"retryAfterSeconds": 1}
        elif code == 500:
            msg = "Internal error occurred: injected fault"
        else:
            msg = "injected fault %d" % code
        if details is None and name:
            details = {"name": name, "kind": info.get("resource", "")}
        raise ApiError(code, msg + " (injected)", REASONS.get(code, "Unknown"), details, headers)

    def parse_resource_path(self, method, path):
        """{group, version, res (openapi.Resource), resource, subresource, namespace, name, verb}
        for a resource URL, {} for anything else."""
        segs = [s for s in path.split("/") if s]
        if len(segs) >= 3 and segs[0] == "api" and segs[1] == "v1":
            group, version, rest = "", "v1", segs[2:]
        elif len(segs) >= 4 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return {}
        watch_path = False
        if rest and rest[0] == "watch":
            watch_path = True
            rest = rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            r = openapi.find_resource(group, version, rest[2])
            if r is not None and r.namespaced:
                ns = rest[1]
                rest = rest[2:]
        if not rest or len(rest) > 3:
            return {}
        r = openapi.find_resource(group, version, rest[0])
        if r is None:
            return {}
        name = urllib.parse.unquote(rest[1]) if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        watch = watch_path or self.query.get("watch", [""])[0] in ("1", "true", "True")
        if method == "GET":
            verb = "watch" if watch else ("get" if name else "list")
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                    "DELETE": "delete" if name else "deletecollection"}.get(method, "?")
        return {"group": group, "version": version, "res": r, "resource": r.plural,
                "subresource": sub, "namespace": ns, "name": name, "verb": verb,
                "watch": watch}

    def route(self, method, path, body):
        p = path.rstrip("/") or "/"
        if method == "GET":
            if p in ("/healthz", "/livez", "/readyz"):
                return self.send(200, None, content_type="text/plain", raw=b"ok")
            if p == "/version":
                return self.send(200, SERVER_VERSION)
            if p in ("/api", "/apis"):
                return self.discovery_root(p)
            if p == "/api/v1":
                return self.resource_list("", "v1")
            segs = p.split("/")[1:]
            if len(segs) == 2 and segs[0] == "apis" and segs[1] in openapi.groups():
                return self.send(200, self.api_group(segs[1]))
            if len(segs) == 3 and segs[0] == "apis" and segs[2] in openapi.groups().get(segs[1],
                                                                                        []):
                return self.resource_list(segs[1], segs[2])
            if p == "/openapi/v2":
                return self.openapi_v2()
            if p == "/openapi/v3":
                return self.send(200, self.v3_index())
            if p.startswith("/openapi/v3/"):
                return self.openapi_v3(p[len("/openapi/v3/"):])
        info = self.info
        if not info:
            raise ApiError(404, "the server could not find the requested resource", "NotFound",
                           {"causes": [{"reason": "UnexpectedServerResponse",
                                        "message": "404 page not found"}]})
        r = info["res"]
        verb = info["verb"]
        sub = info["subresource"]
        if sub is not None:
            if sub != "status" or sub not in r.subresources:
                raise ApiError(404, "the server could not find the requested resource (the "
                               "test API server implements only the status subresource)",
                               "NotFound")
            if verb not in r.subresources[sub]["verbs"]:
                raise ApiError(405, "the server does not allow this method on the requested "
                               "resource", "MethodNotAllowed")
        elif verb not in r.verbs:
            raise ApiError(405, "the server does not allow this method on the requested resource",
                           "MethodNotAllowed")
        if r.namespaced and info["namespace"] is None and verb not in ("list", "watch"):
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if method in ("POST", "PUT") and ctype.lower() != "application/json":
            raise ApiError(415, "the body of the request was in an unknown format - accepted "
                           "media types include: application/json (the test API server speaks "
                           "JSON only)", "UnsupportedMediaType")
        self.negotiate()
        ns = info["namespace"] or ""
        name = info["name"]
        if verb == "watch":
            return self.watch(r, info["namespace"], name)
        if verb == "list":
            return self.list(r, info["namespace"])
        if verb == "get":
            return self.get(r, ns, name)
        if verb == "create":
            return self.create(r, ns, body)
        if verb == "update":
            return self.update(r, ns, name, body, sub)
        if verb == "patch":
            return self.patch(r, ns, name, body, sub)
        if verb == "delete":
            return self.delete(r, ns, name, body)
        if verb == "deletecollection":
            return self.delete_collection(r, ns)
        raise ApiError(405, "the server does not allow this method on the requested resource",
                       "MethodNotAllowed")

    # ---- control endpoints --

    def control(self, method, path, body):
        srv = self.server
        try:
            if not ipaddress.ip_address(self.client_address[0]).is_loopback:
                raise ApiError(403, "test control endpoints are for loopback clients only")
            if method == "POST" and path == "/_test/faults":
                rules, _ = parse_json(body or b"null")
                for rule in rules if isinstance(rules, list) else [rules]:
                    if not isinstance(rule, dict):
                        raise bad_request("a fault rule is a JSON object")
                    try:
                        srv.faults.add(rule)
                    except ValueError as e:
                        raise bad_request(str(e))
                return self.send(200, {"faults": srv.faults.pending()})
            if method == "POST" and path == "/_test/tokens":
                req, _ = parse_json(body or b"null")
                toks = req.get("tokens") if isinstance(req, dict) else None
                if not isinstance(toks, list) or not all(isinstance(t, str) and t
                                                         for t in toks):
                    raise bad_request('expected {"tokens": ["...", ...]}')
                srv.tokens = set(toks)
                return self.send(200, {"tokens": len(toks)})
            if method == "GET" and path == "/_test/faults":
                return self.send(200, {"faults": srv.faults.pending()})
            if method == "POST" and path == "/_test/expire-watches":
                with srv.store.cond:
                    srv.store.expire()
                    rv = srv.store.rv
                return self.send(200, {"resourceVersion": str(rv)})
            if method == "POST" and path == "/_test/end-watches":
                with srv.store.cond:
                    srv.store.epoch += 1  # ends open watches; the history stays
                    srv.store.cond.notify_all()
                    rv = srv.store.rv
                return self.send(200, {"resourceVersion": str(rv)})
            if method == "GET" and path == "/_test/requests":
                with srv.log_lock:
                    return self.send(200, list(srv.request_log))
            if method == "POST" and path == "/_test/reset":
                srv.faults.clear()
                with srv.log_lock:
                    srv.request_log.clear()
                return self.send(200, {})
            raise ApiError(404, "unknown test endpoint %s %s" % (method, path))
        except ApiError as e:
            self.send_error_status(e)

    # ---- discovery --

    def discovery_root(self, p):
        agg = self.accepts_aggregated()
        if agg:
            groups = [g for g in openapi.groups() if (g == "") == (p == "/api")]
            items = [self.aggregated_group(g) for g in groups]
            return self.send(200, {
                "kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/" + agg,
                "metadata": {}, "items": items},
                content_type="application/json;g=apidiscovery.k8s.io;v=%s;as="
                             "APIGroupDiscoveryList" % agg)
        if p == "/api":
            return self.send(200, {"kind": "APIVersions", "versions": ["v1"],
                                   "serverAddressByClientCIDRs": [{
                                       "clientCIDR": "0.0.0.0/0",
                                       "serverAddress": "%s:%d" % self.server.server_address[:2]}]})
        return self.send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            self.api_group(g, bare=True) for g in openapi.groups() if g]})

    def api_group(self, g, bare=False):
        versions = openapi.groups()[g]
        out = {"name": g,
               "versions": [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in versions],
               "preferredVersion": {"groupVersion": "%s/%s" % (g, versions[0]),
                                    "version": versions[0]}}
        if not bare:
            out = dict({"kind": "APIGroup", "apiVersion": "v1"}, **out)
        return out

    def aggregated_group(self, g):
        versions = []
        for v in openapi.groups()[g]:
            res = []
            for r in openapi.resources():
                if r.group != g or r.version != v:
                    continue
                e = {"resource": r.plural,
                     "responseKind": {"group": g, "version": v, "kind": r.kind},
                     "scope": "Namespaced" if r.namespaced else "Cluster",
                     "singularResource": r.kind.lower(), "verbs": r.verbs}
                if (g, r.plural) in SHORT_NAMES:
                    e["shortNames"] = SHORT_NAMES[(g, r.plural)]
                if (g, r.plural) in CATEGORY_ALL:
                    e["categories"] = ["all"]
                if "status" in r.subresources:
                    s = r.subresources["status"]
                    e["subresources"] = [{"subresource": "status", "responseKind": {
                        "group": g, "version": v, "kind": s["kind"]}, "verbs": s["verbs"]}]
                res.append(e)
            versions.append({"version": v, "resources": res, "freshness": "Current"})
        return {"metadata": {"name": g, "creationTimestamp": None}, "versions": versions}

    def resource_list(self, g, v):
        res = []
        for r in openapi.resources():
            if r.group != g or r.version != v:
                continue
            e = {"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": r.verbs}
            if (g, r.plural) in SHORT_NAMES:
                e["shortNames"] = SHORT_NAMES[(g, r.plural)]
            if (g, r.plural) in CATEGORY_ALL:
                e["categories"] = ["all"]
            res.append(e)
            if "status" in r.subresources:
                s = r.subresources["status"]
                res.append({"name": r.plural + "/status", "singularName": "",
                            "namespaced": r.namespaced, "kind": s["kind"], "verbs": s["verbs"]})
        return self.send(200, {"kind": "APIResourceList", "apiVersion": "v1",
                               "groupVersion": gv_string(g, v), "resources": res})

    def openapi_v2(self):
        if not self.accepts("application/json"):
            raise ApiError(406, "the test API server serves /openapi/v2 as application/json only",
                           "NotAcceptable")
        return self.send(200, None, raw=openapi.spec_bytes())

    def v3_index(self):
        return Handler.build_v3_index(self.server)

    @staticmethod
    def build_v3_index(srv):
        with srv.v3_lock:
            if srv.v3_index is None:
                docs = openapi.openapi_v3_documents()
                srv.v3_hashes = {k: hashlib.sha512(d).hexdigest().upper()
                                 for k, d in docs.items()}
                srv.v3_index = {"paths": {k: {"serverRelativeURL": "/openapi/v3/%s?hash=%s"
                                              % (k, h)} for k, h in srv.v3_hashes.items()}}
            return srv.v3_index

    def openapi_v3(self, key):
        self.v3_index()
        docs = openapi.openapi_v3_documents()
        if key not in docs:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        if not self.accepts("application/json"):
            raise ApiError(406, "the test API server serves /openapi/v3 as application/json only",
                           "NotAcceptable")
        h = self.server.v3_hashes[key]
        immutable = self.query.get("hash", [""])[0] == h
        headers = {"Etag": '"%s"' % h,
                   "Cache-Control": "public, immutable" if immutable else "no-cache, no-store"}
        if self.headers.get("If-None-Match") == '"%s"' % h:
            self.send_response(304)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.code = 304
            return
        return self.send(200, None, raw=docs[key], headers=headers)

    # ---- reads --

    def bucket(self, r):
        return self.server.store.bucket((r.group, r.version, r.plural))

    def stored(self, r, ns, name):
        o = self.bucket(r).get((ns if r.namespaced else "", name))
        if o is None:
            raise not_found(r, name)
        return o

    def get(self, r, ns, name):
        with self.server.store.cond:
            o = copy.deepcopy(self.stored(r, ns, name))
        self.send_object(200, r, o)

    def selectors(self, r):
        try:
            ls = selection.parse_label_selector(self.query.get("labelSelector", [""])[0])
            fs = selection.parse_field_selector(
                self.query.get("fieldSelector", [""])[0],
                ["metadata.name", "metadata.namespace"] + EXTRA_FIELDS.get((r.group, r.plural),
                                                                           []))
        except selection.SelectorError as e:
            raise bad_request(str(e))
        return ls, fs

    def matcher(self, r, ns, name=None):
        ls, fs = self.selectors(r)

        def match(o):
            if o is None:
                return False
            meta = o.get("metadata") or {}
            if ns is not None and meta.get("namespace") != ns:
                return False
            if name is not None and meta.get("name") != name:
                return False
            return ls.matches(meta.get("labels")) and fs.matches(object_fields(r, o))
        return match

    def list(self, r, ns):
        match = self.matcher(r, ns)
        limit = self.query.get("limit", ["0"])[0]
        try:
            limit = int(limit or 0)
        except ValueError:
            raise bad_request("invalid limit %r" % limit)
        cont = self.query.get("continue", [""])[0]
        start = None
        st = self.server.store
        with st.cond:
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont.encode()))
                    start = tuple(tok["start"])
                    tok_rv = int(tok["rv"])
                except (ValueError, KeyError, TypeError):
                    raise bad_request("continue key is not valid")
                if tok_rv < st.oldest:
                    raise ApiError(410, "The provided continue parameter is too old to display a "
                                   "consistent list result. You can start a new list without "
                                   "the continue parameter.", "Expired")
            items = sorted(((k, o) for k, o in self.bucket(r).items() if match(o)),
                           key=lambda x: x[0])
            if start is not None:
                items = [x for x in items if x[0] > start]
            meta = {"resourceVersion": str(st.rv)}
            if limit > 0 and len(items) > limit:
                meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                    {"rv": st.rv, "start": list(items[limit - 1][0])}).encode()).decode()
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            out = []
            for _, o in items:
                o = copy.deepcopy(o)
                o.pop("kind", None)
                o.pop("apiVersion", None)
                out.append(o)
        self.send(200, self.render_list(r, out, meta))

    def render_list(self, r, items, meta):
        """A list in the negotiated form: the kind's List, a Table, or a
        PartialObjectMetadataList."""
        as_, version = self.negotiate()
        if as_ == "Table":
            return printers.table(r.group, r.version, r.kind, items, list_meta=meta,
                                  include=self.table_options(), table_version=version)
        if as_ == "PartialObjectMetadataList":
            gv = "meta.k8s.io/" + version
            return {"kind": "PartialObjectMetadataList", "apiVersion": gv, "metadata": meta,
                    "items": [{"kind": "PartialObjectMetadata", "apiVersion": gv,
                               "metadata": o.get("metadata") or {}} for o in items]}
        if as_ == "PartialObjectMetadata":
            raise self.not_acceptable_shape(r, as_, True)
        return {"kind": r.kind + "List", "apiVersion": gv_string(r.group, r.version),
                "metadata": meta, "items": items}

    # ---- watch --

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def event(self, typ, obj, render=None):
        if render is not None and obj.get("kind") != "Status":
            obj = render(obj)
        self.chunk((json.dumps({"type": typ, "object": obj}, separators=(",", ":")) + "\n")
                   .encode())

    def next_bookmark(self, allowed, now, deadline):
        """When the next BOOKMARK is due (monotonic time), or None: every
        --watch-bookmark-seconds, and 2 s before the watch's timeout, as the real server's
        watch cache sends them to a watch that allows them."""
        if not allowed:
            return None
        t = min(now + self.server.args.watch_bookmark_seconds, deadline - 2)
        return t if t > now else None

    def watch_renderer(self, r):
        """How watch events' objects are written for the negotiated form (None: as they are).
        A Table gives each event a Table of one row, with column definitions only in the first
        one, as the real server does; PartialObjectMetadataList cannot be made of one object,
        and the real server then writes the object as it is."""
        as_, version = self.negotiate()
        if as_ == "Table":
            include = self.table_options()
            first = [True]

            def table(o):
                t = printers.table(r.group, r.version, r.kind, [o], include=include,
                                   headers=first[0], table_version=version)
                first[0] = False
                return t
            return table
        if as_ == "PartialObjectMetadata":
            return lambda o: self.render_object(r, o, as_, version)
        return None

    def client_gone(self):
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            self.connection.settimeout(0.05)
            try:
                self.connection.recv(1)
            except (ssl.SSLWantReadError, socket.timeout, TimeoutError):
                return False
            finally:
                self.connection.settimeout(self.timeout)
            return True  # EOF, or bytes a watch client has no reason to send
        except (OSError, ValueError):
            return True

    def watch(self, r, ns, name):
        q = self.query
        match = self.matcher(r, ns, name)
        st = self.server.store
        rv_s = q.get("resourceVersion", [""])[0]
        try:
            timeout = float(q.get("timeoutSeconds", ["1800"])[0] or 1800)
        except ValueError:
            raise bad_request("invalid timeoutSeconds")
        initial = q.get("sendInitialEvents", [""])[0] == "true"
        bookmarks = q.get("allowWatchBookmarks", [""])[0] == "true"
        if initial and (q.get("resourceVersionMatch", [""])[0] != "NotOlderThan" or
                        not bookmarks):
            raise invalid_watch_list()
        if rv_s not in ("", "0"):
            try:
                start_rv = int(rv_s)
            except ValueError:
                raise bad_request('resourceVersion: Invalid value: "%s": must be a number' % rv_s)
        else:
            start_rv = None
        render = self.watch_renderer(r)
        deadline = time.monotonic() + max(timeout, 0)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.code = 200
        self.log_once()
        with st.cond:
            epoch = st.epoch
            pending = []
            if start_rv is not None and start_rv < st.oldest:
                pending.append(("ERROR", status_obj(
                    410, "Expired", "too old resource version: %d (%d)" % (start_rv, st.oldest))))
                last = None
            elif start_rv is not None and start_rv > st.rv:
                pending.append(("ERROR", status_obj(
                    504, "Timeout", "Too large resource version: %d, current: %d"
                    % (start_rv, st.rv), {"causes": [{"reason": "ResourceVersionTooLarge",
                                                      "message": "Too large resource version"}],
                                          "retryAfterSeconds": 1})))
                last = None
            else:
                last = st.rv if start_rv is None else start_rv
                if start_rv is None or initial:
                    for _, o in sorted(self.bucket(r).items()):
                        if match(o):
                            pending.append(("ADDED", copy.deepcopy(o)))
                    if initial:
                        pending.append(("BOOKMARK", {
                            "kind": r.kind, "apiVersion": gv_string(r.group, r.version),
                            "metadata": {"resourceVersion": str(st.rv), "annotations": {
                                "k8s.io/initial-events-end": "true"}}}))
        try:
            for typ, o in pending:
                self.event(typ, o, render)
            gv = gv_string(r.group, r.version)
            bookmark_at = self.next_bookmark(bookmarks, time.monotonic(), deadline)
            while last is not None:
                with st.cond:
                    evs = st.events_after(last)
                    if not evs and not st.closing and st.epoch == epoch:
                        wake = min(deadline, bookmark_at or deadline)
                        st.cond.wait(min(0.5, max(wake - time.monotonic(), 0)))
                        evs = st.events_after(last)
                    if st.closing or st.epoch != epoch:
                        break
                    out = []
                    for e in evs:
                        last = e.rv
                        if e.gvr != (r.group, r.version, r.plural):
                            continue
                        # as the real server's watch cache: a deletion is seen by those who saw
                        # the object; one leaving the selection is a DELETED of what it was
                        # (with the new resourceVersion), one entering it an ADDED
                        now = e.type != "DELETED" and match(e.obj)
                        before = match(e.old)
                        if now:
                            out.append(("MODIFIED" if before else "ADDED", e.obj))
                        elif before and e.type == "DELETED":
                            out.append(("DELETED", e.obj))
                        elif before:
                            was = copy.deepcopy(e.old)
                            was["metadata"]["resourceVersion"] = e.obj["metadata"][
                                "resourceVersion"]
                            out.append(("DELETED", was))
                    bookmark_rv = st.rv
                for typ, o in out:
                    self.event(typ, o, render)
                t = time.monotonic()
                if bookmark_at is not None and t >= bookmark_at:
                    # what the real server sends when asked to: an empty object of the kind
                    # at the current resourceVersion, about every minute and 2 s before the
                    # timeout
                    self.event("BOOKMARK", {"kind": r.kind, "apiVersion": gv, "metadata": {
                        "resourceVersion": str(bookmark_rv)}}, render)
                    bookmark_at = self.next_bookmark(bookmarks, t, deadline)
                if t >= deadline or self.client_gone():
                    break
            self.wfile.write(b"0\r\n\r\n")
        except (ConnectionError, ssl.SSLError, socket.timeout, TimeoutError, OSError):
            self.close_connection = True

    # ---- writes --

    def field_validation(self):
        fv = self.query.get("fieldValidation", ["Warn"])[0] or "Warn"
        if fv not in FIELD_VALIDATION:
            raise bad_request('fieldValidation: Invalid value: "%s": fieldValidation must be one '
                              'of "Ignore", "Warn", or "Strict"' % fv)
        return fv

    def dry_run(self):
        d = self.query.get("dryRun", [])
        for v in d:
            if v != "All":
                raise bad_request('dryRun: Unsupported value: "%s": supported values: "All"' % v)
        return bool(d)

    def decode(self, r, obj, dups, kind_for=None, patch=None):
        """Schema checks of an incoming object for resource r (or its subresource kind): fills a
        missing apiVersion/kind, refuses what the real server's decoder refuses (wrong JSON
        types, bad times and quantities; unknown or duplicate fields with Strict), drops unknown
        fields otherwise (Warn adds Warning headers), writes times as the real server stores
        them, and returns (object, schema problems that are semantic: required/invalid).

        A body (POST, PUT) that does not decode is a 400 with the decoder's words; a patched
        object that does not is a 422 on the field "patch" (patch: (value, converter) with the
        value shown in the message and whether the object came through the unstructured
        converter, as a strategic merge patch does)."""
        kind = kind_for or r.kind
        gv = gv_string(r.group, r.version)
        if not isinstance(obj, dict):
            # what the decoder's first pass (reading apiVersion and kind) says
            detail = ("couldn't get version/kind; json parse error: json: cannot unmarshal %s "
                      "into Go value of type struct { APIVersion string \"json:\\\"apiVersion,"
                      "omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }"
                      % openapi.json_kind(obj))
            if patch is not None:
                raise patch_invalid(patch[0], detail)
            raise bad_request(detail)
        obj.setdefault("apiVersion", gv)
        obj.setdefault("kind", kind)
        if obj["apiVersion"] != gv:
            raise bad_request("the API version in the data (%s) does not match the expected API "
                              "version (%s)" % (obj["apiVersion"], gv))
        if obj["kind"] != kind:
            raise bad_request("%s in version \"%s\" cannot be handled as a %s: the kind in the "
                              "data (%s) does not match" % (obj["kind"], r.version, kind,
                                                            obj["kind"]))
        defname = openapi.find_definition(gv, kind)
        problems = openapi.check_definition(obj, defname)
        prefix = "%s in version \"%s\" cannot be handled as a %s: " % (kind, r.version, kind)
        types = [p for p in problems if p.category == openapi.TYPE]
        if types:
            if patch is not None:
                first = types[0]
                raise patch_invalid(patch[0], (first.conv or first.go) if patch[1] else
                                    decode_error(types))
            raise bad_request(prefix + decode_error(types))
        unknown = ['unknown field "%s"' % strip_path(p.path) for p in problems
                   if p.category == openapi.UNKNOWN]
        unknown = ['duplicate field "%s"' % d for d in dups] + unknown
        fv = self.field_validation()
        if unknown:
            if fv == "Strict":
                detail = "strict decoding error: " + ", ".join(unknown)
                if patch is not None:
                    raise patch_invalid(patch[0], detail)
                raise bad_request(prefix + detail)
            if fv == "Warn":
                self.warnings.extend(unknown)
            obj = openapi.prune_unknown(obj, defname)
        openapi.normalize_times(obj, defname)
        errs = semantics.FieldErrors()
        for p in problems:
            if p.category == openapi.REQUIRED:
                errs.required(strip_path(p.path))
            elif p.category == openapi.INVALID:
                errs.add("FieldValueInvalid", strip_path(p.path), p.message)
        return obj, errs

    def warning_headers(self):
        return {"Warning": ['299 - %s' % json.dumps(w) for w in self.warnings]} \
            if self.warnings else {}

    def check_meta(self, r, ns, obj, errs):
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if r.namespaced:
            if meta.get("namespace") not in (None, "", ns):
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        semantics.validate_meta(meta, r.group, r.plural, errs)

    def create(self, r, ns, body):
        self.warnings = []
        dry = self.dry_run()
        raw, dups = parse_json(body)
        obj, errs = self.decode(r, raw, dups)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            gn = meta["generateName"]
            meta["name"] = gn + "".join(self.server.sem.rng.choice("bcdfghjklmnpqrstvwxz2456789")
                                        for _ in range(5))
        self.check_meta(r, ns, obj, errs)
        if (r.group, r.plural) in STATUS_RESET_ON_CREATE:
            obj.pop("status", None)  # the status is the controllers' (defaults follow)
        name = meta.get("name") or ""
        if meta.get("resourceVersion"):
            raise ApiError(500, "resourceVersion should not be set on objects to be created",
                           "InternalError")
        st = self.server.store
        with st.cond:
            if not errs:
                self.server.sem.prepare(r.group, r.plural, obj, None, self.server.list_stored,
                                        errs)
            if errs:
                raise invalid(r, name, errs)
            if (ns if r.namespaced else "", name) in self.bucket(r):
                raise ApiError(409, '%s "%s" already exists' % (qualified(r), name),
                               "AlreadyExists", _details(r, name))
            if r.namespaced:
                nsr = openapi.find_resource("", "v1", "namespaces")
                nso = self.bucket(nsr).get(("", ns))
                if nso is None:
                    raise ApiError(404, 'namespaces "%s" not found' % ns, "NotFound",
                                   {"name": ns, "kind": "namespaces"})
                if (nso.get("metadata") or {}).get("deletionTimestamp"):
                    raise ApiError(403, "%s \"%s\" is forbidden: unable to create new content in "
                                   "namespace %s because it is being terminated"
                                   % (qualified(r), name, ns), "Forbidden")
            if dry:
                meta["uid"] = str(uuid.uuid4())
                meta["creationTimestamp"] = now_rfc3339()
                meta.pop("generation", None)
                if tracks_generation(r):
                    meta["generation"] = 1
            else:
                self.server.finish_create(r, ns, obj)
            out = copy.deepcopy(obj)
        self.send_object(201, r, out, headers=self.warning_headers())

    def update(self, r, ns, name, body, sub):
        self.warnings = []
        raw, dups = parse_json(body)
        kind = r.subresources[sub]["kind"] if sub else None
        obj, errs = self.decode(r, raw, dups, kind)
        st = self.server.store
        with st.cond:
            cur = self.stored(r, ns, name)
            out, code = self.apply_update(r, ns, name, obj, errs, cur, sub)
        self.send_object(code, r, out, headers=self.warning_headers())

    def patch(self, r, ns, name, body, sub):
        self.warnings = []
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in ("application/merge-patch+json", "application/json-patch+json",
                         "application/strategic-merge-patch+json"):
            raise ApiError(415, "the body of the request was in an unknown format - accepted "
                           "media types include: application/json-patch+json, "
                           "application/merge-patch+json, application/strategic-merge-patch+json"
                           " (server-side apply, application/apply-patch+yaml, is not "
                           "implemented by the test API server)", "UnsupportedMediaType")
        doc, dups = parse_json(body)
        kind = r.subresources[sub]["kind"] if sub else r.kind
        defname = openapi.find_definition(gv_string(r.group, r.version), kind)
        st = self.server.store
        with st.cond:
            cur = self.stored(r, ns, name)
            try:
                if ctype == "application/merge-patch+json":
                    if not isinstance(doc, dict):
                        raise patches.PatchError("a merge patch must be a JSON object")
                    res = patches.merge_patch(cur, doc)
                elif ctype == "application/json-patch+json":
                    res = patches.json_patch(cur, doc)
                else:
                    res = patches.strategic_merge_patch(cur, doc, defname)
            except patches.PatchError as e:
                raise bad_request(str(e))
            except patches.PatchConflict as e:
                raise ApiError(422, "the server rejected our request due to an error in our "
                               "request: %s" % e, "Invalid")
            smp = ctype == "application/strategic-merge-patch+json"
            shown = godecode.go_format_v(doc) if smp else godecode.go_json(res)
            obj, errs = self.decode(r, res, dups, kind if sub else None, patch=(shown, smp))
            out, code = self.apply_update(r, ns, name, obj, errs, cur, sub)
        self.send_object(code, r, out, headers=self.warning_headers())

    def apply_update(self, r, ns, name, obj, errs, cur, sub):
        """Update cur with obj (store lock held). Returns (object, HTTP code)."""
        srv = self.server
        st = srv.store
        dry = self.dry_run()
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        meta = obj["metadata"]
        if meta.get("name") != name:
            raise bad_request("the name of the object (%s) does not match the name on the URL "
                              "(%s)" % (meta.get("name") or "", name))
        cmeta = cur["metadata"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != cmeta["resourceVersion"]:
            raise conflict(r, name)
        if meta.get("uid") and meta["uid"] != cmeta["uid"]:
            raise conflict(r, name, "Precondition failed: UID in precondition: %s, UID in object "
                           "meta: %s" % (cmeta["uid"], meta["uid"]))
        if sub == "status":
            new = copy.deepcopy(cur)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            if "status" in r.subresources:
                if "status" in cur:
                    new["status"] = copy.deepcopy(cur["status"])
                else:
                    new.pop("status", None)
            self.check_meta(r, ns, new, errs)
        nmeta = new["metadata"]
        for k in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                  "deletionGracePeriodSeconds"):
            if k in cmeta:
                nmeta[k] = cmeta[k]
            else:
                nmeta.pop(k, None)
        for k in ("selfLink", "managedFields"):
            nmeta.pop(k, None)
        if r.namespaced:
            nmeta["namespace"] = ns
        if not errs:
            srv.sem.prepare(r.group, r.plural, new, cur, srv.list_stored, errs)
        if errs:
            raise invalid(r, name, errs)

        def content(o):
            return {k: v for k, v in o.items() if k not in ("metadata", "status")}
        if tracks_generation(r) and content(new) != content(cur):
            nmeta["generation"] = cmeta.get("generation", 1) + 1
        nmeta["resourceVersion"] = cmeta["resourceVersion"]
        if new == cur:
            return copy.deepcopy(cur), 200  # a no-op update writes nothing
        if dry:
            return copy.deepcopy(new), 200
        gvr = (r.group, r.version, r.plural)
        key = (ns if r.namespaced else "", name)
        nmeta["resourceVersion"] = str(st.next_rv())
        if nmeta.get("deletionTimestamp") and not nmeta.get("finalizers"):
            del st.bucket(gvr)[key]
            st.record(gvr, "DELETED", new, cur)
        else:
            st.bucket(gvr)[key] = new
            st.record(gvr, "MODIFIED", new, cur)
        return copy.deepcopy(new), 200

    def delete_options(self, body):
        opts = {}
        if body.strip():
            opts, _ = parse_json(body)
            if not isinstance(opts, dict):
                raise bad_request("DeleteOptions must be a JSON object")
            problems = [p for p in openapi.check_definition(
                opts, "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")
                if p.category in (openapi.TYPE, openapi.UNKNOWN)]
            if problems:
                raise bad_request("DeleteOptions: " + "; ".join(
                    "%s: %s" % (strip_path(p.path), p.message) for p in problems))
        for q in ("gracePeriodSeconds", "propagationPolicy", "dryRun"):
            if q in self.query:
                opts.setdefault(q, self.query[q][0])
        pp = opts.get("propagationPolicy")
        if pp not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError(422, 'propagationPolicy: Unsupported value: "%s": supported values: '
                           '"Foreground", "Background", "Orphan"' % pp, "Invalid")
        return opts

    def delete(self, r, ns, name, body):
        opts = self.delete_options(body)
        dry = self.dry_run() or bool(opts.get("dryRun"))
        st = self.server.store
        with st.cond:
            cur = self.stored(r, ns, name)
            pre = opts.get("preconditions") or {}
            cmeta = cur["metadata"]
            if pre.get("uid") and pre["uid"] != cmeta["uid"]:
                raise conflict(r, name, "Precondition failed: UID in precondition: %s, UID in "
                               "object meta: %s" % (pre["uid"], cmeta["uid"]))
            if pre.get("resourceVersion") and pre["resourceVersion"] != cmeta["resourceVersion"]:
                raise conflict(r, name, "Precondition failed: ResourceVersion in precondition: "
                               "%s, ResourceVersion in object meta: %s"
                               % (pre["resourceVersion"], cmeta["resourceVersion"]))
            if dry:
                return self.send_object(200, r, copy.deepcopy(cur))
            out, code = self.delete_locked(r, ns, name, cur)
        if (r.group, r.plural) in RETURNS_DELETED or code == 202:
            return self.send_object(code, r, out)
        self.send(code, status_obj(200, "", "", _details(r, name, uid=cmeta["uid"]),
                                   status="Success"))

    def delete_locked(self, r, ns, name, cur):
        st = self.server.store
        gvr = (r.group, r.version, r.plural)
        key = (ns if r.namespaced else "", name)
        if cur["metadata"].get("finalizers") and not (r.plural == "namespaces" and not r.group):
            if cur["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(cur), 202
            new = copy.deepcopy(cur)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["resourceVersion"] = str(st.next_rv())
            st.bucket(gvr)[key] = new
            st.record(gvr, "MODIFIED", new, cur)
            return copy.deepcopy(new), 202
        if r.plural == "namespaces" and not r.group:
            # the namespace controller's work, done at once: everything in it goes first
            for (g, v, p), b in list(st.objects.items()):
                res = openapi.find_resource(g, v, p)
                if res is None or not res.namespaced:
                    continue
                for (ons, oname), o in sorted(b.items()):
                    if ons == name:
                        gone = copy.deepcopy(o)
                        gone["metadata"]["resourceVersion"] = str(st.next_rv())
                        del b[(ons, oname)]
                        st.record((g, v, p), "DELETED", gone, o)
        gone = copy.deepcopy(cur)
        gone["metadata"]["resourceVersion"] = str(st.next_rv())
        if r.plural == "namespaces" and not r.group:
            gone["metadata"]["deletionTimestamp"] = now_rfc3339()
            gone.setdefault("status", {})["phase"] = "Terminating"
        del st.bucket(gvr)[key]
        st.record(gvr, "DELETED", gone, cur)
        return gone, 200

    def delete_collection(self, r, ns):
        self.delete_options(b"")
        dry = self.dry_run()
        match = self.matcher(r, ns if r.namespaced else None)
        st = self.server.store
        items = []
        with st.cond:
            for (ons, oname), o in sorted(self.bucket(r).items()):
                if not match(o):
                    continue
                if dry:
                    items.append(copy.deepcopy(o))
                    continue
                gone, _ = self.delete_locked(r, ons, oname, o)
                items.append(gone)
            rv = st.rv
        for o in items:
            o.pop("kind", None)
            o.pop("apiVersion", None)
        self.send(200, self.render_list(r, items, {"resourceVersion": str(rv)}))


def invalid_watch_list():
    return ApiError(422, "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents requires "
                    "resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true", "Invalid")


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Strict Kubernetes API server for tests.")
    ap.add_argument("--listen", default="127.0.0.1:0", help="address:port (port 0: any)")
    ap.add_argument("--cert", required=True, help="server certificate (PEM)")
    ap.add_argument("--key", required=True, help="server private key (PEM)")
    ap.add_argument("--token", required=True, help="the bearer token clients must send")
    ap.add_argument("--ready-file", help="written with the port number once listening")
    ap.add_argument("--state-dir", help="keep objects in DIR/state.json across restarts")
    ap.add_argument("--service-cidr", default="10.96.0.0/12")
    ap.add_argument("--node-port-range", default="30000-32767")
    ap.add_argument("--watch-history", type=int, default=10000,
                    help="events kept for watch resumption")
    ap.add_argument("--watch-bookmark-seconds", type=float, default=60,
                    help="how often a watch with allowWatchBookmarks=true gets a BOOKMARK "
                    "(the real server: about a minute)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return ap.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if args.state_dir:
        os.makedirs(args.state_dir, exist_ok=True)
    openapi.spec()
    srv = Server((host, int(port)), Handler, args)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    actual = srv.server_address[1]
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % actual)
        os.replace(tmp, args.ready_file)
    # kubectl reads /openapi/v3 on every apply: build it now rather than on its first request
    threading.Thread(target=Handler.build_v3_index, args=(srv,), daemon=True).start()
    sys.stderr.write("apiserver: listening on https://%s:%d\n" % (host, actual))
    sys.stderr.flush()
    while not stop.wait(0.5):
        pass
    with srv.store.cond:
        srv.store.closing = True
        srv.store.cond.notify_all()
    srv.shutdown()
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
