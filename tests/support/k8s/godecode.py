"""What the real API server's Go decoding does with values the schema alone does not settle:
metav1.Time / MicroTime parsing (Go's time.Parse with the layouts the Go types use) and their
canonical form once stored, resource.Quantity parsing, and the wording of Go's decode errors
(encoding/json's UnmarshalTypeError, runtime.DefaultUnstructuredConverter, time.ParseError).

    parse_time("yesterday", MICRO) -> (None, 'parsing time "yesterday" as
        "2006-01-02T15:04:05.000000Z07:00": cannot parse "yesterday" as "2006"')
    parse_time("2026-01-02T03:04:05Z", RFC3339) -> ((2026, 1, 2, 3, 4, 5, 0, 0), None)
    canonical_time(value, layout) -> the string the real server answers with (UTC; Time to the
                                     second, MicroTime to the microsecond), or None (a zero time)
    parse_quantity("1 core") -> the Go error message, or None when valid
    go_quote(s)                      Go's %q (strconv.Quote) of a string

Written from the behaviour of Go's time.Parse (layout chunks, getnum, fixed-width fractional
seconds, range checks, "extra text") and apimachinery's ParseQuantity; not a copy of either.
"""
import json

RFC3339 = "2006-01-02T15:04:05Z07:00"        # metav1.Time
MICRO = "2006-01-02T15:04:05.000000Z07:00"   # metav1.MicroTime (RFC3339Micro)

TIME_DEF = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
MICRO_TIME_DEF = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
TIME_LAYOUTS = {TIME_DEF: RFC3339, MICRO_TIME_DEF: MICRO}

QUANTITY_FORMAT = ("quantities must match the regular expression "
                   "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
QUANTITY_SUFFIX = "unable to parse quantity's suffix"


# ---- quoting as Go does ------------------------------------------------------------------------

def go_quote(s):
    """strconv.Quote: double quotes; \\ and " escaped; \\a \\b \\f \\n \\r \\t \\v; other control
    and non-printable characters as \\xNN / \\uNNNN; printable Unicode kept."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7f:
            out.append("\\x%02x" % o)
        elif o < 0x80 or ch.isprintable():
            out.append(ch)
        elif o <= 0xffff:
            out.append("\\u%04x" % o)
        else:
            out.append("\\U%08x" % o)
    out.append('"')
    return "".join(out)


def _time_quote(s):
    """The time package's own quote(): only " and \\ escaped, bytes outside printable ASCII as
    \\xNN."""
    out = ['"']
    for b in s.encode("utf-8", "surrogatepass"):
        c = chr(b)
        if b >= 0x80 or b < 0x20:
            out.append("\\x%02x" % b)
        elif c in '"\\':
            out.append("\\" + c)
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def go_json(v):
    """encoding/json's compact form of a decoded value: map keys sorted, <, > and & escaped as
    \\u003c, \\u003e, \\u0026 (what the server prints as a patched object)."""
    s = json.dumps(v, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def go_format_v(v):
    """fmt's %+v of a value decoded into interface{} (maps with sorted keys, as fmt prints
    them): map[a:1 b:[x y]]."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return "[" + " ".join(go_format_v(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join("%s:%s" % (k, go_format_v(v[k])) for k in sorted(v)) + "]"
    return str(v)


def _go_float(f):
    """strconv.FormatFloat(f, 'g', -1, 64), what %v prints for a float64: the shortest digits
    that round-trip, in exponent form when the exponent is < -4 or >= 6 (1e+06, 1.5e-05)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if str(f).startswith("-") else ""
    if f == 0:
        return sign + "0"
    mant, _, e = repr(abs(f)).partition("e")
    ip, _, fp = mant.partition(".")
    digits, dp = ip + fp, len(ip) + (int(e) if e else 0)
    while digits.startswith("0"):
        digits, dp = digits[1:], dp - 1
    digits = digits.rstrip("0") or "0"
    exp = dp - 1
    if exp < -4 or exp >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return "%s%se%s%02d" % (sign, m, "-" if exp < 0 else "+", abs(exp))
    if dp <= 0:
        return sign + "0." + "0" * -dp + digits
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return sign + digits[:dp] + "." + digits[dp:]


# ---- time.Parse for the two layouts ------------------------------------------------------------

class _Bad(Exception):
    pass


def _isdigit(s, i):
    return i < len(s) and "0" <= s[i] <= "9"


def _getnum(s, fixed):
    """Go's getnum: one or two digits (exactly two when fixed)."""
    if not _isdigit(s, 0):
        raise _Bad
    if not _isdigit(s, 1):
        if fixed:
            raise _Bad
        return int(s[0]), s[1:]
    return int(s[:2]), s[2:]


def _atoi(s):
    """Go's atoi: an optional sign, then digits only."""
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if not s or not s.isdigit() or not s.isascii():
        raise _Bad
    return -int(s) if neg else int(s)


def _days_in(month, year):
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


# The layouts as Go's nextStdChunk splits them: (literal prefix, std chunk).
_CHUNKS = {
    RFC3339: [("", "2006"), ("-", "01"), ("-", "02"), ("T", "15"), (":", "04"), (":", "05"),
              ("", "Z07:00")],
    MICRO: [("", "2006"), ("-", "01"), ("-", "02"), ("T", "15"), (":", "04"), (":", "05"),
            ("", ".000000"), ("", "Z07:00")],
}


def parse_time(value, layout):
    """Go's time.Parse(layout, value) for RFC3339 and RFC3339Micro. Returns
    ((year, month, day, hour, minute, second, nanosecond, offset seconds), None) or
    (None, the Go error message)."""
    chunks = _CHUNKS[layout]

    def err(elem_value, elem_layout, message=""):
        if message:
            return None, "parsing time %s%s" % (_time_quote(value), message)
        return None, "parsing time %s as %s: cannot parse %s as %s" % (
            _time_quote(value), _time_quote(layout), _time_quote(elem_value),
            _time_quote(elem_layout))

    v = value
    year = month = day = hour = minute = sec = nsec = offset = 0
    for idx, (prefix, std) in enumerate(chunks):
        # the literal prefix must match byte for byte
        for ch in prefix:
            if not v or v[0] != ch:
                return err(v, prefix)
            v = v[1:]
        hold = v
        rng = ""
        try:
            if std == "2006":
                if len(v) < 4 or not _isdigit(v, 0):
                    raise _Bad
                year, v = _atoi(v[:4]), v[4:]
            elif std == "01":
                month, v = _getnum(v, True)
                if not 0 < month <= 12:
                    rng = "month"
            elif std == "02":
                day, v = _getnum(v, True)
            elif std == "15":
                hour, v = _getnum(v, False)
                if not 0 <= hour < 24:
                    rng = "hour"
            elif std == "04":
                minute, v = _getnum(v, True)
                if not 0 <= minute < 60:
                    rng = "minute"
            elif std == "05":
                sec, v = _getnum(v, True)
                if not 0 <= sec < 60:
                    rng = "second"
                elif (len(v) >= 2 and v[0] in ".," and _isdigit(v, 1)
                      and chunks[idx + 1][1] != ".000000"):
                    # a fraction the layout does not name: any number of digits
                    n = 2
                    while n < len(v) and _isdigit(v, n):
                        n += 1
                    nsec, rng = _nanoseconds(v, n)
                    v = v[n:]
            elif std == ".000000":
                if len(v) < 7:
                    raise _Bad
                nsec, rng = _nanoseconds(v, 7)
                v = v[7:]
            elif std == "Z07:00":
                if v[:1] == "Z":
                    v = v[1:]
                    offset = 0
                else:
                    if len(v) < 6 or v[3] != ":":
                        raise _Bad
                    sign, hh, mm, v = v[0], v[1:3], v[4:6], v[6:]
                    hr, _ = _getnum(hh, True)
                    mi, _ = _getnum(mm, True)
                    if hr > 24:
                        rng = "time zone offset hour"
                    if mi > 60:
                        rng = "time zone offset minute"
                    offset = (hr * 60 + mi) * 60
                    if sign == "-":
                        offset = -offset
                    elif sign != "+":
                        raise _Bad
        except _Bad:
            if rng:
                return err(v, std, ": %s out of range" % rng)
            return err(hold, std)
        if rng:
            return err(v, std, ": %s out of range" % rng)
    if v:
        return err("", "", ": extra text: %s" % _time_quote(v))
    if day < 1 or day > _days_in(month, year):
        return err("", "", ": day out of range")
    return (year, month, day, hour, minute, sec, nsec, offset), None


def _nanoseconds(v, nbytes):
    """Go's parseNanoseconds: v starts with '.' or ','; nbytes includes it."""
    if v[0] not in ".,":
        raise _Bad
    if nbytes > 10:
        v, nbytes = v[:10], 10
    ns = _atoi(v[1:nbytes])
    if ns < 0:
        return 0, "fractional second"
    return ns * 10 ** (10 - nbytes), ""


def _to_utc(parts):
    """(year, month, day, hour, minute, second, nanosecond) in UTC for parsed parts."""
    import datetime
    year, month, day, hour, minute, sec, nsec, offset = parts
    try:
        t = datetime.datetime(year, month, day, hour, minute, sec) - \
            datetime.timedelta(seconds=offset)
    except (ValueError, OverflowError):
        return None
    return (t.year, t.month, t.day, t.hour, t.minute, t.second, nsec)


def canonical_time(value, layout):
    """What the real server stores and answers for a time it parsed: UTC, RFC3339 to the second
    for metav1.Time (the fraction is dropped), RFC3339Micro for MicroTime (six digits); None for
    Go's zero time (it marshals as null). The value itself when it cannot be represented here
    (years before 1)."""
    parts, e = parse_time(value, layout)
    if e is not None:
        return value
    utc = _to_utc(parts)
    if utc is None:
        return value
    y, mo, d, h, mi, s, ns = utc
    if (y, mo, d, h, mi, s, ns) == (1, 1, 1, 0, 0, 0, 0):
        return None
    if layout == MICRO:
        return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (y, mo, d, h, mi, s, ns // 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, mo, d, h, mi, s)


# ---- resource.Quantity -------------------------------------------------------------------------

_BIN = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DEC = ("n", "u", "m", "", "k", "M", "G", "T", "P", "E")


def _suffix_ok(suf):
    if suf in _BIN or suf in _DEC:
        return True
    if len(suf) > 1 and suf[0] in "eE":
        try:
            _atoi(suf[1:])
            return -2 ** 63 <= int(suf[1:]) < 2 ** 63
        except _Bad:
            return False
    return False


def _digits(s, pos):
    while pos < len(s) and "0" <= s[pos] <= "9":
        pos += 1
    return pos


def parse_quantity(s):
    """ParseQuantity's verdict on a string: None when it is a quantity, else the Go error
    message, following its scan: sign, digits, '.', digits, then a suffix of [eEinumkKMGTP]*
    and an optional signed exponent that must be one it knows (Ki..Ei, n..E, e<int>). A value
    without digits ("." or "e3") is 0 there too."""
    if s == "":
        return QUANTITY_FORMAT
    pos = 1 if s[0] in "+-" else 0
    while pos < len(s) and s[pos] == "0":
        pos += 1
    if pos >= len(s):
        return None  # zeros (or a bare sign): 0
    pos = _digits(s, pos)
    if pos >= len(s):
        return None
    if s[pos] == ".":
        pos = _digits(s, pos + 1)
    if pos < len(s):
        start = pos
        while pos < len(s) and s[pos] in "eEinumkKMGTP":
            pos += 1
        if pos < len(s) and s[pos] in "+-":
            pos += 1
        if _digits(s, pos) < len(s):
            return QUANTITY_FORMAT
        if not _suffix_ok(s[start:]):
            return QUANTITY_SUFFIX
    return None


def quantity_error(v):
    """Quantity.UnmarshalJSON's error for a decoded JSON value (None when valid): the value's
    JSON text, unquoted if it is a string, is parsed."""
    if isinstance(v, str):
        text = v
    else:
        text = json.dumps(v, separators=(",", ":"))
    return parse_quantity(text.strip())
