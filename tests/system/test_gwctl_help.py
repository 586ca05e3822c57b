"""gwctl's command line against its own --help and docs/cli.md: every command has a --help; the
flags it lists are the ones the command's flag table in gwctl/*.c holds and the ones the doc's
synopsis gives (required or not, repeatable or not); every listed flag is accepted, and any other
is refused with exit code 2 and one exact line. Only --help and usage errors run, so nothing
reads or writes a config file and no gateway is needed."""
import concurrent.futures
import functools
import glob
import itertools
import os
import re
import string
import subprocess

import pytest

import clharness as h

SRC = os.path.join(os.path.dirname(__file__), "../..")
DOC = os.path.join(SRC, "docs/cli.md")
BOGUS = "no-such-flag"
# the doc section whose commands talk to a gateway, and so take --context
GATEWAY_SECTION = "Objects and status"
# long names no command has, tried beside the ones other commands have
OTHER_NAMES = {"verbose", "debug", "version", "config", "namespace", "insecure", "timeout",
               "force", "all", "yes", "dry-run", "quiet", "json", "server", "type"}
# gwctl must not touch a real config even if a probe were to get past the parser
ENV = dict(os.environ, XDG_CONFIG_HOME="/nonexistent/gwctl-help", HOME="/nonexistent/gwctl-help")


def run(*args):
    return subprocess.run([h.GWCTL] + list(args), capture_output=True, text=True, env=ENV,
                          timeout=20 * h.MULT)


def assert_usage_error(r, message):
    assert (r.returncode, r.stdout, r.stderr) == (2, "", "error: " + message + "\n"), r


def assert_usage_errors(probes):
    """[(args, message)]: each run must be that usage error (two runs at a time)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda p: run(*p[0]), probes))
    for (_, message), r in zip(probes, results):
        assert_usage_error(r, message)


# ---- the flag tables, from the source (what the parser accepts) ----

FLAG_ENTRY = re.compile(r"""\{"([a-z0-9-]+)", (?:0|'(.)'), CTL_FLAG_(STR|MULTI|BOOL), """
                        r"(true|false),")
COMMAND_ROW = re.compile(r'\{"([a-z-]+)", (?:NULL|"([a-z-]+)"), "(?:[^"\\]|\\.)*", (\w+), (\d+), '
                         r'(?:NULL|"(\w+)"), (CTL_CONTEXT_\w+), \w+\}')


def source_commands():
    """{command words: {"flags": {long: (short, kind, required)}, "pos": [...], "context": ...}}
    from ctl_commands[] and the ctl_flag_spec arrays it names."""
    text = ""
    for path in sorted(glob.glob(os.path.join(SRC, "gwctl/*.c"))):
        with open(path) as f:
            text += f.read()
    arrays = {}
    for m in re.finditer(r"struct ctl_flag_spec (\w+)\[\] = \{(.*?)\n\};", text, re.S):
        arrays[m.group(1)] = {e.group(1): (e.group(2), e.group(3), e.group(4) == "true")
                              for e in FLAG_ENTRY.finditer(m.group(2))}
    cmds = {}
    for m in COMMAND_ROW.finditer(text):
        verb, typ, flags, npos, posname, context = m.groups()
        assert flags == "NULL" or flags in arrays, flags
        cmds[verb + (" " + typ if typ else "")] = {
            "flags": arrays.get(flags, {}), "pos": [posname] * int(npos), "context": context,
            "parse": (flags, context, npos)}
    return cmds


SOURCE = source_commands()
COMMANDS = sorted(SOURCE)


def parse_groups():
    """One command per parser path: commands sharing a flag array, context use and positional
    count (`create peer` and `update peer`, the four `delete`s) are parsed alike."""
    first = {}
    for cmd in COMMANDS:
        first.setdefault(SOURCE[cmd]["parse"], cmd)
    return sorted(first.values())


PARSE_GROUPS = parse_groups()


# ---- --help, parsed ----

FLAG_LINE = re.compile(r"^  (?:-(\S), |    )--([a-z0-9-]+)(?: ([A-Z][A-Z0-9_-]*))?  +(.*)$")


def help_text(*words):
    r = run(*words, "--help")
    assert (r.returncode, r.stderr) == (0, ""), r
    return r.stdout


def listed_commands(text):
    """The command words under "Commands:" in a help text."""
    block = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    words = []
    for line in block.splitlines():
        m = re.match(r"^  (\S+(?: \S+)?)  +\S", line)
        assert m, line
        words.append(m.group(1))
    return words


@functools.lru_cache(maxsize=None)
def command_help(cmd):
    """{"pos": [...], "flags": {long: (short, value, required, repeatable)},
    "globals": {long: short}} from `gwctl <cmd> --help`."""
    text = help_text(*cmd.split())
    first = text.split("\n", 1)[0]
    m = re.fullmatch(r"Usage: gwctl %s((?: [A-Z]+)*) \[flags\]" % re.escape(cmd), first)
    assert m, first
    out = {"pos": m.group(1).split(), "flags": {}, "globals": {}}
    for block in text.split("\n\n"):
        head, _, body = block.partition("\n")
        if head not in ("Flags:", "Global flags:"):
            continue
        for line in body.splitlines():
            f = FLAG_LINE.match(line)
            assert f, line
            short, name, value, desc = f.groups()
            if head == "Global flags:":
                out["globals"][name] = short
            else:
                out["flags"][name] = (short, value is not None, desc.endswith("(required)"),
                                      "(repeatable)" in desc)
    return out


# ---- docs/cli.md, parsed ----

def doc_text():
    with open(DOC) as f:
        return f.read()


def doc_short_forms():
    """{"o": "output", ...}: the doc's "`-o` is `--output`"."""
    return dict(re.findall(r"`-([A-Za-z0-9])` is `--([a-z0-9-]+)`", doc_text()))


def parse_synopsis(text, short_forms):
    """"create|update peer --name <name> [--port <port> ...]" -> (commands, flags, shorts, pos)
    with flags {long: {"required": bool, "repeatable": bool}} and shorts {short: long}."""
    toks = text.replace("[", " [ ").replace("]", " ] ").split()
    words = []
    while toks and re.fullmatch(r"[a-z][a-z|-]*", toks[0]):
        words.append(toks.pop(0).split("|"))
    cmds = [" ".join(w) for w in itertools.product(*words)]
    flags, shorts, pos = {}, {}, []
    groups = [[]]  # the flags seen at each bracket depth, innermost last
    last = None
    value_next = False
    for t in toks:
        if t == "[":
            groups.append([])
        elif t == "]":
            inner = groups.pop()
            groups[-1].extend(inner)
        elif t == "...":
            for name in (groups[-1] if len(groups) > 1 else [last]):
                flags[name]["repeatable"] = True
        elif t.startswith("-"):
            if t.startswith("--"):
                name = t[2:]
            else:
                assert t[1:] in short_forms, "the doc does not say what %s is short for" % t
                name = short_forms[t[1:]]
                shorts[t[1:]] = name
            f = flags.setdefault(name, {"required": False, "repeatable": False})
            f["required"] = f["required"] or len(groups) == 1
            groups[-1].append(name)
            last = name
            value_next = True
            continue
        elif not value_next:
            pos.append(t)
        value_next = False
    return cmds, flags, shorts, pos


def doc_synopses():
    """{command: (section, flags, shorts, pos)} from the `    gwctl ...` lines of docs/cli.md
    (a line indented deeper continues the one above)."""
    short_forms = doc_short_forms()
    entries, cur, section = [], None, None
    for line in doc_text().split("\n"):
        if line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("    gwctl "):
            cur = [section, line[len("    gwctl "):]]
            entries.append(cur)
        elif cur is not None and line.startswith("     ") and line.strip():
            cur[1] += " " + line.strip()
        else:
            cur = None
    out = {}
    for section, text in entries:
        cmds, flags, shorts, pos = parse_synopsis(text, short_forms)
        for c in cmds:
            assert c not in out, "%s has two synopses" % c
            out[c] = (section, flags, shorts, pos)
    return out


def doc_table_commands():
    """The commands of the request table, with `<type>` spelled out as the doc defines it."""
    doc = doc_text()
    section = doc.split("## " + GATEWAY_SECTION + "\n", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"`<type>` is ((?:`[a-z-]+`(?:, | or )?)+)", section)
    assert m, "the doc does not say what <type> is"
    types = re.findall(r"`([a-z-]+)`", m.group(1))
    rows = re.findall(r"(?m)^\| `([^`]+)` \|", section)
    assert len(rows) > 5  # the table was found
    cmds = set()
    for row in rows:
        words = row.split()
        assert all(re.fullmatch(r"[a-z-]+|<type>", w) for w in words), row
        for t in types if "<type>" in words else [None]:
            cmds.add(" ".join(t if w == "<type>" else w for w in words))
    return cmds


# ---- the tests ----

def test_help_lists_every_command():
    assert len(COMMANDS) > 20  # ctl_commands[] was found
    listed = listed_commands(help_text())
    assert len(listed) == len(set(listed))
    assert set(listed) == set(COMMANDS)
    assert set(doc_synopses()) == set(COMMANDS)
    # `gwctl <verb> --help` lists that verb's types, the same way
    for verb in {c.split()[0] for c in COMMANDS if " " in c}:
        assert listed_commands(help_text(verb)) == [c for c in listed if c.split()[0] == verb]


def test_request_table_names_real_commands():
    table = doc_table_commands()
    assert table <= set(COMMANDS)
    talking = {c for c, (section, *_) in doc_synopses().items() if section == GATEWAY_SECTION}
    assert talking and talking <= table


def test_doc_short_forms_are_the_real_ones():
    real = {}
    for cmd in COMMANDS:
        hp = command_help(cmd)
        real.update({f[0]: name for name, f in hp["flags"].items() if f[0]})
        real.update({s: name for name, s in hp["globals"].items() if s})
    assert doc_short_forms() == real


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_shows_the_flag_table(cmd):
    """What --help lists is what the parser's table holds, flag by flag."""
    hp, src = command_help(cmd), SOURCE[cmd]
    assert run(*cmd.split(), "-h").stdout == help_text(*cmd.split())
    assert hp["pos"] == src["pos"]
    assert hp["flags"] == {name: (short, kind != "BOOL", required, kind == "MULTI")
                           for name, (short, kind, required) in src["flags"].items()}
    expected = {"help": "h"}
    if src["context"] != "CTL_CONTEXT_NONE":
        expected["context"] = None
    assert hp["globals"] == expected


@pytest.mark.parametrize("cmd", COMMANDS)
def test_doc_synopsis_matches_help(cmd):
    synopses = doc_synopses()
    assert cmd in synopses, "docs/cli.md has no synopsis for " + cmd
    section, flags, shorts, pos = synopses[cmd]
    hp = command_help(cmd)
    doc_flags = set(flags) | ({"context"} if section == GATEWAY_SECTION else set())
    assert doc_flags == set(hp["flags"]) | (set(hp["globals"]) - {"help"})
    for name, f in flags.items():
        if name in hp["flags"]:
            _, _, required, repeatable = hp["flags"][name]
            assert (f["required"], f["repeatable"]) == (required, repeatable), name
        else:
            assert not f["required"] and not f["repeatable"], name  # a global flag
    for short, name in shorts.items():
        assert (hp["flags"].get(name) or (hp["globals"].get(name),))[0] == short, short
    assert [p.strip("<>").upper() for p in pos] == hp["pos"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_listed_flags_are_accepted(cmd):
    """Each flag --help lists, in each form, is taken (with its value): the bogus flag after it
    is the one refused."""
    hp, words = command_help(cmd), cmd.split()
    refusal = 'unknown flag --%s for "%s"' % (BOGUS, cmd)
    probes = [(words + ["--" + BOGUS], refusal)]
    for name, (short, value, _, _) in hp["flags"].items():
        forms = [["--" + name, "v"], ["--" + name + "=v"]] if value else [["--" + name]]
        if short:
            forms += [["-" + short, "v"], ["-" + short + "v"]] if value else [["-" + short]]
        probes += [(words + form + ["--" + BOGUS], refusal) for form in forms]
    if "context" in hp["globals"]:
        probes += [(words + ["--context", "v", "--" + BOGUS], refusal),
                   (["--context=v"] + words + ["--" + BOGUS], refusal)]
    else:
        message = '--context does not apply to "%s"' % cmd
        probes += [(["--context", "v"] + words, message), (words + ["--context=v"], message)]
    assert_usage_errors(probes)


@pytest.mark.parametrize("cmd", PARSE_GROUPS)
def test_unlisted_flags_are_refused(cmd):
    """Every other flag is a usage error naming it: each long name any command has (and a few
    more), and every one-letter flag. One command per parser path (PARSE_GROUPS)."""
    assert len(PARSE_GROUPS) > 10
    hp, words = command_help(cmd), cmd.split()
    names = set(OTHER_NAMES)
    for c in SOURCE.values():
        names.update(c["flags"])
    for section, flags, _, _ in doc_synopses().values():
        names.update(flags)
    probes = [(words + ["--" + name, "v"], 'unknown flag --%s for "%s"' % (name, cmd))
              for name in sorted(names - set(hp["flags"]) - {"context", "help"})]
    shorts = {f[0] for f in hp["flags"].values()} | {"h"}
    probes += [(words + ["-" + letter, "v"], 'unknown flag -%s for "%s"' % (letter, cmd))
               for letter in sorted(set(string.ascii_letters) - shorts)]
    if h.MULT > 1:
        # under the sanitizers (each run ten times slower) every third probe, first and last
        # always: the same parser path, checked for memory errors; the plain build tries all
        probes = probes[::3] + probes[-1:]
    assert_usage_errors(probes)
