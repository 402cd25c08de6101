"""Log paths and bounded, printable tails."""

from torc_hpc import logs


def test_attempt_paths_follow_the_documented_names(tmp_path):
    wf = {"id": 3, "output_dir": "out", "working_dir": str(tmp_path)}
    p = logs.attempt_logs(wf, 42, 1, 2)
    assert p.stdout == tmp_path / "out" / "job_stdio" / "job_wf3_j42_r1_a2.o"
    assert p.recovery_stderr == tmp_path / "out" / "job_stdio" / "recovery_wf3_j42_r1_a2.e"


def test_tail_is_bounded_and_printable(tmp_path):
    f = tmp_path / "x.e"
    f.write_bytes(b"".join(b"line %d\n" % i for i in range(10_000)) + b"bad \xff\x1b[31m end\r\n")
    t = logs.tail(f, lines=3, max_bytes=4096)
    assert t.splitlines()[:2] == ["line 9998", "line 9999"]
    last = t.splitlines()[-1]
    assert "\x1b" not in last and "\r" not in last and last.startswith("bad ") and last.endswith(" end")
    assert logs.tail(tmp_path / "missing") is None


def test_tail_drops_the_line_cut_by_the_byte_window(tmp_path):
    f = tmp_path / "x.o"
    f.write_text("a" * 100 + "\nshort\n")
    assert logs.tail(f, lines=10, max_bytes=20) == "short"


def test_tail_neutralises_bidirectional_overrides_and_isolates(tmp_path):
    # "Trojan Source": an override makes a line display in another order than it reads; an agent or a person
    # reading a stderr tail must see the text as it is.
    f = tmp_path / "x.e"
    controls = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    f.write_text(f"ok \u202eretry\u202c then {controls} done\n", encoding="utf-8")
    t = logs.tail(f)
    assert not any(c in t for c in controls)
    assert t.startswith("ok ") and t.endswith(" done") and "retry" in t
    # ordinary right-to-left text is kept: only the invisible direction controls go
    f.write_text("שלום עולם\n", encoding="utf-8")
    assert logs.tail(f) == "שלום עולם"
