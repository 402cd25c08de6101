"""Spec file formats: text → plain data, and key path → line when an error needs one.

A format only parses. It returns plain data (dicts with scalar keys, lists, str, int, float, bool, None)
and, on request, an index from key paths (``("jobs", 3, "name")``) to 1-based lines. Everything after
that (bounds, schema, references, expansion) is shared by `torc_hpc.spec.loader`, so every format gets
the same located errors and the same limits.

What a format must guarantee while parsing (the shared stages rely on it):
- nesting deeper than `MAX_NESTING_DEPTH` is refused without recursing that deep;
- a key given twice in one mapping is refused (never "the last one wins");
- if the format has references (YAML aliases), the values they stand for are counted and capped at
  `MAX_ALIAS_VALUES`, so nothing downstream walks an exponential tree;
- every failure is a `FormatError` with a line when it can tell one, never another exception.

To add a format (JSON5, KDL, …): subclass `SpecFormat` in a module of this package, give it `name` and
`suffixes`, and list it in `FORMATS`.
"""

from __future__ import annotations

from pathlib import Path


class FormatError(Exception):
    """A spec could not be parsed. `key_path` locates it in the data when known (for the field name)."""

    def __init__(self, message: str, *, line: int | None = None, key_path: tuple = ()):
        super().__init__(message)
        self.message = message
        self.line = line
        self.key_path = key_path


class SpecFormat:
    name: str = ""
    suffixes: tuple[str, ...] = ()

    def parse(self, text: str):
        """Plain data from the text (None for an empty document). Raises FormatError."""
        raise NotImplementedError

    def line_index(self, text: str, wanted: set | None = None) -> dict[tuple, int]:
        """Key path → 1-based line, for locating errors after parsing succeeded: every path, or only
        those in `wanted` (the loader passes the paths it needs and all their prefixes, so that a large
        file costs one pass and no memory per value). Never raises; may be partial (lookups fall back to
        the nearest enclosing key)."""
        raise NotImplementedError


def line_of(text: str, position: int) -> int:
    """1-based line of a character offset."""
    return text.count("\n", 0, max(0, position)) + 1


def _formats() -> list[SpecFormat]:
    from torc_hpc.spec.formats.json5_format import Json5Format
    from torc_hpc.spec.formats.json_format import JsonFormat
    from torc_hpc.spec.formats.kdl_format import KdlFormat
    from torc_hpc.spec.formats.yaml_format import YamlFormat

    return [JsonFormat(), Json5Format(), YamlFormat(), KdlFormat()]  # Torc's order for unknown suffixes


FORMATS: list[SpecFormat] = _formats()


class DetectedFormat(SpecFormat):
    """A file whose suffix names no format: tried as JSON, JSON5, YAML, then KDL (Torc's order); the first
    that reads it as a mapping wins. When none does, YAML's error is reported (it explains the most)."""

    name = "YAML"
    suffixes = ()

    def __init__(self):
        self._chosen: SpecFormat | None = None

    def parse(self, text: str):
        yaml = next(f for f in FORMATS if f.name == "YAML")
        yaml_result: tuple | None = None
        for fmt in FORMATS:
            try:
                data = fmt.parse(text)
            except FormatError as e:
                if fmt is yaml:
                    yaml_result = (None, e)
                continue
            if data is None or isinstance(data, dict):
                self._chosen, self.name = fmt, fmt.name
                return data
            if fmt is yaml:
                yaml_result = (data, None)
        self._chosen, self.name = yaml, yaml.name  # none read a mapping: say what YAML saw
        data, error = yaml_result or (None, FormatError("the file is neither JSON, JSON5, YAML nor KDL"))
        if error is not None:
            raise error
        return data

    def line_index(self, text: str, wanted: set | None = None) -> dict[tuple, int]:
        return (self._chosen or next(f for f in FORMATS if f.name == "YAML")).line_index(text, wanted)


def format_for(path: str | Path) -> SpecFormat:
    """The format for a file name, by suffix; for any other suffix, the first format that reads it."""
    suffix = Path(str(path)).suffix.lower()
    return next((f for f in FORMATS if suffix in f.suffixes), None) or DetectedFormat()
