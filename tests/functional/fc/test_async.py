"""Async invocations: retries, destinations, event age, and durability across kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
from mns.account import Account as MnsAccount
from mns.queue import Queue, QueueMeta

from localcloud.core.admin import admin_headers, load_or_create_token
from tests.support.fc import FcCloud, probe_function
from tests.support.wait import wait_until

ASYNC = {"x-fc-invocation-type": "Async"}


def _queue(cloud: FcCloud, name: str) -> Queue:
    queue = MnsAccount(cloud.mns_url, cloud.account.access_key_id, cloud.account.access_key_secret).get_queue(
        name
    )
    queue.create(QueueMeta())
    queue.set_encoding(False)
    return queue


def test_failed_async_invocation_is_retried_then_sent_to_the_failure_queue(fc_cloud: FcCloud) -> None:
    dlq = _queue(fc_cloud, "dlq")
    config = {
        "maxAsyncRetryAttempts": 2,
        "destinationConfig": {
            "onFailure": {"destination": "acs:mns:cn-hangzhou:${config('AccountID')}:/queues/dlq/messages"}
        },
    }
    fc_cloud.fc.deploy(fc_cloud.write_s_yaml(probe_function("flaky", asyncInvokeConfig=config)))

    response = fc_cloud.client().invoke_function("s", "flaky", payload=b'{"fail": "always"}', headers=ASYNC)
    request_id = response.headers["X-Fc-Request-Id"]
    final = fc_cloud.wait_for_state(request_id, ("failed",))

    assert final["attempts"] == 3 and final["error_message"] == "always"
    assert len(fc_cloud.records_where()) == 3  # the first run and two retries
    message = dlq.receive_message(wait_seconds=5)
    record = json.loads(message.message_body)
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["condition"] == "UnhandledInvocationError"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestPayload"] == '{"fail": "always"}'
    assert json.loads(record["responsePayload"])["errorMessage"] == "always"


def test_successful_async_invocation_is_sent_to_the_success_function(fc_cloud: FcCloud) -> None:
    config = {
        "destinationConfig": {
            "onSuccess": {"destination": "acs:fc:cn-hangzhou:${config('AccountID')}:functions/sink"}
        }
    }
    fc_cloud.fc.deploy(
        fc_cloud.write_s_yaml(probe_function("source", asyncInvokeConfig=config) + probe_function("sink"))
    )

    response = fc_cloud.client().invoke_function("s", "source", payload=b'{"n": 7}', headers=ASYNC)
    (sink,) = fc_cloud.wait_for_records(1, lambda r: r["function"]["name"] == "sink")

    record = json.loads(sink["event"])
    assert record["requestContext"]["requestId"] == response.headers["X-Fc-Request-Id"]
    assert record["requestContext"]["condition"] == ""
    assert record["requestContext"]["functionArn"].endswith(":functions/source")
    assert json.loads(record["responsePayload"])["event"] == '{"n": 7}'


def test_zero_retries_means_one_attempt(fc_cloud: FcCloud) -> None:
    fc_cloud.fc.deploy(
        fc_cloud.write_s_yaml(probe_function("once", asyncInvokeConfig={"maxAsyncRetryAttempts": 0}))
    )

    response = fc_cloud.client().invoke_function("s", "once", payload=b'{"fail": "x"}', headers=ASYNC)

    assert fc_cloud.wait_for_state(response.headers["X-Fc-Request-Id"], ("failed",))["attempts"] == 1


_SERVE = """
import sys, threading
from pathlib import Path
from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.fc import FcService
state = Path(sys.argv[1])
fc = FcService(state, Account.load_or_create(state))
server = ServiceServer(fc, port=int(sys.argv[2]))
fc.start(server.url)
server.start()
print(server.url, flush=True)
threading.Event().wait()  # serves until the test kills it
"""


def _serve(state: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(state), str(port)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def test_accepted_async_invocation_survives_kill_9_and_runs_after_restart(
    fc_cloud: FcCloud, tmp_path: Path
) -> None:
    state = tmp_path / "durable"
    fc_cloud.state_dir = state
    state.mkdir()
    (state / "account.json").write_text((tmp_path / "account.json").read_text())  # same keys as the client
    s_yaml = fc_cloud.write_s_yaml(probe_function("slow", timeout=120))
    process, url = _serve(state, 0)
    try:
        admin = admin_headers(load_or_create_token(state))
        requests.post(
            f"{url}/_localcloud/deploy", json={"s_yaml": str(s_yaml)}, headers=admin, timeout=30
        ).raise_for_status()
        fc_cloud.fc_url = url
        marker = tmp_path / "started"
        response = fc_cloud.client().invoke_function(
            "s", "slow", payload=json.dumps({"once": str(marker)}).encode(), headers=ASYNC
        )
        request_id = response.headers["X-Fc-Request-Id"]
        wait_until(marker.exists, 20, "the invocation started")
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the server and its function instance, mid-invocation
        process.wait()

    restarted, url = _serve(state, 0)
    try:

        def invocation() -> dict[str, Any]:
            listed = requests.get(f"{url}/_localcloud/invocations", headers=admin, timeout=5).json()
            (found,) = [i for i in listed["invocations"] if i["request_id"] == request_id]
            return dict(found)

        wait_until(lambda: invocation()["state"] == "succeeded", 30, f"invocation {request_id} succeeded")
        assert invocation()["attempts"] == 2
    finally:
        os.killpg(restarted.pid, signal.SIGTERM)
        restarted.wait()
