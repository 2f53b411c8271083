"""A local FC started for a test (with the OSS and MNS it wires triggers into), and the probe function."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fc2

from localcloud.core.account import Account
from localcloud.fc import FcService
from localcloud.mns import MnsService
from localcloud.oss import OssService
from tests.support.wait import wait_until

#: A function that records each invocation it gets (tests/functional/fc/functions/probe/index.py).
PROBE = Path(__file__).resolve().parents[1] / "functional" / "fc" / "functions" / "probe"


@dataclass
class FcCloud:
    state_dir: Path
    account: Account
    fc: FcService
    fc_url: str
    oss_url: str
    mns_url: str
    records: Path
    oss: OssService | None = None
    mns: MnsService | None = None

    def wait_delivered(self, timeout: float = 20) -> None:
        """Until every OSS event and MNS push queued so far reached FC, and every invocation FC
        queued ended: what a test waits for before it asserts that something did *not* arrive."""
        if self.oss is not None:
            assert self.oss.wait_for_deliveries(timeout), "OSS events still queued"
        if self.mns is not None:
            assert self.mns.wait_for_deliveries(timeout), "MNS pushes still pending"
        assert self.fc.wait_idle(timeout), f"FC invocations still queued or running: {self.fc.invocations()}"

    def client(self, secret: str | None = None, key_id: str | None = None) -> fc2.Client:
        return fc2.Client(
            endpoint=self.fc_url,
            accessKeyID=key_id or self.account.access_key_id,
            accessKeySecret=secret or self.account.access_key_secret,
            Timeout=30,
        )

    def write_s_yaml(self, functions: str, name: str = "s.yaml") -> Path:
        """An fc3 s.yaml whose ``resources:`` block is ``functions`` (indented by two spaces)."""
        text = (
            "edition: 3.0.0\nname: test\naccess: default\nvars:\n  region: cn-hangzhou\n"
            f"  probe: {PROBE}\n  records: {self.records}\nresources:\n{functions}"
        )
        path = self.state_dir / name
        path.write_text(text)
        return path

    def records_where(
        self, predicate: Callable[[dict[str, Any]], bool] = lambda r: True
    ) -> list[dict[str, Any]]:
        found = [json.loads(p.read_text()) for p in sorted(self.records.glob("*.json"))]
        return [r for r in found if predicate(r)]

    def wait_for_records(
        self, count: int, predicate: Callable[[dict[str, Any]], bool] = lambda r: True, timeout: float = 20
    ) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            found = self.records_where(predicate)
            return found if len(found) >= count else None

        return wait_until(enough, timeout, f"{count} records")

    def wait_for_state(self, request_id: str, states: tuple[str, ...], timeout: float = 20) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            for invocation in self.fc.invocations():
                if invocation["request_id"] == request_id and invocation["state"] in states:
                    return dict(invocation)
            return None

        return wait_until(reached, timeout, f"invocation {request_id} in {states}")


def probe_function(name: str, **props: Any) -> str:
    """One fc3 resource running the probe, with extra props as YAML lines."""
    extra = "".join(f"      {key}: {json.dumps(value)}\n" for key, value in props.items())
    return (
        f"  {name}:\n    component: fc3\n    props:\n      region: ${{vars.region}}\n"
        f"      functionName: {name}\n      runtime: python3.10\n      handler: index.handler\n"
        f"      code: ${{vars.probe}}\n      timeout: 10\n"
        f"      environmentVariables:\n        RECORD_DIR: ${{vars.records}}\n{extra}"
    )
