"""JSON5 specs (Torc writes them): JSON plus comments, trailing commas, unquoted keys, single quotes.

The `json5` package parses (pure Python, recursive descent: nesting beyond the interpreter's reach raises
RecursionError, caught here). Duplicate keys are refused, NaN and Infinity are refused (no spec field takes
them), numbers longer than MAX_VALUE_TEXT_LENGTH are refused before conversion. Lines for semantic errors
come from the JSON scanner (torc_hpc.spec.formats.json_format.scan) with JSON5's tokens: comments skipped,
both quote styles, strings continued across lines.
"""

from __future__ import annotations

import re

import json5

from torc_hpc.limits import MAX_VALUE_TEXT_LENGTH
from torc_hpc.spec.formats import FormatError, SpecFormat, line_of
from torc_hpc.spec.formats.json_format import _Constant, _Duplicate, _LongNumber, _constant, _pairs, scan

# One JSON5 token: a newline, a comment, punctuation, a string in either quote style (escapes, including
# an escaped newline, are part of it), or a bare word (number, identifier key, true, false, null).
_TOKEN = re.compile(r'\n|//[^\n]*|/\*.*?(?:\*/|\Z)|[{}\[\],:]|"(?:[^"\\\n]|\\.)*"?|\'(?:[^\'\\\n]|\\.)*\'?'
                    r"|[^\s{}\[\],:\"'/]+|/", re.S)
_LINE = re.compile(r"^<string>:(\d+) (.*)$", re.S)


def _int(text: str) -> int:
    if len(text) > MAX_VALUE_TEXT_LENGTH:
        raise _LongNumber(text)
    return int(text, 0) if text.lower().lstrip("+-").startswith("0x") else int(text)


def _float(text: str) -> float:
    if len(text) > MAX_VALUE_TEXT_LENGTH:
        raise _LongNumber(text)
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise _Constant(text)
    return value


def _string(tok: str) -> str:
    try:
        return json5.loads(tok)
    except ValueError:
        return tok[1:-1]


class Json5Format(SpecFormat):
    name = "JSON5"
    suffixes = (".json5",)

    def parse(self, text: str):
        if not text.strip():
            return None
        try:
            return json5.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_int=_int,
                               parse_float=_float)
        except _Duplicate:
            raise self._scanned(text) from None
        except RecursionError:
            raise self._scanned(text) from None
        except _Constant as e:
            name = str(e).lstrip("+-")
            at = re.search(rf"(?<![\w\"']){re.escape(name)}(?![\w\"'])", text)
            raise FormatError(f"invalid JSON5: {e} is not a number any spec field takes; write a number or a "
                              "string", line=line_of(text, at.start()) if at else None) from None
        except _LongNumber as e:
            at = text.find(str(e))
            raise FormatError(f"a number of {len(str(e)):,} characters is too long: numbers are at most "
                              f"{MAX_VALUE_TEXT_LENGTH} characters (torc_hpc.limits.MAX_VALUE_TEXT_LENGTH)",
                              line=line_of(text, at) if at >= 0 else None) from None
        except ValueError as e:
            m = _LINE.match(str(e))
            if m:
                raise FormatError(f"invalid JSON5: {m.group(2)}", line=int(m.group(1))) from None
            raise FormatError(f"invalid JSON5: {e}") from None

    def line_index(self, text: str, wanted: set | None = None) -> dict[tuple, int]:
        index: dict[tuple, int] = {}
        scan(text, index, wanted, token_re=_TOKEN, string=_string, what="JSON5")
        return index

    @staticmethod
    def _scanned(text: str) -> FormatError:
        found = scan(text, check=True, token_re=_TOKEN, string=_string, what="JSON5")
        return found or FormatError("invalid JSON5: nested too deeply or a key is repeated")
