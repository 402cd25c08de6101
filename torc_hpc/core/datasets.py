"""Dataset fingerprints (Torc's datasets, docs/torc-compat.md §4.4). Pure: the caller walks the directory.

manifest: sha256 over the sorted lines "relative path \\t size \\t mtime in ns" — cheap, notices any rewrite.
content: sha256 over the sorted lines "relative path \\t sha256 of the file's bytes" — reads every byte.
none: no digest, only the file count and total size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

MAX_FILES = 1_000_000              # files a finalization walks; beyond, the fingerprint is marked partial
MAX_CONTENT_BYTES = 10 * 2**30     # bytes content hashing reads; beyond, it falls back to the manifest


def manifest_digest(entries: Iterable[tuple[str, int, int]]) -> str:
    """(relative path, size, mtime_ns) per file → hex sha256, independent of walk order."""
    h = hashlib.sha256()
    for path, size, mtime_ns in sorted(entries):
        h.update(f"{path}\t{size}\t{mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def content_digest(entries: Iterable[tuple[str, str]]) -> str:
    """(relative path, hex sha256 of its bytes) per file → hex sha256, independent of walk order."""
    h = hashlib.sha256()
    for path, digest in sorted(entries):
        h.update(f"{path}\t{digest}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()
