"""Pre-warmed instances (``FcService(prewarm=True)``, what ``immflow local up`` runs): a deploy starts
one instance per function that imports its handler's module and runs its initializer before any request."""

from __future__ import annotations

import json
from pathlib import Path

import fc2
import pytest

from tests.support.fc import FcCloud, probe_function
from tests.support.wait import wait_until

INITIALIZER = {"initializer": {"handler": "index.initializer", "timeout": 5}}


def _imported(cloud: FcCloud, what: str = "imported") -> list[int]:
    """The pids of the processes that imported the probe (or, `what` "initialized", initialized it)."""
    return sorted(int(p.name.removeprefix(f"{what}-")) for p in cloud.records.glob(f"{what}-*"))


def _deploy(cloud: FcCloud) -> None:
    cloud.fc.prewarm = True
    cloud.fc.deploy(cloud.write_s_yaml(probe_function("warm", instanceLifecycleConfig=INITIALIZER)))


def test_a_deploy_imports_the_handler_before_any_request_and_the_first_request_uses_that_instance(
    fc_cloud: FcCloud,
) -> None:
    _deploy(fc_cloud)
    wait_until(
        lambda: _imported(fc_cloud), timeout=20, what="an instance importing the handler after the deploy"
    )
    assert not fc_cloud.records_where()  # no request has run

    record = json.loads(fc_cloud.client().invoke_function("s", "warm", payload=b"{}").data)

    assert [record["pid"]] == _imported(fc_cloud)
    assert record["initialized"] == 1  # the initializer still ran, once, before the first request


def test_a_deploy_runs_the_initializer_before_any_request_and_the_first_request_does_not_again(
    fc_cloud: FcCloud,
) -> None:
    _deploy(fc_cloud)
    [pid] = wait_until(
        lambda: _imported(fc_cloud, "initialized"),
        timeout=20,
        what="the pre-warmed instance running the initializer after the deploy",
    )
    assert not fc_cloud.records_where()  # no request has run

    record = json.loads(fc_cloud.client().invoke_function("s", "warm", payload=b"{}").data)

    assert (record["pid"], record["initialized"]) == (pid, 1)


def test_a_request_during_the_warm_up_waits_for_that_instance_rather_than_starting_another(
    fc_cloud: FcCloud,
) -> None:
    _deploy(fc_cloud)

    record = json.loads(fc_cloud.client().invoke_function("s", "warm", payload=b"{}").data)

    assert [record["pid"]] == _imported(fc_cloud)


def test_a_redeploy_of_a_changed_function_warms_the_new_version(fc_cloud: FcCloud) -> None:
    _deploy(fc_cloud)
    first = json.loads(fc_cloud.client().invoke_function("s", "warm", payload=b"{}").data)
    fc_cloud.fc.deploy(
        fc_cloud.write_s_yaml(probe_function("warm", instanceLifecycleConfig=INITIALIZER, timeout=9))
    )

    second = json.loads(fc_cloud.client().invoke_function("s", "warm", payload=b"{}").data)

    assert second["pid"] != first["pid"] and second["function"]["timeout"] == 9
    assert len(_imported(fc_cloud)) == 2


def test_an_unchanged_redeploy_keeps_the_warm_instance(fc_cloud: FcCloud) -> None:
    _deploy(fc_cloud)
    first = json.loads(fc_cloud.client().invoke_function("s", "warm", payload=b"{}").data)
    _deploy(fc_cloud)

    second = json.loads(fc_cloud.client().invoke_function("s", "warm", payload=b"{}").data)

    assert second["pid"] == first["pid"] and len(_imported(fc_cloud)) == 1


SLOW_IMPORT = (
    "import os, pathlib, time\n"
    "record = pathlib.Path(os.environ['RECORD_DIR']) / os.environ['FC_FUNCTION_NAME']\n"
    "started = time.time()\n"
    "time.sleep(0.5)\n"
    "record.write_text(f'{started} {time.time()}')\n\n\n"
    "def handler(event, context):\n    return 'ok'\n"
)


def test_the_warm_ups_of_a_deploy_run_one_after_another_in_its_order(
    fc_cloud: FcCloud, tmp_path: Path
) -> None:
    code = tmp_path / "slow"
    code.mkdir()
    fc_cloud.records.mkdir(parents=True, exist_ok=True)
    (code / "index.py").write_text(SLOW_IMPORT)
    functions = "".join(
        f"  {name}:\n    component: fc3\n    props:\n      region: cn-hangzhou\n      functionName: {name}\n"
        f"      runtime: python3.10\n      handler: index.handler\n      code: {code}\n      timeout: 10\n"
        f"      environmentVariables:\n        RECORD_DIR: {fc_cloud.records}\n"
        for name in ("first", "second", "third")
    )
    fc_cloud.fc.prewarm = True
    fc_cloud.fc.deploy(fc_cloud.write_s_yaml(functions))

    spans = wait_until(
        lambda: (
            [
                tuple(map(float, (fc_cloud.records / n).read_text().split()))
                for n in ("first", "second", "third")
            ]
            if all((fc_cloud.records / n).exists() for n in ("first", "second", "third"))
            else None
        ),
        timeout=30,
        what="three warm-ups",
    )

    assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0]


FAILING_INITIALIZER = (
    "import os, pathlib\n\n\n"
    "def initializer(context):\n"
    "    (pathlib.Path(os.environ['RECORD_DIR']) / f'tried-{os.getpid()}').write_text('')\n"
    "    raise RuntimeError('no database')\n\n\n"
    "def handler(event, context):\n    return 'ok'\n"
)


def test_an_initializer_failing_at_the_warm_up_is_tried_again_and_reported_by_the_first_request(
    fc_cloud: FcCloud, tmp_path: Path
) -> None:
    code = tmp_path / "failing"
    code.mkdir()
    (code / "index.py").write_text(FAILING_INITIALIZER)
    fc_cloud.records.mkdir(parents=True, exist_ok=True)
    fc_cloud.fc.prewarm = True
    fc_cloud.fc.deploy(
        fc_cloud.write_s_yaml(
            "  failing:\n    component: fc3\n    props:\n      region: cn-hangzhou\n"
            f"      functionName: failing\n      runtime: python3.10\n      handler: index.handler\n"
            f"      code: {code}\n      timeout: 10\n"
            "      instanceLifecycleConfig:\n        initializer: {handler: index.initializer, timeout: 5}\n"
            f"      environmentVariables:\n        RECORD_DIR: {fc_cloud.records}\n"
        )
    )
    wait_until(lambda: _imported(fc_cloud, "tried"), timeout=20, what="the warm-up trying the initializer")

    with pytest.raises(fc2.FcError) as raised:
        fc_cloud.client().invoke_function("s", "failing", payload=b"{}")

    error = json.loads(raised.value.message)
    assert error["errorMessage"] == "initializer failed: no database"
    assert len(_imported(fc_cloud, "tried")) == 2  # the request's own instance, not the failed one
