"""The three FC handlers, called as FC calls them, against a real local OSS, MNS and IMM on free ports.

Each handler is loaded from ``functions/<name>/index.py`` and called with FC-shaped events (built from
the fixture files in ``tests/events/``) and an FC context of either runtime shape: python3.10 (with
``credentials``) or python3.12 (without; the keys come from ``ALIBABA_CLOUD_*``). IMM's notifications
are read from an MNS queue subscribed to the topic (as the local IMM publishes them) and handed to
``on_task_done`` wrapped the way the FC MNS trigger wraps them (JSON or STREAM format).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from alibabacloud_imm20200930 import models
from immflow.fc import Credentials
from immflow.flow import runtime
from immflow.ledger import Ledger, TaskRecord, utcnow
from immflow.settings import load_settings
from mns.mns_exception import MNSExceptionBase
from mns.queue import QueueMeta
from mns.subscription import SubscriptionMeta
from mns.topic import TopicMeta

from localcloud.core.account import Account
from tests.support.cloud import Cloud, start_cloud

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
BUCKET = "fn-media"
RECONCILE_AFTER_SECONDS = 1
#: How far ahead `Harness.reconcile` moves its clock for every task started so far to be past that.
PAST_RECONCILE_AFTER = RECONCILE_AFTER_SECONDS + 1.0
PROJECT = "fn-tests"
TOPIC = "fn-imm-done"

PIPELINE = """\
version: 1
max_depth: 3
rules:
  - name: images
    match: {prefix: uploads/images/, suffixes: [.png, .jpg]}
    tags: {pipeline: images}
    tasks:
      - name: preview
        type: ImageSplicing
        tags: {profile: small}
        params:
          TargetURI: "oss://{bucket}/processed/{dirname}/{barename}/preview-{tags.profile}.jpg"
          Align: 64
          ImageFormat: jpg
    then:
      - after: preview
        on: Succeeded
        for_each: output
        tasks:
          - name: pdf
            type: ImageToPDF
            params:
              TargetURI: "oss://{bucket}/{dirname}/{barename}.pdf"
  - name: archives
    match: {prefix: uploads/archives/, suffixes: [.zip]}
    tags: {pipeline: archives}
    tasks:
      - name: unzip
        type: FileUncompression
        params:
          TargetURI: "oss://{bucket}/processed/{dirname}/{barename}/"
      - name: inspect
        type: ArchiveFileInspection
  - name: bombs
    match: {prefix: uploads/bombs/, suffixes: [.zip]}
    tasks:
      - name: unzip
        type: FileUncompression
        limits: {max_entries: 3, max_uncompressed_size: 1MB}
        params:
          TargetURI: "oss://{bucket}/processed/{dirname}/{barename}/"
  - name: videos
    match: {prefix: uploads/videos/, suffixes: [.mp4]}
    tasks:
      - name: web
        type: MediaConvert
        params:
          Targets:
            - Container: mp4
              URI: "oss://{bucket}/processed/{dirname}/{barename}/web"
              Video: {TranscodeVideo: {Codec: h264, Resolution: 160x120}}
            - Image:
                Snapshots:
                  - URI: "oss://{bucket}/processed/{dirname}/{barename}/poster-{index}.jpg"
                    Format: jpg
                    Number: 2
                    Mode: average
"""


#: An archive whose every entry gets a follow-up task (tests of creation takeovers and killed invocations).
FAN_OUT_PIPELINE = """\
version: 1
max_depth: 2
rules:
  - name: bundles
    match: {prefix: uploads/bundles/, suffixes: [.zip]}
    tasks:
      - name: unzip
        type: FileUncompression
        params:
          TargetURI: "oss://{bucket}/processed/{dirname}/{barename}/"
    then:
      - after: unzip
        on: Succeeded
        for_each: output
        tasks:
          - name: pdf
            type: ImageToPDF
            params:
              TargetURI: "oss://{bucket}/pdfs/{dirname}/{barename}.pdf"
"""


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with start_cloud(tmp_path_factory.mktemp("fn-cloud"), BUCKET) as started:
        started.mns.get_topic(TOPIC).create(TopicMeta())
        started.imm.create_project(models.CreateProjectRequest(project_name=PROJECT))
        yield started


def _load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fn_{name}_index", ROOT / "functions" / name / "index.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HANDLERS = {name: _load_handler(name) for name in ("on_upload", "on_task_done", "reconcile")}


def fc_context(account: Account, runtime_name: str, function: str, timeout: int = 60) -> SimpleNamespace:
    """FC's context object: python3.10 carries ``credentials``, python3.12 does not (docs/fc.md#the-python-runtime)."""
    context = SimpleNamespace(
        request_id=str(uuid.uuid4()),
        function=SimpleNamespace(name=function, handler="index.handler", memory=512, timeout=timeout),
        region=account.region,
        account_id=account.account_id,
    )
    if runtime_name == "python3.10":
        context.credentials = SimpleNamespace(
            access_key_id=account.access_key_id,
            access_key_secret=account.access_key_secret,
            security_token="",
        )
        context.service = SimpleNamespace(
            name="immflow", log_project="", log_store="", qualifier="LATEST", version_id=""
        )
    return context


@dataclass
class Harness:
    cloud: Cloud
    ledger: Ledger
    queue: Any
    runtime_name: str
    prefix: str
    """A key prefix of this test's own, so tests share the session's cloud without meeting."""
    pending: list[str] = field(default_factory=list)

    def task(self, task_id: str) -> TaskRecord:
        """The ledger's record of `task_id`, which the test expects to be there."""
        task = self.ledger.task_by_id(task_id)
        assert task is not None, f"no task {task_id} in the ledger"
        return task

    def key(self, rule_folder: str, name: str) -> str:
        return f"uploads/{rule_folder}/{self.prefix}/{name}"

    def put(self, key: str, data: bytes) -> dict[str, Any]:
        """Upload `key` and return the OSS trigger event FC would hand on_upload for it."""
        self.cloud.bucket.put_object(key, data)
        return oss_event(self.cloud, key, data)

    def context(self, function: str, timeout: int = 60) -> SimpleNamespace:
        return fc_context(self.cloud.account, self.runtime_name, function, timeout)

    def initialize(self, name: str) -> None:
        """Run function `name`'s FC initializer, as FC does once per instance before its first event."""
        HANDLERS[name].initializer(self.context(f"immflow-{name.replace('_', '-')}"))

    def on_upload(self, event: dict[str, Any]) -> dict[str, Any]:
        result: str = HANDLERS["on_upload"].handler(
            json.dumps(event).encode(), self.context("immflow-on-upload")
        )
        return dict(json.loads(result))

    def on_task_done(self, body: str, content_format: str = "JSON") -> dict[str, Any]:
        result: str = HANDLERS["on_task_done"].handler(
            mns_event(body, content_format), self.context("immflow-on-task-done")
        )
        return dict(json.loads(result))

    def reconcile(self, later_by: float = 0.0) -> dict[str, Any]:
        """Run reconcile with its clock ``later_by`` seconds ahead (``PAST_RECONCILE_AFTER``: every
        task started so far is old enough to be settled), instead of waiting that long."""
        code_dir = ROOT / "functions" / "reconcile"
        services = runtime._services.get(code_dir)
        if services is None:  # what the handler's first invocation would make, made here to set its clock
            services = runtime._services[code_dir] = runtime.Services.from_settings(load_settings(code_dir))
        services.clock = lambda: utcnow() + timedelta(seconds=later_by)
        event = (EVENTS / "fc" / "timer-every-5-minutes.json").read_bytes()
        result: str = HANDLERS["reconcile"].handler(event, self.context("immflow-reconcile", timeout=300))
        return dict(json.loads(result))

    def next_notifications(self, timeout: float = 60.0) -> list[str]:
        """The notification bodies IMM published since the last call (at least one, or a failure)."""
        deadline = time.monotonic() + timeout
        bodies: list[str] = []
        while not bodies and time.monotonic() < deadline:
            try:
                messages = self.queue.batch_receive_message(16, 1)
            except MNSExceptionBase as exc:
                if getattr(exc, "type", "") == "MessageNotExist":
                    continue
                raise
            for message in messages:
                bodies.append(message.message_body)
                self.queue.delete_message(message.receipt_handle)
        assert bodies, f"no IMM notification within {timeout} s"
        return bodies

    def notification_for(self, task_id: str, timeout: float = 60.0) -> str:
        """The notification of `task_id` (others read meanwhile belong to other tests' tasks: dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no notification for {task_id} within {timeout} s"
            for body in self.next_notifications(timeout=remaining):
                if task_id in body:
                    return body

    def run_to_end(self, run_id: str, timeout: float = 90.0) -> list[str]:
        """Feed every notification to on_task_done until the run is done; returns the bodies fed."""
        fed: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            run = self.ledger.get_run(run_id)
            assert run is not None
            if run.status == "Done":
                return fed
            assert time.monotonic() < deadline, f"run {run_id} not done within {timeout} s"
            for body in self.next_notifications(timeout=deadline - time.monotonic()):
                if run_id not in body:
                    continue  # a late notification of an earlier test's task (same topic)
                self.on_task_done(body)
                fed.append(body)

    def get_task(self, task_type: str, task_id: str) -> models.GetTaskResponseBody:
        request = models.GetTaskRequest(project_name=PROJECT, task_type=task_type, task_id=task_id)
        return self.cloud.imm.get_task(request).body


def oss_event(
    cloud: Cloud, key: str, data: bytes, event_name: str = "ObjectCreated:PutObject"
) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "oss" / "event-ObjectCreated-PutObject.json").read_text())
    record = event["events"][0]
    record["eventName"] = event_name
    # As OSS writes them: milliseconds, and a request id of each upload's own (they order uploads of a key).
    now = time.time()
    record["eventTime"] = (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    )
    record["responseElements"]["requestId"] = uuid.uuid4().hex.upper()
    record["region"] = cloud.account.region
    record["oss"]["bucket"].update(
        name=BUCKET,
        arn=f"acs:oss:{cloud.account.region}:{cloud.account.account_id}:{BUCKET}",
        ownerIdentity=cloud.account.account_id,
    )
    record["oss"]["object"].update(
        key=key, eTag=hashlib.md5(data).hexdigest().upper(), size=len(data), deltaSize=len(data)
    )
    record["oss"]["object"].pop("objectMeta", None)
    return event


def mns_event(body: str, content_format: str) -> bytes:
    """The event the FC MNS topic trigger hands the function (docs/events.md#mns-topic-trigger-event), from a fixture's shape."""
    if content_format == "STREAM":
        return body.encode()
    event = json.loads((EVENTS / "mns" / "json-imm-notification.json").read_text())
    event.update(
        Message=body,
        MessageMD5=hashlib.md5(body.encode()).hexdigest().upper(),
        MessageId=uuid.uuid4().hex.upper(),
        TopicName=TOPIC,
        PublishTime=int(time.time() * 1000),
    )
    return json.dumps(event, separators=(",", ":")).encode()


@pytest.fixture(
    params=["python3.10-tablestore", "python3.12-tablestore", "python3.10-sqlite", "python3.12-sqlite"]
)
def harness(
    request: pytest.FixtureRequest, cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    """A fresh function instance of one runtime shape, on one ledger: Tablestore (the deployed default,
    an instance of this test's own, reached with the invocation's keys) or SQLite (a file of its own)."""
    runtime_name, ledger_kind = request.param.split("-")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE)
    if ledger_kind == "tablestore":
        instance = f"t{uuid.uuid4().hex[:12]}"
        cloud.ots.create_instance(instance)
        ledger_url = f"tablestore://{instance}"
        keys = Credentials(cloud.account.access_key_id, cloud.account.access_key_secret)
        ledger = Ledger(ledger_url, endpoint=cloud.ots_url, credentials=keys)
        ledger.create_schema()  # what template.yml does for the deployed stack
        monkeypatch.setenv("IMMFLOW_OTS_ENDPOINT", cloud.ots_url)
    else:
        ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        ledger = Ledger(ledger_url)
    environment = {
        "IMMFLOW_PROJECT": PROJECT,
        "IMMFLOW_TOPIC": TOPIC,
        "IMMFLOW_PIPELINE": str(pipeline),
        "IMMFLOW_LEDGER_URL": ledger_url,
        "IMMFLOW_IMM_ENDPOINT": cloud.imm_endpoint,
        "IMMFLOW_OSS_ENDPOINT": cloud.oss_url,
        "IMMFLOW_REGION": cloud.account.region,
        "IMMFLOW_RECONCILE_AFTER_SECONDS": str(RECONCILE_AFTER_SECONDS),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if runtime_name == "python3.12":
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", cloud.account.access_key_id)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", cloud.account.access_key_secret)
    else:
        # python3.10: only the context has keys, which proves they are read from there.
        for name in (
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            "ALIBABA_CLOUD_SECURITY_TOKEN",
        ):
            monkeypatch.delenv(name, raising=False)
    # FC starts a fresh instance per deployment; so does each test (settings and services are per instance).
    load_settings.cache_clear()
    runtime._services.clear()
    queue_name = f"q-{uuid.uuid4().hex[:12]}"
    queue = cloud.mns.get_queue(queue_name)
    queue.create(QueueMeta())
    queue.set_encoding(False)
    endpoint = f"acs:mns:{cloud.account.region}:{cloud.account.account_id}:queues/{queue_name}"
    subscription = cloud.mns.get_topic(TOPIC).get_subscription(f"s-{queue_name}")
    subscription.subscribe(SubscriptionMeta(endpoint, notify_content_format="SIMPLIFIED"))
    yield Harness(cloud, ledger, queue, runtime_name, uuid.uuid4().hex[:8])
    subscription.unsubscribe()
    load_settings.cache_clear()
    runtime._services.clear()


def expire_open_claims(harness: Harness, run_id: str) -> None:
    """What time does to the dead invocation's claims (they are held for its whole timeout)."""
    for task in harness.ledger.tasks_of_run(run_id):
        if task.status == "Creating":
            harness.ledger.release_claim(task.claim_key, now=utcnow())
