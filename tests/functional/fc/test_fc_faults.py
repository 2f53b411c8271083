"""The fault plan in the local FC: a worker killed mid-invocation, which FC's async retry covers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.core.account import Account
from localcloud.core.faults import FaultPlan, stable_digest
from localcloud.core.http import ServiceServer
from localcloud.fc import FcService
from tests.support.fc import FcCloud, probe_function
from tests.support.wait import wait_until

ASYNC = {"x-fc-invocation-type": "Async"}


@pytest.fixture
def plan(tmp_path: Path) -> FaultPlan:
    return FaultPlan(seed=0, log_path=tmp_path / "faults.log")


SLOW = b'{"sleep": 2}'


@pytest.fixture
def crashing_fc(tmp_path: Path, plan: FaultPlan) -> Iterator[FcCloud]:
    account = Account.load_or_create(tmp_path)
    fc = FcService(tmp_path, account, async_retry_delay=1.0, faults=plan)
    server = ServiceServer(fc)
    fc.start(server.url)
    server.start()
    try:
        yield FcCloud(tmp_path, account, fc, server.url, "", "", tmp_path / "records")
    finally:
        server.stop()
        fc.close()


def _logged(plan: FaultPlan) -> list[dict[str, str]]:
    assert plan.log_path is not None
    return [json.loads(line) for line in plan.log_path.read_text().splitlines()]


def test_a_crashed_worker_is_covered_by_the_async_retry(crashing_fc: FcCloud, plan: FaultPlan) -> None:
    crashing_fc.fc.deploy(crashing_fc.write_s_yaml(probe_function("slow")))
    plan.rates["fc.crash"] = 1.0
    response = crashing_fc.client().invoke_function("s", "slow", payload=SLOW, headers=ASYNC)
    request_id = response.headers["X-Fc-Request-Id"]
    assert plan.log_path is not None
    wait_until(plan.log_path.exists, 10, "the crash")
    plan.rates["fc.crash"] = 0.0  # the retry comes a second (async_retry_delay) after the crash
    final = crashing_fc.wait_for_state(request_id, ("succeeded", "failed"), timeout=30)
    assert (final["state"], final["attempts"]) == ("succeeded", 2)
    (entry,) = _logged(plan)
    # keyed by the payload (and which invocation with it this is), not the run's random request id
    assert (entry["kind"], entry["item"]) == ("fc.crash", f"slow:{stable_digest(SLOW)}.1#1")


def test_a_worker_crashing_on_every_attempt_ends_failed(crashing_fc: FcCloud, plan: FaultPlan) -> None:
    config = {"maxAsyncRetryAttempts": 1}
    crashing_fc.fc.deploy(crashing_fc.write_s_yaml(probe_function("slow", asyncInvokeConfig=config)))
    plan.rates["fc.crash"] = 1.0
    response = crashing_fc.client().invoke_function("s", "slow", payload=SLOW, headers=ASYNC)
    request_id = response.headers["X-Fc-Request-Id"]
    final = crashing_fc.wait_for_state(request_id, ("failed",), timeout=30)
    assert final["attempts"] == 2 and "fc.crash" in final["error_message"]
    work = f"slow:{stable_digest(SLOW)}.1"
    assert [e["item"] for e in _logged(plan)] == [f"{work}#1", f"{work}#2"]
