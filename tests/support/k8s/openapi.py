"""Strict validation and discovery from the official Kubernetes OpenAPI v2 spec.

The spec is kubernetes-openapi-v2.json.gz next to this file: upstream's
`swagger.json.unprocessed` for release-1.36, gzipped byte for byte (see README.md for its
sha256). Plain python3 stdlib (+ python3-yaml for the manifest helpers); run with /usr/bin/python3.

    validate(obj) -> list[str]        errors as "<json path>: <message>"; [] means valid
    check(obj) -> list[Problem]       the same, with a category per error (the test API server
                                      maps categories to HTTP codes like the real one does)
    prune_unknown(obj) -> obj         a copy without the fields the schema does not define
    normalize_times(obj, defname)     times in the form the real server stores them
    resources() -> list[Resource]     every REST resource the spec's paths define
    groups() -> {group: [versions]}   served groups, versions in preference order

Strictness (what the real API server's strict decoding and schema checks do, and more):
  - every object schema that has `properties` and no `x-kubernetes-preserve-unknown-fields`
    is closed: an unknown field is an error;
  - a schema with `additionalProperties` is a map: every value is checked against it;
  - types: string, integer (bool is not an integer), number, boolean, array, object;
    int32/int64 ranges; `format: int-or-string` = integer or string; Quantity = a number or a
    string in Kubernetes quantity syntax (apimachinery's ParseQuantity); metav1.Time and
    MicroTime strings as Go's time.Parse reads them with RFC3339 and RFC3339Micro (a MicroTime
    needs exactly six fraction digits, uppercase T and Z): see godecode.py;
  - `required` properties must be present and not null;
  - lists with `x-kubernetes-list-type: map` must not repeat a key, `set` must not repeat a value.
  - JSON null is accepted for any optional field (the real server treats it as unset).
"""
import collections
import gzip
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import godecode  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_GZ = os.path.join(HERE, "kubernetes-openapi-v2.json.gz")
SPEC_SHA256 = "c316f6e232c666148076e82e20371ff656ffbb12e59d8953e6d94ec7685bc75c"

DEF_PREFIX = "#/definitions/"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

# Problem categories.
UNKNOWN = "unknown"      # field not in the schema (strict decoding error)
TYPE = "type"            # wrong JSON type or out of range for the Go type (decoding error)
REQUIRED = "required"    # required field missing (semantic validation error)
INVALID = "invalid"      # bad format / duplicate list key (semantic validation error)
KIND = "kind"            # apiVersion/kind missing or unknown

# go: what the real server's JSON decoder says about a TYPE problem; conv: what its
# unstructured converter (strategic merge patch) says; aborts: the decoder stops there (a
# custom UnmarshalJSON failed) instead of reporting the first of its type errors.
Problem = collections.namedtuple("Problem", "category path message go conv aborts",
                                 defaults=(None, None, False))

_spec = None
_spec_raw = None
_gvk_index = None


def spec_bytes():
    """The spec exactly as published (the decompressed bytes; sha256 = SPEC_SHA256)."""
    global _spec_raw
    if _spec_raw is None:
        with gzip.open(SPEC_GZ, "rb") as f:
            _spec_raw = f.read()
    return _spec_raw


def spec():
    """The parsed spec (cached)."""
    global _spec
    if _spec is None:
        _spec = json.loads(spec_bytes())
    return _spec


def definitions():
    return spec()["definitions"]


def parse_api_version(api_version):
    """'apps/v1' -> ('apps', 'v1'); 'v1' -> ('', 'v1')."""
    if "/" in api_version:
        g, v = api_version.split("/", 1)
        return g, v
    return "", api_version


def _index():
    global _gvk_index
    if _gvk_index is None:
        idx = {}
        for name, d in definitions().items():
            for gvk in d.get("x-kubernetes-group-version-kind", []):
                key = (gvk.get("group", ""), gvk["version"], gvk["kind"])
                # meta/v1 types (DeleteOptions, WatchEvent, ...) claim many GVKs; the first wins.
                idx.setdefault(key, name)
        _gvk_index = idx
    return _gvk_index


def find_definition(api_version, kind):
    """Name of the definition for apiVersion + kind, or None."""
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    g, v = parse_api_version(api_version)
    return _index().get((g, v, kind))


def resolve(schema):
    """Follows $ref chains; returns (definition name or None, schema)."""
    name = None
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith(DEF_PREFIX):
            raise ValueError("unsupported $ref " + ref)
        name = ref[len(DEF_PREFIX):]
        schema = definitions()[name]
        seen += 1
        if seen > 50:
            raise ValueError("$ref loop at " + ref)
    return name, schema


def definition(name):
    return definitions()[name]


# ---- paths -------------------------------------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def join_path(base, key):
    if isinstance(key, int):
        return "%s[%d]" % (base, key)
    if _IDENT.match(key):
        return "%s.%s" % (base, key)
    return "%s[%s]" % (base, json.dumps(key))


def _type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


_INT_RANGES = {"int32": (-2 ** 31, 2 ** 31 - 1), "int64": (-2 ** 63, 2 ** 63 - 1)}
_BASE64 = re.compile(r"[A-Za-z0-9+/=\r\n]")


# ---- Go decoding: what the real server's decoder says ------------------------------------------
# The real server decodes a body into Go structs: a wrong JSON type is encoding/json's
# UnmarshalTypeError ("json: cannot unmarshal string into Go struct field
# ServicePort.spec.ports.port of type int32"; the first one is reported and decoding goes on), a
# bad time, quantity or int-or-string fails inside the type's own UnmarshalJSON and ends decoding
# at once. A strategic merge patch is instead converted from a map
# (runtime.DefaultUnstructuredConverter), with other words ("unrecognized type: int32"). Each
# TYPE problem carries both wordings.

def _go_name(defname):
    """io.k8s.api.core.v1.ServicePort -> v1.ServicePort (package.Type, as Go prints types)."""
    parts = defname.split(".")
    return parts[-1] if len(parts) < 2 else "%s.%s" % (parts[-2], parts[-1])


def _go_type(schema):
    """The Go type a schema decodes into, as reflect prints it ([]v1.ServicePort,
    map[string]string, int32, ...). Named string types (v1.Protocol, ...) are not in the spec:
    they show as string."""
    if isinstance(schema, dict) and "$ref" in schema:
        return _go_name(schema["$ref"][len(DEF_PREFIX):])
    schema = schema or {}
    typ, fmt = schema.get("type"), schema.get("format")
    if typ == "string":
        return "[]uint8" if fmt == "byte" else "string"
    if typ == "integer":
        return fmt if fmt in _INT_RANGES else "int64"
    if typ == "number":
        return "float64"
    if typ == "boolean":
        return "bool"
    if typ == "array":
        return "[]" + _go_type(schema.get("items", {}))
    if isinstance(schema.get("additionalProperties"), dict):
        return "map[string]" + _go_type(schema["additionalProperties"])
    return "map[string]interface {}" if typ == "object" else "interface {}"


def json_kind(v):
    """encoding/json's word for a JSON value in UnmarshalTypeError."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(v), "null")


def _go_kind(v):
    """reflect.Kind of a value decoded into interface{} (the unstructured form)."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    return {str: "string", list: "slice", dict: "map"}.get(type(v), "invalid")


def _unmarshal_type_error(what, gotype, ctx):
    if ctx and ctx[1]:
        return "json: cannot unmarshal %s into Go struct field %s.%s of type %s" % (
            what, ctx[0], ".".join(ctx[1]), gotype)
    return "json: cannot unmarshal %s into Go value of type %s" % (what, gotype)


def _convert_error(v, gotype):
    """DefaultUnstructuredConverter's error putting an unstructured value into a Go scalar
    (None when it converts: ints into floats, integral floats into ints, ...)."""
    k = _go_kind(v)
    if k in ("map", "slice"):
        return "unrecognized type: %s" % gotype
    if k == gotype:
        return None
    if k == "int64" and gotype in ("int32", "float64"):
        return None
    if k == "int64" and gotype == "string":
        return "cannot convert int64 to string"
    if k == "float64" and gotype in ("int32", "int64"):
        return None if v == int(v) else "cannot convert float64 to %s" % gotype
    return "unrecognized type: %s" % gotype


def _base64_error(s):
    """base64.StdEncoding's complaint about s (\\r and \\n are skipped), or None."""
    for i, ch in enumerate(s):
        if not _BASE64.match(ch):
            return "illegal base64 data at input byte %d" % i
    data = s.replace("\r", "").replace("\n", "")
    pad = data.find("=")
    if pad >= 0 and (data[pad:].strip("=") or len(data) % 4 or len(data) - pad > 2):
        return "illegal base64 data at input byte %d" % pad
    if len(data) % 4:
        return "illegal base64 data at input byte %d" % (len(data) - len(data) % 4)
    return None


def _type_problem(out, path, message, go, conv=None, aborts=False):
    out.append(Problem(TYPE, path, message, go, go if conv is None else conv, aborts))


def _mismatch(out, path, value, schema, message, ctx, conv):
    """A value of the wrong JSON type for a schema: the decoder's and the converter's words."""
    _type_problem(out, path, message,
                  _unmarshal_type_error(json_kind(value), _go_type(schema), ctx), conv)


# ---- the checker -------------------------------------------------------------------------------

def _check(value, schema, path, out, defname=None, ctx=None):
    """ctx: (Go struct name, JSON field names from the root) of the field being checked, for
    the decoder's "Go struct field" wording."""
    unresolved = schema
    name, schema = resolve(schema)
    if name is not None:
        defname = name
    if value is None:
        return  # null = unset; `required` is checked by the parent
    if name in godecode.TIME_LAYOUTS:
        if not isinstance(value, str):
            go = _unmarshal_type_error(json_kind(value), "string", None)
            _type_problem(out, path, "expected a date-time string, got %s" % _type_name(value),
                          go, aborts=True)
            return
        _, e = godecode.parse_time(value, godecode.TIME_LAYOUTS[name])
        if e is not None:
            _type_problem(out, path, e, e, aborts=True)
        return
    if defname == QUANTITY:
        e = godecode.quantity_error(value)
        if e is not None:
            _type_problem(out, path, e, e, aborts=True)
        return
    if not schema:  # {}: anything (apiextensions JSON and friends)
        return
    fmt = schema.get("format")
    if fmt == "int-or-string":
        if isinstance(value, str):
            return
        if not _is_int(value) or not (-2 ** 31 <= value < 2 ** 31):
            what = json_kind(value)
            if _is_num(value):
                what += " " + json.dumps(value)
            go = _unmarshal_type_error(what, "int32", None)
            msg = ("integer %d out of int32 range" % value if _is_int(value)
                   else "expected integer or string, got %s" % _type_name(value))
            _type_problem(out, path, msg, go, aborts=True)
        return
    typ = schema.get("type")
    if typ == "object" or (typ is None and ("properties" in schema
                                             or "additionalProperties" in schema)):
        if not isinstance(value, dict):
            conv = ("cannot restore map from %s" if "properties" not in schema
                    else "cannot restore struct from: %s") % _go_kind(value)
            _mismatch(out, path, value, unresolved,
                      "expected object, got %s" % _type_name(value), ctx, conv)
            return
        _check_object(value, schema, path, out, defname, ctx)
    elif typ == "array":
        if not isinstance(value, list):
            _mismatch(out, path, value, unresolved,
                      "expected array, got %s" % _type_name(value), ctx,
                      "cannot restore slice from %s" % _go_kind(value))
            return
        items = schema.get("items", {})
        for i, item in enumerate(value):
            _check(item, items, join_path(path, i), out, None, ctx)
        _check_list_uniqueness(value, schema, items, path, out)
    elif typ == "string":
        if not isinstance(value, str):
            if fmt == "byte":
                conv = "cannot restore slice from %s" % _go_kind(value)
            else:
                conv = _convert_error(value, "string")
            _mismatch(out, path, value, unresolved,
                      "expected string, got %s" % _type_name(value), ctx, conv)
            return
        if fmt == "byte":
            e = _base64_error(value)
            if e is not None:
                _type_problem(out, path, "expected base64 data (%s)" % e, e)
    elif typ == "integer":
        gotype = fmt if fmt in _INT_RANGES else "int64"
        lo, hi = _INT_RANGES[gotype]
        if not _is_int(value) or not lo <= value <= hi:
            what = json_kind(value)
            if _is_num(value):
                what += " " + json.dumps(value)  # a fraction or out of range
            msg = ("integer %d out of %s range" % (value, fmt or "int64") if _is_int(value)
                   else "expected integer, got %s" % _type_name(value))
            _type_problem(out, path, msg, _unmarshal_type_error(what, gotype, ctx),
                          _convert_error(value, gotype))
    elif typ == "number":
        if not _is_num(value):
            _mismatch(out, path, value, unresolved,
                      "expected number, got %s" % _type_name(value), ctx,
                      _convert_error(value, "float64"))
    elif typ == "boolean":
        if not isinstance(value, bool):
            _mismatch(out, path, value, unresolved,
                      "expected boolean, got %s" % _type_name(value), ctx,
                      _convert_error(value, "bool"))
    elif typ is None:
        return
    else:
        raise ValueError("unsupported schema type %r at %s" % (typ, path))


def _check_object(value, schema, path, out, defname=None, ctx=None):
    props = schema.get("properties")
    addl = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    for req in schema.get("required", []):
        if value.get(req) is None:
            out.append(Problem(REQUIRED, join_path(path, req), "required field is missing"))
    struct = defname.rsplit(".", 1)[-1] if defname else ""
    stack = ctx[1] if ctx else ()
    for k, v in value.items():
        sub = join_path(path, k)
        if props is not None and k in props:
            _check(v, props[k], sub, out, None, (struct, stack + (k,)))
        elif isinstance(addl, dict):
            _check(v, addl, sub, out, None, ctx)
        elif props is not None and not preserve and addl is not True:
            out.append(Problem(UNKNOWN, sub, "unknown field %s" % json.dumps(k)))
        # No properties and no additionalProperties: a free-form object (RawExtension, FieldsV1).


def _map_key(item, key):
    """A list-map key's value; `protocol` defaults to TCP wherever Kubernetes has it as a key."""
    v = item.get(key)
    if v is None and key == "protocol":
        return "TCP"
    return v


def _check_list_uniqueness(value, schema, items, path, out):
    lt = schema.get("x-kubernetes-list-type")
    if lt == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen = {}
        for i, item in enumerate(value):
            if not isinstance(item, dict) or not keys:
                continue
            k = tuple(json.dumps(_map_key(item, key), sort_keys=True) for key in keys)
            if k in seen:
                out.append(Problem(INVALID, join_path(path, i), "duplicate entry for key %s "
                                   "(same as index %d)" % (
                                       ", ".join("%s=%s" % (key, json.dumps(_map_key(item, key)))
                                                 for key in keys), seen[k])))
            else:
                seen[k] = i
    elif lt == "set":
        seen = {}
        for i, item in enumerate(value):
            k = json.dumps(item, sort_keys=True)
            if k in seen:
                out.append(Problem(INVALID, join_path(path, i), "duplicate value %s" % k))
            else:
                seen[k] = i


def check_definition(obj, defname, path="$"):
    """Problems of obj checked against the named definition."""
    out = []
    if obj is None:
        out.append(Problem(TYPE, path, "expected object, got null"))
        return out
    _check(obj, {"$ref": DEF_PREFIX + defname}, path, out)
    return out


def check(obj, path="$"):
    """Problems of a whole Kubernetes object (found by apiVersion + kind). A v1 List is checked
    item by item."""
    if not isinstance(obj, dict):
        return [Problem(TYPE, path, "expected object, got %s" % _type_name(obj))]
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if not isinstance(api_version, str) or not api_version:
        return [Problem(KIND, join_path(path, "apiVersion"), "apiVersion is required "
                        "(a non-empty string)")]
    if not isinstance(kind, str) or not kind:
        return [Problem(KIND, join_path(path, "kind"), "kind is required (a non-empty string)")]
    if api_version == "v1" and kind == "List":
        out = []
        for k in obj:
            if k not in ("apiVersion", "kind", "items", "metadata"):
                out.append(Problem(UNKNOWN, join_path(path, k), "unknown field %s"
                                   % json.dumps(k)))
        items = obj.get("items")
        if not isinstance(items, list):
            out.append(Problem(TYPE, join_path(path, "items"), "expected array, got %s"
                               % _type_name(items)))
            return out
        for i, item in enumerate(items):
            out.extend(check(item, join_path(join_path(path, "items"), i)))
        return out
    defname = find_definition(api_version, kind)
    if defname is None:
        return [Problem(KIND, path, "no schema for apiVersion %s kind %s in the Kubernetes "
                        "OpenAPI spec" % (json.dumps(api_version), json.dumps(kind)))]
    return check_definition(obj, defname, path)


def validate(obj):
    """Strict validation of one Kubernetes object; a list of "<path>: <message>" ([] = valid)."""
    return ["%s: %s" % (p.path, p.message) for p in check(obj)]


def prune_unknown(obj, defname=None):
    """A deep copy of obj with every field its schema does not define removed (what the real
    server does with fieldValidation=Ignore|Warn). defname defaults to the object's own GVK."""
    if defname is None:
        defname = find_definition(obj.get("apiVersion"), obj.get("kind"))
        if defname is None:
            return json.loads(json.dumps(obj))
    return _prune(obj, {"$ref": DEF_PREFIX + defname})


def _prune(value, schema):
    _, schema = resolve(schema)
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        res = {}
        for k, v in value.items():
            if props is not None and k in props:
                res[k] = _prune(v, props[k])
            elif isinstance(addl, dict):
                res[k] = _prune(v, addl)
            elif props is None or preserve or addl is True:
                res[k] = json.loads(json.dumps(v))
        return res
    if isinstance(value, list) and schema.get("type") == "array":
        return [_prune(v, schema.get("items", {})) for v in value]
    return json.loads(json.dumps(value))


def normalize_times(obj, defname):
    """obj (changed in place and returned) with every metav1.Time and MicroTime written as the
    real server stores it once parsed: UTC, Time to the second, MicroTime with six fraction
    digits (2026-01-02T05:04:05.5+02:00 -> 2026-01-02T03:04:05Z as a Time). Call it on objects
    that passed check()."""
    return _times(obj, {"$ref": DEF_PREFIX + defname})


def _times(value, schema):
    name, schema = resolve(schema)
    if name in godecode.TIME_LAYOUTS:
        if isinstance(value, str):
            return godecode.canonical_time(value, godecode.TIME_LAYOUTS[name])
        return value
    if isinstance(value, dict) and schema:
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                value[k] = _times(v, props[k])
            elif isinstance(addl, dict):
                value[k] = _times(v, addl)
    elif isinstance(value, list) and schema and schema.get("type") == "array":
        for i, v in enumerate(value):
            value[i] = _times(v, schema.get("items", {}))
    return value


def field_schema(defname, fields):
    """Schema reached from a definition by a list of field names / '[]' for array items; returns
    (definition name or None, resolved schema) or (None, None) when the path leaves the schema."""
    name, schema = resolve({"$ref": DEF_PREFIX + defname})
    for f in fields:
        if schema is None:
            return None, None
        if f == "[]":
            if schema.get("type") != "array":
                return None, None
            name, schema = resolve(schema.get("items", {}))
            continue
        props = schema.get("properties") or {}
        if f in props:
            name, schema = resolve(props[f])
        elif isinstance(schema.get("additionalProperties"), dict):
            name, schema = resolve(schema["additionalProperties"])
        else:
            return None, None
    return name, schema


# ---- resources and discovery -------------------------------------------------------------------

Resource = collections.namedtuple(
    "Resource", "group version plural kind namespaced verbs subresources")
# subresources: {"status": {"kind": ..., "verbs": [...]}, ...}

_ACTION_VERB = {"get": "get", "list": "list", "post": "create", "put": "update",
                "patch": "patch", "delete": "delete", "deletecollection": "deletecollection",
                "watch": "watch", "watchlist": "watch"}
_VERB_ORDER = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_resources = None


def _split_path(path):
    m = re.match(r"^/api/(v1)/(.+)$", path)
    if m:
        return "", m.group(1), m.group(2)
    m = re.match(r"^/apis/([^/{}]+)/([^/{}]+)/(.+)$", path)
    if m:
        return m.group(1), m.group(2), m.group(3)
    return None


def resources():
    """Every resource the spec's paths define (sorted by group, version, plural). Verbs come from
    x-kubernetes-action; namespaced = it has a /namespaces/{namespace}/ path. Subresources are
    listed with their own kind and verbs."""
    global _resources
    if _resources is not None:
        return _resources
    acc = {}
    for path, item in spec()["paths"].items():
        sp = _split_path(path.rstrip("/"))
        if sp is None:
            continue
        group, version, rest = sp
        segs = rest.split("/")
        if segs[0] == "watch":
            segs = segs[1:]
        namespaced = False
        if len(segs) >= 3 and segs[0] == "namespaces" and segs[1] == "{namespace}":
            namespaced = True
            segs = segs[2:]
        if not segs or segs[0].startswith("{"):
            continue
        plural = segs[0]
        sub = segs[2] if len(segs) >= 3 else None
        if len(segs) > 3 or (len(segs) >= 2 and segs[1] != "{name}"):
            continue
        r = acc.setdefault((group, version, plural), {"kind": None, "namespaced": False,
                                                      "verbs": set(), "subs": {}})
        r["namespaced"] = r["namespaced"] or namespaced
        for method, op in item.items():
            if method == "parameters" or not isinstance(op, dict):
                continue
            verb = _ACTION_VERB.get(op.get("x-kubernetes-action"))
            if verb is None:
                continue
            gvk = op.get("x-kubernetes-group-version-kind") or {}
            if sub is None:
                r["verbs"].add(verb)
                if gvk and r["kind"] is None:
                    r["kind"] = gvk.get("kind")
            else:
                s = r["subs"].setdefault(sub, {"kind": gvk.get("kind"), "verbs": set()})
                s["verbs"].add(verb)
    out = []
    for (g, v, plural), r in sorted(acc.items()):
        if r["kind"] is None or not r["verbs"]:
            continue
        subs = {k: {"kind": s["kind"], "verbs": [x for x in _VERB_ORDER if x in s["verbs"]]}
                for k, s in sorted(r["subs"].items())}
        out.append(Resource(g, v, plural, r["kind"], r["namespaced"],
                            [x for x in _VERB_ORDER if x in r["verbs"]], subs))
    _resources = out
    return out


_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(v):
    """Sort key: Kubernetes version priority (GA > beta > alpha, higher numbers first)."""
    m = _VERSION_RE.match(v)
    if not m:
        return (3, 0, 0, v)
    major = int(m.group(1))
    level = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (level, -major, -minor, v)


def groups():
    """{group: [versions, preferred first]} for every group with resources ('' = core)."""
    g = {}
    for r in resources():
        g.setdefault(r.group, set()).add(r.version)
    return {k: sorted(v, key=version_priority) for k, v in sorted(g.items())}


def find_resource(group, version, plural):
    for r in resources():
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None


# ---- OpenAPI v3, derived from v2 ---------------------------------------------------------------
# kubectl 1.32 reads /openapi/v3 (JSON) to learn that the server does field validation (then it
# leaves --validate=strict to the server) and to compute client-side apply's strategic merge
# patches. The real server generates v3 from the same Go types; here each group-version document
# is converted from the v2 spec: same paths, operations, parameters and schemas, $refs moved to
# #/components/schemas, body parameters turned into requestBody, responses given content.

_v3_docs = None


def _v3_key(path):
    sp = _split_path(path.rstrip("/"))
    if sp is None:
        p = path.rstrip("/")
        if p in ("/api/v1",):
            return "api/v1"
        m = re.match(r"^/apis/([^/{}]+)/([^/{}]+)$", p)
        return "apis/%s/%s" % (m.group(1), m.group(2)) if m else None
    g, v, _ = sp
    return "api/v1" if g == "" else "apis/%s/%s" % (g, v)


def _v3_refs(o, out):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(DEF_PREFIX):
                out.add(v[len(DEF_PREFIX):])
            else:
                _v3_refs(v, out)
    elif isinstance(o, list):
        for x in o:
            _v3_refs(x, out)


def _v3_rewrite(o):
    if isinstance(o, dict):
        return {k: ("#/components/schemas/" + v[len(DEF_PREFIX):]
                    if k == "$ref" and isinstance(v, str) and v.startswith(DEF_PREFIX)
                    else _v3_rewrite(v)) for k, v in o.items()}
    if isinstance(o, list):
        return [_v3_rewrite(x) for x in o]
    return o


def _v3_param(p, consumes=("*/*",)):
    if "$ref" in p:
        p = spec()["parameters"][p["$ref"].rsplit("/", 1)[-1]]
    if p.get("in") == "body":
        return None, {"content": {t: {"schema": p.get("schema", {})} for t in consumes},
                      "required": bool(p.get("required"))}
    q = {k: p[k] for k in ("name", "in", "description", "required") if k in p}
    sch = {k: p[k] for k in ("type", "format", "items") if k in p}
    if p.get("uniqueItems"):
        q["schema"] = dict(sch, uniqueItems=True)
    else:
        q["schema"] = sch
    return q, None


def _v3_operation(op):
    out = {k: v for k, v in op.items()
           if k not in ("consumes", "produces", "parameters", "responses", "schemes")}
    params = []
    for p in op.get("parameters", []):
        q, body = _v3_param(p, op.get("consumes") or ["*/*"])
        if body is not None:
            out["requestBody"] = body
        else:
            params.append(q)
    if params:
        out["parameters"] = params
    responses = {}
    for code, r in op.get("responses", {}).items():
        rr = {"description": r.get("description", "")}
        if "schema" in r:
            rr["content"] = {t: {"schema": r["schema"]}
                             for t in op.get("produces", ["application/json"])}
        responses[code] = rr
    out["responses"] = responses
    return out


def _v3_build():
    docs = {}
    for path, item in spec()["paths"].items():
        key = _v3_key(path)
        if key is None:
            continue
        conv = {}
        for method, op in item.items():
            if method == "parameters":
                conv["parameters"] = [q for q, _ in map(_v3_param, op) if q is not None]
            else:
                conv[method] = _v3_operation(op)
        docs.setdefault(key, {})[path] = conv
    out = {}
    for key, paths in sorted(docs.items()):
        names = set()
        _v3_refs(paths, names)
        todo = list(names)
        while todo:
            n = todo.pop()
            more = set()
            _v3_refs(definitions()[n], more)
            for m in more - names:
                names.add(m)
                todo.append(m)
        doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "unversioned"},
               "paths": _v3_rewrite(paths),
               "components": {"schemas": {n: _v3_rewrite(definitions()[n]) for n in sorted(names)},
                              "securitySchemes": {"BearerToken": {
                                  "type": "apiKey", "name": "authorization", "in": "header",
                                  "description": "Bearer Token authentication"}}}}
        out[key] = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return out


def openapi_v3_documents():
    """{"api/v1": bytes, "apis/apps/v1": bytes, ...}: one OpenAPI 3.0 JSON document per
    group-version (cached)."""
    global _v3_docs
    if _v3_docs is None:
        _v3_docs = _v3_build()
    return _v3_docs


# ---- manifests ---------------------------------------------------------------------------------

def load_manifests(text):
    """Parses a (multi-document) YAML stream into a list of objects, skipping empty documents.
    Duplicate mapping keys are an error (ValueError), as they are for kubectl."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        loader.flatten_mapping(node)
        seen = set()
        for k, _ in node.value:
            key = loader.construct_object(k, deep=deep)
            if key in seen:
                raise ValueError("duplicate key %r (line %d)" % (key, k.start_mark.line + 1))
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    # YAML 1.1 timestamps would become datetime objects; Kubernetes reads them as strings.
    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    return [d for d in yaml.load_all(text, Loader=Loader) if d is not None]


def main(argv):
    """python3 openapi.py FILE.yaml... : validates every document, prints errors, exit 1 if any."""
    if not argv:
        print("usage: openapi.py MANIFEST.yaml|- ...", file=sys.stderr)
        return 2
    bad = 0
    for fn in argv:
        text = sys.stdin.read() if fn == "-" else open(fn).read()
        for i, obj in enumerate(load_manifests(text)):
            errs = validate(obj)
            what = "%s#%d %s/%s" % (fn, i, obj.get("kind") if isinstance(obj, dict) else "?",
                                    ((obj.get("metadata") or {}).get("name")
                                     if isinstance(obj, dict) else "?"))
            for e in errs:
                print("%s: %s" % (what, e))
            bad += bool(errs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
