"""Pure policies: no I/O, no clock reads (callers pass `now`). Table-tested in tests/unit."""
