"""Cold start and warm cost of the three handlers, against a hand-written handler and an eager-import one.

Run: ``python bench/bench_handlers.py [--runs 3] [--warm 200]``. The bench starts a local OSS, MNS, IMM
and Tablestore on free ports (the real local cloud, not fakes) and runs every measurement in a fresh
Python process, as FC starts an instance, once with the ledger on SQLite and once on Tablestore:

* **cold**: from before ``import index`` to the end of the first invocation (interpreter start-up,
  the same for all, is left out), with our functions' initializer run in between, as FC runs it on
  an instance's cold path (the hand-written handlers build their clients at import instead). The event is real work: on_upload creates two IMM tasks for a new
  upload; on_task_done confirms an IMM result with GetTask, records it (listing OSS for outputs) and
  creates its follow-up; reconcile checks a ledger with nothing stale.
* **hand-written** (``bench/handwritten/<function>/index.py``): the handler a user writes without
  immflow: ``json.loads`` of the event, the official SDK clients built at module load, the same cloud
  calls (CreateXXXTask; GetTask, CreateImageSplicingTask and a PutObject of a manifest; ListTasks of
  the running tasks), no ledger.
* **eager**: immflow's handler preceded by ``import alibabacloud_imm20200930.client, oss2`` (and
  ``tablestore`` for that ledger) at module load, as a handler that builds its clients at import does.
* **warm**: per event once the instance is warm, for events that need no cloud call (a redelivered
  upload, a redelivered notification, an empty reconcile): immflow's own overhead, without network.
* **cpu**: the cold start's CPU seconds (``time.process_time``), less disturbed by other processes on
  a shared machine than wall time. ``BENCH_PROFILE=<folder>`` writes a cProfile of each cold start there,
  and one of the warm events (``*-warm.pstats``).
* **GetTask**: what confirming a notification adds to on_task_done (docs/imm-notifications.md): one
  warm GetTask of a finished task through immflow's IMM adapter against the local IMM, and the parse
  of its answer (median of ``--warm`` calls).

Ratios are ours / hand-written and ours / eager, measured in the same run (medians of ``--runs``
processes each), and ours on Tablestore / ours on SQLite. The machine may be shared: run it more than once and compare the spread.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

PIPELINE = """\
version: 1
rules:
  - name: images
    match: {prefix: uploads/, suffixes: [.png]}
    tasks:
      - name: preview
        type: ImageSplicing
        params: {TargetURI: "oss://{bucket}/processed/{dirname}/{barename}/preview.jpg", Align: 32}
      - name: pdf
        type: ImageToPDF
        params: {TargetURI: "oss://{bucket}/processed/{dirname}/{barename}/page.pdf"}
    then:
      - after: preview
        on: Succeeded
        tasks:
          - name: thumb
            type: ImageSplicing
            params: {TargetURI: "oss://{bucket}/{dirname}/thumb.jpg", Align: 16}
"""

CHILD = r"""
import json, os, sys, time
from types import SimpleNamespace
started, started_cpu = time.perf_counter(), time.process_time()
counts = None
if os.environ.get("BENCH_COUNT"):  # an untimed run: count the requests sent to each port, and SQL statements
    import http.client
    counts = {}
    send = http.client.HTTPConnection.putrequest
    def putrequest(self, *args, **kwargs):
        counts[str(self.port)] = counts.get(str(self.port), 0) + 1
        return send(self, *args, **kwargs)
    http.client.HTTPConnection.putrequest = putrequest
    if sys.argv[6] == "sqlite" and sys.argv[2] != "handwritten":
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        def statement(*args):
            counts["sql"] = counts.get("sql", 0) + 1
        event.listen(Engine, "before_cursor_execute", statement)
profile = None
if os.environ.get("BENCH_PROFILE"):
    import cProfile
    profile = cProfile.Profile()
    profile.enable()
if sys.argv[2] == "eager":
    import alibabacloud_imm20200930.client, oss2  # noqa: F401  (what an eager handler pays at import)
    if sys.argv[6] == "tablestore":
        import tablestore  # noqa: F401
sys.path.insert(0, sys.argv[1])
import index
imported = time.perf_counter()
events = json.loads(open(sys.argv[3]).read())
def context():
    return SimpleNamespace(request_id="bench", function=SimpleNamespace(name="bench", timeout=60),
                           credentials=SimpleNamespace(access_key_id=sys.argv[4], access_key_secret=sys.argv[5], security_token=""))
if hasattr(index, "initializer"):  # ours: FC runs it on the cold path, just before the first event
    index.initializer(context())
index.handler(events[0].encode(), context())
first, first_cpu = time.perf_counter(), time.process_time()
if profile is not None:
    profile.disable()
    profile.dump_stats(os.environ["BENCH_PROFILE"] + f"/{os.path.basename(sys.argv[1])}-{sys.argv[2]}.pstats")
warm = []
if profile is not None and len(events) > 1:
    profile = cProfile.Profile()
    profile.enable()
for event in events[1:]:
    t = time.perf_counter()
    index.handler(event.encode(), context())
    warm.append(time.perf_counter() - t)
if profile is not None and len(events) > 1:
    profile.disable()
    profile.dump_stats(os.environ["BENCH_PROFILE"] + f"/{os.path.basename(sys.argv[1])}-{sys.argv[2]}-warm.pstats")
print(json.dumps({"import": imported - started, "cold": first - started, "cpu": first_cpu - started_cpu, "warm": warm, "counts": counts}))
"""


def _png(seed: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (seed % 256, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def compile_bytecode() -> None:
    """Bytecode for immflow and the handlers, as ``immflow package`` ships it (PYTHONDONTWRITEBYTECODE
    would otherwise leave our modules compiled from source on every cold start, and not the SDKs')."""
    import compileall

    for folder in ("shared/immflow", "functions", "bench/handwritten"):
        compileall.compile_dir(ROOT / folder, quiet=1)


class Closable(Protocol):
    def close(self) -> None: ...


class Bench:
    def __init__(self, state: Path) -> None:
        import oss2
        from alibabacloud_imm20200930 import models
        from alibabacloud_imm20200930.client import Client
        from alibabacloud_tea_openapi import models as open_api_models
        from mns.account import Account as MnsAccount
        from mns.queue import QueueMeta
        from mns.subscription import SubscriptionMeta
        from mns.topic import TopicMeta

        from localcloud.core.account import Account
        from localcloud.core.http import ServiceServer
        from localcloud.imm import ImmService
        from localcloud.mns import MnsService
        from localcloud.oss import OssService
        from localcloud.ots import OtsService

        self.state = state
        self.account = Account.new()
        self.services: list[Closable] = []
        oss_service = OssService(state, self.account)
        mns_service = MnsService(state, self.account, 0.001)
        self.servers = [ServiceServer(oss_service).start(), ServiceServer(mns_service).start()]
        imm_service = ImmService(
            state, self.account, oss_endpoint=self.servers[0].url, mns_endpoint=self.servers[1].url
        )
        self.servers.append(ServiceServer(imm_service).start())
        ots_service = OtsService(state, self.account)
        self.servers.append(ServiceServer(ots_service).start())
        self.services = [ots_service, imm_service, mns_service, oss_service]
        self.bucket = oss2.Bucket(
            oss2.Auth(self.account.access_key_id, self.account.access_key_secret),
            self.servers[0].url,
            "bench-media",
        )
        self.bucket.create_bucket()
        mns = MnsAccount(self.servers[1].url, self.account.access_key_id, self.account.access_key_secret)
        mns.get_topic("bench-done").create(TopicMeta())
        self.queue = mns.get_queue("bench-q")
        self.queue.create(QueueMeta())
        self.queue.set_encoding(False)
        endpoint = f"acs:mns:{self.account.region}:{self.account.account_id}:queues/bench-q"
        mns.get_topic("bench-done").get_subscription("bench").subscribe(
            SubscriptionMeta(endpoint, notify_content_format="SIMPLIFIED")
        )
        imm = Client(
            open_api_models.Config(
                access_key_id=self.account.access_key_id,
                access_key_secret=self.account.access_key_secret,
                endpoint=f"127.0.0.1:{self.servers[2].port}",
                protocol="http",
                region_id=self.account.region,
            )
        )
        imm.create_project(models.CreateProjectRequest(project_name="bench"))
        (state / "pipeline.yaml").write_text(PIPELINE)
        from immflow.pipeline_file import CHECKED_SUFFIX, write_checked

        # What `immflow package` ships beside the pipeline: its checked form.
        write_checked(state / "pipeline.yaml", state / ("pipeline.yaml" + CHECKED_SUFFIX))
        self.env = {
            **os.environ,
            "IMMFLOW_PROJECT": "bench",
            "IMMFLOW_TOPIC": "bench-done",
            "IMMFLOW_PIPELINE": str(state / "pipeline.yaml"),
            "IMMFLOW_IMM_ENDPOINT": f"127.0.0.1:{self.servers[2].port}",
            "IMMFLOW_OSS_ENDPOINT": self.servers[0].url,
            "IMMFLOW_OTS_ENDPOINT": self.servers[3].url,
            "IMMFLOW_RECONCILE_AFTER_SECONDS": "900",
            "ALIBABA_CLOUD_ACCESS_KEY_ID": self.account.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.account.access_key_secret,
            "PYTHONPATH": str(ROOT / "shared"),
        }
        self.ledger_urls = {
            "sqlite": f"sqlite:///{state / 'ledger.sqlite3'}",
            "tablestore": "tablestore://immflow",
        }
        self.use_ledger("tablestore")
        from immflow.fc import Credentials
        from immflow.ledger import Ledger

        Ledger(
            self.ledger_urls["tablestore"],
            endpoint=self.servers[3].url,
            credentials=Credentials(self.account.access_key_id, self.account.access_key_secret),
        ).create_schema()

    def use_ledger(self, ledger: str) -> None:
        self.ledger = ledger
        self.env["IMMFLOW_LEDGER_URL"] = self.ledger_urls[ledger]

    def close(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        for service in self.services:
            service.close()

    def upload_event(self, key: str, data: bytes) -> str:
        self.bucket.put_object(key, data)
        template = json.loads(
            (ROOT / "tests" / "events" / "oss" / "event-ObjectCreated-PutObject.json").read_text()
        )
        record = template["events"][0]
        record["oss"]["bucket"]["name"] = "bench-media"
        record["oss"]["object"].update(
            key=key, eTag=hashlib.md5(data).hexdigest().upper(), size=len(data), deltaSize=len(data)
        )
        record["oss"]["object"].pop("objectMeta", None)
        return json.dumps(template)

    def notification_events(self, count: int) -> list[str]:
        """`count` fresh IMM results of tasks in the ledger, as FC JSON-format MNS events."""
        tag = f"{self.ledger}-{uuid.uuid4().hex[:8]}"  # only these uploads' results: they are in this ledger
        for index in range(count):
            self.child(
                "on_upload",
                "ours",
                [self.upload_event(f"uploads/prep/{tag}-{index}.png", _png(index))],
            )
        bodies: list[str] = []
        deadline = time.monotonic() + 60
        while len(bodies) < count and time.monotonic() < deadline:
            try:
                for message in self.queue.batch_receive_message(16, 1):
                    if tag in message.message_body and "preview" in message.message_body:
                        bodies.append(message.message_body)
                    self.queue.delete_message(message.receipt_handle)
            except Exception as exc:  # MessageNotExist while IMM works
                if "MessageNotExist" not in str(getattr(exc, "type", exc)):
                    raise
        if len(bodies) < count:
            raise SystemExit(f"only {len(bodies)} of {count} IMM notifications arrived")
        return [
            json.dumps(
                {
                    "TopicOwner": self.account.account_id,
                    "Message": body,
                    "Subscriber": self.account.account_id,
                    "PublishTime": int(time.time() * 1000),
                    "SubscriptionName": "fc",
                    "MessageMD5": "",
                    "TopicName": "bench-done",
                    "MessageId": uuid.uuid4().hex,
                }
            )
            for body in bodies[:count]
        ]

    def get_task_cost(self, notification_event: str, count: int) -> list[float]:
        """Seconds per warm GetTask (and parse) of the notification's task, as on_task_done makes it."""
        from immflow.adapters.imm import ImmAdapter
        from immflow.events.imm import parse_get_task_response, parse_imm_notification
        from immflow.events.mns import parse_mns_trigger_event
        from immflow.fc import Credentials

        result = parse_imm_notification(parse_mns_trigger_event(notification_event.encode()).body).content
        imm = ImmAdapter(
            endpoint=self.env["IMMFLOW_IMM_ENDPOINT"],
            region=self.account.region,
            credentials=Credentials(self.account.access_key_id, self.account.access_key_secret),
        )
        seconds: list[float] = []
        for index in range(count + 1):
            started = time.perf_counter()
            parse_get_task_response(imm.get_task("bench", result.TaskType, result.TaskId))
            if index:  # the first call builds the client
                seconds.append(time.perf_counter() - started)
            time.sleep(0.02)  # stay under the local IMM's 100 calls/s per project (it throttles beyond)
        return seconds

    def child(self, handler: str, variant: str, events: list[str], *, count: bool = False) -> dict[str, Any]:
        """Run `events` through a fresh process of `handler`; `count`: an untimed run that counts the
        requests sent to each local service and the SQL statements executed."""
        events_file = self.state / f"events-{uuid.uuid4().hex}.json"
        events_file.write_text(json.dumps(events))
        code = ROOT / ("bench/handwritten" if variant == "handwritten" else "functions") / handler
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(code),
                variant,
                str(events_file),
                self.account.access_key_id,
                self.account.access_key_secret,
                self.ledger,
            ],
            capture_output=True,
            text=True,
            env={**self.env, "BENCH_COUNT": "1"} if count else self.env,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{handler} ({variant}, {self.ledger} ledger) failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def requests(self, counts: dict[str, int]) -> dict[str, int]:
        """`counts` (by port, and ``sql``) by service name."""
        names = dict(
            zip((str(server.port) for server in self.servers), ("oss", "mns", "imm", "ots"), strict=True)
        )
        return {names.get(port, port): number for port, number in counts.items()}


VARIANTS = ("handwritten", "eager", "ours")
HANDLERS = ("on_upload", "on_task_done", "reconcile")


def measure(bench: Bench, ledger: str, runs: int, warm_count: int) -> dict[str, Any]:
    """Cold seconds per (handler, variant), import seconds, and warm seconds per event, on `ledger`."""
    bench.use_ledger(ledger)
    cold: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    imports: dict[tuple[str, str], list[float]] = {}
    notifications = bench.notification_events(len(VARIANTS) * runs)
    for run in range(runs):
        for variant in VARIANTS:
            events = {
                "on_upload": [
                    bench.upload_event(
                        f"uploads/cold/{ledger}-{variant}-{run}-{uuid.uuid4().hex[:6]}.png", _png(run)
                    )
                ],
                "on_task_done": [notifications.pop()],
                "reconcile": ["{}"],
            }
            for handler, handler_events in events.items():
                result = bench.child(handler, variant, handler_events)
                cold.setdefault((handler, variant), []).append(result["cold"])
                cpu.setdefault((handler, variant), []).append(result["cpu"])
                imports.setdefault((handler, variant), []).append(result["import"])
    requests: dict[tuple[str, str], dict[str, int]] = {}
    count_notifications = bench.notification_events(2)
    for variant in ("ours", "handwritten"):
        events = {
            "on_upload": [
                bench.upload_event(f"uploads/count/{ledger}-{variant}-{uuid.uuid4().hex[:6]}.png", _png(9))
            ],
            "on_task_done": [count_notifications.pop()],
            "reconcile": ["{}"],
        }
        for handler, handler_events in events.items():
            counts = bench.child(handler, variant, handler_events, count=True)["counts"]
            requests[handler, variant] = bench.requests(counts)
    upload = bench.upload_event(f"uploads/warm/{uuid.uuid4().hex[:6]}.png", _png(7))
    notification = bench.notification_events(1)[0]
    warm = {
        "on_upload": bench.child("on_upload", "ours", [upload] * (warm_count + 1))["warm"],
        "on_task_done": bench.child("on_task_done", "ours", [notification] * (warm_count + 1))["warm"],
        "reconcile": bench.child("reconcile", "ours", ["{}"] * (warm_count + 1))["warm"],
    }
    return {
        "cold": cold,
        "cpu": cpu,
        "imports": imports,
        "warm": warm,
        "requests": requests,
        "notification": notification,
    }


def report(ledger: str, figures: dict[str, Any]) -> None:
    cold, cpu, imports, warm = figures["cold"], figures["cpu"], figures["imports"], figures["warm"]
    print(f"ledger: {ledger}")
    print(
        f"{'handler':<14}{'ours':>8}{'hand':>8}{'eager':>8}{'/hand':>7}{'/eager':>8}{'cpu/hand':>10}"
        f"{'import ours':>13}{'hand':>7}{'eager':>7}{'warm/event':>12}"
    )
    for handler in HANDLERS:
        ours, hand, eager = (statistics.median(cold[handler, v]) for v in ("ours", "handwritten", "eager"))
        cpu_ratio = statistics.median(cpu[handler, "ours"]) / statistics.median(cpu[handler, "handwritten"])
        spread = "/".join(f"{value * 1000:.0f}" for value in sorted(cold[handler, "ours"]))
        print(
            f"{handler:<14}{ours * 1000:>6.0f}ms{hand * 1000:>6.0f}ms{eager * 1000:>6.0f}ms"
            f"{ours / hand:>7.2f}{ours / eager:>8.2f}{cpu_ratio:>10.2f}"
            + "".join(
                f"{statistics.median(imports[handler, v]) * 1000:>{w}.0f}ms"
                for v, w in (("ours", 11), ("handwritten", 5), ("eager", 5))
            )
            + f"{statistics.median(warm[handler]) * 1000:>10.2f}ms   (ours: {spread} ms)"
        )
    print("requests in one cold invocation, ours | hand-written (ots: ledger round trips, sql: statements):")
    for handler in HANDLERS:
        print(
            f"  {handler:<14}"
            + " | ".join(
                " ".join(
                    f"{name} {number}" for name, number in sorted(figures["requests"][handler, v].items())
                )
                or "none"
                for v in ("ours", "handwritten")
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--ledger", choices=("sqlite", "tablestore", "both"), default="both")
    args = parser.parse_args()
    ledgers = ("sqlite", "tablestore") if args.ledger == "both" else (args.ledger,)
    compile_bytecode()
    with tempfile.TemporaryDirectory() as folder:
        bench = Bench(Path(folder))
        try:
            results = {ledger: measure(bench, ledger, args.runs, args.warm) for ledger in ledgers}
            get_task = bench.get_task_cost(results[ledgers[-1]]["notification"], args.warm)
        finally:
            bench.close()
    for ledger in ledgers:
        report(ledger, results[ledger])
    if len(ledgers) == 2:
        print(
            "cold, ours on Tablestore / ours on SQLite: "
            + ", ".join(
                f"{handler} {statistics.median(results['tablestore']['cold'][handler, 'ours']) / statistics.median(results['sqlite']['cold'][handler, 'ours']):.2f}"
                for handler in HANDLERS
            )
        )
    print("cold = import + first event in a fresh process (median of runs); /hand = ours / hand-written;")
    print(
        "cpu/hand = the same ratio in CPU seconds of the process (steadier than wall time on a busy machine);"
    )
    print(
        "/eager = ours / immflow with eager SDK imports; warm = median per redelivered event (no cloud call)."
    )
    print(
        f"GetTask confirming a notification (warm, local IMM): median {statistics.median(get_task) * 1000:.2f}ms, "
        f"p90 {statistics.quantiles(get_task, n=10)[-1] * 1000:.2f}ms per notification"
    )


if __name__ == "__main__":
    main()
