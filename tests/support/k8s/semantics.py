"""What the real API server does to the objects we touch beyond the schema: defaults, names,
allocation (Service cluster IPs and node ports) and the semantic validation that answers
422 Invalid, with field paths and messages shaped like the real server's.

Covered: object metadata (names per resource, labels, annotations) for every resource; Services
(in full: type, ports, targetPort, nodePort, clusterIP range/immutability/allocation, selector,
externalName); Pods and pod templates (containers, ports, probes, volumes and mounts, resources);
Deployments/ReplicaSets/StatefulSets/DaemonSets (selector vs template labels, immutable
selector); PersistentVolumeClaims; ConfigMaps/Secrets (keys, immutable); RBAC roles and bindings
(verbs, roleRef immutable, subjects); Namespaces; Leases (coordination.k8s.io: duration,
transitions, strategy and preferredHolder).
"""
import ipaddress
import json
import random
import re

import selection as sel

# ---- field errors ------------------------------------------------------------------------------


def _fmt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(v, sort_keys=True)


class FieldErrors(list):
    """A list of causes: {reason, field, message}; message excludes the field."""

    def add(self, reason, field, message):
        self.append({"reason": reason, "field": field, "message": message})

    def invalid(self, field, value, detail):
        self.add("FieldValueInvalid", field, "Invalid value: %s: %s" % (_fmt(value), detail))

    def required(self, field, detail=""):
        self.add("FieldValueRequired", field, "Required value" + (": " + detail if detail else ""))

    def duplicate(self, field, value):
        self.add("FieldValueDuplicate", field, "Duplicate value: %s" % _fmt(value))

    def not_supported(self, field, value, supported):
        self.add("FieldValueNotSupported", field, "Unsupported value: %s: supported values: %s"
                 % (_fmt(value), ", ".join(json.dumps(s) for s in supported)))

    def forbidden(self, field, detail):
        self.add("FieldValueForbidden", field, "Forbidden: " + detail)

    def not_found(self, field, value):
        self.add("FieldValueNotFound", field, "Not found: %s" % _fmt(value))

    def too_long(self, field, limit):
        self.add("FieldValueTooLong", field, "Too long: may not be more than %d bytes" % limit)

    def immutable(self, field, value):
        self.invalid(field, value, "field is immutable")

    def text(self):
        parts = ["%s: %s" % (c["field"], c["message"]) for c in self]
        return parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"


# ---- names -------------------------------------------------------------------------------------

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
C_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def dns1123_label(v):
    out = []
    if len(v) > 63:
        out.append("must be no more than 63 characters")
    if not DNS1123_LABEL.match(v):
        out.append("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                   "or '-', and must start and end with an alphanumeric character (e.g. "
                   "'my-name',  or '123-abc', regex used for validation is "
                   "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    return out


def dns1123_subdomain(v):
    out = []
    if len(v) > 253:
        out.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(v):
        out.append("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                   "characters, '-' or '.', and must start and end with an alphanumeric character "
                   "(e.g. 'example.com', regex used for validation is "
                   "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    return out


def dns1035_label(v):
    out = []
    if len(v) > 63:
        out.append("must be no more than 63 characters")
    if not DNS1035_LABEL.match(v):
        out.append("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                   "start with an alphabetic character, and end with an alphanumeric character "
                   "(e.g. 'my-name',  or 'abc-123', regex used for validation is "
                   "'[a-z]([-a-z0-9]*[a-z0-9])?')")
    return out


def path_segment(v):
    if v in (".", ".."):
        return ["may not be '%s'" % v]
    for c in ("/", "%"):
        if c in v:
            return ["may not contain '%s'" % c]
    return []


def iana_svc_name(v):
    out = []
    if len(v) > 15:
        out.append("must be no more than 15 characters")
    if not IANA_SVC_NAME.match(v):
        out.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in v:
        out.append("must not contain consecutive hyphens")
    if not re.search("[a-z]", v):
        out.append("must contain at least one letter (a-z)")
    return out


RBAC = "rbac.authorization.k8s.io"
COORDINATION = "coordination.k8s.io"
LEASE_STRATEGIES = ["OldestEmulationVersion"]  # coordination.CoordinatedLeaseStrategy


def name_rule(group, plural):
    if group == "" and plural == "namespaces":
        return dns1123_label
    if group == "" and plural == "services":
        return dns1035_label
    if group == RBAC:
        return path_segment
    return dns1123_subdomain


# ---- metadata ----------------------------------------------------------------------------------

def validate_labels(labels, field, errs):
    if labels is None:
        return
    for k, v in labels.items():
        if not sel.valid_label_key(k):
            errs.invalid(field, k, "name part must consist of alphanumeric characters, '-', '_' "
                         "or '.', and must start and end with an alphanumeric character (e.g. "
                         "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                         "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
        if not isinstance(v, str) or not sel.valid_label_value(v):
            errs.invalid(field, v, "a valid label must be an empty string or consist of "
                         "alphanumeric characters, '-', '_' or '.', and must start and end with "
                         "an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                         "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?"
                         "[A-Za-z0-9])?')")


def validate_meta(meta, group, plural, errs, field="metadata"):
    name = meta.get("name")
    if not name:
        errs.required(field + ".name", "name or generateName is required")
    else:
        for m in name_rule(group, plural)(name):
            errs.invalid(field + ".name", name, m)
    validate_labels(meta.get("labels"), field + ".labels", errs)
    ann = meta.get("annotations") or {}
    total = 0
    for k, v in ann.items():
        if not sel.valid_label_key(k.lower()):
            errs.invalid(field + ".annotations", k, "name part must consist of alphanumeric "
                         "characters, '-', '_' or '.', and must start and end with an "
                         "alphanumeric character")
        total += len(k) + len(v or "")
    if total > 256 * 1024:
        errs.too_long(field + ".annotations", 256 * 1024)


# ---- quantities --------------------------------------------------------------------------------

_SUFFIX = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
           "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "P": 1e15, "E": 1e18}


def quantity(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    m = re.match(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$",
                 str(v))
    if not m:
        return None
    num, suf = float(m.group(1)), m.group(2) or ""
    if suf[:1] in ("e", "E"):
        return num * 10 ** int(suf[1:])
    return num * _SUFFIX[suf]


# ---- pods and templates ------------------------------------------------------------------------

PROTOCOLS = ["SCTP", "TCP", "UDP"]


def _port_number(v, field, errs, allow_zero=False):
    if not isinstance(v, int) or isinstance(v, bool):
        return
    if not (0 if allow_zero else 1) <= v <= 65535:
        errs.invalid(field, v, "must be between %d and 65535, inclusive" % (0 if allow_zero else 1))


def _int_or_name_port(v, field, errs):
    if isinstance(v, str):
        if v.isdigit():
            errs.invalid(field, v, "must contain at least one letter (a-z)")
            return
        for m in iana_svc_name(v):
            errs.invalid(field, v, m)
    elif v is not None:
        _port_number(v, field, errs)


def default_pod_spec(spec):
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = c.get("image") or ""
        if "imagePullPolicy" not in c and image:
            tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
            c["imagePullPolicy"] = ("IfNotPresent" if tagged and not image.endswith(":latest")
                                    else "Always")
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            pr = c.get(probe)
            if isinstance(pr, dict):
                pr.setdefault("timeoutSeconds", 1)
                pr.setdefault("periodSeconds", 10)
                pr.setdefault("successThreshold", 1)
                pr.setdefault("failureThreshold", 3)
                if isinstance(pr.get("httpGet"), dict):
                    pr["httpGet"].setdefault("path", "/")
                    pr["httpGet"].setdefault("scheme", "HTTP")


def validate_pod_spec(spec, field, errs, restart_policies=("Always", "OnFailure", "Never")):
    containers = spec.get("containers") or []
    if not containers:
        errs.required(field + ".containers")
    volumes = set()
    for i, v in enumerate(spec.get("volumes") or []):
        vf = "%s.volumes[%d]" % (field, i)
        n = v.get("name") or ""
        if not n:
            errs.required(vf + ".name")
        else:
            for m in dns1123_label(n):
                errs.invalid(vf + ".name", n, m)
            if n in volumes:
                errs.duplicate(vf + ".name", n)
            volumes.add(n)
    names = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            cf = "%s.%s[%d]" % (field, kind, i)
            n = c.get("name") or ""
            if not n:
                errs.required(cf + ".name")
            else:
                for m in dns1123_label(n):
                    errs.invalid(cf + ".name", n, m)
                if n in names:
                    errs.duplicate(cf + ".name", n)
                names.add(n)
            if not c.get("image"):
                errs.required(cf + ".image")
            port_names = set()
            for j, p in enumerate(c.get("ports") or []):
                pf = "%s.ports[%d]" % (cf, j)
                if p.get("containerPort") is None:
                    errs.required(pf + ".containerPort")
                else:
                    _port_number(p["containerPort"], pf + ".containerPort", errs)
                if p.get("hostPort") is not None:
                    _port_number(p["hostPort"], pf + ".hostPort", errs, allow_zero=True)
                if p.get("protocol") not in (None, *PROTOCOLS):
                    errs.not_supported(pf + ".protocol", p["protocol"], PROTOCOLS)
                pn = p.get("name")
                if pn:
                    for m in iana_svc_name(pn):
                        errs.invalid(pf + ".name", pn, m)
                    if pn in port_names:
                        errs.duplicate(pf + ".name", pn)
                    port_names.add(pn)
            for j, e in enumerate(c.get("env") or []):
                if not e.get("name"):
                    errs.required("%s.env[%d].name" % (cf, j))
            for j, m in enumerate(c.get("volumeMounts") or []):
                mf = "%s.volumeMounts[%d]" % (cf, j)
                if not m.get("name"):
                    errs.required(mf + ".name")
                elif m["name"] not in volumes:
                    errs.not_found(mf + ".name", m["name"])
                if not m.get("mountPath"):
                    errs.required(mf + ".mountPath")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                pr = c.get(probe)
                if not isinstance(pr, dict):
                    continue
                handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if pr.get(h)]
                if len(handlers) == 0:
                    errs.required("%s.%s" % (cf, probe), "must specify a handler type")
                elif len(handlers) > 1:
                    errs.forbidden("%s.%s" % (cf, probe), "may not specify more than 1 handler "
                                   "type")
                for h in ("httpGet", "tcpSocket"):
                    if isinstance(pr.get(h), dict):
                        _int_or_name_port(pr[h].get("port"), "%s.%s.%s.port" % (cf, probe, h),
                                          errs)
                        if pr[h].get("port") is None:
                            errs.required("%s.%s.%s.port" % (cf, probe, h))
                if isinstance(pr.get("exec"), dict) and not pr["exec"].get("command"):
                    errs.required("%s.%s.exec.command" % (cf, probe))
            res = c.get("resources") or {}
            for rname, lim in (res.get("limits") or {}).items():
                req = (res.get("requests") or {}).get(rname)
                if req is not None and (quantity(req) or 0) > (quantity(lim) or 0):
                    errs.invalid("%s.resources.requests[%s]" % (cf, rname), req,
                                 "must be less than or equal to %s limit of %s" % (rname, lim))
    rp = spec.get("restartPolicy")
    if rp is not None and rp not in restart_policies:
        errs.not_supported(field + ".restartPolicy", rp, list(restart_policies))
    sa = spec.get("serviceAccountName")
    if sa:
        for m in dns1123_subdomain(sa):
            errs.invalid(field + ".serviceAccountName", sa, m)


def _validate_ip(v, field, errs):
    try:
        ipaddress.ip_address(v)
    except ValueError:
        errs.invalid(field, v, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")


def validate_pod_status(status, field, errs):
    for k in ("podIP", "hostIP"):
        if status.get(k):
            _validate_ip(status[k], field + "." + k, errs)
    ips = [x.get("ip") for x in status.get("podIPs") or []]
    for i, ip in enumerate(ips):
        _validate_ip(ip, "%s.podIPs[%d].ip" % (field, i), errs)
    if ips and status.get("podIP") and ips[0] != status.get("podIP"):
        errs.invalid(field + ".podIPs[0].ip", ips[0], "must match status.podIP")


def _strip_mutable_pod_fields(spec):
    s = json.loads(json.dumps(spec))
    for kind in ("containers", "initContainers"):
        for c in s.get(kind) or []:
            c.pop("image", None)
    for k in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        s.pop(k, None)
    return s


# ---- Services ----------------------------------------------------------------------------------

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def _needs_cluster_ip(spec):
    return spec.get("type", "ClusterIP") != "ExternalName"


def _needs_node_ports(spec):
    return spec.get("type") in ("NodePort", "LoadBalancer")


class Semantics:
    """Defaults, allocation and validation, given the server's view of stored objects."""

    def __init__(self, service_cidr="10.96.0.0/12", node_ports=(30000, 32767), rng=None):
        self.cidr = ipaddress.ip_network(service_cidr)
        self.node_ports = node_ports
        self.rng = rng or random.Random()

    def kubernetes_service_ip(self):
        return str(self.cidr.network_address + 1)

    # -- allocation (views over the stored Services, so nothing can leak) --

    def _used(self, services, skip_uid):
        ips, ports = set(), set()
        for s in services:
            if s["metadata"].get("uid") == skip_uid:
                continue
            spec = s.get("spec") or {}
            for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
                if ip and ip != "None":
                    ips.add(ip)
            for p in spec.get("ports") or []:
                if p.get("nodePort"):
                    ports.add(p["nodePort"])
        return ips, ports

    def _alloc_ip(self, used):
        size = self.cidr.num_addresses
        for _ in range(1000):
            ip = str(self.cidr.network_address + self.rng.randrange(2, size - 1))
            if ip not in used:
                return ip
        raise RuntimeError("service IP range full")

    def _alloc_node_port(self, used):
        lo, hi = self.node_ports
        for _ in range(1000):
            p = self.rng.randint(lo, hi)
            if p not in used:
                return p
        raise RuntimeError("node port range full")

    def prepare_service(self, svc, old, services, errs):
        """Defaults, allocation and validation of a Service (old = stored version on update)."""
        spec = svc.setdefault("spec", {})
        ospec = (old or {}).get("spec") or {}
        typ = spec.setdefault("type", "ClusterIP")
        if typ not in SERVICE_TYPES:
            errs.not_supported("spec.type", typ, SERVICE_TYPES)
            return
        spec.setdefault("sessionAffinity", "None")
        if spec["sessionAffinity"] not in ("ClientIP", "None"):
            errs.not_supported("spec.sessionAffinity", spec["sessionAffinity"],
                               ["ClientIP", "None"])
        ports = spec.get("ports") or []
        if typ == "ExternalName":
            en = spec.get("externalName")
            if not en:
                errs.required("spec.externalName")
            else:
                for m in dns1123_subdomain(en.rstrip(".")):
                    errs.invalid("spec.externalName", en, m)
            if spec.get("clusterIP") not in (None, ""):
                errs.forbidden("spec.clusterIP", "may not be set for ExternalName services")
        elif not ports and spec.get("clusterIP") != "None":
            errs.required("spec.ports")
        names, pairs = set(), set()
        for i, p in enumerate(ports):
            pf = "spec.ports[%d]" % i
            p.setdefault("protocol", "TCP")
            if p["protocol"] not in PROTOCOLS:
                errs.not_supported(pf + ".protocol", p["protocol"], PROTOCOLS)
            n = p.get("name")
            if len(ports) > 1 and not n:
                errs.required(pf + ".name")
            if n:
                for m in dns1123_label(n):
                    errs.invalid(pf + ".name", n, m)
                if n in names:
                    errs.duplicate(pf + ".name", n)
                names.add(n)
            port = p.get("port")
            if port is None:
                errs.required(pf + ".port")
            else:
                _port_number(port, pf + ".port", errs)
            if (port, p["protocol"]) in pairs:
                errs.duplicate(pf, {"port": port, "protocol": p["protocol"]})
            pairs.add((port, p["protocol"]))
            tp = p.get("targetPort")
            if tp in (None, 0, "") and port is not None:
                p["targetPort"] = port
            else:
                _int_or_name_port(tp, pf + ".targetPort", errs)
        selector = spec.get("selector")
        validate_labels(selector, "spec.selector", errs)
        if errs:
            return
        # cluster IP: immutable once set; an update that omits it keeps the allocated one.
        if _needs_cluster_ip(spec):
            if old is not None and _needs_cluster_ip(ospec) and ospec.get("clusterIP"):
                if spec.get("clusterIP") in (None, ""):
                    spec["clusterIP"] = ospec["clusterIP"]
                if not spec.get("clusterIPs"):
                    spec["clusterIPs"] = list(ospec.get("clusterIPs") or [ospec["clusterIP"]])
                if spec["clusterIP"] != ospec["clusterIP"]:
                    errs.immutable("spec.clusterIP", spec["clusterIP"])
                    return
                if spec["clusterIPs"] != (ospec.get("clusterIPs") or [ospec["clusterIP"]]):
                    errs.immutable("spec.clusterIPs", spec["clusterIPs"])
                    return
            ips, used_ports = self._used(services, (old or {}).get("metadata", {}).get("uid"))
            cip = spec.get("clusterIP") or ""
            cips = spec.get("clusterIPs")
            if cips and cip and cips[0] != cip:
                errs.invalid("spec.clusterIPs", cips, "element [0] must match clusterIP")
            elif cips and not cip:
                cip = spec["clusterIP"] = cips[0]
            if cip == "None":
                if typ != "ClusterIP":
                    errs.invalid("spec.clusterIP", cip, "may be 'None' only for ClusterIP "
                                 "services")
            elif cip == "":
                spec["clusterIP"] = self._alloc_ip(ips)
            elif old is None or cip != ospec.get("clusterIP"):
                try:
                    addr = ipaddress.ip_address(cip)
                except ValueError:
                    errs.invalid("spec.clusterIPs[0]", cip, "must be a valid IP address, (e.g. "
                                 "10.9.8.7 or 2001:db8::ffff)")
                    return
                if addr not in self.cidr or addr in (self.cidr.network_address,
                                                     self.cidr.broadcast_address):
                    errs.invalid("spec.clusterIPs", [cip], "failed to allocate IP %s: provided "
                                 "IP is not in the valid range. The range of valid IPs is %s"
                                 % (cip, self.cidr))
                elif cip in ips:
                    errs.invalid("spec.clusterIPs", [cip], "failed to allocate IP %s: provided "
                                 "IP is already allocated" % cip)
            spec["clusterIPs"] = [spec["clusterIP"]]
            spec.setdefault("ipFamilies", ["IPv4"] if spec["clusterIP"] == "None" or
                            ipaddress.ip_address(spec["clusterIP"]).version == 4 else ["IPv6"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        else:
            for k in ("clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
                spec.pop(k, None)
            ips, used_ports = set(), self._used(services, (old or {}).get("metadata", {})
                                                .get("uid"))[1]
        # node ports
        lo, hi = self.node_ports
        oports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                  for p in ospec.get("ports") or []}
        seen = set()
        for i, p in enumerate(ports):
            pf = "spec.ports[%d].nodePort" % i
            np = p.get("nodePort")
            if not _needs_node_ports(spec):
                if np and old is not None and _needs_node_ports(ospec):
                    p.pop("nodePort")  # wiped when the type no longer needs one
                elif np:
                    errs.forbidden(pf, "may not be used when `type` is '%s'" % typ)
                continue
            if not np and old is not None:
                np = oports.get((p.get("port"), p["protocol"]))
                if np:
                    p["nodePort"] = np
            if np:
                if np == oports.get((p.get("port"), p["protocol"])):
                    pass
                elif not lo <= np <= hi:
                    errs.invalid(pf, np, "provided port is not in the valid range. The range of "
                                 "valid ports is %d-%d" % (lo, hi))
                elif np in used_ports or np in seen:
                    errs.invalid(pf, np, "provided port is already allocated")
            else:
                np = p["nodePort"] = self._alloc_node_port(used_ports | seen)
            seen.add(np)
        if _needs_node_ports(spec):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        else:
            spec.pop("externalTrafficPolicy", None)
        svc.setdefault("status", {}).setdefault("loadBalancer", {})

    # -- per resource --

    def prepare(self, group, plural, obj, old, store_list, errs):
        """Defaults + validation for create (old None) or update. store_list(group, plural)
        returns the stored objects of a resource (for allocation)."""
        kind = obj.get("kind")
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else None
        if group == "" and plural == "services":
            self.prepare_service(obj, old, store_list("", "services"), errs)
        elif group == "" and plural == "pods":
            if spec is not None:
                default_pod_spec(spec)
                validate_pod_spec(spec, "spec", errs)
            validate_pod_status(obj.get("status") or {}, "status", errs)
            if old is not None and spec is not None and (
                    _strip_mutable_pod_fields(spec) !=
                    _strip_mutable_pod_fields(old.get("spec") or {})):
                errs.forbidden("spec", "pod updates may not change fields other than "
                               "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                               "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
                               "to existing tolerations),`spec.terminationGracePeriodSeconds` "
                               "(allow it to be set to 1 if it was previously negative)")
        elif group == "apps" and kind in ("Deployment", "ReplicaSet", "StatefulSet",
                                          "DaemonSet") and spec is not None:
            self._workload(kind, obj, old, spec, errs)
        elif group == "" and plural == "persistentvolumeclaims" and spec is not None:
            if not spec.get("accessModes"):
                errs.required("spec.accessModes", "at least 1 access mode is required")
            modes = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
            for i, m in enumerate(spec.get("accessModes") or []):
                if m not in modes:
                    errs.not_supported("spec.accessModes[%d]" % i, m, modes)
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            if storage is None:
                errs.required("spec.resources[storage]")
            elif (quantity(storage) or 0) <= 0:
                errs.invalid("spec.resources[storage]", storage, "must be greater than zero")
            spec.setdefault("volumeMode", "Filesystem")
            if old is None:  # defaulted as the real server does (the status is its own)
                st = obj.setdefault("status", {})
                if isinstance(st, dict):
                    st.setdefault("phase", "Pending")
            if old is not None:
                a, b = dict(spec), dict(old.get("spec") or {})
                for d in (a, b):
                    d.pop("resources", None)
                    d.pop("volumeAttributesClassName", None)
                    if not d.get("volumeName"):
                        d.pop("volumeName", None)
                if a != b:
                    errs.forbidden("spec", "spec is immutable after creation except "
                                   "resources.requests and volumeAttributesClassName for bound "
                                   "claims")
        elif group == "" and plural == "persistentvolumes" and old is None:
            st = obj.setdefault("status", {})
            if isinstance(st, dict):
                st.setdefault("phase", "Pending")
        elif group == "" and plural in ("configmaps", "secrets"):
            self._config(plural, obj, old, errs)
        elif group == RBAC:
            self._rbac(kind, obj, old, errs)
        elif group == COORDINATION and plural == "leases" and spec is not None:
            self._lease(spec, errs)
        elif group == "" and plural == "namespaces":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = \
                obj["metadata"].get("name", "")

    def _workload(self, kind, obj, old, spec, errs):
        if kind != "DaemonSet":
            spec.setdefault("replicas", 1)
            if isinstance(spec["replicas"], int) and spec["replicas"] < 0:
                errs.invalid("spec.replicas", spec["replicas"], "must be greater than or equal "
                             "to 0")
        spec.setdefault("revisionHistoryLimit", 10)
        if kind == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            st = spec.setdefault("strategy", {})
            st.setdefault("type", "RollingUpdate")
            if st["type"] == "RollingUpdate":
                ru = st.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
            elif st["type"] == "Recreate":
                if st.get("rollingUpdate"):
                    errs.forbidden("spec.strategy.rollingUpdate", "may not be specified when "
                                   "strategy `type` is 'Recreate'")
            else:
                errs.not_supported("spec.strategy.type", st["type"], ["Recreate",
                                                                      "RollingUpdate"])
        selector = spec.get("selector")
        tmpl = spec.get("template") or {}
        tlabels = (tmpl.get("metadata") or {}).get("labels") or {}
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            errs.required("spec.selector")
        else:
            try:
                ok = sel.selector_from_label_selector(selector).matches(tlabels)
            except KeyError:
                ok = False
                errs.invalid("spec.selector", selector, "invalid label selector")
            if not ok:
                errs.invalid("spec.template.metadata.labels", tlabels,
                             "`selector` does not match template `labels`")
            validate_labels(selector.get("matchLabels"), "spec.selector.matchLabels", errs)
        if old is not None and selector != (old.get("spec") or {}).get("selector"):
            errs.immutable("spec.selector", selector)
        validate_labels(tlabels, "spec.template.metadata.labels", errs)
        pspec = tmpl.get("spec")
        if pspec is None:
            errs.required("spec.template.spec.containers")
        else:
            default_pod_spec(pspec)
            validate_pod_spec(pspec, "spec.template.spec", errs, restart_policies=("Always",))

    def _config(self, plural, obj, old, errs):
        seen = set()
        for field in ("data", "binaryData", "stringData"):
            for k in obj.get(field) or {}:
                if len(k) > 253 or not CONFIG_KEY.match(k):
                    errs.invalid("%s[%s]" % (field, k), k, "a valid config key must consist of "
                                 "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
                                 "'KEY_NAME',  or 'key-name', regex used for validation is "
                                 "'[-._a-zA-Z0-9]+')")
                if k in seen and field != "stringData":
                    errs.invalid("data", k, "duplicate of key present in binaryData")
                seen.add(k)
        if plural == "secrets":
            # stringData is write-only: merged into data (base64) and dropped.
            import base64
            sd = obj.pop("stringData", None) or {}
            if sd:
                data = obj.setdefault("data", {})
                for k, v in sd.items():
                    data[k] = base64.b64encode(v.encode()).decode()
            obj.setdefault("type", "Opaque")
            if old is not None and obj["type"] != old.get("type", "Opaque"):
                errs.immutable("type", obj["type"])
        if old is not None and old.get("immutable"):
            for f in ("data", "binaryData"):
                if (obj.get(f) or {}) != (old.get(f) or {}):
                    errs.forbidden(f, "field is immutable when `immutable` is set")
            if not obj.get("immutable"):
                errs.forbidden("immutable", "field is immutable when `immutable` is set")

    def _lease(self, spec, errs):
        """The real server's ValidateLeaseSpec (pkg/apis/coordination/validation)."""
        d = spec.get("leaseDurationSeconds")
        if isinstance(d, int) and d <= 0:
            errs.invalid("spec.leaseDurationSeconds", d, "must be greater than 0")
        t = spec.get("leaseTransitions")
        if isinstance(t, int) and t < 0:
            errs.invalid("spec.leaseTransitions", t, "must be greater than or equal to 0")
        strategy = spec.get("strategy")
        if strategy is not None and strategy not in LEASE_STRATEGIES:
            errs.not_supported("spec.strategy", strategy, LEASE_STRATEGIES)
        if spec.get("preferredHolder") and not strategy:
            errs.forbidden("spec.preferredHolder", "may only be specified if `strategy` is "
                           "defined")

    def _rbac(self, kind, obj, old, errs):
        if kind in ("Role", "ClusterRole"):
            for i, r in enumerate(obj.get("rules") or []):
                rf = "rules[%d]" % i
                if not r.get("verbs"):
                    errs.required(rf + ".verbs", "verbs must contain at least one value")
                if r.get("nonResourceURLs"):
                    if kind == "Role":
                        errs.invalid(rf + ".nonResourceURLs", r["nonResourceURLs"],
                                     "namespaced rules cannot apply to non-resource URLs")
                    if r.get("resources") or r.get("apiGroups"):
                        errs.invalid(rf + ".nonResourceURLs", r["nonResourceURLs"],
                                     "rules cannot apply to both regular resources and "
                                     "non-resource URLs")
                else:
                    if not r.get("resources"):
                        errs.required(rf + ".resources", "resource rules must supply at least "
                                      "one resource")
                    if r.get("apiGroups") is None or r.get("apiGroups") == []:
                        errs.required(rf + ".apiGroups", "resource rules must supply at least "
                                      "one api group")
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            rr = obj.get("roleRef") or {}
            kinds = ["Role", "ClusterRole"] if kind == "RoleBinding" else ["ClusterRole"]
            if rr.get("apiGroup") != RBAC:
                errs.not_supported("roleRef.apiGroup", rr.get("apiGroup"), [RBAC])
            if rr.get("kind") not in kinds:
                errs.not_supported("roleRef.kind", rr.get("kind"), kinds)
            if not rr.get("name"):
                errs.required("roleRef.name")
            if old is not None and rr != old.get("roleRef"):
                errs.invalid("roleRef", rr, "cannot change roleRef")
            for i, s in enumerate(obj.get("subjects") or []):
                sf = "subjects[%d]" % i
                sk = s.get("kind")
                if sk not in ("Group", "ServiceAccount", "User"):
                    errs.not_supported(sf + ".kind", sk, ["Group", "ServiceAccount", "User"])
                    continue
                if not s.get("name"):
                    errs.required(sf + ".name")
                if sk == "ServiceAccount":
                    if s.get("apiGroup"):
                        errs.not_supported(sf + ".apiGroup", s["apiGroup"], [""])
                    if s.get("name"):
                        for m in dns1123_subdomain(s["name"]):
                            errs.invalid(sf + ".name", s["name"], m)
                    if kind == "ClusterRoleBinding" and not s.get("namespace"):
                        errs.required(sf + ".namespace")
                else:
                    s.setdefault("apiGroup", RBAC)
                    if s["apiGroup"] != RBAC:
                        errs.not_supported(sf + ".apiGroup", s["apiGroup"], [RBAC])
