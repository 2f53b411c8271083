"""The soak: many uploads across every rule of pipeline.yaml, with seeded faults on and the whole local
cloud killed (SIGKILL) and restarted mid-run; then checks that nothing was lost, duplicated or stuck.

What it does, in order:

1. Starts a local cloud on a fresh state folder with a fault plan (every kind at a modest rate,
   seeded; ``--faults`` replaces it), deploys the repository's s.yaml with
   ``IMMFLOW_RECONCILE_AFTER_SECONDS`` short (s.yaml reads it from the environment), and invokes
   the reconcile function itself every ``--reconcile-every`` seconds (its timer fires every five
   minutes, too rarely for a run of a few minutes).
2. Uploads ``--count`` small objects (a 1 s video, a small docx, tiny images, a zip of two tiny
   images, in turn, so every rule runs) in ``--rounds`` rounds, each under its own key. Halfway
   through the first round the local cloud and every process it started are killed with SIGKILL
   and started again on the same folder (the restarted cloud reads its fault plan back).
3. Waits for every run of the round to be done. An upload whose OSS event the plan dropped is
   backfilled, as an operator would with ``immflow backfill`` (the run id makes that safe).
4. Checks, after the last round: every upload has exactly one run, done, with a manifest; each
   rule task and each follow-up was created exactly once in IMM (ListTasks through the official
   SDK, matched by the lineage in ``UserData``, not by the ledger); no task is left open; every
   output a manifest lists exists; every task whose notification the plan lost was settled (by
   reconcile). Memory: the peak RSS of each kind of process of the local cloud (the launcher, FC
   workers by function) in each round must not grow from one round to the next, from round 2 on
   (`MEMORY_GROWTH` says by how much and why); ``--tracemalloc N`` also prints what the launcher's
   allocations grew by over the last round (``localcloud/core/memtrace.py``).

Prints the faults injected (from ``faults.log``), uploads per minute and the peak memory per round
and per kind of process,
then one JSON line with everything; exits 1 when a check failed. The machine is shared when it is
run in CI: the figures are indicative.

Run: ``python bench/soak.py [--count 1000] [--rounds 2] [--seed 7] [--port-base N] [--json] [--tracemalloc N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "shared"))

import oss2  # noqa: E402
from immflow.demo import runner  # noqa: E402
from immflow.demo.media import Sample, _docx, _image  # noqa: E402
from immflow.flow.lineage import Lineage  # noqa: E402
from immflow.ossuri import OssUri  # noqa: E402
from immflow.pipeline import Pipeline  # noqa: E402

from localcloud.core import memtrace  # noqa: E402
from localcloud.core.faults import FAULT_KINDS, FaultPlan  # noqa: E402

#: Every service-side fault at a modest rate; delays of up to 5 s, hanging tasks of 10 s.
DEFAULT_RATES = {
    "oss.event.drop": 0.03,
    "oss.event.duplicate": 0.05,
    "oss.event.delay": 0.05,
    "mns.push.duplicate": 0.05,
    "mns.push.delay": 0.05,
    "mns.push.fail": 0.05,
    "imm.throttle": 0.03,
    "imm.error": 0.02,
    "imm.response.lost": 0.02,
    "imm.hang": 0.03,
    "imm.notification.lost": 0.05,
    "fc.crash": 0.03,
}
DEFAULT_SETTINGS = {"delay_seconds": 5, "hang_seconds": 10}
RECONCILE_AFTER_SECONDS = 15
#: An upload with no run this long after it was uploaded is backfilled even if no drop was logged.
BACKFILL_GRACE_SECONDS = 120.0
#: How much a process's peak RSS may grow from one round to the next (from round 2 on), as a share of
#: the previous round's peak plus a constant. The launcher holds every service: with its state on
#: disk and its in-memory maps bounded, its peak is set by the largest work in flight at once (a
#: ListTasks page, a body being read), which does not grow with the uploads done, so 5 % covers
#: the allocator's and the scheduling's noise, while the leak issue 11 found (about 8 MiB per 100
#: uploads: every ListTasks read the project's whole task history) shows as more within a round or
#: two, and over the whole later run (checked too). An FC worker's peak depends on which
#: invocations it got (10 % + 8 MiB). ``all`` sums however many instances, LibreOffice and ffmpeg
#: processes happen to run together, so it gets 25 % + 32 MiB; other kinds are only reported.
MEMORY_GROWTH: dict[str, tuple[float, int]] = {
    "launcher": (0.05, 0),
    "fc worker": (0.10, 8 * 2**20),
    "all": (0.25, 32 * 2**20),
}


def default_spec(seed: int) -> str:
    parts = [f"seed={seed}", *(f"{k}={v}" for k, v in DEFAULT_RATES.items())]
    return ",".join(parts + [f"{k}={v}" for k, v in DEFAULT_SETTINGS.items()])


# media ------------------------------------------------------------------------------------------


def make_media(folder: Path) -> list[Sample]:
    """A 1 s video, a small docx, two tiny images and a zip of them: one sample per rule (images twice)."""
    import imageio_ffmpeg

    folder.mkdir(parents=True, exist_ok=True)
    video = folder / "clip.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050:duration=1",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "32k", "-shortest", str(video)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    report = folder / "report.docx"
    _docx(report)
    _fixed_zip_times(report)
    jpg, png = folder / "tiny.jpg", folder / "tiny.png"
    _image(jpg, (64, 48), ((255, 140, 0), (80, 0, 120)), "a")
    _image(png, (48, 64), ((0, 60, 160), (0, 200, 200)), "b")
    archive = folder / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(jpg, arcname=jpg.name)
        bundle.write(png, arcname=png.name)
    _fixed_zip_times(archive)
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    return [
        Sample("clip.mp4", video, "video/mp4"),
        Sample("report.docx", report, docx_type),
        Sample("tiny.jpg", jpg, "image/jpeg"),
        Sample("tiny.zip", archive, "application/zip"),
        Sample("tiny.png", png, "image/png"),
    ]


def _fixed_zip_times(path: Path) -> None:
    """Rewrite a zip (a .docx is one) with every entry dated 1980-01-01: the same bytes, so the same
    ETag and the same faults (docs/faults.md, "Reproducible"), in every run of the soak."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as target:
        for info, data in entries:
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            target.writestr(fixed, data)


# the local cloud's processes ----------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def launcher_pid(state_dir: Path) -> int:
    return int((state_dir / "localcloud.pid").read_text().strip())


def process_kind(pid: int, launcher: int) -> str:
    """What a process of the local cloud is, for per-process peaks: the launcher, an FC worker of
    one function (its code folder is ``fc/code/<function>/<hash>``), LibreOffice, ffmpeg, ..."""
    if pid == launcher:
        return "launcher"
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "gone"
    if "localcloud.fc.worker" in args:
        return f"fc worker {Path(args[-2] or args[-1]).parent.name}"
    program = Path(args[0]).name
    return "soffice" if program.startswith("soffice") else program or "unknown"


@dataclass
class MemoryWatch:
    """Samples twice a second, per round, the RSS of each process of the local cloud: peaks per
    kind of process (the launcher, FC workers by function, LibreOffice, ffmpeg; the largest process
    of that kind) and of their sum (``all``)."""

    state_dir: Path
    peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    label: str = ""
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                root = launcher_pid(self.state_dir)
            except (OSError, ValueError):
                continue
            sample: dict[str, int] = {"launcher": 0, "all": 0}
            for pid in process_tree(root):
                rss = rss_bytes(pid)
                kind = process_kind(pid, root)
                sample[kind] = max(sample.get(kind, 0), rss)
                sample["all"] += rss
            peak = self.peaks.setdefault(self.label, {"launcher": 0, "all": 0})
            for name, value in sample.items():
                peak[name] = max(peak.get(name, 0), value)


# reconcile, invoked by the soak ----------------------------------------------------------------


@dataclass
class Reconciler:
    endpoints: dict[str, str]
    every: float
    finished: set[str] = field(default_factory=set)
    invocations: int = 0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import fc2

        while not self.stop.wait(self.every):
            try:
                client = fc2.Client(
                    endpoint=self.endpoints["fc"],
                    accessKeyID=self.endpoints["access_key_id"],
                    accessKeySecret=self.endpoints["access_key_secret"],
                    Timeout=300,
                )
                response = client.invoke_function("immflow", "immflow-reconcile", payload=b"")
                self.invocations += 1
                if response.headers.get("X-Fc-Error-Type"):
                    self.errors.append(response.data.decode(errors="replace")[:300])
                else:
                    self.finished.update(json.loads(response.data).get("finished", []))
            except Exception as error:  # the cloud may be down for its restart
                self.errors.append(f"{type(error).__name__}: {error}"[:300])


# the soak ---------------------------------------------------------------------------------------


@dataclass
class Soak:
    state_dir: Path
    port_base: int
    spec: str
    count: int
    rounds: int
    timeout: float
    reconcile_every: float
    say: Any
    endpoints: dict[str, str] = field(default_factory=dict)
    pipeline: Pipeline | None = None
    deployment: runner.Deployment | None = None
    progress: list[runner.RunProgress] = field(default_factory=list)
    backfilled: list[str] = field(default_factory=list)
    round_seconds: list[float] = field(default_factory=list)
    kills: int = 0
    snapshots: list[Path] = field(default_factory=list)

    def start(self, faults: str | None) -> None:
        from immflow.cli.local import start_detached

        self.endpoints = start_detached(self.state_dir, self.port_base, faults=faults)

    def deploy(self) -> None:
        from immflow.cli.local import deploy, deploy_environ

        s_yaml, self.pipeline = runner.load_inputs(REPO)
        environ = deploy_environ(s_yaml, self.state_dir, say=lambda _: None)
        environ["IMMFLOW_RECONCILE_AFTER_SECONDS"] = str(RECONCILE_AFTER_SECONDS)
        self.deployment = runner.read_deployment(s_yaml, runner.account_of(self.endpoints), environ)
        runner.apply(self.endpoints, self.deployment)
        deploy(self.endpoints, s_yaml, environ)

    def kill_and_restart(self) -> None:
        """SIGKILL the launcher and every process it started (FC workers, ffmpeg, LibreOffice), then start again."""
        from immflow.cli.local import is_running

        pids = process_tree(launcher_pid(self.state_dir))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while is_running(self.state_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.kills += 1
        FaultPlan.for_state_dir(self.state_dir).record(
            "localcloud.kill", f"kill-{self.kills}", f"SIGKILL to {len(pids)} processes"
        )
        self.say(f"killed the local cloud ({len(pids)} processes) with SIGKILL; starting it again")
        self.start(None)  # the folder's faults.json: the same plan

    def upload_round(
        self, index: int, samples: list[Sample], first: int, last: int
    ) -> list[runner.RunProgress]:
        assert self.pipeline is not None and self.deployment is not None
        bucket = self.deployment.buckets[0]
        planned: list[tuple[Sample, str, OssUri]] = []
        for number in range(first, last):
            sample = samples[number % len(samples)]
            (plan,) = runner.plan_uploads([sample], self.pipeline, bucket, f"soak-r{index}-{number:05d}")
            planned.append(plan)
        progress = []
        kill_at = (first + last) // 2 if index == 1 else None
        for number, plan in zip(range(first, last), planned, strict=True):
            if number == kill_at:
                self.kill_and_restart()
            (upload,) = runner.upload(self.endpoints, [plan])
            progress.append(runner.RunProgress(upload))
        return progress

    def dropped_keys(self) -> set[str]:
        plan = FaultPlan.for_state_dir(self.state_dir)
        keys = set()
        if plan.log_path is not None and plan.log_path.exists():
            for line in plan.log_path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("kind") == "oss.event.drop":
                    keys.add(entry["item"].split(":", 1)[1])  # "<trigger>:<bucket>/<key>@<ETag>"
        return keys

    def backfill(self, item: runner.RunProgress) -> None:
        import fc2
        from immflow.cli.events import oss_put_event

        upload = item.upload
        event = oss_put_event(
            upload.uri.bucket,
            upload.uri.key,
            upload.size,
            region=self.endpoints["region"],
            account_id=self.endpoints["account_id"],
            content_type=upload.sample.content_type,
            etag=upload.etag,
        )
        client = fc2.Client(
            endpoint=self.endpoints["fc"],
            accessKeyID=self.endpoints["access_key_id"],
            accessKeySecret=self.endpoints["access_key_secret"],
            Timeout=60,
        )
        client.invoke_function(
            "immflow", "immflow-on-upload", payload=json.dumps(event).encode(),
            headers={"x-fc-invocation-type": "Async"},
        )  # fmt: skip
        self.backfilled.append(str(upload.uri))

    def wait_round(self, progress: list[runner.RunProgress], uploaded_at: float) -> bool:
        ledger = runner.ledger_for(self.state_dir)
        deadline = time.monotonic() + self.timeout
        tried: set[str] = set()
        while time.monotonic() < deadline:
            runner.poll(ledger, progress)
            if all(item.done for item in progress):
                return True
            dropped = self.dropped_keys()
            late = time.monotonic() - uploaded_at > BACKFILL_GRACE_SECONDS
            for item in progress:
                uri = str(item.upload.uri)
                if (
                    item.run is None
                    and uri not in tried
                    and (
                        f"{item.upload.uri.bucket}/{item.upload.uri.key}@{item.upload.etag}" in dropped
                        or late
                    )
                ):
                    tried.add(uri)
                    self.backfill(item)
            time.sleep(1.0)
        return False

    def run(self, samples: list[Sample], memory: MemoryWatch) -> bool:
        per_round = [
            self.count // self.rounds + (1 if r < self.count % self.rounds else 0) for r in range(self.rounds)
        ]
        first = 0
        all_done = True
        for index, size in enumerate(per_round, start=1):
            memory.label = f"round {index}"
            started = time.monotonic()
            progress = self.upload_round(index, samples, first, first + size)
            done = self.wait_round(progress, time.monotonic())
            self.round_seconds.append(time.monotonic() - started)
            self.progress.extend(progress)
            peak = memory.peaks.get(memory.label, {"launcher": 0, "all": 0})
            injected = Counter(entry["kind"] for entry in self.fault_entries())
            self.say(
                f"round {index}: {size} uploads {'done' if done else 'NOT all done'} in "
                f"{self.round_seconds[-1]:.0f} s ({size / self.round_seconds[-1] * 60:.1f} uploads/min); "
                f"peak RSS launcher {peak['launcher'] / 2**20:.0f} MiB, all {peak['all'] / 2**20:.0f} MiB; "
                f"faults so far {sum(injected.values())}: {dict(sorted(injected.items()))}"
            )
            all_done = all_done and done
            first += size
            if os.environ.get(memtrace.ENV):
                self.snapshot()
        return all_done

    def snapshot(self) -> None:
        """Ask the launcher for a tracemalloc snapshot (``--tracemalloc``) and wait for it."""
        folder = self.state_dir / memtrace.SNAPSHOT_DIR
        before = set(folder.glob("*.snap"))
        os.kill(launcher_pid(self.state_dir), signal.SIGUSR2)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            new = sorted(set(folder.glob("*.snap")) - before)
            if new:
                self.snapshots.append(new[-1])
                figures = json.loads(new[-1].with_suffix(".json").read_text())
                self.say(
                    f"  launcher after the round: RSS {figures['rss'] / 2**20:.1f} MiB, traced Python "
                    f"{figures['traced'] / 2**20:.1f} MiB (peak in the round {figures['traced_peak'] / 2**20:.1f}), "
                    f"SQLite heap {figures['sqlite_heap'] / 2**20:.1f} MiB, {figures['threads']} threads; "
                    f"most objects {dict(list(figures['objects'].items())[:8])}"
                )
                return
            time.sleep(1.0)
        self.say("no tracemalloc snapshot came from the launcher")

    # checks -------------------------------------------------------------------------------------

    def imm_tasks(self) -> list[Any]:
        from alibabacloud_imm20200930 import models
        from alibabacloud_imm20200930.client import Client
        from alibabacloud_tea_openapi.models import Config

        assert self.deployment is not None
        client = Client(
            Config(
                access_key_id=self.endpoints["access_key_id"],
                access_key_secret=self.endpoints["access_key_secret"],
                endpoint=self.endpoints["imm"],
                protocol="http",
                region_id=self.endpoints["region"],
            )
        )
        tasks: list[Any] = []
        token = None
        while True:
            request = models.ListTasksRequest(
                project_name=self.deployment.project, max_results=100, next_token=token
            )
            body = _retrying(lambda request=request: client.list_tasks(request)).body
            tasks.extend(body.tasks or [])
            token = body.next_token
            if not token:
                return tasks

    def check(self, reconciled: set[str]) -> tuple[list[str], dict[str, Any]]:
        assert self.pipeline is not None
        problems: list[str] = []
        ledger = runner.ledger_for(self.state_dir)
        runner.poll(ledger, self.progress)
        ours = {item.upload.run_id for item in self.progress}
        # 1. one run per upload, each done with its manifest (and nothing else in the ledger)
        for item in self.progress:
            if item.run is None:
                problems.append(f"{item.upload.uri}: no run")
            elif not item.done:
                problems.append(f"{item.upload.uri}: run {item.run.run_id} is {item.run.status}, not Done")
        runs = ledger.list_runs(limit=None)
        extra = [run.run_id for run in runs if run.run_id not in ours]
        if extra or len(runs) != len(ours):
            problems.append(f"the ledger has {len(runs)} runs for {len(ours)} uploads: extra {extra[:5]}")
        if len(ours) != len(self.progress):
            problems.append(f"{len(self.progress)} uploads map to {len(ours)} run ids")
        # 2. every task created once in IMM, counted by lineage from ListTasks
        created: Counter[tuple[str, str, str, str]] = Counter()
        imm_ids: set[str] = set()
        for task in self.imm_tasks():
            lineage = Lineage.from_user_data(task.user_data or "")
            if lineage is None:
                problems.append(f"IMM task {task.task_id} has no immflow lineage")
                continue
            imm_ids.add(task.task_id)
            created[(lineage.run, lineage.rule, lineage.task, lineage.parent or "")] += 1
            if task.status == "Running":
                problems.append(f"IMM task {task.task_id} is still Running")
        expected: Counter[tuple[str, str, str, str]] = Counter()
        for item in self.progress:
            rule = self.pipeline.rule(item.upload.rule)
            for spec in rule.tasks:
                expected[(item.upload.run_id, rule.name, spec.name, "")] += 1
            for task in item.tasks:
                if task.task_id not in imm_ids and task.task_id is not None:
                    problems.append(f"ledger task {task.task_id} is not in IMM's ListTasks")
                if not task.is_final:
                    problems.append(f"{item.upload.uri}: task {task.rule}/{task.task_name} is {task.status}")
                if not task.task_id:
                    continue
                for follow_up in self.pipeline.follow_ups(task.rule, task.task_name, task.status):
                    kept = [uri for uri in task.outputs if follow_up.keeps(OssUri.parse(uri))]
                    times = len(kept) if follow_up.for_each == "output" else int(bool(kept))
                    for spec in follow_up.tasks:
                        expected[(task.run_id, task.rule, spec.name, task.task_id)] += times
        for key in sorted(set(created) | set(expected)):
            if created[key] != expected[key]:
                run_id, rule_name, name, parent = key
                problems.append(
                    f"run {run_id}: {rule_name}/{name}{f' after {parent}' if parent else ''} was created "
                    f"{created[key]} time(s) in IMM, expected {expected[key]}"
                )
        # 3./4. manifests and their outputs; the pipeline's own promises (runner.verify)
        manifests_checked = outputs_checked = 0
        auth = oss2.Auth(self.endpoints["access_key_id"], self.endpoints["access_key_secret"])
        for item in self.progress:
            if not item.done or item.run is None or not item.run.manifest_uri:
                continue
            _, broken = runner.verify(self.endpoints, self.pipeline, item)
            problems.extend(broken)
            where = OssUri.parse(item.run.manifest_uri)
            bucket = oss2.Bucket(auth, self.endpoints["oss"], where.bucket)
            manifest = json.loads(bucket.get_object(where.key).read())
            manifests_checked += 1
            for task in manifest["tasks"]:
                for uri in task.get("outputs", []):
                    output = OssUri.parse(uri)
                    outputs_checked += 1
                    if not oss2.Bucket(auth, self.endpoints["oss"], output.bucket).object_exists(output.key):
                        problems.append(f"manifest {item.run.manifest_uri} lists {uri}, which does not exist")
        # 5. notifications the plan lost: settled, by reconcile
        # the item is the task's request (the same in another run); the detail names its TaskId
        lost = [
            str(e["detail"]).split()[0]
            for e in self.fault_entries()
            if e["kind"] == "imm.notification.lost" and e.get("detail")
        ]
        by_id = {t.task_id: t for item in self.progress for t in item.tasks if t.task_id}
        unsettled = [task_id for task_id in lost if task_id in by_id and not by_id[task_id].is_final]
        problems.extend(
            f"task {task_id}: its notification was lost and it never settled" for task_id in unsettled
        )
        by_reconcile = [task_id for task_id in lost if task_id in reconciled]
        figures = {
            "runs": len(runs),
            "imm_tasks": sum(created.values()),
            "manifests_checked": manifests_checked,
            "outputs_checked": outputs_checked,
            "notifications_lost": len(lost),
            "lost_settled_by_reconcile": len(by_reconcile),
            "backfilled_uploads": len(self.backfilled),
        }
        return problems, figures

    def fault_entries(self) -> list[dict[str, Any]]:
        path = self.state_dir / "faults.log"
        entries = []
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries


def _retrying(call: Any, attempts: int = 10) -> Any:
    """The soak's own IMM calls meet the fault plan too: retry throttling and 5xx as a client would."""
    from alibabacloud_tea_openapi.exceptions import ServerException, ThrottlingException

    for attempt in range(attempts):
        try:
            return call()
        except (ThrottlingException, ServerException):
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _memory_problems(peaks: dict[str, dict[str, int]]) -> list[str]:
    """Growth of the peaks from one round to the next, from round 2 on (round 1 holds the kill and
    the restart, which start every process again): see MEMORY_GROWTH for the tolerances."""
    problems = []
    rounds = [peaks[name] for name in sorted(peaks, key=_round_number) if name.startswith("round ")]
    later = list(enumerate(rounds, start=1))[1:]
    for (_, before), (number, after) in itertools.pairwise(later):
        for name, value in sorted(after.items()):
            limit = _allowed(name, before.get(name, 0))
            if limit is not None and before.get(name) and value > limit:
                problems.append(
                    f"memory grew in round {number}: {name} peak {value / 2**20:.1f} MiB after "
                    f"{before[name] / 2**20:.1f} MiB (allowed {limit / 2**20:.1f})"
                )
    if len(later) >= 3:  # a slow leak stays under the step's tolerance: the whole later run may not
        (_, first), (number, last) = later[0], later[-1]
        limit = _allowed("launcher", first["launcher"])
        if limit is not None and last["launcher"] > limit:
            problems.append(
                f"memory grew from round 2 to round {number}: launcher peak {last['launcher'] / 2**20:.1f} MiB "
                f"after {first['launcher'] / 2**20:.1f} MiB (allowed {limit / 2**20:.1f})"
            )
    return problems


def _allowed(name: str, before: int) -> int | None:
    """The most a peak may reach in the next round (None: reported, not checked)."""
    for prefix, (share, slack) in MEMORY_GROWTH.items():
        if name == prefix or name.startswith(prefix + " "):
            return int(before * (1 + share) + slack)
    return None


def _round_number(label: str) -> int:
    return int(label.split()[-1]) if label.split()[-1].isdigit() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10, help="uploads in all (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds to compare memory across (default 2)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--faults", default=None, help="a fault SPEC instead of every kind at a modest rate")
    parser.add_argument("--port-base", type=int, default=None, help="default: free ports")
    parser.add_argument("--state-dir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds each round may take")
    parser.add_argument("--reconcile-every", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="leave the local cloud running at the end")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="trace the launcher's allocations and print what grew between the last two rounds (slow)",
    )
    args = parser.parse_args(argv)
    if args.count < args.rounds or args.rounds < 2:
        parser.error("--rounds must be 2 or more and --count at least --rounds")

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    from localcloud.core.ports import free_port_base
    from localcloud.launcher import SERVICES

    spec = args.faults if args.faults is not None else default_spec(args.seed)
    if args.tracemalloc:
        os.environ[memtrace.ENV] = str(args.tracemalloc)
    work = Path(tempfile.mkdtemp(prefix="immflow-soak-"))
    state_dir = (args.state_dir or work / "state").resolve()
    soak = Soak(
        state_dir, args.port_base or free_port_base(len(SERVICES)), spec, args.count, args.rounds, args.timeout,
        args.reconcile_every, say,
    )  # fmt: skip
    samples = make_media(work / "media")
    say(f"soak: {args.count} uploads in {args.rounds} rounds, faults {spec}, state {state_dir}")
    soak.start(spec)
    memory = MemoryWatch(state_dir)
    threads = [threading.Thread(target=memory.run, daemon=True)]
    reconciler: Reconciler | None = None
    started = time.monotonic()
    try:
        soak.deploy()
        reconciler = Reconciler(soak.endpoints, args.reconcile_every)
        threads.append(threading.Thread(target=reconciler.run, daemon=True))
        for thread in threads:
            thread.start()
        finished = soak.run(samples, memory)
        reconciler.endpoints = soak.endpoints
        elapsed = time.monotonic() - started
        problems, figures = soak.check(reconciler.finished)
        if not finished:
            problems.insert(0, "not every run was done within --timeout")
    finally:
        memory.stop.set()
        if reconciler is not None:
            reconciler.stop.set()
        if not args.keep:
            from immflow.cli.local import stop

            stop(state_dir)
    problems.extend(_memory_problems(memory.peaks))
    injected = Counter(entry["kind"] for entry in soak.fault_entries())
    summary = {
        "ok": not problems,
        "count": args.count,
        "rounds": args.rounds,
        "seed": FaultPlan.parse(spec).seed,
        "faults_spec": spec,
        "faults_injected": {kind: injected.get(kind, 0) for kind in FAULT_KINDS},
        "seconds": round(elapsed, 1),
        "uploads_per_minute": round(args.count / elapsed * 60, 1),
        "round_seconds": [round(s, 1) for s in soak.round_seconds],
        "peak_rss_mib": {
            name: {k: round(v / 2**20, 1) for k, v in peak.items()}
            for name, peak in sorted(memory.peaks.items(), key=lambda item: _round_number(item[0]))
            if name
        },
        "reconcile_invocations": reconciler.invocations if reconciler else 0,
        "reconcile_errors": (reconciler.errors if reconciler else [])[:5],
        **figures,
        "problems": problems,
        "state_dir": str(state_dir),
    }
    if not args.json:
        say("faults injected (and survived):")
        for kind, number in summary["faults_injected"].items():
            say(f"  {kind:24} {number}")
        say(f"{args.count} uploads in {elapsed:.0f} s: {summary['uploads_per_minute']} uploads/min")
        say("peak RSS per round (MiB; per kind of process, the largest one; all: their sum):")
        for name, peak in summary["peak_rss_mib"].items():
            say(f"  {name}: " + ", ".join(f"{kind} {mib}" for kind, mib in peak.items()))
        if len(soak.snapshots) >= 2:
            say("launcher allocations that grew most over the last round (tracemalloc):")
            for line in memtrace.top_growth(soak.snapshots[-2], soak.snapshots[-1]):
                say(f"  {line}")
        say(f"checks: {'all passed' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems[:50]:
            say(f"  - {problem}")
    print(json.dumps(summary), flush=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
