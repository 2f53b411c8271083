"""Scaling out (localcloud.fc.instances): a request that finds every instance of its function busy
waits for one as long as the function's last cold start took (bounded), since a new instance could
not serve it sooner; a request held up longer than that still gets an instance of its own."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.fc import FcCloud

#: A function whose cold start takes over a second (its initializer), and whose events sleep as asked.
SLOW_START = (
    "import os, time\n\n\n"
    "def initializer(context):\n    time.sleep(1.5)\n\n\n"
    "def handler(event, context):\n    time.sleep(float(event))\n    return str(os.getpid())\n"
)


def _deploy(cloud: FcCloud, tmp_path: Path) -> None:
    code = tmp_path / "slow-start"
    code.mkdir()
    (code / "index.py").write_text(SLOW_START)
    cloud.fc.deploy(
        cloud.write_s_yaml(
            "  slow:\n    component: fc3\n    props:\n      region: cn-hangzhou\n      functionName: slow\n"
            f"      runtime: python3.10\n      handler: index.handler\n      code: {code}\n      timeout: 20\n"
            "      instanceLifecycleConfig:\n        initializer: {handler: index.initializer, timeout: 10}\n"
        )
    )


def _pids(cloud: FcCloud, seconds: float, count: int) -> set[str]:
    client = cloud.client()
    with ThreadPoolExecutor(count) as pool:
        calls = [
            pool.submit(client.invoke_function, "s", "slow", payload=str(seconds).encode())
            for _ in range(count)
        ]
        return {call.result().data.decode() for call in calls}


def test_a_busy_instance_is_waited_for_as_long_as_a_cold_start_of_its_function_takes(
    fc_cloud: FcCloud, tmp_path: Path
) -> None:
    _deploy(fc_cloud, tmp_path)
    _pids(fc_cloud, 0, 1)  # one instance, whose cold start (~1.5 s) the pool measures

    assert len(_pids(fc_cloud, 0.6, 2)) == 1  # the second waited 0.6 s rather than start cold for 1.5 s


def test_a_request_held_up_longer_than_a_cold_start_gets_a_new_instance(
    fc_cloud: FcCloud, tmp_path: Path
) -> None:
    _deploy(fc_cloud, tmp_path)
    _pids(fc_cloud, 0, 1)

    assert len(_pids(fc_cloud, 4, 2)) == 2


def test_a_function_starts_one_instance_at_a_time_while_its_instances_are_busy(
    fc_cloud: FcCloud, tmp_path: Path
) -> None:
    _deploy(fc_cloud, tmp_path)
    _pids(fc_cloud, 0, 1)

    # Past the wait both others would start an instance; the one that does not start one waits for
    # it instead, and gets the first instance to come free (the warm one, at 2 s).
    assert len(_pids(fc_cloud, 2, 3)) == 2
