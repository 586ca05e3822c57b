"""Label and field selectors as the Kubernetes API server parses them (list and watch).

parse_label_selector("app=x,tier!=db,env in (a,b),!legacy") -> LabelSelector; .matches(labels)
parse_field_selector("metadata.name=x,status.podIP!=1.2.3.4", supported) -> FieldSelector
Both raise SelectorError (the server answers 400 BadRequest) on bad syntax or unsupported fields.
"""
import re


class SelectorError(ValueError):
    pass


_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_RE = re.compile(r"^(([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/)?"
                           + _NAME + "$")
_VALUE_RE = re.compile("^(" + _NAME + ")?$")


def valid_label_key(k):
    if not _QUALIFIED_RE.match(k):
        return False
    prefix, _, name = k.rpartition("/")
    return len(name) <= 63 and len(prefix) <= 253


def valid_label_value(v):
    return len(v) <= 63 and bool(_VALUE_RE.match(v))


class LabelSelector:
    """A conjunction of requirements (key, op, values); op: =, !=, in, notin, exists, !, gt, lt."""

    def __init__(self, reqs):
        self.reqs = reqs

    def empty(self):
        return not self.reqs

    def matches(self, labels):
        labels = labels or {}
        for key, op, values in self.reqs:
            has = key in labels
            v = labels.get(key)
            if op in ("=", "in"):
                if not has or v not in values:
                    return False
            elif op in ("!=", "notin"):
                if has and v in values:
                    return False
            elif op == "exists":
                if not has:
                    return False
            elif op == "!":
                if has:
                    return False
            elif op in ("gt", "lt"):
                try:
                    n = int(v)
                except (TypeError, ValueError):
                    return False
                if not has or not (n > values[0] if op == "gt" else n < values[0]):
                    return False
        return True


_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|>|<|[^\s(),!=<>]+)")


def _tokens(s):
    pos = 0
    out = []
    while pos < len(s):
        if s[pos:].strip() == "":
            break
        m = _TOKEN.match(s, pos)
        if not m:
            raise SelectorError("unable to parse requirement: bad character at %d in %r" % (pos, s))
        out.append(m.group(1))
        pos = m.end()
    return out


def parse_label_selector(s):
    toks = _tokens(s or "")
    reqs = []
    i = 0

    def need(cond, what):
        if not cond:
            raise SelectorError("unable to parse requirement: %s in %r" % (what, s))

    def check_key(k):
        need(k not in ("(", ")", ",", "=", "==", "!=", "!", ">", "<"), "expected a key")
        if not valid_label_key(k):
            raise SelectorError("unable to parse requirement: invalid label key %r: name part must "
                                "consist of alphanumeric characters, '-', '_' or '.', and must "
                                "start and end with an alphanumeric character" % k)

    def check_value(v):
        if not valid_label_value(v):
            raise SelectorError("unable to parse requirement: invalid label value: %r: a valid "
                                "label must be an empty string or consist of alphanumeric "
                                "characters, '-', '_' or '.', and must start and end with an "
                                "alphanumeric character" % v)

    while i < len(toks):
        t = toks[i]
        if t == "!":
            need(i + 1 < len(toks), "expected a key after '!'")
            check_key(toks[i + 1])
            reqs.append((toks[i + 1], "!", ()))
            i += 2
        else:
            check_key(t)
            key = t
            i += 1
            if i >= len(toks) or toks[i] == ",":
                reqs.append((key, "exists", ()))
            else:
                op = toks[i]
                i += 1
                if op in ("=", "==", "!="):
                    v = ""
                    if i < len(toks) and toks[i] != ",":
                        v = toks[i]
                        i += 1
                    check_value(v)
                    reqs.append((key, "=" if op != "!=" else "!=", (v,)))
                elif op in ("in", "notin"):
                    need(i < len(toks) and toks[i] == "(", "expected '(' after " + op)
                    i += 1
                    vals = []
                    while True:
                        need(i < len(toks), "missing ')'")
                        if toks[i] == ")":
                            i += 1
                            break
                        if toks[i] == ",":
                            i += 1
                            continue
                        check_value(toks[i])
                        vals.append(toks[i])
                        i += 1
                    need(vals, "for 'in', 'notin' operators, values set can't be empty")
                    reqs.append((key, op, tuple(vals)))
                elif op in (">", "<"):
                    need(i < len(toks), "expected a number")
                    try:
                        n = int(toks[i])
                    except ValueError:
                        raise SelectorError("unable to parse requirement: for 'Gt', 'Lt' "
                                            "operators, the value must be an integer")
                    i += 1
                    reqs.append((key, "gt" if op == ">" else "lt", (n,)))
                else:
                    raise SelectorError("unable to parse requirement: found '%s', expected: "
                                        "'=', '!=', '==', 'in', notin'" % op)
        if i < len(toks):
            need(toks[i] == ",", "expected ','")
            i += 1
            need(i < len(toks), "expected a requirement after ','")
    return LabelSelector(reqs)


def selector_from_labels(labels):
    """Equality selector from a map (a Service selector, matchLabels)."""
    return LabelSelector([(k, "=", (v,)) for k, v in sorted((labels or {}).items())])


def selector_from_label_selector(ls):
    """metav1.LabelSelector {matchLabels, matchExpressions} -> LabelSelector."""
    reqs = [(k, "=", (v,)) for k, v in sorted(((ls or {}).get("matchLabels") or {}).items())]
    for e in (ls or {}).get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}[e["operator"]]
        reqs.append((e["key"], op, tuple(e.get("values") or ())))
    return LabelSelector(reqs)


class FieldSelector:
    def __init__(self, reqs):
        self.reqs = reqs  # (path, op, value); op in "=", "!="

    def empty(self):
        return not self.reqs

    def matches(self, fields):
        for path, op, value in self.reqs:
            v = fields.get(path, "")
            if (v == value) != (op == "="):
                return False
        return True


def parse_field_selector(s, supported):
    """supported: the field labels this resource can be selected on (like the real server, an
    unsupported one is a 400)."""
    reqs = []
    for part in (s or "").split(","):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([^=!]+?)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (s, part))
        path, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if path not in supported:
            raise SelectorError('field label not supported: %s' % path)
        reqs.append((path, "!=" if op == "!=" else "=", value))
    return FieldSelector(reqs)
