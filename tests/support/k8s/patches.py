"""The three PATCH formats the Kubernetes API server takes over JSON.

merge_patch(doc, patch)            application/merge-patch+json (RFC 7386)
json_patch(doc, ops)               application/json-patch+json (RFC 6902)
strategic_merge_patch(doc, patch, defname)
                                   application/strategic-merge-patch+json: lists are merged by the
                                   x-kubernetes-patch-merge-key / x-kubernetes-patch-strategy the
                                   OpenAPI spec gives for each field (Service ports by port,
                                   containers by name, env by name, ...), with the directives
                                   kubectl's client-side apply sends: $patch (replace | delete |
                                   merge), $retainKeys, $setElementOrder/<list>,
                                   $deleteFromPrimitiveList/<list>; null deletes a field.
PatchError -> 400 BadRequest (malformed), PatchConflict -> 422 (a json-patch `test` failed or a
path that does not exist).
"""
import copy
import json

import openapi


class PatchError(ValueError):
    pass


class PatchConflict(ValueError):
    pass


# ---- RFC 7386 ----------------------------------------------------------------------------------

def merge_patch(doc, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    res = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            res.pop(k, None)
        else:
            res[k] = merge_patch(res.get(k), v)
    return res


# ---- RFC 6902 ----------------------------------------------------------------------------------

def _pointer(path):
    if path == "":
        return []
    if not isinstance(path, str) or not path.startswith("/"):
        raise PatchError("invalid JSON pointer %r" % (path,))
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container, tok, allow_end=False):
    if tok == "-" and allow_end:
        return len(container)
    if not tok.isdigit() or (tok != "0" and tok.startswith("0")):
        raise PatchConflict("invalid array index %r" % tok)
    i = int(tok)
    if i > len(container) or (i == len(container) and not allow_end):
        raise PatchConflict("array index %d out of bounds" % i)
    return i


def _walk(doc, toks):
    cur = doc
    for t in toks:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchConflict("path component %r not found" % t)
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t)]
        else:
            raise PatchConflict("path component %r: not a container" % t)
    return cur


def _get(doc, path):
    return _walk(doc, _pointer(path))


def _add(doc, path, value):
    toks = _pointer(path)
    if not toks:
        return value
    parent = _walk(doc, toks[:-1])
    last = toks[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise PatchConflict("cannot add to a non-container at %s" % path)
    return doc


def _remove(doc, path):
    toks = _pointer(path)
    if not toks:
        raise PatchConflict("cannot remove the root")
    parent = _walk(doc, toks[:-1])
    last = toks[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchConflict("unable to remove nonexistent key: %s" % last)
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last))
    raise PatchConflict("cannot remove from a non-container at %s" % path)


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be an array of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("invalid JSON patch operation %s" % json.dumps(op))
        kind = op["op"]
        path = op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError("operation %s at %s has no value" % (kind, path))
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            if _pointer(path):
                _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise PatchError("operation %s has no from" % kind)
            if kind == "move" and (path + "/").startswith(op["from"] + "/") and path != op["from"]:
                raise PatchConflict("cannot move %s into its own child %s" % (op["from"], path))
            value = copy.deepcopy(_get(doc, op["from"]))
            if kind == "move":
                _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchConflict("testing value %s failed" % path)
        else:
            raise PatchError("unknown JSON patch operation %r" % kind)
    return doc


# ---- strategic merge patch ---------------------------------------------------------------------

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def _sub_schema(schema, key):
    """(resolved schema of field key, raw property schema with the patch extensions)."""
    if schema is None:
        return None, {}
    props = schema.get("properties")
    if props is not None and key in props:
        return openapi.resolve(props[key])[1], props[key]
    addl = schema.get("additionalProperties")
    if isinstance(addl, dict):
        return openapi.resolve(addl)[1], addl
    return None, {}


def strategic_merge_patch(doc, patch, defname):
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    schema = openapi.resolve({"$ref": openapi.DEF_PREFIX + defname})[1] if defname else None
    return _smp_map(doc if isinstance(doc, dict) else {}, patch, schema)


def _smp_map(orig, patch, schema):
    directive = patch.get(DIRECTIVE)
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items()
                if k != DIRECTIVE and not k.startswith("$")}
    if directive not in (None, "merge"):
        raise PatchError("unknown patch type: %s in map: %s" % (directive, json.dumps(patch)))
    res = copy.deepcopy(orig)
    orders = {}
    for k, v in patch.items():
        if k == DIRECTIVE or k == RETAIN_KEYS:
            continue
        if k.startswith(SET_ORDER):
            orders[k[len(SET_ORDER):]] = v
            continue
        if k.startswith(DELETE_PRIMITIVE):
            field = k[len(DELETE_PRIMITIVE):]
            if not isinstance(v, list):
                raise PatchError("%s must be a list" % k)
            if isinstance(res.get(field), list):
                res[field] = [x for x in res[field] if x not in v]
            continue
        if k.startswith("$"):
            raise PatchError("unknown directive %s" % k)
        if v is None:
            res.pop(k, None)
            continue
        sub, prop = _sub_schema(schema, k)
        if isinstance(v, dict):
            merged = _smp_map(res[k] if isinstance(res.get(k), dict) else {}, v, sub)
            if merged is None:
                res.pop(k, None)
            else:
                res[k] = merged
        elif isinstance(v, list):
            res[k] = _smp_list(res.get(k) if isinstance(res.get(k), list) else [], v, sub, prop)
        else:
            res[k] = copy.deepcopy(v)
    for field, order in orders.items():
        if isinstance(res.get(field), list):
            _, prop = _sub_schema(schema, field)
            res[field] = _apply_order(res[field], order, prop.get("x-kubernetes-patch-merge-key"))
    if RETAIN_KEYS in patch:
        keep = patch[RETAIN_KEYS]
        if not isinstance(keep, list):
            raise PatchError("$retainKeys must be a list")
        res = {k: v for k, v in res.items() if k in keep}
    return res


def _smp_list(orig, patch, schema, prop):
    strategy = (prop.get("x-kubernetes-patch-strategy") or "").split(",")
    key = prop.get("x-kubernetes-patch-merge-key")
    if "merge" not in strategy:
        return [x for x in copy.deepcopy(patch)
                if not (isinstance(x, dict) and x.get(DIRECTIVE) is not None and len(x) == 1)]
    items = openapi.resolve(schema.get("items", {}))[1] if schema else None
    if not key:  # a merged list of primitives: union, original order first
        res = copy.deepcopy(orig)
        if any(isinstance(x, dict) and x.get(DIRECTIVE) == "replace" for x in patch):
            return [copy.deepcopy(y) for y in patch if not isinstance(y, dict)]
        for x in patch:
            if x not in res:
                res.append(copy.deepcopy(x))
        return res
    if any(isinstance(x, dict) and x.get(DIRECTIVE) == "replace" for x in patch):
        return [{k: v for k, v in x.items() if k != DIRECTIVE} for x in copy.deepcopy(patch)
                if not (isinstance(x, dict) and x.get(DIRECTIVE) == "replace")]
    res = copy.deepcopy(orig)
    for x in patch:
        if not isinstance(x, dict):
            raise PatchError("list with merge key %s holds a non-object: %s"
                             % (key, json.dumps(x)))
        if key not in x:
            raise PatchError("map: %s does not contain declared merge key: %s"
                             % (json.dumps(x), key))
        idx = next((i for i, y in enumerate(res) if isinstance(y, dict)
                    and y.get(key) == x[key]), None)
        if x.get(DIRECTIVE) == "delete":
            if idx is not None:
                res.pop(idx)
            continue
        if idx is None:
            merged = _smp_map({}, x, items)
            if merged is not None:
                res.append(merged)
        else:
            merged = _smp_map(res[idx], x, items)
            if merged is None:
                res.pop(idx)
            else:
                res[idx] = merged
    return res


def _apply_order(lst, order, key):
    """$setElementOrder: the listed elements first, in the given order; the rest (set on the
    server only) after them in their original order."""
    def ident(x):
        if key and isinstance(x, dict):
            return json.dumps(x.get(key), sort_keys=True)
        return json.dumps(x, sort_keys=True)
    if not isinstance(order, list):
        raise PatchError("$setElementOrder must be a list")
    rank = {ident(o): i for i, o in enumerate(order)}
    listed = sorted((x for x in lst if ident(x) in rank), key=lambda x: rank[ident(x)])
    return listed + [x for x in lst if ident(x) not in rank]
