"""The soak at CI size: `bench/soak.py` with every fault kind on (seeded), a kill -9 of the whole local
cloud mid-run, and its checks (one run per upload, each IMM task created once, nothing stuck, every
manifest's outputs there, lost notifications settled by reconcile, memory flat across rounds)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.e2e import REPO

SOAK_TIMEOUT_SECONDS = 600


@pytest.mark.soak
def test_the_soak_loses_duplicates_and_strands_nothing() -> None:
    command = [sys.executable, str(REPO / "bench" / "soak.py"), "--count", "10", "--rounds", "2", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=SOAK_TIMEOUT_SECONDS)
    assert result.stdout.strip(), f"the soak printed nothing:\n{result.stderr[-4000:]}"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["problems"] == [] and result.returncode == 0, (
        f"{json.dumps(summary, indent=2)[-6000:]}\n{result.stderr[-2000:]}"
    )
    injected = summary["faults_injected"]
    assert injected["localcloud.kill"] == 1 and sum(injected.values()) > 3  # faults did happen
    assert summary["runs"] == 10 and summary["manifests_checked"] == 10
    # Every task whose notification was lost settled: a problem otherwise, checked above. Which path
    # settled it is not asserted: most settle through reconcile (the soak counts those), but a
    # reconcile invocation crashed by fc.crash or cut by the kill after recording a task returns no
    # list, and the local IMM re-runs a Running task after the restart and publishes its end again.
    # That reconcile alone recovers a lost notification is tested without timing in the functions' tests.
    assert summary["lost_settled_by_reconcile"] <= summary["notifications_lost"]
