"""Cold start and warm cost of the three handlers on each ledger, against a baseline that imports the
SDKs eagerly.

Run: ``python bench/bench_handlers.py [--runs 3] [--warm 200]``. The bench starts a local OSS, MNS, IMM
and Tablestore on free ports (the real local cloud, not fakes) and runs every measurement in a fresh
Python process, as FC starts an instance, once with the SQL ledger (SQLite) and once with the Tablestore
ledger (the deployed default; its cold start includes ``import tablestore``):

* **cold**: from before ``import index`` to the end of the first invocation (interpreter start-up,
  the same for both, is left out). The event is real work: on_upload creates two IMM tasks for a new
  upload; on_task_done records an IMM result (listing OSS for outputs) and creates its follow-up;
  reconcile checks a ledger with nothing stale.
* **baseline**: the same handler, preceded by ``import alibabacloud_imm20200930.client, oss2`` at module
  load, as a handler that builds its clients at import time does.
* **warm**: per event once the instance is warm, for events that need no cloud call (a redelivered
  upload, a redelivered notification, an empty reconcile): immflow's own overhead, without network.
* **GetTask**: what confirming a notification adds to on_task_done (docs/imm-notifications.md): one
  warm GetTask of a finished task through immflow's IMM adapter against the local IMM, and the parse
  of its answer (median of ``--warm`` calls).

Ratios are measured in the same run (medians of ``--runs`` processes each): ours on SQL / baseline (also on
SQL), and ours on Tablestore / ours on SQL.
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
from typing import Any

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
import json, sys, time
from types import SimpleNamespace
started = time.perf_counter()
if sys.argv[2] == "baseline":
    import alibabacloud_imm20200930.client, oss2  # noqa: F401  (what an eager handler pays at import)
sys.path.insert(0, sys.argv[1])
import index
imported = time.perf_counter()
events = json.loads(open(sys.argv[3]).read())
def context():
    return SimpleNamespace(request_id="bench", function=SimpleNamespace(name="bench", timeout=60),
                           credentials=SimpleNamespace(access_key_id=sys.argv[4], access_key_secret=sys.argv[5], security_token=""))
index.handler(events[0].encode(), context())
first = time.perf_counter()
warm = []
for event in events[1:]:
    t = time.perf_counter()
    index.handler(event.encode(), context())
    warm.append(time.perf_counter() - t)
print(json.dumps({"import": imported - started, "cold": first - started, "warm": warm}))
"""


def _png(seed: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (seed % 256, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


class Bench:
    def __init__(self, state: Path) -> None:
        import oss2
        from alibabacloud_imm20200930 import models
        from alibabacloud_imm20200930.client import Client
        from alibabacloud_tea_openapi import models as open_api_models
        from immflow.fc import Credentials
        from immflow.ledger import Ledger
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
        self.services = []
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
        keys = Credentials(self.account.access_key_id, self.account.access_key_secret)
        Ledger("tablestore://immflow", endpoint=self.servers[3].url, credentials=keys).create_schema()
        self.ledgers = {
            "sql": {"IMMFLOW_LEDGER_URL": f"sqlite:///{state / 'ledger.sqlite3'}"},
            "tablestore": {
                "IMMFLOW_LEDGER_URL": "tablestore://immflow",
                "IMMFLOW_OTS_ENDPOINT": self.servers[3].url,
            },
        }
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
        self.env = {
            **os.environ,
            "IMMFLOW_PROJECT": "bench",
            "IMMFLOW_TOPIC": "bench-done",
            "IMMFLOW_PIPELINE": str(state / "pipeline.yaml"),
            "IMMFLOW_IMM_ENDPOINT": f"127.0.0.1:{self.servers[2].port}",
            "IMMFLOW_OSS_ENDPOINT": self.servers[0].url,
            "IMMFLOW_RECONCILE_AFTER_SECONDS": "900",
            "PYTHONPATH": str(ROOT / "shared"),
        }

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

    def notification_events(self, count: int, ledger: str) -> list[str]:
        """`count` fresh IMM results of tasks in `ledger`, as FC JSON-format MNS events."""
        for index in range(count):
            self.child(
                "on_upload",
                "ours",
                [self.upload_event(f"uploads/prep/{index}-{uuid.uuid4().hex[:6]}.png", _png(index))],
                ledger,
            )
        bodies: list[str] = []
        deadline = time.monotonic() + 60
        while len(bodies) < count and time.monotonic() < deadline:
            try:
                for message in self.queue.batch_receive_message(16, 1):
                    if '"preview"' in message.message_body or "preview" in message.message_body:
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

    def child(self, handler: str, variant: str, events: list[str], ledger: str) -> dict[str, Any]:
        events_file = self.state / f"events-{uuid.uuid4().hex}.json"
        events_file.write_text(json.dumps(events))
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(ROOT / "functions" / handler),
                variant,
                str(events_file),
                self.account.access_key_id,
                self.account.access_key_secret,
            ],
            capture_output=True,
            text=True,
            env={**self.env, **self.ledgers[ledger]},
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{handler} ({variant}, {ledger} ledger) failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result


VARIANTS = (("baseline", "sql"), ("ours", "sql"), ("ours", "tablestore"))
HANDLERS = ("on_upload", "on_task_done", "reconcile")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warm", type=int, default=200)
    args = parser.parse_args()
    cold: dict[tuple[str, str, str], list[float]] = {}
    imports: dict[tuple[str, str, str], list[float]] = {}
    warm: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        bench = Bench(Path(folder))
        try:
            notifications = {
                ledger: bench.notification_events(
                    args.runs * sum(1 for _, used in VARIANTS if used == ledger), ledger
                )
                for ledger in ("sql", "tablestore")
            }
            for run in range(args.runs):
                for variant, ledger in VARIANTS:
                    events = {
                        "on_upload": [
                            bench.upload_event(
                                f"uploads/cold/{variant}-{ledger}-{run}-{uuid.uuid4().hex[:6]}.png", _png(run)
                            )
                        ],
                        "on_task_done": [notifications[ledger].pop()],
                        "reconcile": ["{}"],
                    }
                    for handler, handler_events in events.items():
                        result = bench.child(handler, variant, handler_events, ledger)
                        cold.setdefault((handler, variant, ledger), []).append(result["cold"])
                        imports.setdefault((handler, variant, ledger), []).append(result["import"])
            for ledger in ("sql", "tablestore"):
                upload = bench.upload_event(f"uploads/warm/{ledger}-{uuid.uuid4().hex[:6]}.png", _png(7))
                notification = bench.notification_events(1, ledger)[0]
                repeated = {"on_upload": upload, "on_task_done": notification, "reconcile": "{}"}
                for handler, event in repeated.items():
                    warm[handler, ledger] = bench.child(handler, "ours", [event] * (args.warm + 1), ledger)[
                        "warm"
                    ]
            get_task = bench.get_task_cost(notification, args.warm)
        finally:
            bench.close()

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    print(
        f"{'handler':<14}{'cold sql':>10}{'cold ots':>10}{'ots/sql':>9}{'cold base':>11}{'sql/base':>10}"
        f"{'import':>9}{'warm sql':>10}{'warm ots':>10}"
    )
    for handler in HANDLERS:
        sql, ots = ms(cold[handler, "ours", "sql"]), ms(cold[handler, "ours", "tablestore"])
        base = ms(cold[handler, "baseline", "sql"])
        print(
            f"{handler:<14}{sql:>8.0f}ms{ots:>8.0f}ms{ots / sql:>9.2f}{base:>9.0f}ms{sql / base:>10.2f}"
            f"{ms(imports[handler, 'ours', 'sql']):>7.0f}ms"
            f"{ms(warm[handler, 'sql']):>8.2f}ms{ms(warm[handler, 'tablestore']):>8.2f}ms"
        )
    print(
        "cold = import + first event in a fresh process (sql: SQLite ledger; ots: Tablestore ledger, local);"
    )
    print(
        "base = cold on SQL with the SDKs imported eagerly; import = `import index` (no ledger backend yet);"
    )
    print(
        "warm = median per redelivered event (no IMM/OSS call; the Tablestore ledger still reads its rows)."
    )
    print(
        f"GetTask confirming a notification (warm, local IMM): median {statistics.median(get_task) * 1000:.2f}ms, "
        f"p90 {statistics.quantiles(get_task, n=10)[-1] * 1000:.2f}ms per notification"
    )


if __name__ == "__main__":
    main()
