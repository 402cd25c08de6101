"""JSON specs: the standard library's parser, plus an iterative scanner for what it cannot tell.

`json.loads` is fast but keeps the last of two equal keys, recurses once per nesting level and reports
no position for some failures. Duplicate keys are caught with `object_pairs_hook`, NaN and Infinity
(not JSON) with `parse_constant`, numbers longer than MAX_VALUE_TEXT_LENGTH with `parse_int`; when
parsing fails without a line (a duplicate key, nesting deeper than the interpreter allows) or when an
error needs one, `scan` walks the text with an explicit stack and finds it.
"""

from __future__ import annotations

import json
import re

from torc_hpc.limits import MAX_NESTING_DEPTH, MAX_VALUE_TEXT_LENGTH
from torc_hpc.spec.formats import FormatError, SpecFormat, line_of

# One JSON token: punctuation, a string (escapes included), or a bare word (number, true, false, null).
_TOKEN = re.compile(r'\n|[{}\[\],:]|"(?:[^"\\\n]|\\.)*"?|[^\s{}\[\],:"]+', re.S)


class _Duplicate(Exception):
    pass


class _Constant(Exception):
    pass


class _LongNumber(Exception):
    pass


def _pairs(pairs: list) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise _Duplicate
    return d


def _constant(name: str):
    raise _Constant(name)


def _int(text: str) -> int:
    if len(text) > MAX_VALUE_TEXT_LENGTH:
        raise _LongNumber(text)
    return int(text)


def scan(text: str, index: dict | None = None, wanted: set | None = None,
         check: bool = False, token_re: re.Pattern = _TOKEN, string=None, what: str = "JSON") -> FormatError | None:
    """Walk the JSON text with an explicit stack. Fills `index` (key path → line; only the paths in
    `wanted` when given, which makes it cheap on a large file) and, with `check`, returns the first
    duplicate key or excess nesting as a located FormatError (None if there is neither).

    `token_re` and `string` (a quoted token → its text) let JSON5 reuse the walk: its tokens may also be
    comments, which are skipped, and strings or comments spanning lines, whose newlines are counted."""
    string = string or _string
    line = 1
    # frame: [is_map, path, item count, keys seen (key → line) or None, expecting a key, current key, recording]
    stack: list[list] = []
    top = None
    record_root = index is not None and (wanted is None or () in wanted)
    for m in token_re.finditer(text):
        tok = m.group()
        c = tok[0]
        if c == "\n":
            line += 1
            continue
        if c == "/" and tok[1:2] in ("/", "*"):  # a JSON5 comment
            line += tok.count("\n")
            continue
        if c == "}" or c == "]":
            if stack:
                stack.pop()
                top = stack[-1] if stack else None
            continue
        if c == ",":
            if top is not None:
                if top[0]:
                    top[4] = True
                else:
                    top[2] += 1
            continue
        if c == ":":
            if top is not None and top[0]:
                top[4] = False
            continue
        if c in "\"'" and "\n" in tok:  # a JSON5 string continued on the next line
            line_after = line + tok.count("\n")
        else:
            line_after = line
        if top is not None and top[0] and top[4]:  # a key
            if c == '"' or c == "'":
                key = tok[1:-1] if "\\" not in tok else string(tok)
            else:
                key = tok
            if top[3] is not None:
                if key in top[3]:
                    return FormatError(
                        f"key '{key}' appears twice in this object (lines {top[3][key]} and {line}); {what} "
                        "parsers would silently keep only the last one: remove or rename one of them",
                        line=line, key_path=top[1] + (key,))
                top[3][key] = line
            top[5] = key
            if top[6]:
                sub = top[1] + (key,)
                if wanted is None or sub in wanted:
                    index[sub] = line
            line = line_after
            continue
        if c == "{" or c == "[":
            if top is None:
                path, recording = (), record_root
            elif not (top[6] or check):
                path, recording = None, False  # nothing below is wanted: no paths to build
            else:
                path = top[1] + ((top[5],) if top[0] else (top[2],))
                recording = top[6] and (wanted is None or path in wanted)
                if recording:
                    index.setdefault(path, line)
            if check and len(stack) >= MAX_NESTING_DEPTH:
                return FormatError(f"arrays and objects are nested more than {MAX_NESTING_DEPTH} levels deep "
                                   "(torc_hpc.limits.MAX_NESTING_DEPTH); a workflow spec needs about 6",
                                   line=line, key_path=path or ())
            top = [c == "{", path, 0, {} if check and c == "{" else None, True, None, recording]
            stack.append(top)
        elif top is not None and top[6] and not top[0]:  # a scalar list item
            sub = top[1] + (top[2],)
            if wanted is None or sub in wanted:
                index.setdefault(sub, line)
        line = line_after
    return None


def _string(tok: str) -> str:
    try:
        return json.loads(tok)
    except ValueError:
        return tok


class JsonFormat(SpecFormat):
    name = "JSON"
    suffixes = (".json",)

    def parse(self, text: str):
        if not text.strip():
            return None
        try:
            data = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_int=_int)
        except json.JSONDecodeError as e:
            raise FormatError(f"invalid JSON: {e.msg}", line=e.lineno) from None
        except (_Duplicate, RecursionError):
            raise self._scanned(text) from None
        except _Constant as e:
            at = re.search(rf"(?<![\w\"]){re.escape(str(e))}(?![\w\"])", text)
            raise FormatError(f"invalid JSON: {e} is not a JSON number; write a number or a string",
                              line=line_of(text, at.start()) if at else None) from None
        except _LongNumber as e:
            at = text.find(str(e))
            raise FormatError(f"a number of {len(str(e)):,} characters is too long: numbers are at most "
                              f"{MAX_VALUE_TEXT_LENGTH} characters (torc_hpc.limits.MAX_VALUE_TEXT_LENGTH)",
                              line=line_of(text, at) if at >= 0 else None) from None
        return data  # nesting within the interpreter's reach is bounded by the loader, for every format

    def line_index(self, text: str, wanted: set | None = None) -> dict[tuple, int]:
        index: dict[tuple, int] = {}
        scan(text, index, wanted)
        return index

    @staticmethod
    def _scanned(text: str) -> FormatError:
        found = scan(text, check=True)
        return found or FormatError("invalid JSON: nested too deeply or a key is repeated")
