"""`torc mcp` through the MCP SDK's real stdio client: the tools and their schemas, pending_failed triage
(list, dry run, apply, then `torc run` finishes the workflow), and bad input answered per item with
nothing written."""

from __future__ import annotations

import json

import jsonschema

from tests.mcp.conftest import data, events_of, jobs_of, make_pending_workflow, with_client

EXPECTED_TOOLS = {
    "get_workflow_status", "get_job_details", "get_job_logs", "list_jobs_by_status", "list_failed_jobs",
    "list_pending_failed_jobs", "classify_and_resolve_failures", "check_resource_utilization",
    "update_job_resources", "restart_jobs", "cancel_jobs", "resubmit_workflow", "create_workflow_from_spec"}


def _state(torc, wf):
    """What must not change when nothing is written: every job's status and attempt, and the event count."""
    jobs = {j["name"]: (j["status"], j["attempt_id"]) for j in jobs_of(torc, wf).values()}
    return jobs, len(events_of(torc, wf))


def test_tools_have_torc_names_and_schemas_an_agent_can_act_on(torc):
    async def body(client):
        return (await client.list_tools()).tools, client.server_info, client.instructions

    tools, info, instructions = with_client(torc, body)
    by_name = {t.name: t for t in tools}
    assert set(by_name) == EXPECTED_TOOLS
    assert info.name == "torc" and "pending_failed" in instructions
    for t in tools:
        jsonschema.Draft202012Validator.check_schema(t.input_schema)
        assert t.input_schema["type"] == "object" and t.input_schema["additionalProperties"] is False
        assert len(t.description) > 60, t.name
        for name, prop in t.input_schema["properties"].items():
            assert prop.get("description"), f"{t.name}.{name} has no description"
    classify = by_name["classify_and_resolve_failures"].input_schema
    assert classify["required"] == ["workflow_id", "classifications", "dry_run"]
    item = classify["properties"]["classifications"]["items"]
    assert item["required"] == ["job_id", "action"]
    assert item["properties"]["action"]["enum"] == ["retry", "fail"]
    assert set(item["properties"]) == {"job_id", "action", "reason", "memory", "runtime"}
    logs = by_name["get_job_logs"].input_schema
    assert logs["required"] == ["job_id"]
    assert {"run_id", "attempt_id", "stream", "tail", "log_type", "tail_lines"} <= set(logs["properties"])
    assert by_name["list_pending_failed_jobs"].input_schema["required"] == ["workflow_id"]
    assert by_name["cancel_jobs"].input_schema["required"] == ["job_ids"]
    assert "pending_failed" in by_name["list_jobs_by_status"].input_schema["properties"]["status"]["enum"]


def test_list_dry_run_classify_then_run_finishes(torc, pending):
    wf, jobs = pending
    fetch, parse = jobs["fetch"]["id"], jobs["parse"]["id"]
    items = [{"job_id": fetch, "action": "retry", "reason": "ConnectionError: the service was down"},
             {"job_id": parse, "action": "fail", "reason": "SyntaxError in parse.py"}]

    before = _state(torc, wf)

    async def body(client):
        listing = await client.call_tool("list_pending_failed_jobs", {"workflow_id": wf})
        dry = await client.call_tool("classify_and_resolve_failures",
                                     {"workflow_id": wf, "classifications": items, "dry_run": True})
        after_dry_run = _state(torc, wf)
        applied = await client.call_tool("classify_and_resolve_failures",
                                         {"workflow_id": wf, "classifications": items, "dry_run": False})
        return listing, dry, after_dry_run, applied

    listing, dry, after_dry_run, applied = with_client(torc, body, name="triage-bot")
    assert not listing.is_error
    out = data(listing)
    assert out["workflow_id"] == wf and out["pending_failed_count"] == 2 and out["guidance"]
    by_name = {j["name"]: j for j in out["pending_failed_jobs"]}
    assert "ConnectionError: Connection refused" in by_name["fetch"]["stderr_tail"]
    assert "SyntaxError: invalid syntax" in by_name["parse"]["stderr_tail"]
    assert by_name["parse"]["return_code"] == 1 and by_name["parse"]["attempt_id"] == 1
    assert by_name["parse"]["stdout_tail"] == "" and by_name["parse"]["exec_time_s"] is not None
    assert by_name["fetch"]["memory"] == "1g" and by_name["fetch"]["runtime"] == "01:00:00"
    assert by_name["fetch"]["stderr_path"].endswith(f"job_wf{wf}_j{fetch}_r1_a1.e")
    assert json.loads(listing.content[0].text) == out          # the same JSON as text, for any client

    assert not dry.is_error, dry.content
    d = data(dry)
    assert d["dry_run"] is True and d["applied"] is False and d["jobs_to_retry"] == 1 and d["jobs_to_fail"] == 1
    res = {r["job_id"]: r for r in d["results"]}
    assert res[fetch]["status"] == "would_apply" and res[fetch]["new_attempt_id"] == 2
    assert res[parse]["status"] == "would_apply" and res[parse]["canceled_dependents"] == 1
    assert after_dry_run == before                             # the dry run wrote nothing

    assert not applied.is_error, applied.content
    a = data(applied)
    assert a["applied"] is True and {r["status"] for r in a["results"]} == {"applied"}
    assert a["decided_by"]["name"] == "triage-bot" and a["decided_by"]["via"] == "mcp"
    now = jobs_of(torc, wf)
    assert now["fetch"]["status"] == "ready" and now["fetch"]["attempt_id"] == 2
    assert now["parse"]["status"] == "failed" and now["after_parse"]["status"] == "canceled"
    events = events_of(torc, wf)
    retry = next(e for e in events if e["kind"] == "retry" and e["job_id"] == fetch)
    assert retry["detail"]["decided_by"] == "triage-bot" and retry["detail"]["via"] == "mcp"
    assert retry["detail"]["reason"] == "ConnectionError: the service was down"
    assert retry["detail"]["db_role"] == a["decided_by"]["db_role"] and retry["detail"]["db_role"]
    failed = next(e for e in events if e["kind"] == "failed" and e["job_id"] == parse)
    assert failed["from_status"] == "pending_failed" and failed["detail"]["reason"] == "SyntaxError in parse.py"

    proc = torc("run", str(wf), "--format", "json", check=False)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["counts"] == {"completed": 2, "failed": 1, "canceled": 1}
    final = jobs_of(torc, wf)
    assert final["fetch"]["status"] == "completed" and final["after_fetch"]["status"] == "completed"


def test_bad_input_is_reported_per_item_and_nothing_is_written(torc, pending):
    wf, jobs = pending
    other_wf, other_jobs = make_pending_workflow(torc)
    items = [{"job_id": 987654321, "action": "retry"},                         # unknown job
             {"job_id": other_jobs["fetch"]["id"], "action": "retry"},         # a job of another workflow
             {"job_id": jobs["after_fetch"]["id"], "action": "fail"},          # blocked, not pending_failed
             {"job_id": jobs["fetch"]["id"], "action": "skip"},                # invalid action
             {"job_id": jobs["parse"]["id"], "action": "retry", "memory": "lots"},   # bad memory
             "not an object"]
    before, before_other = _state(torc, wf), _state(torc, other_wf)

    async def body(client):
        bad = await client.call_tool("classify_and_resolve_failures",
                                     {"workflow_id": wf, "classifications": items, "dry_run": False})
        mixed = await client.call_tool("classify_and_resolve_failures", {
            "workflow_id": wf, "dry_run": False,
            "classifications": [{"job_id": jobs["fetch"]["id"], "action": "retry", "reason": "transient"},
                                {"job_id": jobs["parse"]["id"], "action": "fail", "memory": "2g"}]})
        unknown_wf = await client.call_tool("classify_and_resolve_failures", {
            "workflow_id": 987654321, "dry_run": False,
            "classifications": [{"job_id": jobs["fetch"]["id"], "action": "retry"}]})
        listing = await client.call_tool("list_pending_failed_jobs", {"workflow_id": 987654321})
        not_a_list = await client.call_tool("classify_and_resolve_failures",
                                            {"workflow_id": wf, "classifications": "retry all", "dry_run": False})
        no_tool = await client.call_tool("retry_everything", {"workflow_id": wf})
        return bad, mixed, unknown_wf, listing, not_a_list, no_tool

    bad, mixed, unknown_wf, listing, not_a_list, no_tool = with_client(torc, body)
    assert bad.is_error
    text = bad.content[0].text
    assert text.startswith("6 of 6 classification(s) cannot apply; nothing was written:")
    results = data(bad)["results"]
    assert [r["status"] for r in results] == ["error"] * 6
    msgs = [r["message"] for r in results]
    assert msgs[0] == "job 987654321 does not exist (or your database role cannot see it)"
    assert msgs[1] == f"job {other_jobs['fetch']['id']} belongs to workflow {other_wf}, not workflow {wf}"
    assert msgs[2].startswith(f"job {jobs['after_fetch']['id']} is blocked, not pending_failed")
    assert msgs[3] == f"job {jobs['fetch']['id']}: action 'skip' is not one of: retry, fail"
    assert msgs[4].startswith(f"job {jobs['parse']['id']}: cannot read memory 'lots'")
    assert msgs[5].startswith("classification 6: expected an object")
    assert all(m in text for m in msgs)

    assert mixed.is_error
    mixed_results = data(mixed)["results"]
    assert mixed_results[0]["status"] == "not_applied"
    assert mixed_results[1]["message"] == f"job {jobs['parse']['id']}: memory and runtime apply only to action 'retry'"

    cli = torc("jobs", "retry", "987654321", str(jobs["fetch"]["id"]), check=False)
    assert unknown_wf.is_error and listing.is_error
    assert unknown_wf.content[0].text == "workflow 987654321 does not exist (see `torc workflows list`)"
    assert listing.content[0].text == unknown_wf.content[0].text
    assert unknown_wf.content[0].text in " ".join(cli.stderr.split())   # the CLI says the same
    assert not_a_list.is_error and "argument 'classifications'" in not_a_list.content[0].text
    assert no_tool.is_error and "unknown tool 'retry_everything'" in no_tool.content[0].text

    assert _state(torc, wf) == before and _state(torc, other_wf) == before_other


def test_cli_decisions_are_the_same_operation(torc, pending):
    wf, jobs = pending
    fetch, after = jobs["fetch"]["id"], jobs["after_fetch"]["id"]
    out = torc("jobs", "retry", wf, fetch, "--memory", "2g", "--runtime", "PT2H", "--reason", "network blip")
    assert "attempt 2" in out.stdout and "memory 2g" in out.stdout
    j = jobs_of(torc, wf)
    assert j["fetch"]["status"] == "ready" and j["fetch"]["memory_bytes"] == 2 * 2**30 and j["fetch"]["runtime_s"] == 7200
    events = events_of(torc, wf)
    resized = next(e for e in events if e["kind"] == "resources_updated")
    assert resized["detail"]["memory_bytes"] == [2**30, 2 * 2**30] and resized["detail"]["via"] == "cli"
    retry = next(e for e in events if e["kind"] == "retry" and e["job_id"] == fetch)
    assert retry["detail"]["reason"] == "network blip" and retry["detail"]["via"] == "cli"
    bad = torc("jobs", "fail", wf, after, check=False)
    assert bad.returncode == 1
    assert f"job {after} is blocked, not pending_failed" in " ".join(bad.stderr.split())


def test_inspection_and_change_tools(torc, pending):
    wf, jobs = pending
    fetch, parse, after_fetch = jobs["fetch"]["id"], jobs["parse"]["id"], jobs["after_fetch"]["id"]

    async def body(client):
        calls = {}
        for key, name, args in [
                ("status", "get_workflow_status", {"workflow_id": wf}),
                ("details", "get_job_details", {"job_id": fetch}),
                ("logs", "get_job_logs", {"job_id": fetch, "stream": "stderr", "tail": 1}),
                ("torc_logs", "get_job_logs", {"workflow_id": wf, "job_id": parse, "run_id": 1,
                                               "attempt_id": 1, "log_type": "stderr", "tail_lines": 5}),
                ("wrong_wf_logs", "get_job_logs", {"workflow_id": wf + 1000, "job_id": parse}),
                ("blocked", "list_jobs_by_status", {"workflow_id": wf, "status": "blocked"}),
                ("bad_status", "list_jobs_by_status", {"workflow_id": wf, "status": "pending"}),
                ("failed", "list_failed_jobs", {"workflow_id": wf}),
                ("resize", "update_job_resources", {"job_id": after_fetch, "memory": "3g", "num_cpus": 2,
                                                    "reason": "bigger input"}),
                ("bad_resize", "update_job_resources", {"job_id": after_fetch, "runtime": "soon"}),
                ("cancel_bad", "cancel_jobs", {"job_ids": [after_fetch, 987654321]}),
                ("cancel", "cancel_jobs", {"job_ids": [parse], "reason": "not needed"}),
                ("restart", "restart_jobs", {"workflow_id": wf, "job_ids": [parse]})]:
            calls[key] = await client.call_tool(name, args)
        return calls

    c = with_client(torc, body)
    s = data(c["status"])
    assert s["job_counts_by_status"] == {"pending_failed": 2, "blocked": 2} and s["total_jobs"] == 4
    assert any("pending_failed" in tip for tip in s["next_steps"])
    d = data(c["details"])
    assert d["name"] == "fetch" and d["status"] == "pending_failed" and d["resource_requirements"]["memory"] == "1g"
    assert d["latest_result"]["return_code"] == 1 and d["latest_result"]["logs"]["stderr"].endswith(".e")
    assert data(c["logs"])["text"] == "ConnectionError: Connection refused"
    assert "SyntaxError" in data(c["torc_logs"])["text"]
    assert c["wrong_wf_logs"].is_error and "belongs to workflow" in c["wrong_wf_logs"].content[0].text
    assert data(c["blocked"])["count"] == 2
    assert c["bad_status"].is_error and "argument 'status'" in c["bad_status"].content[0].text
    f = data(c["failed"])
    assert f["failed_job_count"] == 0 and f["pending_failed_count"] == 2
    r = data(c["resize"])
    assert r["updated"]["memory"] == "3g" and r["updated"]["num_cpus"] == 2 and r["previous"]["memory"] == "1g"
    assert c["bad_resize"].is_error and "cannot read duration 'soon'" in c["bad_resize"].content[0].text
    assert c["cancel_bad"].is_error and "job 987654321 does not exist" in c["cancel_bad"].content[0].text
    canceled = data(c["cancel"])
    assert canceled["canceled_count"] == 1 and canceled["canceled_dependents"] == 1
    restarted = data(c["restart"])
    assert restarted["reset_count"] == 2 and restarted["run_id"] == 2
    j = jobs_of(torc, wf)
    assert j["after_fetch"]["status"] == "blocked" and j["after_fetch"]["num_cpus"] == 2    # never canceled
    assert j["parse"]["status"] == "ready" and j["after_parse"]["status"] == "blocked"     # reset with its dependent


def test_resource_utilization_uses_the_recover_rule(torc):
    torc.write("oom.yaml", "name: oom\njobs:\n  - {name: big, command: 'exit 137', "
                           "resource_requirements: {memory: 2g, runtime: PT10M}}\n"
                           "  - {name: fine, command: 'true'}\n")
    proc = torc("run", "oom.yaml", "--format", "json", check=False)
    wf = json.loads(proc.stdout.strip().splitlines()[-1])["workflow_id"]

    async def body(client):
        return (await client.call_tool("check_resource_utilization", {"workflow_id": wf}),
                await client.call_tool("check_resource_utilization", {"workflow_id": wf, "include_failed": False}))

    with_failed, completed_only = with_client(torc, body)
    out = data(with_failed)
    assert out["total_results"] == 2 and out["over_utilization_count"] == 1
    v = out["violations"][0]
    assert v["job_name"] == "big" and v["cause"] == "out_of_memory" and v["resource_type"] == "Memory"
    assert v["specified"] == "2g" and v["suggested_memory"] == "3g"
    assert data(completed_only)["over_utilization_count"] == 0


def test_create_workflow_from_spec_text(torc):
    good = {"name": "made_by_agent", "jobs": [{"name": "a", "command": "echo a"},
                                              {"name": "b_{i}", "command": "echo {i}", "depends_on": ["a"],
                                               "parameters": {"i": "1:3"}}]}
    bad_yaml = "name: broken\njobs:\n  - name: a\n    command: echo a\n    failure_handler: nope\n"

    async def body(client):
        return (await client.call_tool("create_workflow_from_spec", {"spec_json": good}),
                await client.call_tool("create_workflow_from_spec", {"spec_json": json.dumps(good)}),
                await client.call_tool("create_workflow_from_spec", {"spec_json": bad_yaml}),
                await client.call_tool("create_workflow_from_spec", {"spec_json": good, "user": "somebody_else"}))

    obj, text, bad, other_user = with_client(torc, body)
    created = data(obj)
    assert created["success"] and created["total_jobs"] == 4 and data(text)["workflow_id"] != created["workflow_id"]
    assert bad.is_error
    assert "spec.yaml: 1 problem(s) in the workflow spec; nothing was written" in bad.content[0].text
    assert "spec.yaml:5, job 'a', field 'failure_handler'" in bad.content[0].text
    assert other_user.is_error and "database role" in other_user.content[0].text
    names = {w["name"] for w in torc.json("workflows", "list")}
    assert names == {"made_by_agent"}          # two created, nothing from the bad calls


def test_cancel_a_job_with_its_dependent_in_the_same_call(torc, pending):
    wf, jobs = pending

    async def body(client):
        return await client.call_tool("cancel_jobs", {"workflow_id": wf, "reason": "dropped",
                                                      "job_ids": [jobs["after_fetch"]["id"], jobs["fetch"]["id"]]})

    out = data(with_client(torc, body))
    assert out["canceled_jobs"] == sorted([jobs["fetch"]["id"], jobs["after_fetch"]["id"]])
    assert out["canceled_count"] + out["canceled_dependents"] == 2
    st = {j["name"]: j["status"] for j in jobs_of(torc, wf).values()}
    assert st == {"fetch": "canceled", "after_fetch": "canceled", "parse": "pending_failed", "after_parse": "blocked"}
    ev = next(e for e in events_of(torc, wf) if e["kind"] == "canceled" and e["job_id"] == jobs["fetch"]["id"])
    assert ev["from_status"] == "pending_failed" and ev["detail"]["reason"] == "dropped"


def test_resubmit_refuses_a_hostile_account_naming_the_tools_arguments(torc, pending):
    # A newline in an sbatch value would become a line of shell in the allocation script. The error names
    # the tool's arguments as the source (not "the command line"), and nothing is submitted or recorded.
    wf, _ = pending
    before = _state(torc, wf)

    async def body(client):
        return await client.call_tool("resubmit_workflow",
                                      {"workflow_id": wf, "account": "acct\ntouch /tmp/owned", "dry_run": False})

    out = with_client(torc, body)
    assert out.is_error
    text = out.content[0].text
    assert "--account from the resubmit_workflow tool's arguments" in text and "U+000A" in text
    assert "command line" not in text
    assert _state(torc, wf) == before
