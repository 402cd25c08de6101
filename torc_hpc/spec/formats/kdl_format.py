"""KDL specs (Torc writes them), read with `ckdl` (KDL 1.0 and 2.0) and mapped onto the spec's keys.

Torc reads KDL node by node: a node's name is the key and its first argument the value; repeated nodes
make lists; `job "NAME" { … }` (and file, user_data, resource_requirements, failure_handler,
slurm_scheduler, dataset, action) are entries of the plural list. The mapping here follows the same rules
for every key (a node with children is a mapping; one argument is a value; several arguments, or a node
given again, a list), plus the spellings Torc's examples use (`depends_on_job`, `blocked_by_job`,
`input_file`, `output_file`, `job`/`command` inside an action, `rule` inside a failure handler). Unlike Torc,
an unknown node is not dropped: it becomes an unknown key and the schema reports it.

ckdl reports no positions, so a small scanner of our own walks the text once (strings, comments,
slashdash, braces) and lists every node's name and line in document order; pairing that list with ckdl's
nodes locates semantic errors. Parse errors are located by parsing prefixes that end between nodes
(a binary search: a few parses of a bounded text).
"""

from __future__ import annotations

import json
import math
import re

import ckdl

from torc_hpc.limits import MAX_NESTING_DEPTH, MAX_VALUE_TEXT_LENGTH
from torc_hpc.spec.formats import FormatError, SpecFormat

# Top-level nodes that are entries of a list: node name → the spec's key.
SECTIONS = {"job": "jobs", "file": "files", "user_data": "user_data",
            "resource_requirements": "resource_requirements", "failure_handler": "failure_handlers",
            "slurm_scheduler": "slurm_schedulers", "dataset": "datasets", "action": "actions"}
# Inside an entry: node names that mean another key (older or singular spellings).
ALIASES = {
    "jobs": {"depends_on_job": "depends_on", "blocked_by_job": "depends_on", "input_file": "input_files",
             "output_file": "output_files", "input_dataset": "input_datasets", "output_dataset": "output_datasets"},
    "actions": {"job": "jobs", "command": "commands", "job_name_regex": "job_name_regexes"},
    "failure_handlers": {"rule": "rules"},
}
# Inside an entry: keys whose value is a list, so that one node with one argument is a list of one.
LIST_KEYS = {
    "jobs": {"depends_on", "depends_on_regexes", "input_files", "output_files", "input_file_regexes",
             "output_file_regexes", "input_user_data", "output_user_data", "input_user_data_regexes",
             "output_user_data_regexes", "input_datasets", "output_datasets", "use_parameters",
             "blocked_by_job_names", "input_file_names", "output_file_names", "input_user_data_names",
             "output_data_names"},
    "files": {"use_parameters"}, "user_data": {"use_parameters"}, "datasets": {"use_parameters"},
    "actions": {"jobs", "job_name_regexes", "commands", "job_names"},
    "rules": {"exit_codes"},
    "resource_monitor": {"metrics"},
    "": {"access_groups"},
}
OBJECT_LISTS = {"failure_handlers": {"rules"}}  # children that are entries of a list (no name argument)


# ---- the scanner: node names and lines, in document order --------------------------------------------
_TOKENS = re.compile(r"""
    (?P<nl>\r\n|[\n\r\x0b\x0c\x85\u2028\u2029])
  | (?P<ws>[ \t\ufeff\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+)
  | (?P<line_comment>//[^\n\r\x85\u2028\u2029]*)
  | (?P<block_comment>/\*)
  | (?P<slashdash>/-)
  | (?P<cont>\\)
  | (?P<raw>r?(?P<hashes>\#+)"(?s:.*?)"(?P=hashes) | r"[^"]*")
  | (?P<multi>\"\"\"(?s:(?:[^\\]|\\.)*?)\"\"\")
  | (?P<string>"(?s:(?:[^"\\]|\\.)*)")
  | (?P<annotation>\((?:"(?:[^"\\]|\\.)*"|[^)"])*\))
  | (?P<open>\{) | (?P<close>\}) | (?P<semi>;) | (?P<eq>=)
  | (?P<bare>[^\s\\/(){}<>;\[\]=,"]+)
  | (?P<other>.)
""", re.X)


class _ScanError(Exception):
    pass


def _skip_block_comment(text: str, i: int) -> int:
    """End of a (nestable) /* */ comment starting at i."""
    depth, n = 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            depth += 1
            i += 2
        elif text.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise _ScanError("an unclosed /* comment")


def _name(tok: str, kind: str) -> str:
    if kind == "string":
        try:
            return json.loads(tok.replace("\n", "\\n"))
        except ValueError:
            return tok[1:-1]
    if kind == "raw":
        body = tok[1:] if tok.startswith("r") else tok
        h = len(body) - len(body.lstrip("#"))
        return body[h + 1:len(body) - h - 1]
    return tok


class Scan:
    """Every node (not commented out with /-) in document order: (name, line), plus the offsets where a
    node ends at nesting depth d with nothing else open (cut points for locating parse errors), duplicate
    properties and over-long numbers."""

    def __init__(self, text: str):
        self.nodes: list[tuple[str, int]] = []
        self.cuts: list[tuple[int, int, int]] = []  # (offset, depth, line) after a complete node
        self.open_lines: list[int] = []
        self.deep_line: int | None = None  # where nesting first goes past MAX_NESTING_DEPTH
        self.problem: FormatError | None = None
        try:
            self._run(text)
        except _ScanError:
            pass

    def _run(self, text: str) -> None:
        line, i, n = 1, 0, len(text)
        stack: list[bool] = []      # per open '{': whether its nodes are commented out
        in_node = False             # between a node's name and its end
        node_skipped = False
        pending_slashdash = False
        props: set[str] = set()
        last_bare = None
        while i < n:
            m = _TOKENS.match(text, i)
            kind = m.lastgroup
            tok = m.group()
            if kind == "hashes":
                kind = "raw"
            if kind == "block_comment":
                end = _skip_block_comment(text, i)
                line += _newlines(text[i:end])
                i = end
                continue
            i = m.end()
            if kind == "nl":
                line += 1
                if in_node:
                    in_node = False
                    self._cut(i, stack, line)
                continue
            if kind in ("ws", "line_comment"):
                continue
            if kind == "cont":  # line continuation: up to and including the next newline
                m2 = re.compile(r"[ \t]*(?://[^\n\r]*)?(\r\n|[\n\r\x85\u2028\u2029])?").match(text, i)
                i = m2.end()
                if m2.group(1):
                    line += 1
                continue
            if kind == "slashdash":
                pending_slashdash = True
                continue
            if kind == "semi":
                if in_node:
                    in_node = False
                    self._cut(i, stack, line)
                continue
            if kind == "open":
                stack.append(pending_slashdash or node_skipped or bool(stack and stack[-1]))
                self.open_lines.append(line)
                if len(stack) >= MAX_NESTING_DEPTH and self.deep_line is None:
                    self.deep_line = line
                pending_slashdash = False
                in_node = False
                continue
            if kind == "close":
                if stack:
                    stack.pop()
                    self.open_lines.pop()
                in_node = True  # the node owning the block ends at the next terminator
                node_skipped = bool(stack and stack[-1])
                continue
            if kind == "annotation":
                line += _newlines(tok)
                continue
            if kind == "eq":
                if last_bare is not None and not pending_slashdash:
                    if last_bare in props and self.problem is None and not node_skipped:
                        self.problem = FormatError(
                            f"property '{last_bare}' appears twice on this node; KDL parsers would silently "
                            "keep only the last one: remove or rename one of them", line=line)
                    props.add(last_bare)
                continue
            if kind == "other" and tok in "\"(":
                raise _ScanError("an unterminated string or annotation")  # ckdl reports it; lines stop here
            if kind in ("string", "raw", "multi", "bare", "other"):
                if not in_node:  # a node's name
                    node_skipped = pending_slashdash or bool(stack and stack[-1])
                    if not node_skipped:
                        self.nodes.append((_name(tok, kind), line))
                    in_node = True
                    props = set()
                elif kind == "bare" and tok[:1] in "+-.0123456789" and len(tok) > MAX_VALUE_TEXT_LENGTH \
                        and self.problem is None:
                    self.problem = FormatError(
                        f"a number of {len(tok):,} characters is too long: numbers are at most "
                        f"{MAX_VALUE_TEXT_LENGTH} characters (torc_hpc.limits.MAX_VALUE_TEXT_LENGTH)", line=line)
                pending_slashdash = False
                last_bare = _name(tok, kind) if kind in ("bare", "string", "raw") else None
                line += _newlines(tok)
                continue
        if in_node:
            self._cut(n, stack, line)

    def _cut(self, offset: int, stack: list, line: int) -> None:
        self.cuts.append((offset, len(stack), line))


def _newlines(tok: str) -> int:
    return tok.count("\n") + tok.count("\r") - tok.count("\r\n") + tok.count("\x85") + tok.count("\u2028") \
        + tok.count("\u2029")


# ---- parsing -------------------------------------------------------------------------------------------

def _ckdl(text: str):
    return ckdl.parse(text, version="any")


def _parse_error_line(text: str, scan: Scan) -> int | None:
    """The line of a parse error: the first stretch between two node ends that does not parse."""
    def ok(k: int) -> bool:
        offset, depth, _ = scan.cuts[k]
        try:
            _ckdl(text[:offset] + "\n" + "}\n" * depth)
            return True
        except (ckdl.ParseError, ValueError):
            return False

    lo, hi = 0, len(scan.cuts) - 1
    if hi < 0:
        return 1
    if ok(hi):  # every node parsed: the end is the problem (an unclosed block, an unfinished node)
        return scan.open_lines[-1] if scan.open_lines else scan.cuts[hi][2]
    if not ok(lo):
        start = 0
    else:
        while hi - lo > 1:  # ok(lo), not ok(hi)
            mid = (lo + hi) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid
        start = scan.cuts[lo][0]
    m = re.compile(r"(?:\s|//[^\n]*|/\*.*?\*/)*", re.S).match(text, start)
    return text.count("\n", 0, m.end()) + 1


class _Mapper:
    """ckdl's document → plain data, recording the line of every key path it makes."""

    def __init__(self, scan: Scan | None):
        self.lines = scan.nodes if scan else []
        self.pos = 0
        self.aligned = scan is not None
        self.index: dict[tuple, int] = {}

    def line_of(self, node) -> int | None:
        """The line of the next node in document order (None once the scanner and ckdl disagree)."""
        if not self.aligned or self.pos >= len(self.lines):
            self.aligned = False
            return None
        name, line = self.lines[self.pos]
        self.pos += 1
        if name != node.name:
            self.aligned = False
            return None
        return line

    def note(self, path: tuple, line: int | None) -> None:
        if line is not None:
            self.index.setdefault(path, line)

    def value(self, v, path: tuple, line):
        if isinstance(v, ckdl.Value):
            v = v.value
        if isinstance(v, float) and not math.isfinite(v):
            raise FormatError(f"invalid KDL: {v} is not a number any spec field takes; write a number or a string",
                              line=line, key_path=path)
        return v

    def document(self, doc) -> dict:
        out: dict = {}
        for node in doc.nodes:
            self.entry(node, out, (), "")
        return out

    def entry(self, node, out: dict, path: tuple, context: str) -> None:
        line = self.line_of(node)
        name = node.name
        if context == "" and name in SECTIONS:
            key = SECTIONS[name]
            items = out.setdefault(key, [])
            if not isinstance(items, list):
                raise FormatError(f"'{name}' entries and a '{key}' node cannot be mixed", line=line, key_path=(key,))
            item_path = path + (key, len(items))
            self.note(path + (key,), line)
            self.note(item_path, line)
            obj: dict = {}
            if node.args:
                if len(node.args) > 1:
                    raise FormatError(f"a '{name}' node takes one argument, its name, then a block {{ … }}",
                                      line=line, key_path=item_path)
                obj["name"] = self.value(node.args[0], item_path + ("name",), line)
                self.note(item_path + ("name",), line)
            items.append(obj)
            self.fill(node, obj, item_path, key, line)
            return
        key = ALIASES.get(context, {}).get(name, name)
        kpath = path + (key,)
        if key in OBJECT_LISTS.get(context, ()):
            items = out.setdefault(key, [])
            self.note(kpath, line)
            self.note(kpath + (len(items),), line)
            obj = {}
            items.append(obj)
            if node.args:
                raise FormatError(f"a '{name}' node takes a block {{ … }}, not arguments", line=line, key_path=kpath)
            self.fill(node, obj, kpath + (len(items) - 1,), key, line)
            return
        if node.children or node.properties:
            if node.args:
                raise FormatError(f"'{name}' takes either values or a block {{ … }}, not both", line=line,
                                  key_path=kpath)
            if key in out:
                raise self.twice(name, line, kpath)
            obj = {}
            out[key] = obj
            self.note(kpath, line)
            if key == "data" and context == "user_data":
                raise FormatError("user_data 'data' is a string holding JSON, e.g. data \"{\\\"k\\\": 1}\"",
                                  line=line, key_path=kpath)
            self.fill(node, obj, kpath, key, line)
            return
        if not node.args:
            raise FormatError(f"'{name}' has no value: write {name} followed by a value, or a block {{ … }}",
                              line=line, key_path=kpath)
        values = [self.value(a, kpath, line) for a in node.args]
        if key in LIST_KEYS.get(context, ()):
            items = out.setdefault(key, [])
            if not isinstance(items, list):
                raise self.twice(name, line, kpath)
            self.note(kpath, line)
            for v in values:
                self.note(kpath + (len(items),), line)
                items.append(v)
            return
        if key in out:
            raise self.twice(name, line, kpath)
        self.note(kpath, line)
        if len(values) == 1:
            value = values[0]
            if key == "data" and context == "user_data" and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError as e:
                    raise FormatError(f"user_data 'data' must hold JSON: {e}", line=line, key_path=kpath) from None
            out[key] = value
        else:
            out[key] = values
            for k in range(len(values)):
                self.note(kpath + (k,), line)

    def fill(self, node, obj: dict, path: tuple, context: str, line) -> None:
        for k, v in node.properties.items():
            obj[k] = self.value(v, path + (k,), line)
            self.note(path + (k,), line)
        for child in node.children:
            self.entry(child, obj, path, context)

    @staticmethod
    def twice(name: str, line, path: tuple) -> FormatError:
        return FormatError(f"'{name}' is given twice here; it takes one value (a list field takes several "
                           "arguments, or one node per item)", line=line, key_path=path)


def _depth(doc) -> int:
    """How deeply the document's nodes nest (iterative: ckdl builds any depth without recursion)."""
    deepest, stack = 0, [(n, 1) for n in doc.nodes]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_NESTING_DEPTH:
            return d
        stack.extend((c, d + 1) for c in node.children)
    return deepest


def read(text: str) -> tuple[dict | None, dict[tuple, int]]:
    """Plain data and the key path → line index. Raises FormatError."""
    if not text.strip():
        return None, {}
    scan = Scan(text)
    try:
        doc = _ckdl(text)
    except (ckdl.ParseError, ValueError) as e:
        raise FormatError(f"invalid KDL: {e}", line=_parse_error_line(text, scan)) from None
    except RecursionError:
        raise FormatError(f"nodes are nested more than {MAX_NESTING_DEPTH} levels deep "
                          "(torc_hpc.limits.MAX_NESTING_DEPTH); a workflow spec needs about 4") from None
    if scan.problem is not None:
        raise scan.problem
    if _depth(doc) > MAX_NESTING_DEPTH:
        raise FormatError(f"nodes are nested more than {MAX_NESTING_DEPTH} levels deep "
                          "(torc_hpc.limits.MAX_NESTING_DEPTH); a workflow spec needs about 4", line=scan.deep_line)
    if not doc.nodes:
        return None, {}
    mapper = _Mapper(scan)
    data = mapper.document(doc)
    return data, mapper.index


class KdlFormat(SpecFormat):
    name = "KDL"
    suffixes = (".kdl",)

    def parse(self, text: str):
        return read(text)[0]

    def line_index(self, text: str, wanted: set | None = None) -> dict[tuple, int]:
        try:
            index = read(text)[1]
        except FormatError:
            return {}
        return index if wanted is None else {p: ln for p, ln in index.items() if p in wanted}
