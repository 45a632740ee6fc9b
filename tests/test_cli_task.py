"""`tes-cts task ...` as people run it: the real command as a process against a live `tes-cts
serve` with its poller and real containers. Every failure is one line on stderr, never a
traceback."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from tes_cts.auth.hashing import hash_password
from tes_cts.client.api import EXIT_CANCELED, EXIT_ERROR, EXIT_EXECUTOR_ERROR, EXIT_TIMEOUT
from tes_cts.client.task_cmd import overlap, register

from .auth_servers import toml_table
from .docker_env import docker_env
from .live_server import TES_CTS, free_port
from .test_e2e_local import TERMINAL, get, run, submit, task, wait_for

TASK_ID = re.compile(r"[a-z0-9]{10,}")


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def server(live_servers, out_dir, docker_image):
    return live_servers.start({
        "DOCKER_HOST": docker_env()["DOCKER_HOST"],
        "TES_CTS_STORAGE__FILE_ROOTS": f'["{out_dir}"]',
        "TES_CTS_POLLER__INTERVAL_S": "0.2",
    }, poller=True)


def tes_cts_task(server_url: str | None, *args: str, stdin: str | None = None,
                 **env: str) -> subprocess.CompletedProcess:
    """`tes-cts task <args>` with TES_SERVER (unless None) and `env` over none of the caller's TES_*."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("TES_")}
    if server_url is not None:
        clean["TES_SERVER"] = server_url
    result = subprocess.run([TES_CTS, "task", *args], input=stdin, capture_output=True, text=True,
                            env={**clean, **env}, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def assert_one_line_error(result: subprocess.CompletedProcess, *parts: str) -> None:
    assert result.returncode == EXIT_ERROR, result
    assert result.stdout == ""
    assert result.stderr.startswith("tes-cts: ") and result.stderr.count("\n") == 1, result.stderr
    for part in parts:
        assert part in result.stderr


def created_id(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    assert TASK_ID.fullmatch(result.stdout.strip()) and result.stdout.count("\n") == 1, result.stdout
    return result.stdout.strip()


# What the task says of its own result, through the file TES_RESULT_FILE names.
REPORT = """echo '{"message": "said hello", "status": 200, "metrics": {"greetings": 1}}' > "$TES_RESULT_FILE" """


@pytest.fixture(scope="module")
def hello(server, out_dir, tmp_path_factory) -> str:
    """A task that says hello on stdout and stderr and writes one output, created from a file."""
    body = task(run(["sh", "-c", "echo hello; echo oops >&2; echo hello > /out/greeting.txt; " + REPORT]),
                name="cli-hello", tags={"suite": "cli"},
                outputs=[{"path": "/out/greeting.txt", "url": f"{out_dir}/greeting.txt"}])
    path = tmp_path_factory.mktemp("bodies") / "hello.json"
    path.write_text(json.dumps(body))
    return created_id(tes_cts_task(server.url, "create", str(path)))


@pytest.fixture(scope="module")
def failing(server) -> str:
    """A task whose executor exits with 3, created from stdin."""
    body = task(run(["sh", "-c", "exit 3"]), name="cli-failing", tags={"suite": "cli"})
    return created_id(tes_cts_task(server.url, "create", "-", stdin=json.dumps(body)))


@pytest.fixture(scope="module")
def listed(server) -> dict[str, str]:
    """Three tasks to list, by name."""
    tags = {"cli-list-red": {"group": "list", "color": "red"}, "cli-list-blue": {"group": "list", "color": "blue"},
            "cli-list-plain": {"group": "list"}}
    return {name: submit(server, task(run(["true"]), name=name, tags=tag)) for name, tag in tags.items()}


def listed_ids(result: subprocess.CompletedProcess) -> list[str]:
    """The ids in `task list`'s table, under its header."""
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "CREATED", "NAME"]
    return [row.split()[0] for row in rows]


# -- create, wait, get, logs --------------------------------------------------------------------


def test_create_from_a_file_and_from_stdin_prints_only_the_id(server, hello, failing):
    assert get(server, hello, "BASIC")["name"] == "cli-hello"
    assert get(server, failing, "BASIC")["name"] == "cli-failing"


def test_wait_exits_0_when_the_task_completes(server, hello):
    result = tes_cts_task(server.url, "wait", hello)
    assert (result.returncode, result.stdout) == (0, f"{hello} COMPLETE\n"), result.stderr


def test_wait_exits_with_the_worst_outcome_an_executor_error(server, hello, failing):
    alone = tes_cts_task(server.url, "wait", failing, "--timeout", "PT2M")
    assert (alone.returncode, alone.stdout) == (EXIT_EXECUTOR_ERROR, f"{failing} EXECUTOR_ERROR\n"), alone.stderr
    both = tes_cts_task(server.url, "wait", hello, failing)
    assert both.returncode == EXIT_EXECUTOR_ERROR
    assert sorted(both.stdout.splitlines()) == sorted([f"{hello} COMPLETE", f"{failing} EXECUTOR_ERROR"])


def test_get_json_prints_the_view_asked_for(server, hello):
    wait_for(server, hello)
    full = tes_cts_task(server.url, "get", hello, "--json")
    assert full.returncode == 0 and full.stdout.startswith("{\n  "), full.stderr
    assert json.loads(full.stdout) == get(server, hello)
    minimal = tes_cts_task(server.url, "get", hello, "--json", "--view", "minimal")
    assert json.loads(minimal.stdout) == {"id": hello, "state": "COMPLETE"}


def test_get_summarizes_state_times_exit_codes_outputs_and_system_logs(server, hello, failing, out_dir):
    done = wait_for(server, hello)
    attempt = done["logs"][-1]
    result = tes_cts_task(server.url, "get", hello)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for label, value in (("id", hello), ("name", "cli-hello"), ("state", "COMPLETE"), ("tags", "suite=cli"),
                         ("created", done["creation_time"]), ("started", attempt["start_time"]),
                         ("ended", attempt["end_time"])):
        assert re.fullmatch(rf"{label}: +{re.escape(value)}", lines.pop(0)), result.stdout
    assert lines[:2] == ["executors:", "  [0] exit code 0  tes-cts-test/busybox:1  " + shlex.join(
        ["sh", "-c", "echo hello; echo oops >&2; echo hello > /out/greeting.txt; " + REPORT])]
    crc = attempt["metadata"][f"crc64nvme:{out_dir}/greeting.txt"]
    assert f"  /out/greeting.txt -> {out_dir}/greeting.txt  6 bytes  CRC64NVME {crc}" in lines
    assert "system logs:" in lines and f"  {attempt['system_logs'][0]}" in lines
    at = lines.index("result:")
    assert lines[at:at + 4] == ["result:", "  message: said hello", "  status: 200", "  metric.greetings: 1"]

    wait_for(server, failing)
    assert "  [0] exit code 3  tes-cts-test/busybox:1  sh -c 'exit 3'" in tes_cts_task(server.url, "get", failing).stdout


def test_logs_prints_an_executors_stdout_or_stderr_exactly(server, hello):
    wait_for(server, hello)
    assert tes_cts_task(server.url, "logs", hello).stdout == "hello\n"
    assert tes_cts_task(server.url, "logs", hello, "--stderr", "--attempt", "0", "--executor", "0").stdout == "oops\n"
    assert_one_line_error(tes_cts_task(server.url, "logs", hello, "--executor", "1"), "no executor 1")


def test_logs_follow_prints_each_executor_once_as_it_ends(server):
    task_id = submit(server, task(run(["echo", "one"]), run(["sh", "-c", "sleep 1; echo two"])))
    result = tes_cts_task(server.url, "logs", task_id, "--follow")
    assert (result.returncode, result.stdout) == (0, "one\ntwo\n"), result.stderr
    assert get(server, task_id, "MINIMAL")["state"] == "COMPLETE"


def test_logs_print_the_whole_log_not_only_the_tail_the_full_view_keeps(server):
    """The server keeps the last 64 KiB in the FULL view; the logs extension has all of it."""
    task_id = submit(server, task(run(["seq", "20000"])))
    assert wait_for(server, task_id)["state"] == "COMPLETE"
    printed = "".join(f"{n}\n" for n in range(1, 20001))
    assert len(get(server, task_id)["logs"][0]["logs"][0]["stdout"]) < len(printed)
    assert tes_cts_task(server.url, "logs", task_id).stdout == printed


def test_logs_follow_prints_a_running_executors_output_as_it_comes(server):
    task_id = submit(server, task(run(["sh", "-c", "echo first; sleep 4; echo second"])))
    clean = {name: value for name, value in os.environ.items() if not name.startswith("TES_")}
    follower = subprocess.Popen([TES_CTS, "task", "logs", task_id, "--follow"], stdout=subprocess.PIPE, text=True,
                                env={**clean, "TES_SERVER": server.url})
    try:
        assert follower.stdout.readline() == "first\n"
        assert get(server, task_id, "MINIMAL")["state"] not in TERMINAL  # printed while the executor runs
        assert follower.stdout.read() == "second\n" and follower.wait(timeout=60) == 0
    finally:
        follower.kill()
        follower.wait()


def test_logs_without_the_full_log_print_the_tail_the_full_view_keeps(server):
    """What an older server (no logs extension) gives, as does a run directory removed after its
    retention: the FULL view's tail."""
    task_id = submit(server, task(run(["sh", "-c", "echo from the tail; echo err >&2"])))
    assert wait_for(server, task_id)["state"] == "COMPLETE"
    shutil.rmtree(server.cwd / "work" / "runs" / task_id)
    assert tes_cts_task(server.url, "logs", task_id).stdout == "from the tail\n"
    assert tes_cts_task(server.url, "logs", task_id, "--stderr", "--follow").stdout == "err\n"


@pytest.mark.parametrize("old,new,expected", [
    ("", "abc", 0), ("ab", "abcd", 2), ("abcdef", "defgh", 3), ("abc", "xyz", 0),
    ("aaaa", "aab", 2), ("abab", "ababab", 4), ("log line\n", "log line\n", 9),
])
def test_a_grown_tail_is_printed_after_its_overlap_with_what_was_printed(old, new, expected):
    """The server keeps only a tail: a grown log may no longer start with what was printed."""
    assert overlap(old, new) == expected


# -- list ---------------------------------------------------------------------------------------


def test_list_filters_by_name_prefix_tag_and_state(server, listed, hello, failing):
    everything = set(listed.values())
    assert set(listed_ids(tes_cts_task(server.url, "list", "--name-prefix", "cli-list-"))) == everything
    assert set(listed_ids(tes_cts_task(server.url, "list", "--tag", "group=list"))) == everything
    assert listed_ids(tes_cts_task(server.url, "list", "--tag", "color=red")) == [listed["cli-list-red"]]
    any_color = {listed["cli-list-red"], listed["cli-list-blue"]}
    assert set(listed_ids(tes_cts_task(server.url, "list", "--tag", "color"))) == any_color
    assert set(listed_ids(tes_cts_task(server.url, "list", "--tag", "color=", "--tag", "group=list"))) == any_color
    wait_for(server, hello)
    wait_for(server, failing)
    assert listed_ids(tes_cts_task(server.url, "list", "--state", "executor_error")) == [failing]


def test_list_json_lines_have_the_view_asked_for(server, listed):
    basic = tes_cts_task(server.url, "list", "--json", "--name-prefix", "cli-list-")
    tasks = [json.loads(line) for line in basic.stdout.splitlines()]
    assert {t["id"]: t["name"] for t in tasks} == {task_id: name for name, task_id in listed.items()}
    assert all("creation_time" in t for t in tasks)
    minimal = tes_cts_task(server.url, "list", "--json", "--view", "MINIMAL", "--tag", "color=blue")
    assert [set(json.loads(line)) for line in minimal.stdout.splitlines()] == [{"id", "state"}]


def test_list_shows_one_page_unless_all(server, listed):
    one_page = listed_ids(tes_cts_task(server.url, "list", "--page-size", "1", "--name-prefix", "cli-list-"))
    every_page = listed_ids(tes_cts_task(server.url, "list", "--all", "--page-size", "1",
                                         "--name-prefix", "cli-list-"))
    assert len(one_page) == 1 and one_page[0] in listed.values()
    assert sorted(every_page) == sorted(listed.values()) and every_page[0] == one_page[0]


# -- cancel and the exit codes of wait ----------------------------------------------------------


def test_wait_times_out_then_a_canceled_task_exits_canceled(server):
    sleeper = submit(server, task(run(["sleep", "30"]), name="cli-sleeper"))
    timed_out = tes_cts_task(server.url, "wait", sleeper, "--timeout", "1")
    assert (timed_out.returncode, timed_out.stdout) == (EXIT_TIMEOUT, "")
    assert re.fullmatch(rf"tes-cts: timed out after 1s; not done: {sleeper} \([A-Z]+\)\n", timed_out.stderr)

    canceled = tes_cts_task(server.url, "cancel", "no-such-task", sleeper)
    assert (canceled.returncode, canceled.stdout) == (EXIT_ERROR, f"{sleeper}\n")
    assert re.fullmatch(r"tes-cts: cancel no-such-task: HTTP 404: .*\n", canceled.stderr)

    ended = tes_cts_task(server.url, "wait", sleeper, "--timeout", "PT1M")
    assert (ended.returncode, ended.stdout) == (EXIT_CANCELED, f"{sleeper} CANCELED\n"), ended.stderr


# -- errors as one line -------------------------------------------------------------------------


def test_an_unreachable_server_is_one_line(server):
    closed = f"http://127.0.0.1:{free_port()}"
    for args in (("get", "some-id"), ("list",), ("wait", "some-id"), ("logs", "some-id")):
        assert_one_line_error(tes_cts_task(None, *args, "--server", closed), f"cannot reach {closed}",
                              "connection refused")


def test_an_unknown_task_is_one_line(server):
    for verb in ("get", "wait", "logs"):
        assert_one_line_error(tes_cts_task(server.url, verb, "no-such-task"), "HTTP 404")


def test_a_rejected_task_is_the_servers_reasons_on_one_line(server):
    body = {"executors": [{"command": ["true"]}], "inputs": [{"path": "relative"}]}
    result = tes_cts_task(server.url, "create", "-", stdin=json.dumps(body))
    assert_one_line_error(result, "HTTP 400", "executors[0].image: is required", "inputs[0].path:")


@pytest.mark.parametrize("stdin,args,message", [
    (None, ["/no/such/task.json"], "cannot read /no/such/task.json: No such file or directory"),
    ("{\"executors\": [", ["-"], "stdin is not JSON: Expecting value at line 1 column 16"),
    ("[1, 2]", ["-"], "stdin: a task is a JSON object"),
])
def test_a_bad_task_file_is_one_line(server, stdin, args, message):
    assert_one_line_error(tes_cts_task(server.url, "create", *args, stdin=stdin), message)


def test_wrong_credentials_are_a_401_on_one_line(live_servers):
    with live_servers.start({"TES_CTS_AUTH__PROVIDERS": '["basic"]',
                             "TES_CTS_AUTH__BASIC__USERS": toml_table({"alice": hash_password("right")})}) as guarded:
        wrong = tes_cts_task(guarded.url, "list", TES_USER="alice", TES_PASSWORD="wrong")
        assert_one_line_error(wrong, "HTTP 401", "wrong user name or password")
        right = tes_cts_task(guarded.url, "list", TES_USER="alice", TES_PASSWORD="right")
        assert right.returncode == 0 and right.stdout.splitlines()[1:] == [], right.stderr
        anonymous = tes_cts_task(guarded.url, "get", "some-id")
        assert_one_line_error(anonymous, "HTTP 401")


def test_every_verb_has_the_connection_arguments():
    parser = argparse.ArgumentParser(prog="tes-cts")
    register(parser.add_subparsers(dest="command"))
    for verb in (["create", "-"], ["get", "x"], ["list"], ["cancel", "x"], ["wait", "x"], ["logs", "x"]):
        args = parser.parse_args(["task", *verb, "--server", "http://tes", "--user", "u", "--token", "t"])
        assert (args.server, args.user, args.token) == ("http://tes", "u", "t") and callable(args.handler)
