"""YAML specs, built from the parser's events without recursion.

PyYAML's composer and constructor recurse once per nesting level and share aliased nodes, so a deeply
nested file raises RecursionError and an alias bomb makes every later walk exponential. This builder
reads the event stream (libyaml's when installed) with an explicit stack instead: it refuses nesting
deeper than MAX_NESTING_DEPTH, a key given twice in one mapping, aliases that stand for more than
MAX_ALIAS_VALUES values in total, aliases inside the node they name, tags other than YAML's plain
types, and a second document. Scalars are resolved and constructed exactly as `yaml.safe_load` does;
merge keys (`<<: *defaults`) work as in YAML 1.1.
"""

from __future__ import annotations

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (AliasEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent, ScalarEvent,
                         SequenceEndEvent, SequenceStartEvent)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from torc_hpc.limits import MAX_ALIAS_VALUES, MAX_NESTING_DEPTH, MAX_VALUE_TEXT_LENGTH
from torc_hpc.spec.formats import FormatError, SpecFormat, line_of

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = Resolver()
_CONSTRUCTOR = SafeConstructor()
_Y = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_Y}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_SCALARS = {tag: fn for tag, fn in SafeConstructor.yaml_constructors.items() if tag in _SCALAR_TAGS}
_NUMBER_TAGS = {f"{_Y}int", f"{_Y}float"}
_MERGE_TAG = f"{_Y}merge"
_IMPLICIT_FIRST = frozenset(k for k in Resolver.yaml_implicit_resolvers if k)  # first characters of ints, bools…
_MAP_TAGS = {None, "!", f"{_Y}map"}
_SEQ_TAGS = {None, "!", f"{_Y}seq"}
_MERGE = object()  # the `<<` key
_OPEN = object()   # an anchor whose node is still being built


class _Frame:
    __slots__ = ("is_map", "value", "path", "anchor", "size", "key", "has_key", "key_lines", "merges")

    def __init__(self, is_map: bool, path: tuple, anchor: str | None):
        self.is_map = is_map
        self.value = {} if is_map else []
        self.path = path
        self.anchor = anchor
        self.size = 1
        self.key = None
        self.has_key = False
        self.key_lines: dict | None = {} if is_map else None
        self.merges: list | None = None


def _scalar(ev: ScalarEvent, line: int):
    tag = ev.tag
    if tag is None and (ev.style or (ev.value and ev.value[0] not in _IMPLICIT_FIRST)):
        return ev.value  # quoted, or plain text no implicit type can start with: a string, as resolved below
    if tag is None or tag == "!":
        tag = _RESOLVER.resolve(ScalarNode, ev.value, ev.implicit)
    if tag == _MERGE_TAG:
        return _MERGE
    fn = _SCALARS.get(tag)
    if fn is None:
        raise FormatError(f"the YAML tag {_short(ev.tag or tag)} is not supported: write plain values "
                          "(strings, numbers, true/false, lists and mappings)", line=line)
    if tag in _NUMBER_TAGS and len(ev.value) > MAX_VALUE_TEXT_LENGTH:
        raise FormatError(f"a number of {len(ev.value):,} characters is too long: numbers are at most "
                          f"{MAX_VALUE_TEXT_LENGTH} characters (torc_hpc.limits.MAX_VALUE_TEXT_LENGTH)", line=line)
    try:
        return fn(_CONSTRUCTOR, ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style))
    except (ValueError, OverflowError, yaml.YAMLError) as e:
        shown = ev.value if len(ev.value) <= 40 else ev.value[:40] + "…"
        raise FormatError(f"cannot read {shown!r} as {tag.rsplit(':', 1)[-1]}: {e}", line=line) from None


def build(text: str, lines: dict | None = None, wanted: set | None = None):
    """Plain data from YAML text; fills `lines` (key path → line) when given, only for the paths in
    `wanted` when that is given too. Raises FormatError."""
    loader = _Loader(text)
    stack: list[_Frame] = []
    anchors: dict[str, tuple] = {}
    alias_values = 0
    documents = 0
    root = None

    def child_path() -> tuple:
        if not stack:
            return ()
        top = stack[-1]
        return top.path + ((top.key,) if top.is_map else (len(top.value),))

    def add(value, size: int, line: int, is_scalar: bool) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        top = stack[-1]
        if not top.is_map:
            if lines is not None:  # a list or mapping item was recorded where it starts
                sub = top.path + (len(top.value),)
                if wanted is None or sub in wanted:
                    lines.setdefault(sub, line)
            top.value.append(value)
            top.size += size
            return
        if not top.has_key:  # this value is a key
            if not is_scalar:
                raise _not_a_key(line, top.path)
            if value is not _MERGE:
                if value in top.key_lines:
                    raise FormatError(
                        f"key '{value}' appears twice in this mapping (lines {top.key_lines[value]} and {line}); "
                        "YAML would silently keep only the last one: remove or rename one of them",
                        line=line, key_path=top.path + (value,))
                top.key_lines[value] = line
                if lines is not None:
                    sub = top.path + (value,)
                    if wanted is None or sub in wanted:
                        lines[sub] = line
            top.key, top.has_key = value, True
            return
        if top.key is _MERGE:
            top.merges = (top.merges or []) + [(value, line)]
        else:
            top.value[top.key] = value
        top.size += size
        top.has_key = False

    def start(ev, is_map: bool, line: int) -> None:
        if stack and stack[-1].is_map and not stack[-1].has_key:
            raise _not_a_key(line, stack[-1].path)
        if len(stack) >= MAX_NESTING_DEPTH:
            raise FormatError(f"lists and mappings are nested more than {MAX_NESTING_DEPTH} levels deep "
                              "(torc_hpc.limits.MAX_NESTING_DEPTH); a workflow spec needs about 6",
                              line=line, key_path=child_path())
        if ev.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
            raise FormatError(f"the YAML tag {_short(ev.tag)} is not supported: write plain lists and mappings",
                              line=line)
        frame = _Frame(is_map, child_path(), ev.anchor)
        if ev.anchor is not None:
            anchors[ev.anchor] = (_OPEN, 0)
        if lines is not None and (wanted is None or frame.path in wanted):
            lines.setdefault(frame.path, line)
        stack.append(frame)

    def end(line: int) -> None:
        frame = stack.pop()
        if frame.merges:
            _merge(frame, line)
        if frame.anchor is not None:
            anchors[frame.anchor] = (frame.value, frame.size)
        add(frame.value, frame.size, line, is_scalar=False)

    try:
        while loader.check_event():
            ev = loader.get_event()
            line = ev.start_mark.line + 1 if ev.start_mark else None
            if isinstance(ev, ScalarEvent):
                value = _scalar(ev, line)
                if ev.anchor is not None:
                    anchors[ev.anchor] = (value, 1)
                add(value, 1, line, is_scalar=True)
            elif isinstance(ev, MappingStartEvent):
                start(ev, True, line)
            elif isinstance(ev, SequenceStartEvent):
                start(ev, False, line)
            elif isinstance(ev, (MappingEndEvent, SequenceEndEvent)):
                end(line)
            elif isinstance(ev, AliasEvent):
                if ev.anchor not in anchors:
                    raise FormatError(f"alias *{ev.anchor} names no anchor defined before it "
                                      f"(define &{ev.anchor} first)", line=line)
                value, size = anchors[ev.anchor]
                if value is _OPEN:
                    raise FormatError(f"alias *{ev.anchor} is used inside the node it names; a spec cannot "
                                      "refer to itself", line=line, key_path=child_path())
                alias_values += size
                if alias_values > MAX_ALIAS_VALUES:
                    raise FormatError(f"aliases (*name) stand for more than {MAX_ALIAS_VALUES:,} values in "
                                      "total (torc_hpc.limits.MAX_ALIAS_VALUES): is this an alias bomb? "
                                      "Write the values out or use parameters", line=line, key_path=child_path())
                add(value, size, line, is_scalar=False)
            elif isinstance(ev, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise FormatError("a spec file holds one YAML document; this is a second one ('---'): "
                                      "remove it or split the file", line=line)
    except yaml.MarkedYAMLError as e:
        raise FormatError(_yaml_message(e, text), line=e.problem_mark.line + 1 if e.problem_mark else None) from None
    except yaml.reader.ReaderError as e:
        char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        raise FormatError(f"invalid YAML: character {char} is not allowed in YAML "
                          "(control characters and NUL cannot appear in a spec)",
                          line=line_of(text, e.position)) from None
    except yaml.YAMLError as e:
        raise FormatError(f"invalid YAML: {e}") from None
    finally:
        loader.dispose()
    return root


def _short(tag: str) -> str:
    return "!!" + tag[len(_Y):] if tag.startswith(_Y) else tag


def _not_a_key(line: int, path: tuple) -> FormatError:
    return FormatError("a mapping key must be a plain value such as a name, not a list, a mapping or an alias",
                       line=line, key_path=path)


def _merge(frame: _Frame, line: int) -> None:
    """Apply `<<` merge keys as yaml.safe_load does: keys written in the mapping win, and among the
    merged mappings the later one wins."""
    merged: dict = {}
    for value, at in frame.merges:
        for src in value if isinstance(value, list) else [value]:
            if not isinstance(src, dict):
                raise FormatError("'<<' merges a mapping or a list of mappings (e.g. <<: *defaults)",
                                  line=at, key_path=frame.path)
            merged.update(src)
    own = frame.value
    frame.value = {**{k: v for k, v in merged.items() if k not in own}, **own}


def _yaml_message(e: yaml.MarkedYAMLError, text: str) -> str:
    msg = f"invalid YAML: {e.problem or e}"
    if "maximum nesting depth" in msg:  # libyaml's own bound (1,000) is far above ours
        return (f"lists and mappings are nested more than {MAX_NESTING_DEPTH} levels deep "
                "(torc_hpc.limits.MAX_NESTING_DEPTH); a workflow spec needs about 6")
    mark = e.problem_mark
    row = ""
    if mark is not None:
        start = 0
        for _ in range(mark.line):  # the problem's line, without splitting a large file
            start = text.find("\n", start) + 1
        end = text.find("\n", start)
        row = text[start:end if end >= 0 else len(text)]
    if "cannot start any token" in msg and "\t" in row[:mark.column + 1]:
        msg += " (a tab: indent YAML with spaces)"
    if "got '{'" in msg or ("expected ',' or" in msg and "{" in row):
        msg += (" (a {placeholder} inside [...] or {...} must be quoted, e.g. [\"sim_{i}\"], "
                "or written as a block list with '- sim_{i}')")
    return msg


class YamlFormat(SpecFormat):
    name = "YAML"
    suffixes = (".yaml", ".yml")

    def parse(self, text: str):
        return build(text)

    def line_index(self, text: str, wanted: set | None = None) -> dict[tuple, int]:
        index: dict[tuple, int] = {}
        try:
            build(text, index, wanted)
        except FormatError:
            pass
        return index

