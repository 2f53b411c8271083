"""Secrets kept secret (issue 10 point 4): the key secret and the admin token appear in no file the
local cloud and the functions write, and in nothing the CLI prints, through a whole demo run.

The run is the user's: ``immflow local up --detach``, ``immflow demo --json`` (deploys s.yaml and
pipeline.yaml, uploads the samples, follows every task to the end), ``immflow local status``,
``immflow tasks list``, ``immflow local down``. Then every file under the state folder is read as
bytes and searched for both values, except the files whose job is to hold them:

- ``account.json``: the key pair itself (0600);
- ``endpoints.json``: what clients are configured from (DESIGN.md's contract: key pair and token; 0600);
- ``admin-token``: the token itself (0600);
- for the token only, the local MNS's SQLite files (``mns/mns.sqlite3`` and its WAL): FC's MNS topic
  trigger is a subscription whose endpoint URL carries ``?token=``, because the local MNS pushes
  without headers (localcloud/fc/triggers.py). Reading it back takes the key pair
  (GetSubscriptionAttributes), and the folder is 0700. The secret must not be there either.

The functions get the secret in their environment by design (FC hands functions the role's keys
the same way); their log files are searched like everything else, and the test checks they exist,
so that a run in which no function logged anything cannot pass for a clean one.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mns.subscription import SubscriptionMeta
from mns.topic import TopicMessage, TopicMeta

from localcloud.core.account import Account
from localcloud.core.admin import AdminGuard, load_or_create_token
from localcloud.core.http import log as http_log
from localcloud.core.ports import free_port, free_port_base
from localcloud.core.redact import SecretsFilter, redact_url
from localcloud.launcher import LocalCloud
from tests.support.clients import mns_account
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from immflow.cli import main; main()"]
#: Files that exist to hold a secret (see the module docstring); paths relative to the state folder.
HOLDS_THE_SECRET = {"account.json", "endpoints.json"}
HOLDS_THE_TOKEN = {
    "endpoints.json",
    "admin-token",
    "mns/mns.sqlite3",
    "mns/mns.sqlite3-wal",
    "mns/mns.sqlite3-shm",
}


@dataclass
class DemoRun:
    state_dir: Path
    secret: str
    token: str
    #: (command, stdout + stderr) of every CLI call.
    outputs: list[tuple[str, str]]


def _cli(run: DemoRun, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    run.outputs.append((" ".join(args), result.stdout + result.stderr))
    return result


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    state_dir = tmp_path_factory.mktemp("secrets") / "state"
    run = DemoRun(state_dir, "", "", [])
    state = ("--state-dir", str(state_dir))
    try:
        up = _cli(run, "local", "up", "--detach", *state, "--port-base", str(free_port_base(10)))
        assert up.returncode == 0, up.stdout + up.stderr
        endpoints = json.loads((state_dir / "endpoints.json").read_text())
        run.secret, run.token = endpoints["access_key_secret"], endpoints["admin_token"]
        demo = _cli(run, "demo", "--json", *state, "--project", str(REPO), "--timeout", "600", timeout=900)
        assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
        assert json.loads(demo.stdout)["ok"]
        for command in (("local", "status"), ("tasks", "list"), ("tasks", "list", "--json")):
            result = _cli(run, *command, *state)
            assert result.returncode == 0, result.stdout + result.stderr
    finally:
        _cli(run, "local", "down", *state, timeout=60)
    yield run


def _hits(root: Path, needle: str, allowed: set[str]) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if name not in allowed and needle.encode() in path.read_bytes():
            found.append(name)
    return found


def test_no_file_in_the_state_folder_holds_the_secret_or_the_token(demo_run: DemoRun) -> None:
    root = demo_run.state_dir
    assert demo_run.secret and demo_run.token
    logs = [p for p in (root / "fc" / "logs").glob("*.log") if p.stat().st_size > 0]
    assert {p.stem for p in logs} >= {"immflow-on-upload", "immflow-on-task-done"}, (
        "the functions logged nothing"
    )
    assert (root / "localcloud.log").stat().st_size > 0
    assert _hits(root, demo_run.secret, HOLDS_THE_SECRET) == []
    assert _hits(root, demo_run.token, HOLDS_THE_TOKEN) == []
    # The exclusions are the files that are meant to hold them, and they still do.
    assert _hits(root, demo_run.secret, set()) == sorted(HOLDS_THE_SECRET)
    assert "mns/mns.sqlite3" in _hits(root, demo_run.token, set()) or "mns/mns.sqlite3-wal" in _hits(
        root, demo_run.token, set()
    )


def test_nothing_the_cli_printed_holds_the_secret_or_the_token(demo_run: DemoRun) -> None:
    assert [command for command, _ in demo_run.outputs][:2] == [
        f"local up --detach --state-dir {demo_run.state_dir} --port-base "
        + demo_run.outputs[0][0].split()[-1],
        f"demo --json --state-dir {demo_run.state_dir} --project {REPO} --timeout 600",
    ]
    for command, output in demo_run.outputs:
        assert output, command
        assert demo_run.secret not in output, command
        assert demo_run.token not in output, command


# The log lines that could carry them, one by one -----------------------------------------------------


def test_a_failing_push_logs_its_endpoint_without_the_token(
    local: LocalCloud, caplog: pytest.LogCaptureFixture
) -> None:
    """An MNS push to FC carries the token in its URL; when it fails, the log shows the URL blanked."""
    closed_port = free_port()  # nothing listens on it
    endpoint = f"http://127.0.0.1:{closed_port}/_localcloud/mns/f/t?token=the-admin-token"
    account = mns_account(local)
    topic = account.get_topic("push-fails")
    topic.create(TopicMeta())
    topic.get_subscription("to-nowhere").subscribe(SubscriptionMeta(endpoint=endpoint))
    with caplog.at_level(logging.INFO, logger="localcloud.mns.push"):
        topic.publish_message(TopicMessage("hello"))
        wait_until(lambda: "push to" in caplog.text, 30, "the failing push logged")
    assert "token=***" in caplog.text and "the-admin-token" not in caplog.text
    topic.get_subscription("to-nowhere").unsubscribe()


def test_the_launchers_log_filter_blanks_both_in_messages_and_tracebacks(tmp_path: Path) -> None:
    account = Account.new()
    token = load_or_create_token(tmp_path)
    secrets_filter = SecretsFilter([account.access_key_secret, token])
    try:
        raise ValueError(f"bad key {account.access_key_secret}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "token %s", (token,), sys.exc_info())
    assert secrets_filter.filter(record)
    text = logging.Formatter().format(record)
    assert account.access_key_secret not in text and token not in text
    assert "token ***" in text and "bad key ***" in text


def test_urls_are_logged_with_the_token_blanked() -> None:
    assert (
        redact_url("http://127.0.0.1:9/_localcloud/mns/f/t?token=abc")
        == "http://127.0.0.1:9/_localcloud/mns/f/t?token=***"
    )
    assert redact_url("/x?a=1&token=abc&b=2") == "/x?a=1&token=***&b=2"
    assert redact_url("/x?tokens=1") == "/x?tokens=1"


def test_the_http_servers_log_lines_blank_the_token(caplog: pytest.LogCaptureFixture) -> None:
    """The server logs each request's path (and an unhandled error's): the MNS push route has the token."""
    with caplog.at_level(logging.DEBUG, logger="localcloud.http"):
        http_log.debug("%s %s %s -> %s", "fc", "POST", "/_localcloud/mns/f/t?token=the-admin-token", 204)
    assert "/_localcloud/mns/f/t?token=*** -> 204" in caplog.text and "the-admin-token" not in caplog.text


def test_reprs_leave_the_secret_and_the_token_out(tmp_path: Path) -> None:
    account = Account.new()
    guard = AdminGuard.for_state_dir(tmp_path)
    assert account.access_key_secret not in repr(account)
    assert guard.token not in repr(guard)
