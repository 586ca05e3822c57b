"""Server-side printing: the meta.k8s.io Table the real API server answers when a client asks
for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (what `kubectl get` sends), with the
columns and cells of upstream's printers (pkg/printers/internalversion, the handler of each kind;
kube-aggregator's for APIService) and its default table for the kinds without one (NAME,
CREATED AT: Roles, ClusterRoles, LimitRanges, CustomResourceDefinitions, ...).

    table(group, version, kind, objs, list_meta=None, include="Metadata", headers=True,
          table_version="v1", now=None) -> the Table object

Cells are computed from the stored object (which carries the server's defaults), always with the
wide (priority 1) columns: the real server generates them too and kubectl hides them unless
`-o wide`. Written from upstream's behaviour, not a copy of its code.
"""
import json
import time

import godecode
import openapi

META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _doc(defname, field):
    """The description the spec has for a field (what SwaggerDoc() gives upstream)."""
    d = openapi.definitions().get(defname) or {}
    return ((d.get("properties") or {}).get(field) or {}).get("description", "")


def col(name, typ="string", desc="", priority=0, fmt=""):
    return {"name": name, "type": typ, "format": fmt, "description": desc, "priority": priority}


def name_col():
    return col("Name", fmt="name", desc=_doc(META, "name"))


def age_col():
    return col("Age", desc=_doc(META, "creationTimestamp"))


def containers_cols():
    return [col("Containers", priority=1, desc="Names of each container in the template."),
            col("Images", priority=1, desc="Images referenced by each container in the template.")]


# ---- formatting as upstream does ---------------------------------------------------------------

def human_duration(seconds):
    """apimachinery's duration.HumanDuration for a duration in seconds (float)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    minutes = s // 60
    if minutes < 10:
        return "%dm" % minutes if s % 60 == 0 else "%dm%ds" % (minutes, s % 60)
    if minutes < 180:
        return "%dm" % minutes
    hours = s // 3600
    if hours < 8:
        return "%dh" % hours if minutes % 60 == 0 else "%dh%dm" % (hours, minutes % 60)
    if hours < 48:
        return "%dh" % hours
    if hours < 24 * 8:
        return "%dd" % (hours // 24) if hours % 24 == 0 else "%dd%dh" % (hours // 24, hours % 24)
    if hours < 24 * 365 * 2:
        return "%dd" % (hours // 24)
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return "%dy" % (hours // 24 // 365) if dy == 0 else "%dy%dd" % (hours // 24 // 365, dy)
    return "%dy" % (hours // 24 // 365)


def _epoch(ts, layout=godecode.RFC3339):
    """Seconds since the epoch of a stored time, or None (unset, zero or unparsable)."""
    if not isinstance(ts, str) or not ts:
        return None
    parts, e = godecode.parse_time(ts, layout)
    if e is not None:
        return None
    import calendar
    y, mo, d, h, mi, s, ns, off = parts
    if (y, mo, d) == (1, 1, 1) and (h, mi, s, ns, off) == (0, 0, 0, 0, 0):
        return None
    try:
        return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - off + ns / 1e9
    except (ValueError, OverflowError):
        return None


class Ctx:
    """What a printer needs besides the object: the time "now" for ages."""

    def __init__(self, now=None):
        self.now = time.time() if now is None else now

    def since(self, ts, layout=godecode.RFC3339):
        t = _epoch(ts, layout)
        return "<unknown>" if t is None else human_duration(self.now - t)

    def age(self, o):
        return self.since(_meta(o).get("creationTimestamp"))


def _meta(o):
    return o.get("metadata") or {}


def _get(o, *path, default=None):
    for p in path:
        if not isinstance(o, dict):
            return default
        o = o.get(p)
    return default if o is None else o


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def format_labels(m):
    """labels.FormatLabels: k=v sorted by key, comma separated; <none> when empty."""
    s = ",".join("%s=%s" % (k, (m or {})[k]) for k in sorted(m or {}))
    return s or "<none>"


def selector_string(sel):
    """labels.Selector.String() of a metav1.LabelSelector (None: nothing selected, "")."""
    if not isinstance(sel, dict):
        return ""
    reqs = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append((k, "%s=%s" % (k, v)))
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key", ""), e.get("operator", ""), sorted(e.get("values") or [])
        if op == "In":
            reqs.append((k, "%s in (%s)" % (k, ",".join(vals))))
        elif op == "NotIn":
            reqs.append((k, "%s notin (%s)" % (k, ",".join(vals))))
        elif op == "Exists":
            reqs.append((k, k))
        elif op == "DoesNotExist":
            reqs.append((k, "!" + k))
        else:
            return None
    return ",".join(s for _, s in sorted(reqs, key=lambda r: r[0]))


def format_label_selector(sel):
    """metav1.FormatLabelSelector: <none> for no or an empty selector, <error> if invalid."""
    s = selector_string(sel)
    if s is None:
        return "<error>"
    return s or "<none>"


def layout_containers(containers):
    cs = containers or []
    return (",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs))


def int_or_string(v):
    return str(v) if v is not None else ""


def quantity_string(v):
    return "0" if v is None else (v if isinstance(v, str) else godecode.go_format_v(v))


def _or(v, dflt):
    """v unless unset (None): an optional field's value or what upstream prints for nil."""
    return dflt if v is None else v


def bool_ptr(v):
    return "<unset>" if v is None else ("True" if v else "False")


def list_with_more(items, limit=3, empty="<unset>"):
    shown = items[:limit]
    s = ",".join(shown)
    if len(items) > limit:
        return "%s + %d more..." % (s, len(items) - limit)
    return s or empty


def access_modes(modes):
    m = set(modes or [])
    return ",".join(s for full, s in (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"),
                                      ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP"))
                    if full in m)


def lb_ingress(status):
    """The load balancer ingress IPs or hostnames, sorted and unique (never clipped: the server
    prints wide)."""
    out = set()
    for i in _get(status, "loadBalancer", "ingress", default=[]):
        if i.get("ip"):
            out.add(i["ip"])
        elif i.get("hostname"):
            out.add(i["hostname"])
    return ",".join(sorted(out))


def _cond(conds, typ):
    for c in conds or []:
        if c.get("type") == typ:
            return c
    return None


# ---- the printers, kind by kind -----------------------------------------------------------------

def _pod_cols():
    return [name_col(),
            col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
            col("Status", desc="The aggregate status of the containers in this pod."),
            col("Restarts", desc="The number of times the containers in this pod have been "
                "restarted and when the last container in this pod has restarted."),
            age_col(),
            col("IP", priority=1, desc=_doc("io.k8s.api.core.v1.PodStatus", "podIP")),
            col("Node", priority=1, desc=_doc("io.k8s.api.core.v1.PodSpec", "nodeName")),
            col("Nominated Node", priority=1,
                desc=_doc("io.k8s.api.core.v1.PodStatus", "nominatedNodeName")),
            col("Readiness Gates", priority=1,
                desc=_doc("io.k8s.api.core.v1.PodSpec", "readinessGates"))]


def _restartable(c):
    return isinstance(c, dict) and c.get("restartPolicy") == "Always"


def _pod_row(o, ctx):
    spec, st = o.get("spec") or {}, o.get("status") or {}
    restarts = sidecar_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart = sidecar_last = None
    phase = st.get("phase", "")
    reason = st.get("reason") or phase
    for c in st.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    conditions = None
    if phase == "Succeeded":
        conditions = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                       "message": "The pod has completed successfully."}]
    elif phase == "Failed":
        conditions = [{"type": "Completed", "status": "True", "reason": "Failed",
                       "message": "The pod failed."}]
    inits = {c.get("name"): c for c in spec.get("initContainers") or []}
    total += sum(1 for c in inits.values() if _restartable(c))

    def later(a, ts):
        t = _epoch(ts)
        return t if t is not None and (a is None or t > a) else a

    initializing = False
    n_init = len(spec.get("initContainers") or [])
    for i, cs in enumerate(st.get("initContainerStatuses") or []):
        restarts += _int(cs.get("restartCount"))
        finished = _get(cs, "lastState", "terminated", "finishedAt")
        last_restart = later(last_restart, finished)
        side = _restartable(inits.get(cs.get("name")))
        if side:
            sidecar_restarts += _int(cs.get("restartCount"))
            sidecar_last = later(sidecar_last, finished)
        term = _get(cs, "state", "terminated")
        waiting = _get(cs, "state", "waiting")
        if term is not None and _int(term.get("exitCode")) == 0:
            continue
        if side and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if not term.get("reason"):
                if _int(term.get("signal")):
                    reason = "Init:Signal:%d" % term["signal"]
                else:
                    reason = "Init:ExitCode:%d" % _int(term.get("exitCode"))
            else:
                reason = "Init:" + term["reason"]
        elif waiting is not None and waiting.get("reason") and \
                waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = "Init:%d/%d" % (i, n_init)
        initializing = True
        break
    init_done = (_cond(st.get("conditions"), "Initialized") or {}).get("status") == "True"
    if not initializing or init_done:
        restarts, last_restart = sidecar_restarts, sidecar_last
        running = False
        for cs in reversed(st.get("containerStatuses") or []):
            restarts += _int(cs.get("restartCount"))
            last_restart = later(last_restart, _get(cs, "lastState", "terminated", "finishedAt"))
            waiting = _get(cs, "state", "waiting")
            term = _get(cs, "state", "terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                if _int(term.get("signal")):
                    reason = "Signal:%d" % term["signal"]
                else:
                    reason = "ExitCode:%d" % _int(term.get("exitCode"))
            elif cs.get("ready") and _get(cs, "state", "running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            ready_cond = _cond(st.get("conditions"), "Ready")
            reason = "Running" if (ready_cond or {}).get("status") == "True" else "NotReady"
    deleting = bool(_meta(o).get("deletionTimestamp"))
    if deleting and st.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Failed", "Succeeded"):
        reason = "Terminating"
    rs = str(restarts)
    if restarts != 0 and last_restart is not None:
        rs = "%d (%s ago)" % (restarts, human_duration(ctx.now - last_restart))
    ips = st.get("podIPs") or []
    ip = (ips[0].get("ip") if ips else "") or "<none>"
    gates = spec.get("readinessGates") or []
    rg = "<none>"
    if gates:
        true = sum(1 for g in gates
                   if (_cond(st.get("conditions"), g.get("conditionType")) or {})
                   .get("status") == "True")
        rg = "%d/%d" % (true, len(gates))
    cells = [_meta(o).get("name", ""), "%d/%d" % (ready, total), reason, rs, ctx.age(o),
             ip, spec.get("nodeName") or "<none>", st.get("nominatedNodeName") or "<none>", rg]
    return cells, conditions


def _template_cols(first, selector_doc, selector=True):
    cols = [name_col()] + first + [age_col()] + containers_cols()
    if selector:
        cols.append(col("Selector", priority=1, desc=selector_doc))
    return cols


def _pod_template(o):
    return _get(o, "spec", "template", "spec", "containers", default=[])


def _rc_cols():
    return _template_cols([
        col("Desired", "integer", _doc("io.k8s.api.core.v1.ReplicationControllerSpec",
                                       "replicas")),
        col("Current", "integer", _doc("io.k8s.api.core.v1.ReplicationControllerStatus",
                                       "replicas")),
        col("Ready", "integer", _doc("io.k8s.api.core.v1.ReplicationControllerStatus",
                                     "readyReplicas"))],
        _doc("io.k8s.api.core.v1.ReplicationControllerSpec", "selector"))


def _replicas_row(format_selector):
    """The row of a ReplicationController or a ReplicaSet: the same cells, but a map selector
    for the one and a LabelSelector for the other."""
    def row(o, ctx):
        names, images = layout_containers(_pod_template(o))
        return [_meta(o).get("name", ""), _int(_get(o, "spec", "replicas", default=1)),
                _int(_get(o, "status", "replicas")), _int(_get(o, "status", "readyReplicas")),
                ctx.age(o), names, images, format_selector(_get(o, "spec", "selector"))]
    return row


def _rs_cols():
    return _template_cols([
        col("Desired", "integer", _doc("io.k8s.api.apps.v1.ReplicaSetSpec", "replicas")),
        col("Current", "integer", _doc("io.k8s.api.apps.v1.ReplicaSetStatus", "replicas")),
        col("Ready", "integer", _doc("io.k8s.api.apps.v1.ReplicaSetStatus", "readyReplicas"))],
        _doc("io.k8s.api.apps.v1.ReplicaSetSpec", "selector"))


def _ds_cols():
    st = "io.k8s.api.apps.v1.DaemonSetStatus"
    return [name_col(),
            col("Desired", "integer", _doc(st, "desiredNumberScheduled")),
            col("Current", "integer", _doc(st, "currentNumberScheduled")),
            col("Ready", "integer", _doc(st, "numberReady")),
            col("Up-to-date", "integer", _doc(st, "updatedNumberScheduled")),
            col("Available", "integer", _doc(st, "numberAvailable")),
            col("Node Selector", desc=_doc("io.k8s.api.core.v1.PodSpec", "nodeSelector")),
            age_col()] + containers_cols() + [
        col("Selector", priority=1, desc=_doc("io.k8s.api.apps.v1.DaemonSetSpec", "selector"))]


def _ds_row(o, ctx):
    st = o.get("status") or {}
    names, images = layout_containers(_pod_template(o))
    return [_meta(o).get("name", ""), _int(st.get("desiredNumberScheduled")),
            _int(st.get("currentNumberScheduled")), _int(st.get("numberReady")),
            _int(st.get("updatedNumberScheduled")), _int(st.get("numberAvailable")),
            format_labels(_get(o, "spec", "template", "spec", "nodeSelector")), ctx.age(o),
            names, images, format_label_selector(_get(o, "spec", "selector"))]


def _job_cols():
    return _template_cols([
        col("Status", desc="Status of the job."),
        col("Completions", desc=_doc("io.k8s.api.batch.v1.JobStatus", "succeeded")),
        col("Duration", desc="Time required to complete the job.")],
        _doc("io.k8s.api.batch.v1.JobSpec", "selector"))


def _job_status(o):
    conds = _get(o, "status", "conditions", default=[])

    def has(t):
        c = _cond(conds, t)
        return c is not None and c.get("status") == "True"
    if has("Complete"):
        return "Complete"
    if has("Failed"):
        return "Failed"
    if _meta(o).get("deletionTimestamp"):
        return "Terminating"
    if has("Suspended"):
        return "Suspended"
    if has("FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_row(o, ctx):
    spec, st = o.get("spec") or {}, o.get("status") or {}
    succeeded = _int(st.get("succeeded"))
    if spec.get("completions") is not None:
        completions = "%d/%d" % (succeeded, _int(spec["completions"]))
    elif _int(spec.get("parallelism")) > 1:
        completions = "%d/1 of %d" % (succeeded, spec["parallelism"])
    else:
        completions = "%d/1" % succeeded
    start, end = _epoch(st.get("startTime")), _epoch(st.get("completionTime"))
    if start is None:
        duration = ""
    elif end is None:
        duration = human_duration(ctx.now - start)
    else:
        duration = human_duration(end - start)
    names, images = layout_containers(_pod_template(o))
    return [_meta(o).get("name", ""), _job_status(o), completions, duration, ctx.age(o),
            names, images, format_label_selector(spec.get("selector"))]


def _cronjob_cols():
    spec = "io.k8s.api.batch.v1.CronJobSpec"
    return _template_cols([
        col("Schedule", desc=_doc(spec, "schedule")),
        col("Timezone", desc=_doc(spec, "timeZone")),
        col("Suspend", "boolean", _doc(spec, "suspend")),
        col("Active", "integer", _doc("io.k8s.api.batch.v1.CronJobStatus", "active")),
        col("Last Schedule", desc=_doc("io.k8s.api.batch.v1.CronJobStatus",
                                       "lastScheduleTime"))],
        _doc("io.k8s.api.batch.v1.JobSpec", "selector"))


def _cronjob_row(o, ctx):
    spec, st = o.get("spec") or {}, o.get("status") or {}
    last = "<none>" if not st.get("lastScheduleTime") else ctx.since(st["lastScheduleTime"])
    job = _get(spec, "jobTemplate", "spec", default={})
    names, images = layout_containers(_get(job, "template", "spec", "containers", default=[]))
    return [_meta(o).get("name", ""), spec.get("schedule", ""),
            spec.get("timeZone") if spec.get("timeZone") is not None else "<none>",
            bool_ptr(spec.get("suspend")), len(st.get("active") or []), last, ctx.age(o),
            names, images, format_label_selector(job.get("selector"))]


def _service_cols():
    spec = "io.k8s.api.core.v1.ServiceSpec"
    return [name_col(), col("Type", desc=_doc(spec, "type")),
            col("Cluster-IP", desc=_doc(spec, "clusterIP")),
            col("External-IP", desc=_doc(spec, "externalIPs")),
            col("Port(s)", desc=_doc(spec, "ports")), age_col(),
            col("Selector", priority=1, desc=_doc(spec, "selector"))]


def _service_external_ip(o):
    spec = o.get("spec") or {}
    typ, ext = spec.get("type", ""), spec.get("externalIPs") or []
    if typ in ("ClusterIP", "NodePort"):
        return ",".join(ext) if ext else "<none>"
    if typ == "LoadBalancer":
        lb = lb_ingress(o.get("status") or {})
        if ext:
            return ",".join(([x for x in lb.split(",")] if lb else []) + ext)
        return lb or "<pending>"
    if typ == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _service_row(o, ctx):
    spec = o.get("spec") or {}
    ips = spec.get("clusterIPs") or []
    ports = []
    for p in spec.get("ports") or []:
        if _int(p.get("nodePort")) > 0:
            ports.append("%d:%d/%s" % (_int(p.get("port")), p["nodePort"], p.get("protocol", "")))
        else:
            ports.append("%d/%s" % (_int(p.get("port")), p.get("protocol", "")))
    return [_meta(o).get("name", ""), spec.get("type", ""), ips[0] if ips else "<none>",
            _service_external_ip(o), ",".join(ports) or "<none>", ctx.age(o),
            format_labels(spec.get("selector"))]


def _ingress_cols():
    return [name_col(), col("Class", desc="The name of the IngressClass resource that should be "
                                          "used for additional configuration"),
            col("Hosts", desc="Hosts that incoming requests are matched against before the "
                              "ingress rule"),
            col("Address", desc="Address is a list containing ingress points for the "
                                "load-balancer"),
            col("Ports", desc="Ports of TLS configurations that open"), age_col()]


def _ingress_row(o, ctx):
    spec = o.get("spec") or {}
    rules = spec.get("rules") or []
    hosts, more = [], False
    for r in rules:
        if len(hosts) == 3:
            more = True
        if not more and r.get("host"):
            hosts.append(r["host"])
    h = "*" if not hosts else ",".join(hosts) + (
        " + %d more..." % (len(rules) - 3) if more else "")
    return [_meta(o).get("name", ""),
            spec.get("ingressClassName") if spec.get("ingressClassName") is not None
            else "<none>", h, lb_ingress(o.get("status") or {}),
            "80, 443" if spec.get("tls") else "80", ctx.age(o)]


def _ingress_class_cols():
    return [name_col(), col("Controller", desc="Controller that is responsible for handling "
                                               "this class"),
            col("Parameters", desc="A reference to a resource with additional parameters"),
            age_col()]


def _ingress_class_row(o, ctx):
    p = _get(o, "spec", "parameters")
    params = "<none>"
    if isinstance(p, dict):
        params = p.get("kind", "") + ("." + p["apiGroup"] if p.get("apiGroup") is not None
                                      else "") + "/" + p.get("name", "")
    return [_meta(o).get("name", ""), _get(o, "spec", "controller", default=""), params,
            ctx.age(o)]


def _sts_cols():
    return [name_col(), col("Ready", desc="Number of the pod with ready state"),
            age_col()] + containers_cols()


def _sts_row(o, ctx):
    names, images = layout_containers(_pod_template(o))
    return [_meta(o).get("name", ""), "%d/%d" % (_int(_get(o, "status", "readyReplicas")),
                                                 _int(_get(o, "spec", "replicas", default=1))),
            ctx.age(o), names, images]


def _endpoints_cols():
    return [name_col(), col("Endpoints", desc=_doc("io.k8s.api.core.v1.Endpoints", "subsets")),
            age_col()]


def _endpoints_row(o, ctx):
    subsets = o.get("subsets") or []
    if not subsets:
        return [_meta(o).get("name", ""), "<none>", ctx.age(o)]
    shown, count, more = [], 0, False
    for ss in subsets:
        addrs = ss.get("addresses") or []
        if not ss.get("ports"):
            count += len(addrs)
            for a in addrs:
                if len(shown) == 3:
                    more = True
                    break
                shown.append(a.get("ip", ""))
            continue
        for p in ss["ports"]:
            count += len(addrs)
            for a in addrs:
                if len(shown) == 3:
                    more = True
                    break
                ip = a.get("ip", "")
                shown.append("%s:%d" % ("[%s]" % ip if ":" in ip else ip, _int(p.get("port"))))
    s = ",".join(shown)
    if more:
        s = "%s + %d more..." % (s, count - 3)
    return [_meta(o).get("name", ""), s, ctx.age(o)]


def _slice_cols():
    es = "io.k8s.api.discovery.v1.EndpointSlice"
    return [name_col(), col("AddressType", desc=_doc(es, "addressType")),
            col("Ports", desc=_doc(es, "ports")), col("Endpoints", desc=_doc(es, "endpoints")),
            age_col()]


def _slice_row(o, ctx):
    ports = []
    for p in o.get("ports") or []:
        ports.append(str(p["port"]) if p.get("port") is not None
                     else (p["name"] if p.get("name") is not None else "*"))
    addrs = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
    return [_meta(o).get("name", ""), o.get("addressType", ""), list_with_more(ports),
            list_with_more(addrs), ctx.age(o)]


def _node_cols():
    info, st = "io.k8s.api.core.v1.NodeSystemInfo", "io.k8s.api.core.v1.NodeStatus"
    return [name_col(), col("Status", desc="The status of the node"),
            col("Roles", desc="The roles of the node"), age_col(),
            col("Version", desc=_doc(info, "kubeletVersion")),
            col("Internal-IP", priority=1, desc=_doc(st, "addresses")),
            col("External-IP", priority=1, desc=_doc(st, "addresses")),
            col("OS-Image", priority=1, desc=_doc(info, "osImage")),
            col("Kernel-Version", priority=1, desc=_doc(info, "kernelVersion")),
            col("Container-Runtime", priority=1, desc=_doc(info, "containerRuntimeVersion"))]


def _node_row(o, ctx):
    st = o.get("status") or {}
    ready = None
    for c in st.get("conditions") or []:
        if c.get("type") == "Ready":
            ready = c  # the last one of a type wins, as in a map keyed by type
    status = ["Unknown"] if ready is None else \
        ["Ready" if ready.get("status") == "True" else "NotReady"]
    if _get(o, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    roles = set()
    for k, v in (_meta(o).get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/") and k[len("node-role.kubernetes.io/"):]:
            roles.add(k[len("node-role.kubernetes.io/"):])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    info = st.get("nodeInfo") or {}

    def addr(t):
        for a in st.get("addresses") or []:
            if a.get("type") == t:
                return a.get("address", "")
        return "<none>"
    return [_meta(o).get("name", ""), ",".join(status), ",".join(sorted(roles)) or "<none>",
            ctx.age(o), info.get("kubeletVersion", ""), addr("InternalIP"), addr("ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _event_cols():
    ev, ref = "io.k8s.api.core.v1.Event", "io.k8s.api.core.v1.ObjectReference"
    return [col("Last Seen", desc=_doc(ev, "lastTimestamp")), col("Type", desc=_doc(ev, "type")),
            col("Reason", desc=_doc(ev, "reason")),
            col("Object", desc=_doc(ev, "involvedObject")),
            col("Subobject", priority=1, desc=_doc(ref, "fieldPath")),
            col("Source", priority=1, desc=_doc(ev, "source")),
            col("Message", desc=_doc(ev, "message")),
            col("First Seen", priority=1, desc=_doc(ev, "firstTimestamp")),
            col("Count", priority=1, desc=_doc(ev, "count")),
            dict(name_col(), priority=1)]


def _core_event(o, group):
    """events.k8s.io/v1 Events in core Event terms (what the server prints from)."""
    if group != "events.k8s.io":
        return o
    return {"metadata": _meta(o), "involvedObject": o.get("regarding") or {},
            "reason": o.get("reason"), "message": o.get("note"), "type": o.get("type"),
            "source": o.get("deprecatedSource") or {},
            "firstTimestamp": o.get("deprecatedFirstTimestamp"),
            "lastTimestamp": o.get("deprecatedLastTimestamp"),
            "count": o.get("deprecatedCount"), "eventTime": o.get("eventTime"),
            "series": o.get("series"), "reportingComponent": o.get("reportingController"),
            "reportingInstance": o.get("reportingInstance")}


def _event_row(o, ctx, group=""):
    e = _core_event(o, group)
    first = ctx.since(e.get("firstTimestamp"))
    if _epoch(e.get("firstTimestamp")) is None:
        first = ctx.since(e.get("eventTime"), godecode.MICRO)
    last = ctx.since(e.get("lastTimestamp")) if _epoch(e.get("lastTimestamp")) is not None \
        else first
    count = _int(e.get("count"))
    if isinstance(e.get("series"), dict):
        last = ctx.since(e["series"].get("lastObservedTime"), godecode.MICRO)
        count = _int(e["series"].get("count"))
    elif count == 0:
        count = 1
    io = e.get("involvedObject") or {}
    target = io.get("kind", "").lower()
    if io.get("name"):
        target += "/" + io["name"]
    src = e.get("source") or {}
    component = src.get("component") or e.get("reportingComponent") or ""
    host = src.get("host") or e.get("reportingInstance") or ""
    return [last, e.get("type") or "", e.get("reason") or "", target, io.get("fieldPath", ""),
            component + (", " + host if host else ""), (e.get("message") or "").strip(), first,
            count, _meta(o).get("name", "")]


def _simple(cols, cells):
    """A printer whose cells are name, what cells(o) gives, age."""
    return cols, lambda o, ctx: [_meta(o).get("name", "")] + cells(o) + [ctx.age(o)]


def _namespace():
    return _simple([name_col(), col("Status", desc="The status of the namespace"), age_col()],
                   lambda o: [_get(o, "status", "phase", default="")])


def _secret():
    return _simple([name_col(), col("Type", desc=_doc("io.k8s.api.core.v1.Secret", "type")),
                    col("Data", desc=_doc("io.k8s.api.core.v1.Secret", "data")), age_col()],
                   lambda o: [o.get("type", ""), len(o.get("data") or {})])


def _service_account():
    return _simple([name_col(), col("Secrets", desc=_doc("io.k8s.api.core.v1.ServiceAccount",
                                                         "secrets")), age_col()],
                   lambda o: [len(o.get("secrets") or [])])


def _volume_class(o):
    ann = _meta(o).get("annotations") or {}
    if "volume.beta.kubernetes.io/storage-class" in ann:
        return ann["volume.beta.kubernetes.io/storage-class"]
    return _get(o, "spec", "storageClassName", default="")


def _pv_cols():
    spec = "io.k8s.api.core.v1.PersistentVolumeSpec"
    st = "io.k8s.api.core.v1.PersistentVolumeStatus"
    return [name_col(), col("Capacity", desc=_doc(spec, "capacity")),
            col("Access Modes", desc=_doc(spec, "accessModes")),
            col("Reclaim Policy", desc=_doc(spec, "persistentVolumeReclaimPolicy")),
            col("Status", desc=_doc(st, "phase")), col("Claim", desc=_doc(spec, "claimRef")),
            col("StorageClass", desc="StorageClass of the pv"),
            col("VolumeAttributesClass", desc="VolumeAttributesClass of the pv"),
            col("Reason", desc=_doc(st, "reason")), age_col(),
            col("VolumeMode", priority=1, desc=_doc(spec, "volumeMode"))]


def _pv_row(o, ctx):
    spec, st = o.get("spec") or {}, o.get("status") or {}
    claim = ""
    if isinstance(spec.get("claimRef"), dict):
        claim = "%s/%s" % (spec["claimRef"].get("namespace", ""), spec["claimRef"].get("name", ""))
    phase = "Terminating" if _meta(o).get("deletionTimestamp") else st.get("phase", "")
    return [_meta(o).get("name", ""), quantity_string((spec.get("capacity") or {}).get("storage")),
            access_modes(spec.get("accessModes")), spec.get("persistentVolumeReclaimPolicy", ""),
            phase, claim, _volume_class(o),
            _or(spec.get("volumeAttributesClassName"), "<unset>"), st.get("reason", ""),
            ctx.age(o),
            spec["volumeMode"] if spec.get("volumeMode") is not None else "<unset>"]


def _pvc_cols():
    spec, st = ("io.k8s.api.core.v1.PersistentVolumeClaimSpec",
                "io.k8s.api.core.v1.PersistentVolumeClaimStatus")
    return [name_col(), col("Status", desc=_doc(st, "phase")),
            col("Volume", desc=_doc(spec, "volumeName")),
            col("Capacity", desc=_doc(st, "capacity")),
            col("Access Modes", desc=_doc(st, "accessModes")),
            col("StorageClass", desc="StorageClass of the pvc"),
            col("VolumeAttributesClass", desc="VolumeAttributesClass of the pvc"), age_col(),
            col("VolumeMode", priority=1, desc=_doc(spec, "volumeMode"))]


def _pvc_row(o, ctx):
    spec, st = o.get("spec") or {}, o.get("status") or {}
    phase = "Terminating" if _meta(o).get("deletionTimestamp") else st.get("phase", "")
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = access_modes(st.get("accessModes"))
        capacity = quantity_string((st.get("capacity") or {}).get("storage"))
    vac = spec.get("volumeAttributesClassName")
    return [_meta(o).get("name", ""), phase, spec.get("volumeName", ""), capacity, modes,
            _volume_class(o), vac if vac is not None else "<unset>", ctx.age(o),
            spec["volumeMode"] if spec.get("volumeMode") is not None else "<unset>"]


def _component_status():
    cols = [name_col(), col("Status", desc="Status of the component conditions"),
            col("Message", desc="Message of the component conditions"),
            col("Error", desc="Error of the component conditions")]

    def row(o, ctx):
        c = _cond(o.get("conditions"), "Healthy")
        if c is None:
            return [_meta(o).get("name", ""), "Unknown", "", ""]
        return [_meta(o).get("name", ""), "Healthy" if c.get("status") == "True" else "Unhealthy",
                c.get("message", ""), c.get("error", "")]
    return cols, row


def _deployment_cols():
    st = "io.k8s.api.apps.v1.DeploymentStatus"
    return _template_cols([col("Ready", desc="Number of the pod with ready state"),
                           col("Up-to-date", desc=_doc(st, "updatedReplicas")),
                           col("Available", desc=_doc(st, "availableReplicas"))],
                          _doc("io.k8s.api.apps.v1.DeploymentSpec", "selector"))


def _deployment_row(o, ctx):
    st = o.get("status") or {}
    names, images = layout_containers(_pod_template(o))
    sel = selector_string(_get(o, "spec", "selector"))
    return [_meta(o).get("name", ""), "%d/%d" % (_int(st.get("readyReplicas")),
                                                 _int(_get(o, "spec", "replicas", default=1))),
            _int(st.get("updatedReplicas")), _int(st.get("availableReplicas")), ctx.age(o),
            names, images, "<invalid>" if sel is None else sel]


def _hpa_cols():
    spec = "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec"
    return [name_col(), col("Reference", desc=_doc(spec, "scaleTargetRef")),
            col("Targets", desc=_doc(spec, "metrics")),
            col("MinPods", desc=_doc(spec, "minReplicas")),
            col("MaxPods", desc=_doc(spec, "maxReplicas")),
            col("Replicas", desc=_doc("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
                                      "currentReplicas")), age_col()]


def _hpa_metrics(specs, statuses):
    if not specs:
        return "<none>"
    out = []
    for i, s in enumerate(specs):
        cur = statuses[i] if i < len(statuses) and isinstance(statuses[i], dict) else {}
        typ = s.get("type")
        key = {"External": "external", "Pods": "pods", "Object": "object",
               "Resource": "resource", "ContainerResource": "containerResource"}.get(typ)
        if key is None:
            out.append("<unknown type>")
            continue
        src, now = s.get(key) or {}, (cur.get(key) or {}).get("current") or {}
        have = bool(cur.get(key))
        target = src.get("target") or {}
        if typ in ("External", "Object"):
            if target.get("averageValue") is not None:
                c = quantity_string(now["averageValue"]) if have and \
                    now.get("averageValue") is not None else "<unknown>"
                out.append("%s/%s (avg)" % (c, quantity_string(target["averageValue"])))
            else:
                c = quantity_string(now.get("value")) if have else "<unknown>"
                out.append("%s/%s" % (c, quantity_string(target.get("value"))))
        elif typ == "Pods":
            c = quantity_string(now.get("averageValue")) if have else "<unknown>"
            out.append("%s/%s" % (c, quantity_string(target.get("averageValue"))))
        else:
            name = src.get("name", "")
            if target.get("averageValue") is not None:
                c = quantity_string(now.get("averageValue")) if have else "<unknown>"
                out.append("%s: %s/%s" % (name, c, quantity_string(target["averageValue"])))
            else:
                c = "%d%%" % now["averageUtilization"] if have and \
                    now.get("averageUtilization") is not None else "<unknown>"
                t = "%d%%" % target["averageUtilization"] \
                    if target.get("averageUtilization") is not None else "<auto>"
                out.append("%s: %s/%s" % (name, c, t))
    if len(out) > 2:
        return "%s + %d more..." % (", ".join(out[:2]), len(out) - 2)
    return ", ".join(out)


def _hpa_row(o, ctx, version="v2"):
    spec, st = o.get("spec") or {}, o.get("status") or {}
    if version == "v1":
        # autoscaling/v1 in the internal (v2) terms it is printed from
        metrics, current = [], []
        if spec.get("targetCPUUtilizationPercentage") is not None:
            metrics = [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization",
                "averageUtilization": spec["targetCPUUtilizationPercentage"]}}}]
            if st.get("currentCPUUtilizationPercentage") is not None:
                current = [{"type": "Resource", "resource": {"name": "cpu", "current": {
                    "averageUtilization": st["currentCPUUtilizationPercentage"]}}}]
    else:
        metrics, current = spec.get("metrics") or [], st.get("currentMetrics") or []
    ref = spec.get("scaleTargetRef") or {}
    return [_meta(o).get("name", ""), "%s/%s" % (ref.get("kind", ""), ref.get("name", "")),
            _hpa_metrics(metrics, current),
            str(spec["minReplicas"]) if spec.get("minReplicas") is not None else "<unset>",
            _int(spec.get("maxReplicas")), _int(st.get("currentReplicas")), ctx.age(o)]


def _configmap():
    return _simple([name_col(), col("Data", desc=_doc("io.k8s.api.core.v1.ConfigMap", "data")),
                    age_col()],
                   lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {})])


def _netpol():
    return _simple([name_col(), col("Pod-Selector", desc=_doc(
        "io.k8s.api.networking.v1.NetworkPolicySpec", "podSelector")), age_col()],
        lambda o: [format_label_selector(_get(o, "spec", "podSelector", default={}))])


def _binding(kind):
    d = "io.k8s.api.rbac.v1." + kind
    lower = kind[0].lower() + kind[1:]
    cols = [name_col(), col("Role", desc=_doc(d, "roleRef")), age_col(),
            col("Users", priority=1, desc="Users in the %s" % lower),
            col("Groups", priority=1, desc="Groups in the %s" % lower),
            col("ServiceAccounts", priority=1, desc="ServiceAccounts in the %s" % lower)]

    def row(o, ctx):
        users, groups, sas = [], [], []
        for s in o.get("subjects") or []:
            if s.get("kind") == "ServiceAccount":
                sas.append("%s/%s" % (s.get("namespace", ""), s.get("name", "")))
            elif s.get("kind") == "User":
                users.append(s.get("name", ""))
            elif s.get("kind") == "Group":
                groups.append(s.get("name", ""))
        ref = o.get("roleRef") or {}
        return [_meta(o).get("name", ""), "%s/%s" % (ref.get("kind", ""), ref.get("name", "")),
                ctx.age(o), ", ".join(users), ", ".join(groups), ", ".join(sas)]
    return cols, row


def _csr():
    spec = "io.k8s.api.certificates.v1.CertificateSigningRequestSpec"
    cols = [name_col(), age_col(), col("SignerName", desc=_doc(spec, "signerName")),
            col("Requestor", desc=_doc(spec, "request")),
            col("RequestedDuration", desc=_doc(spec, "expirationSeconds")),
            col("Condition", desc=_doc("io.k8s.api.certificates.v1.CertificateSigningRequestStatus",
                                       "conditions"))]

    def row(o, ctx):
        spec, st = o.get("spec") or {}, o.get("status") or {}
        types = {c.get("type") for c in st.get("conditions") or []}
        status = "Denied" if "Denied" in types else ("Approved" if "Approved" in types
                                                     else "Pending")
        if "Failed" in types:
            status += ",Failed"
        if st.get("certificate"):
            status += ",Issued"
        dur = "<none>" if spec.get("expirationSeconds") is None else \
            human_duration(spec["expirationSeconds"])
        return [_meta(o).get("name", ""), ctx.age(o), spec.get("signerName") or "<none>",
                spec.get("username", ""), dur, status]
    return cols, row


def _storage_class():
    sc = "io.k8s.api.storage.v1.StorageClass"
    cols = [name_col(), col("Provisioner", desc=_doc(sc, "provisioner")),
            col("ReclaimPolicy", desc=_doc(sc, "reclaimPolicy")),
            col("VolumeBindingMode", desc=_doc(sc, "volumeBindingMode")),
            col("AllowVolumeExpansion", desc=_doc(sc, "allowVolumeExpansion")), age_col()]

    def row(o, ctx):
        ann = _meta(o).get("annotations") or {}
        name = _meta(o).get("name", "")
        if "true" in (ann.get("storageclass.kubernetes.io/is-default-class"),
                      ann.get("storageclass.beta.kubernetes.io/is-default-class")):
            name += " (default)"
        return [name, o.get("provisioner", ""), o.get("reclaimPolicy") or "Delete",
                o.get("volumeBindingMode") or "Immediate", bool(o.get("allowVolumeExpansion")),
                ctx.age(o)]
    return cols, row


def _controller_revision():
    cols = [name_col(), col("Controller", desc="Controller of the object"),
            col("Revision", desc=_doc("io.k8s.api.apps.v1.ControllerRevision", "revision")),
            age_col()]

    def row(o, ctx):
        ctl = "<none>"
        for ref in _meta(o).get("ownerReferences") or []:
            if ref.get("controller"):
                g = ref.get("apiVersion", "").rpartition("/")[0]
                gk = ref.get("kind", "") + ("." + g if g else "")
                ctl = gk.lower() + "/" + ref.get("name", "") if gk else ref.get("name", "")
                break
        return [_meta(o).get("name", ""), ctl, _int(o.get("revision")), ctx.age(o)]
    return cols, row


def _resource_quota():
    cols = [name_col(), col("Request", desc="Request represents a minimum amount of cpu/memory "
                                            "that a container may consume."),
            col("Limit", desc="Limits control the maximum amount of cpu/memory that a container "
                              "may use independent of contention on the node."), age_col()]

    def row(o, ctx):
        hard = _get(o, "status", "hard", default={})
        used = _get(o, "status", "used", default={})
        req, lim = [], []
        for r in sorted(hard):
            (lim if r.split(".")[0] == "limits" and "." in r else req).append(
                "%s: %s/%s" % (r, quantity_string(used.get(r)), quantity_string(hard[r])))
        return [_meta(o).get("name", ""), ", ".join(req), ", ".join(lim), ctx.age(o)]
    return cols, row


def _priority_class():
    pc = "io.k8s.api.scheduling.v1.PriorityClass"
    cols = [name_col(), col("Value", "integer", _doc(pc, "value")),
            col("Global-Default", "boolean", _doc(pc, "globalDefault")), age_col(),
            col("PreemptionPolicy", priority=1, desc=_doc(pc, "preemptionPolicy"))]
    return cols, lambda o, ctx: [_meta(o).get("name", ""), _int(o.get("value")),
                                 bool(o.get("globalDefault")), ctx.age(o),
                                 o.get("preemptionPolicy") or ""]


def _volume_attachment():
    spec = "io.k8s.api.storage.v1.VolumeAttachmentSpec"
    cols = [name_col(), col("Attacher", fmt="name", desc=_doc(spec, "attacher")),
            col("PV", desc=_doc("io.k8s.api.storage.v1.VolumeAttachmentSource",
                                "persistentVolumeName")),
            col("Node", desc=_doc(spec, "nodeName")),
            col("Attached", "boolean", _doc("io.k8s.api.storage.v1.VolumeAttachmentStatus",
                                            "attached")), age_col()]
    return cols, lambda o, ctx: [
        _meta(o).get("name", ""), _get(o, "spec", "attacher", default=""),
        _get(o, "spec", "source", "persistentVolumeName", default=""),
        _get(o, "spec", "nodeName", default=""), bool(_get(o, "status", "attached")), ctx.age(o)]


def _csi_driver():
    spec = "io.k8s.api.storage.v1.CSIDriverSpec"
    cols = [name_col(), col("AttachRequired", "boolean", _doc(spec, "attachRequired")),
            col("PodInfoOnMount", "boolean", _doc(spec, "podInfoOnMount")),
            col("StorageCapacity", "boolean", _doc(spec, "storageCapacity")),
            col("TokenRequests", desc=_doc(spec, "tokenRequests")),
            col("RequiresRepublish", "boolean", _doc(spec, "requiresRepublish")),
            col("Modes", desc=_doc(spec, "volumeLifecycleModes")), age_col()]

    def row(o, ctx):
        spec = o.get("spec") or {}
        tr = spec.get("tokenRequests")
        return [_meta(o).get("name", ""), spec.get("attachRequired", True) is not False,
                bool(spec.get("podInfoOnMount")), bool(spec.get("storageCapacity")),
                "<unset>" if tr is None else ",".join(t.get("audience", "") for t in tr),
                bool(spec.get("requiresRepublish")),
                ",".join(spec.get("volumeLifecycleModes") or []) or "<none>", ctx.age(o)]
    return cols, row


def _admission_policy(count_field, count_name, count_desc):
    cols = [name_col(), col(count_name, "integer", count_desc),
            col("ParamKind", desc="ParamKind specifies the kind of resources used to "
                                  "parameterize this policy"), age_col()]

    def row(o, ctx):
        pk = _get(o, "spec", "paramKind")
        kind = "<unset>" if not isinstance(pk, dict) else \
            "%s/%s" % (pk.get("apiVersion", ""), pk.get("kind", ""))
        return [_meta(o).get("name", ""), len(_get(o, "spec", count_field, default=[])), kind,
                ctx.age(o)]
    return cols, row


def _policy_binding():
    cols = [name_col(), col("PolicyName", desc="PolicyName indicates the policy definition "
                                               "which the policy binding binded to"),
            col("ParamRef", desc="ParamRef indicates the param resource which sets the "
                                 "configration param"), age_col()]

    def row(o, ctx):
        pr = _get(o, "spec", "paramRef")
        name = "<unset>"
        if isinstance(pr, dict):
            if pr.get("name"):
                name = "%s/%s" % (pr["namespace"] if pr.get("namespace") else "*", pr["name"])
            elif pr.get("selector") is not None:
                name = format_label_selector(pr["selector"])
        return [_meta(o).get("name", ""), _get(o, "spec", "policyName", default=""), name,
                ctx.age(o)]
    return cols, row


def _flow_schema():
    spec = "io.k8s.api.flowcontrol.v1.FlowSchemaSpec"
    cols = [name_col(), col("PriorityLevel", desc=_doc(
        "io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationReference", "name")),
        col("MatchingPrecedence", desc=_doc(spec, "matchingPrecedence")),
        col("DistinguisherMethod", desc=_doc(spec, "distinguisherMethod")), age_col(),
        col("MissingPL", desc="references a broken or non-existent "
                              "PriorityLevelConfiguration")]

    def row(o, ctx):
        spec = o.get("spec") or {}
        dm = spec.get("distinguisherMethod")
        c = _cond(_get(o, "status", "conditions"), "Dangling")
        return [_meta(o).get("name", ""), _get(spec, "priorityLevelConfiguration", "name",
                                               default=""),
                _int(spec.get("matchingPrecedence")),
                dm.get("type", "") if isinstance(dm, dict) else "<none>", ctx.age(o),
                c.get("status", "") if c else "?"]
    return cols, row


def _priority_level():
    spec = "io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationSpec"
    q = "io.k8s.api.flowcontrol.v1.QueuingConfiguration"
    cols = [name_col(), col("Type", desc=_doc(spec, "type")),
            col("NominalConcurrencyShares", desc=_doc(
                "io.k8s.api.flowcontrol.v1.LimitedPriorityLevelConfiguration",
                "nominalConcurrencyShares")),
            col("Queues", desc=_doc(q, "queues")), col("HandSize", desc=_doc(q, "handSize")),
            col("QueueLengthLimit", desc=_doc(q, "queueLengthLimit")), age_col()]

    def row(o, ctx):
        spec = o.get("spec") or {}
        ncs = queues = hand = qll = "<none>"
        lim = spec.get("limited")
        if isinstance(lim, dict):
            ncs = _int(lim.get("nominalConcurrencyShares"))
            qc = _get(lim, "limitResponse", "queuing")
            if isinstance(qc, dict):
                queues, hand, qll = (_int(qc.get("queues")), _int(qc.get("handSize")),
                                     _int(qc.get("queueLengthLimit")))
        return [_meta(o).get("name", ""), spec.get("type", ""), ncs, queues, hand, qll,
                ctx.age(o)]
    return cols, row


def _storage_version():
    st = "io.k8s.api.apiserverinternal.v1alpha1.StorageVersionStatus"
    cols = [name_col(), col("CommonEncodingVersion", desc=_doc(st, "commonEncodingVersion")),
            col("StorageVersions", desc=_doc(st, "storageVersions")), age_col()]

    def row(o, ctx):
        st = o.get("status") or {}
        svs = ["%s=%s" % (s.get("apiServerID", ""), s.get("encodingVersion", ""))
               for s in st.get("storageVersions") or []]
        cev = st.get("commonEncodingVersion")
        return [_meta(o).get("name", ""), cev if cev is not None else "<unset>",
                list_with_more(svs), ctx.age(o)]
    return cols, row


def _ip_address():
    # upstream defines two columns and fills three cells (the age); kept as it is
    cols = [name_col(), col("ParentRef", desc=_doc("io.k8s.api.networking.v1.IPAddressSpec",
                                                   "parentRef"))]

    def row(o, ctx):
        p = _get(o, "spec", "parentRef")
        ref = "<none>"
        if isinstance(p, dict):
            gr = p.get("resource", "") + ("." + p["group"] if p.get("group") else "")
            ref = gr.lower() + ("/" + p["namespace"] if p.get("namespace") else "") + \
                "/" + p.get("name", "")
        return [_meta(o).get("name", ""), ref, ctx.age(o)]
    return cols, row


def _resource_claim_state(o):
    states = []
    deleted = bool(_meta(o).get("deletionTimestamp"))
    if deleted:
        states.append("deleted")
    if _get(o, "status", "allocation") is None:
        if not deleted:
            states.append("pending")
    else:
        states.append("allocated")
        if _get(o, "status", "reservedFor"):
            states.append("reserved")
    return ",".join(states)


def _apiservice():
    """kube-aggregator's own table (columns always included, as it does)."""
    cols = [name_col(),
            col("Service", desc="The reference to the service that hosts this API endpoint."),
            col("Available", desc="Whether this service is available."), age_col()]

    def row(o, ctx):
        svc = _get(o, "spec", "service")
        service = "Local" if not isinstance(svc, dict) else \
            "%s/%s" % (svc.get("namespace", ""), svc.get("name", ""))
        c = _cond(_get(o, "status", "conditions"), "Available")
        status = "Unknown"
        if c is not None:
            status = c.get("status", "")
            if status != "True" and c.get("reason"):
                status = "%s (%s)" % (status, c["reason"])
        return [_meta(o).get("name", ""), service, status, ctx.age(o)]
    return cols, row


def _printers():
    """{(group, kind): (columns, row(obj, ctx, version) -> cells or (cells, conditions))}."""
    p = {
        ("", "Pod"): (_pod_cols(), _pod_row),
        ("", "PodTemplate"): ([name_col(), col("Containers", desc="Names of each container in "
                                                                  "the template."),
                               col("Images", desc="Images referenced by each container in the "
                                                  "template."),
                               col("Pod Labels", desc="The labels for the pod template.")],
                              lambda o, ctx: [_meta(o).get("name", "")] + list(
                                  layout_containers(_get(o, "template", "spec", "containers",
                                                         default=[]))) + [
                                  format_labels(_get(o, "template", "metadata", "labels"))]),
        ("policy", "PodDisruptionBudget"): _simple(
            [name_col(), col("Min Available", desc="The minimum number of pods that must be "
                                                   "available."),
             col("Max Unavailable", desc="The maximum number of pods that may be unavailable."),
             col("Allowed Disruptions", "integer", "Calculated number of pods that may be "
                                                   "disrupted at this time."), age_col()],
            lambda o: [int_or_string(_or(_get(o, "spec", "minAvailable"), "N/A")),
                       int_or_string(_or(_get(o, "spec", "maxUnavailable"), "N/A")),
                       _int(_get(o, "status", "disruptionsAllowed"))]),
        ("", "ReplicationController"): (_rc_cols(), _replicas_row(format_labels)),
        ("apps", "ReplicaSet"): (_rs_cols(), _replicas_row(format_label_selector)),
        ("apps", "DaemonSet"): (_ds_cols(), _ds_row),
        ("apps", "StatefulSet"): (_sts_cols(), _sts_row),
        ("apps", "Deployment"): (_deployment_cols(), _deployment_row),
        ("apps", "ControllerRevision"): _controller_revision(),
        ("batch", "Job"): (_job_cols(), _job_row),
        ("batch", "CronJob"): (_cronjob_cols(), _cronjob_row),
        ("", "Service"): (_service_cols(), _service_row),
        ("networking.k8s.io", "Ingress"): (_ingress_cols(), _ingress_row),
        ("networking.k8s.io", "IngressClass"): (_ingress_class_cols(), _ingress_class_row),
        ("networking.k8s.io", "NetworkPolicy"): _netpol(),
        ("networking.k8s.io", "ServiceCIDR"): _simple(
            [name_col(), col("CIDRs", desc=_doc("io.k8s.api.networking.v1.ServiceCIDRSpec",
                                                "cidrs")), age_col()],
            lambda o: [",".join(_get(o, "spec", "cidrs", default=[]))]),
        ("networking.k8s.io", "IPAddress"): _ip_address(),
        ("", "Endpoints"): (_endpoints_cols(), _endpoints_row),
        ("discovery.k8s.io", "EndpointSlice"): (_slice_cols(), _slice_row),
        ("", "Node"): (_node_cols(), _node_row),
        ("", "Event"): (_event_cols(), _event_row),
        ("events.k8s.io", "Event"): (_event_cols(),
                                     lambda o, ctx: _event_row(o, ctx, "events.k8s.io")),
        ("", "Namespace"): _namespace(),
        ("", "Secret"): _secret(),
        ("", "ServiceAccount"): _service_account(),
        ("", "PersistentVolume"): (_pv_cols(), _pv_row),
        ("", "PersistentVolumeClaim"): (_pvc_cols(), _pvc_row),
        ("", "ComponentStatus"): _component_status(),
        ("", "ConfigMap"): _configmap(),
        ("", "ResourceQuota"): _resource_quota(),
        ("autoscaling", "HorizontalPodAutoscaler"): (_hpa_cols(), _hpa_row),
        ("rbac.authorization.k8s.io", "RoleBinding"): _binding("RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _binding("ClusterRoleBinding"),
        ("certificates.k8s.io", "CertificateSigningRequest"): _csr(),
        ("certificates.k8s.io", "ClusterTrustBundle"): (
            [name_col(), col("SignerName", desc=_doc(
                "io.k8s.api.certificates.v1beta1.ClusterTrustBundleSpec", "signerName"))],
            lambda o, ctx: [_meta(o).get("name", ""),
                            _get(o, "spec", "signerName", default="") or "<none>"]),
        ("coordination.k8s.io", "Lease"): _simple(
            [name_col(), col("Holder", desc=_doc("io.k8s.api.coordination.v1.LeaseSpec",
                                                 "holderIdentity")), age_col()],
            lambda o: [_get(o, "spec", "holderIdentity", default="")]),
        ("coordination.k8s.io", "LeaseCandidate"): _simple(
            [name_col()] + [col(n, desc=_doc("io.k8s.api.coordination.v1beta1.LeaseCandidateSpec",
                                             f)) for n, f in (("LeaseName", "leaseName"),
                                                              ("BinaryVersion", "binaryVersion"),
                                                              ("EmulationVersion",
                                                               "emulationVersion"))] +
            [age_col()],
            lambda o: [_get(o, "spec", f, default="") for f in ("leaseName", "binaryVersion",
                                                                "emulationVersion")]),
        ("storage.k8s.io", "StorageClass"): _storage_class(),
        ("storage.k8s.io", "VolumeAttributesClass"): _simple(
            [name_col(), col("DriverName", desc=_doc(
                "io.k8s.api.storage.v1.VolumeAttributesClass", "driverName")), age_col()],
            lambda o: [o.get("driverName", "")]),
        ("storage.k8s.io", "VolumeAttachment"): _volume_attachment(),
        ("storage.k8s.io", "CSINode"): _simple(
            [name_col(), col("Drivers", "integer", "Drivers indicates the number of CSI drivers "
                                                   "registered on the node"), age_col()],
            lambda o: [len(_get(o, "spec", "drivers", default=[]))]),
        ("storage.k8s.io", "CSIDriver"): _csi_driver(),
        ("storage.k8s.io", "CSIStorageCapacity"): (
            [name_col(), col("StorageClassName", desc=_doc(
                "io.k8s.api.storage.v1.CSIStorageCapacity", "storageClassName")),
             col("Capacity", desc=_doc("io.k8s.api.storage.v1.CSIStorageCapacity", "capacity"))],
            lambda o, ctx: [_meta(o).get("name", ""), o.get("storageClassName", ""),
                            "<unset>" if o.get("capacity") is None
                            else quantity_string(o["capacity"])]),
        ("scheduling.k8s.io", "PriorityClass"): _priority_class(),
        ("node.k8s.io", "RuntimeClass"): _simple(
            [name_col(), col("Handler", desc=_doc("io.k8s.api.node.v1.RuntimeClass", "handler")),
             age_col()], lambda o: [o.get("handler", "")]),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"): _flow_schema(),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"): _priority_level(),
        ("internal.apiserver.k8s.io", "StorageVersion"): _storage_version(),
        ("storagemigration.k8s.io", "StorageVersionMigration"): (
            [col("Name", desc=_doc(META, "name")),
             col("Resource", desc="Fully qualified resource to migrate")],
            lambda o, ctx: [_meta(o).get("name", ""), _get(o, "spec", "resource", "resource",
                                                           default="") + (
                "." + _get(o, "spec", "resource", "group") if _get(o, "spec", "resource", "group")
                else "")]),
        ("resource.k8s.io", "DeviceClass"): _simple([name_col(), age_col()], lambda o: []),
        ("resource.k8s.io", "ResourceClaim"): _simple(
            [name_col(), col("State", desc="A summary of the current state (allocated, pending, "
                                           "reserved, etc.)."), age_col()],
            lambda o: [_resource_claim_state(o)]),
        ("resource.k8s.io", "ResourceClaimTemplate"): _simple([name_col(), age_col()],
                                                              lambda o: []),
        ("resource.k8s.io", "ResourceSlice"): _simple(
            [name_col()] + [col(n, desc=_doc("io.k8s.api.resource.v1.ResourceSliceSpec", f))
                            for n, f in (("Node", "nodeName"), ("Driver", "driver"))] +
            [col("Pool", desc=_doc("io.k8s.api.resource.v1.ResourcePool", "name")), age_col()],
            lambda o: [_get(o, "spec", "nodeName", default=""),
                       _get(o, "spec", "driver", default=""),
                       _get(o, "spec", "pool", "name", default="")]),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): _simple(
            [name_col(), col("Webhooks", "integer", "Webhooks indicates the number of webhooks "
                                                    "registered in this configuration"),
             age_col()], lambda o: [len(o.get("webhooks") or [])]),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): _admission_policy(
            "validations", "Validations", "Validations indicates the number of validation "
                                          "rules defined in this configuration"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"): _admission_policy(
            "mutations", "Mutations", "Mutation indicates the number of mutations rules "
                                      "defined in this configuration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): _policy_binding(),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"): _policy_binding(),
        ("apiregistration.k8s.io", "APIService"): _apiservice(),
    }
    p[("admissionregistration.k8s.io", "ValidatingWebhookConfiguration")] = \
        p[("admissionregistration.k8s.io", "MutatingWebhookConfiguration")]
    return p


_PRINTERS = None


def printer(group, kind):
    """(columns, row function) for a kind, or None: the default table (NAME, CREATED AT)."""
    global _PRINTERS
    if _PRINTERS is None:
        _PRINTERS = _printers()
    return _PRINTERS.get((group, kind))


def _default_cols():
    return [name_col(), col("Created At", "date", _doc(META, "creationTimestamp"))]


def _created_at(o):
    t = _epoch(_meta(o).get("creationTimestamp"))
    if t is None:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def _partial(o, api_version):
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version,
            "metadata": json.loads(json.dumps(_meta(o)))}


INCLUDE_OBJECT = ("None", "Metadata", "Object")


def table(group, version, kind, objs, list_meta=None, include="Metadata", headers=True,
          table_version="v1", now=None):
    """The Table for objs (stored objects of one kind; a list's items or a single object).
    list_meta: the ListMeta of a list (resourceVersion, continue, remainingItemCount); for a
    single object its own resourceVersion is used. include: includeObject (None, Metadata: a
    PartialObjectMetadata of meta.k8s.io/v1beta1 as upstream sets it, Object: the object with
    its kind and apiVersion). headers=False leaves columnDefinitions null (later watch
    events)."""
    ctx = Ctx(now)
    pr = printer(group, kind)
    gv = "%s/%s" % (group, version) if group else version
    if pr is not None:
        cols, row_fn = pr
    else:
        cols, row_fn = _default_cols(), lambda o, c: [_meta(o).get("name", ""), _created_at(o)]
    if (group, kind) == ("autoscaling", "HorizontalPodAutoscaler"):
        row_fn = (lambda o, c, v=version: _hpa_row(o, c, v))
    if (group, kind) == ("flowcontrol.apiserver.k8s.io", "FlowSchema"):
        objs = sorted(objs, key=lambda o: (_int(_get(o, "spec", "matchingPrecedence")),
                                           _meta(o).get("name", "")))
    rows = []
    for o in objs:
        out = row_fn(o, ctx)
        cells, conds = out if isinstance(out, tuple) else (out, None)
        r = {"cells": cells}
        if conds:
            r["conditions"] = conds
        if include == "Metadata":
            r["object"] = _partial(o, "meta.k8s.io/v1beta1")
        elif include == "Object":
            r["object"] = dict({"kind": kind, "apiVersion": gv}, **o)
        rows.append(r)
    if list_meta is not None:
        meta = {k: list_meta[k] for k in ("resourceVersion", "continue", "remainingItemCount")
                if list_meta.get(k) not in (None, "")}
    else:
        rv = _meta(objs[0]).get("resourceVersion") if objs else None
        meta = {"resourceVersion": rv} if rv else {}
    show = headers or (group, kind) == ("apiregistration.k8s.io", "APIService")
    if pr is None and not rows:
        rows = None  # the default table leaves them unset, printers make an empty list
    return {"kind": "Table", "apiVersion": "meta.k8s.io/" + table_version, "metadata": meta,
            "columnDefinitions": cols if show else None, "rows": rows}
