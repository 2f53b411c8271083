"""The demo's cost over the bare media work, and how fast a task's end reaches on_task_done.

1. **Overhead.** The whole ``immflow demo --json`` (start the local cloud from an empty state
   folder, package and deploy, make and upload the samples, follow every run to its manifest,
   check every output) against the same media work done directly, one command after another
   (``bench/media_work.py``: the tools and options the local IMM runs). Ratio = demo wall time / direct time (the mean of a direct run before and one after the demo).
   Where the demo's time went is printed too: its set-up phases and, by the ledger's timestamps,
   the way from the uploads to the last manifest (the demo's ``--json`` ``phases``).
2. **Notification latency**, per IMM task: from the task's ``EndTime`` (IMM's own clock, ms) to
   the start of the on_task_done invocation that IMM's MNS notification triggered (the local FC
   records when each invocation starts), against polling ``GetTask`` every second from the same
   moment the task appears in the ledger (a poller thread runs during the demo); p50 and p95.

Run: ``python bench/bench_demo.py [--port-base N]`` (default: free ports). Prints a table and
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import immflow.ledger.tablestore  # noqa: F401  # the poller's ledger, imported before the clock (below)
import requests
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from alibabacloud_tea_openapi.models import Config
from immflow.ledger import TaskQuery, local_ledger
from media_work import direct_media_work, percentiles

from localcloud.core.admin import admin_headers
from localcloud.core.ports import free_port_base
from localcloud.launcher import SERVICES

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from immflow.cli import main; main()"]
FINAL = ("Succeeded", "Failed")
#: The demo's phases (its --json "phases", `immflow.demo.runner.PhaseClock`), in order.
PHASES = (
    ("cloud_start", "start the local cloud (demo's imports alongside)"),
    ("package_build", "then wait for the package (built alongside)"),
    ("deploy", "apply s.yaml's resources, deploy, ledger"),
    ("samples_wait", "then wait for the samples (made alongside)"),
    ("uploads", "upload the samples"),
    ("first_task_created", "uploads done -> first IMM task created"),
    ("tasks", "first task created -> last task ended"),
    ("last_manifest", "last task ended -> last manifest"),
    ("seen_by_demo", "last manifest -> seen by the demo"),
    ("imm_task_seconds_sum", "(IMM task run time, summed)"),
)


class GetTaskPoller(threading.Thread):
    """Polls GetTask every second for every task the ledger shows, noting when each is first seen final."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(daemon=True)
        self.state_dir = state_dir
        self.seen_final: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        # Its SDKs are imported at the bench's start: imported here, they took ~0.3 s of CPU from the
        # demo's set-up, which the direct media work it is compared with does not share.
        endpoints_file = self.state_dir / "endpoints.json"
        while not endpoints_file.exists() and not self.stop.is_set():
            time.sleep(0.1)
        endpoints = json.loads(endpoints_file.read_text())
        client = Client(Config(access_key_id=endpoints["access_key_id"], access_key_secret=endpoints["access_key_secret"],
                               endpoint=endpoints["imm"], protocol="http", region_id=endpoints["region"]))  # fmt: skip
        ledger = local_ledger(self.state_dir)
        while not self.stop.is_set():
            tick = time.monotonic()
            try:
                tasks = ledger.list_tasks(TaskQuery())
            except Exception:  # the schema may not exist yet
                tasks = []
            for task in tasks:
                if not task.task_id or task.task_id in self.seen_final:
                    continue
                project = task.request.get("ProjectName", "immflow")
                response = client.get_task(
                    models.GetTaskRequest(
                        project_name=project, task_type=task.task_type, task_id=task.task_id
                    )
                )
                if response.body.status in FINAL:
                    self.seen_final[task.task_id] = time.time()
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))


def notification_latencies(state_dir: Path) -> tuple[list[float], dict[str, float]]:
    """Seconds from each task's EndTime to its on_task_done start, and the EndTimes by TaskId."""
    endpoints = json.loads((state_dir / "endpoints.json").read_text())
    ledger = local_ledger(state_dir)
    ended = {
        t.task_id: t.ended_at.timestamp() for t in ledger.list_tasks(TaskQuery()) if t.task_id and t.ended_at
    }
    listed = requests.get(
        endpoints["fc"] + "/_localcloud/invocations?payload=1&limit=10000",
        headers=admin_headers(endpoints["admin_token"]),
        timeout=30,
    ).json()
    latencies = []
    for invocation in listed["invocations"]:
        if not invocation["source"].startswith("mns_topic:") or invocation["started"] is None:
            continue
        envelope = json.loads(json.loads(invocation["payload"])["Message"])
        task_id = json.loads(envelope["content"])["TaskId"]
        if task_id in ended:
            latencies.append(invocation["started"] - ended[task_id])
    return latencies, ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port-base", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as scratch:
        folder = Path(scratch)
        direct_before = direct_media_work(folder / "direct-before")
        state_dir = folder / "state"
        poller = GetTaskPoller(state_dir)
        poller.start()
        port_base = args.port_base or free_port_base(len(SERVICES))
        started = time.perf_counter()
        result = subprocess.run(
            [*CLI, "demo", "--json", "--state-dir", str(state_dir), "--port-base", str(port_base), "--project", str(REPO)],
            capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        demo_wall = time.perf_counter() - started
        time.sleep(1.5)  # let the poller see the last tasks end
        poller.stop.set()
        try:
            if result.returncode != 0:
                raise SystemExit(f"the demo failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
            report = json.loads(result.stdout)
            notified, ended = notification_latencies(state_dir)
        finally:
            subprocess.run(
                [*CLI, "local", "down", "--state-dir", str(state_dir)], capture_output=True, timeout=60
            )
        # Direct work before and after the demo: on a shared machine the load moves, and the ratio is
        # taken against their mean (both are printed).
        direct_after = direct_media_work(folder / "direct-after")
        direct = (direct_before + direct_after) / 2
        polled = [poller.seen_final[t] - end for t, end in ended.items() if t in poller.seen_final]
        figures: dict[str, Any] = {
            "demo_wall_seconds": round(demo_wall, 2),
            "demo_follow_seconds": report["elapsed_seconds"],
            "direct_media_seconds": round(direct, 2),
            "direct_before_after": [round(direct_before, 2), round(direct_after, 2)],
            "overhead_ratio": round(demo_wall / direct, 2),
            "follow_ratio": round(report["elapsed_seconds"] / direct, 2),
            "tasks": sum(len(u["tasks"]) for u in report["uploads"]),
            "phases": report.get("phases", {}),
            "notification_latency": percentiles(notified),
            "getpoll_1s_latency": percentiles(polled),
            "measured_at": datetime.now().isoformat(timespec="seconds"),
        }
    n, p = figures["notification_latency"], figures["getpoll_1s_latency"]
    print(
        f"demo wall time          {figures['demo_wall_seconds']:8.2f} s  (uploads to last manifest: {figures['demo_follow_seconds']} s)"
    )
    print(
        f"direct media work       {figures['direct_media_seconds']:8.2f} s  (same ffmpeg/soffice/pdftoppm/Pillow work, sequential; mean of {figures['direct_before_after']} before and after)"
    )
    print(
        f"overhead ratio          {figures['overhead_ratio']:8.2f} x  (follow-only ratio {figures['follow_ratio']} x)"
    )
    phases = figures["phases"]
    accounted = sum(v for k, v in phases.items() if k != "imm_task_seconds_sum")
    print(
        f"where the demo's time went (s; {accounted:.2f} of {figures['demo_wall_seconds']} accounted, the rest is Python's and the CLI's start, and the final checks):"
    )
    for name, label in PHASES:
        if name in phases:
            print(f"  {label:<40}{phases[name]:8.2f}")
    print(f"task end -> on_task_done start: p50 {n.get('p50')} s, p95 {n.get('p95')} s over {n['n']} tasks")
    print(f"task end -> GetTask poll (1 s): p50 {p.get('p50')} s, p95 {p.get('p95')} s over {p['n']} tasks")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
