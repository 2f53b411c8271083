"""A burst of uploads through the whole local chain, against the same media work run directly.

Run: ``python bench/bench_burst.py [--count 60] [--port-base N]``. ``--count`` files (default 60),
the demo's samples in turn (a video, two documents, two images and a ZIP: every rule of
``pipeline.yaml``), each under its own key, are uploaded at once (8 uploads in flight) to the local
cloud with ``s.yaml`` and ``pipeline.yaml`` deployed, as ``immflow demo`` deploys them. Measured:

* **throughput**: uploads per minute, from the first upload to the last run's manifest (the run's
  ``ended_at`` in the ledger, written with its manifest);
* **latency**: per upload, from the end of its PutObject to its run's manifest; p50 and p95.

Against: the same media work per file run directly (``bench/media_work.py``) by as many workers as
the local IMM runs tasks at once (its engine concurrency, 2), all files queued at the same moment:
files per minute to the last one done, and per file from that moment to its work being done.

The local cloud is started and the functions deployed before the clock starts. The machine may be
shared: run it more than once and compare the spread. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import oss2
from immflow.cli.local import deploy, deploy_environ, start_detached
from immflow.demo import runner
from immflow.demo.media import Sample, make_samples
from immflow.ledger import run_id_for
from media_work import media_work, percentiles

from localcloud.core.ports import free_port_base
from localcloud.launcher import SERVICES

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from immflow.cli import main; main()"]
IMM_ENGINE_CONCURRENCY = 2  # the local IMM's default: tasks it runs at once
UPLOADS_IN_FLIGHT = 8


@dataclass(frozen=True)
class Uploaded:
    run_id: str
    at: float


def burst_files(samples: list[Sample], count: int) -> list[Sample]:
    return [samples[index % len(samples)] for index in range(count)]


def direct(files: list[Sample], scratch: Path) -> dict[str, Any]:
    started = time.perf_counter()

    def one(index: int, sample: Sample) -> float:
        media_work(sample, scratch / "out" / f"{index}-{sample.name}", scratch)
        return time.perf_counter() - started

    with ThreadPoolExecutor(IMM_ENGINE_CONCURRENCY) as pool:
        latencies = list(pool.map(one, range(len(files)), files))
    wall = max(latencies)
    return {"wall": wall, "per_minute": len(files) / wall * 60, "latency": percentiles(latencies)}


def chain(files: list[Sample], state_dir: Path, port_base: int) -> dict[str, Any]:
    s_yaml, pipeline = runner.load_inputs(REPO)
    endpoints = start_detached(state_dir, port_base)
    try:
        environ = deploy_environ(s_yaml, state_dir, lambda _: None)
        deployment = runner.read_deployment(s_yaml, runner.account_of(endpoints), environ)
        runner.apply(endpoints, deployment)
        deploy(endpoints, s_yaml, environ)
        folder = runner.demo_folder()
        planned: list[tuple[Sample, str, str]] = []
        for index, sample in enumerate(files):
            for _, _, uri in runner.plan_uploads(
                [sample], pipeline, deployment.buckets[0], f"{folder}/{index:04d}"
            ):
                planned.append((sample, uri.bucket, uri.key))
        if len(planned) != len(files):
            raise SystemExit("some sample matches no rule of pipeline.yaml")
        auth = oss2.Auth(endpoints["access_key_id"], endpoints["access_key_secret"])
        buckets = {name: oss2.Bucket(auth, endpoints["oss"], name) for _, name, _ in planned}

        def put(item: tuple[Sample, str, str]) -> Uploaded:
            sample, bucket, key = item
            result = buckets[bucket].put_object_from_file(
                key, str(sample.path), headers={"Content-Type": sample.content_type}
            )
            # Every key is new (a folder per upload): its upload is run 1 of the key.
            run_id = run_id_for(bucket, key, str(result.etag).strip('"').upper(), 1)
            return Uploaded(run_id, time.time())

        started = time.time()
        with ThreadPoolExecutor(UPLOADS_IN_FLIGHT) as pool:
            uploaded = list(pool.map(put, planned))
        ledger = runner.ledger_for(state_dir)
        ended: dict[str, float] = {}
        deadline = time.monotonic() + 1800
        while len(ended) < len(uploaded):
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(ended)} of {len(uploaded)} runs ended within 30 minutes")
            time.sleep(0.25)
            for item in uploaded:
                if item.run_id in ended:
                    continue
                run = ledger.get_run(item.run_id)
                if run is not None and run.ended_at is not None and run.manifest_uri:
                    if run.status != "Done":
                        raise SystemExit(f"run {run.run_id} of {run.source_uri} ended {run.status}")
                    ended[item.run_id] = run.ended_at.timestamp()
        last = max(ended.values())
        return {
            "wall": last - started,
            "per_minute": len(uploaded) / (last - started) * 60,
            "latency": percentiles([ended[item.run_id] - item.at for item in uploaded]),
        }
    finally:
        subprocess.run(
            [*CLI, "local", "down", "--state-dir", str(state_dir)], capture_output=True, timeout=60
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--port-base", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as scratch:
        folder = Path(scratch)
        files = burst_files(make_samples(folder / "in"), args.count)
        by_hand = direct(files, folder / "direct")
        ours = chain(files, folder / "state", args.port_base or free_port_base(len(SERVICES)))
    figures = {
        "count": args.count,
        "chain": ours,
        "direct": by_hand,
        "ratio": round(ours["wall"] / by_hand["wall"], 2),
        "measured_at": datetime.now().isoformat(timespec="seconds"),
    }
    for name, result in (("local chain", ours), ("direct media work", by_hand)):
        latency = result["latency"]
        print(
            f"{name:<18} {result['wall']:7.1f} s  {result['per_minute']:6.1f} uploads/min  "
            f"latency p50 {latency['p50']:.1f} s, p95 {latency['p95']:.1f} s"
        )
    print(f"ratio (chain / direct, last manifest vs last file done): {figures['ratio']:.2f} x")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
