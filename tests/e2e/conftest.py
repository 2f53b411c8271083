"""One ``immflow demo --json`` run from an empty state folder, shared by every e2e module (it takes a
minute or two): the pipeline's own checks and the dashboard's browser tests look at the same runs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.core.ports import free_port_base
from tests.support.e2e import CLI, REPO

DEMO_TIMEOUT_SECONDS = 900
#: The local cloud takes base+0..4; base+9 is the dashboard's.
PORTS_USED = 10


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("demo") / "state"
    port_base = free_port_base(PORTS_USED)
    command = [*CLI, "demo", "--json", "--state-dir", str(state_dir), "--port-base", str(port_base),
               "--project", str(REPO), "--timeout", "600"]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=DEMO_TIMEOUT_SECONDS)
        assert result.returncode == 0, (
            f"demo failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
        report = json.loads(result.stdout)
        report["endpoints"] = json.loads((state_dir / "endpoints.json").read_text())
        report["state_path"] = state_dir
        report["port_base"] = port_base
        yield report
    finally:
        subprocess.run(
            [*CLI, "local", "down", "--state-dir", str(state_dir)], capture_output=True, timeout=60
        )
