"""The demo, step by step: start the local cloud, apply s.yaml and pipeline.yaml, upload samples,
follow every run to its end, and check that everything the pipeline promised exists.

Choices:
- The local cloud is started **detached** (``immflow local up --detach``) when none runs on the
  state folder, and left running afterwards, so the results can be explored with ``immflow tasks``
  and the SDKs; ``immflow local down`` stops it.
- Every demo invocation uploads under a fresh folder ``<rule prefix>demo-<time>-<hex>/``: each run
  of the demo is a new set of runs, and running it again never collides with an earlier one.
- "Applying" s.yaml creates what its functions point at and the cloud would already have: the
  buckets of the OSS triggers, the topics of the MNS triggers, the MNS queues of async
  destinations and the IMM project named by ``IMMFLOW_PROJECT``; then deploys the functions and
  triggers on the local FC. pipeline.yaml reaches the functions the way the deploy packages it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import oss2

from immflow.demo.media import Sample
from immflow.errors import ImmflowError
from immflow.ledger import Ledger, RunRecord, TaskRecord, local_ledger, run_id_for
from immflow.ossuri import OssUri
from immflow.pipeline import Pipeline
from immflow.pipeline_file import load_pipeline

if TYPE_CHECKING:
    from localcloud.core.account import Account

DEFAULT_SERVICE_ROLE = "AliyunIMMDefaultRole"
UPLOAD_EVENT = "ObjectCreated:PutObject"


class DemoError(ImmflowError):
    """The demo cannot go on; the message says what to fix."""


@dataclass(frozen=True)
class Deployment:
    """What the s.yaml's functions point at, read from the file itself."""

    functions: list[str]
    buckets: list[str]
    topics: list[str]
    queues: list[str]
    project: str


def account_of(endpoints: dict[str, str]) -> Account:
    """The local cloud's account, as its ``endpoints.json`` names it."""
    from localcloud.core.account import Account

    return Account(
        endpoints["account_id"],
        endpoints["region"],
        endpoints["access_key_id"],
        endpoints["access_key_secret"],
    )


def read_deployment(s_yaml: Path, account: Account, environ: dict[str, str]) -> Deployment:
    """What ``s_yaml``'s functions point at; the account is all it needs of the local cloud, so the demo
    reads it while the cloud starts (`Account.load_or_create` makes it before the launcher takes it)."""
    from localcloud.fc.syaml import SYamlError, load

    try:
        specs = load(s_yaml, account, environ)
    except SYamlError as error:
        raise DemoError(str(error)) from None
    buckets = [t.arn_tail() for s in specs for t in s.triggers if t.type == "oss"]
    topics = [
        t.arn_tail().removeprefix("/topics/") for s in specs for t in s.triggers if t.type == "mns_topic"
    ]
    queues = [
        arn.split(":/queues/")[1].split("/")[0]
        for s in specs
        for arn in (s.async_config.on_success, s.async_config.on_failure)
        if ":/queues/" in arn
    ]
    projects = {s.environment["IMMFLOW_PROJECT"] for s in specs if s.environment.get("IMMFLOW_PROJECT")}
    if not buckets:
        raise DemoError(
            f"{s_yaml} has no OSS trigger: the demo uploads into the bucket an OSS trigger watches"
        )
    if len(projects) != 1:
        raise DemoError(
            f"{s_yaml}: the functions must name one IMM project in IMMFLOW_PROJECT, found {sorted(projects)}"
        )
    return Deployment(
        functions=[s.name for s in specs],
        buckets=list(dict.fromkeys(buckets)),
        topics=list(dict.fromkeys(topics)),
        queues=list(dict.fromkeys(queues)),
        project=projects.pop(),
    )


def apply(endpoints: dict[str, str], deployment: Deployment) -> None:
    """Create the buckets, topics, queues and IMM project the functions need (each idempotent)."""
    create_triggers_resources(endpoints, deployment)
    create_project(endpoints, deployment)


def create_triggers_resources(endpoints: dict[str, str], deployment: Deployment) -> None:
    """Create the buckets, topics and queues the functions' triggers and destinations name: the
    deploy needs them (the IMM project only the first upload needs: `create_project`)."""
    from mns.account import Account as MnsAccount
    from mns.mns_exception import MNSServerException
    from mns.queue import QueueMeta
    from mns.topic import TopicMeta

    key_id, secret = endpoints["access_key_id"], endpoints["access_key_secret"]
    auth = oss2.Auth(key_id, secret)
    for name in deployment.buckets:
        oss2.Bucket(auth, endpoints["oss"], name).create_bucket()
    mns = MnsAccount(endpoints["mns"], key_id, secret)
    for topic in deployment.topics:
        try:
            mns.get_topic(topic).create(TopicMeta())
        except MNSServerException as error:
            if error.type != "TopicAlreadyExist":
                raise
    for queue in deployment.queues:
        try:
            mns.get_queue(queue).create(QueueMeta())
        except MNSServerException as error:
            if error.type != "QueueAlreadyExist":
                raise


def create_project(endpoints: dict[str, str], deployment: Deployment) -> None:
    """Create the IMM project the functions' ``IMMFLOW_PROJECT`` names, unless it exists."""
    from alibabacloud_imm20200930 import models as imm_models
    from alibabacloud_imm20200930.client import Client as ImmClient
    from alibabacloud_tea_openapi.models import Config
    from Tea.exceptions import TeaException

    key_id, secret = endpoints["access_key_id"], endpoints["access_key_secret"]
    imm = ImmClient(
        Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=endpoints["imm"],
            protocol="http",
            region_id=endpoints["region"],
        )
    )
    try:
        imm.create_project(
            imm_models.CreateProjectRequest(
                project_name=deployment.project, service_role=DEFAULT_SERVICE_ROLE
            )
        )
    except TeaException as error:
        if error.code != "ResourceAlreadyExists":
            raise


@dataclass
class Upload:
    sample: Sample
    rule: str
    uri: OssUri
    etag: str
    size: int
    run_id: str


def plan_uploads(
    samples: list[Sample], pipeline: Pipeline, bucket: str, folder: str
) -> list[tuple[Sample, str, OssUri]]:
    """For each sample, the first rule that would take it, and the key under that rule's prefix."""
    planned = []
    for sample in samples:
        size = sample.path.stat().st_size
        for rule in pipeline.rules:
            key = f"{rule.match.prefix}{folder}/{sample.name}"
            target_bucket = rule.match.bucket or bucket
            if rule.match.accepts(target_bucket, key, UPLOAD_EVENT, size, sample.content_type):
                planned.append((sample, rule.name, OssUri(target_bucket, key)))
                break
    return planned


def upload(endpoints: dict[str, str], planned: list[tuple[Sample, str, OssUri]]) -> list[Upload]:
    auth = oss2.Auth(endpoints["access_key_id"], endpoints["access_key_secret"])
    uploads = []
    for sample, rule, uri in planned:
        bucket = oss2.Bucket(auth, endpoints["oss"], uri.bucket)
        result = bucket.put_object_from_file(
            uri.key, str(sample.path), headers={"Content-Type": sample.content_type}
        )
        etag = str(result.etag).strip('"').upper()
        # Each demo uploads under a folder of its own (`demo_folder`): every key's upload is its first run.
        run_id = run_id_for(uri.bucket, uri.key, etag, 1)
        uploads.append(Upload(sample, rule, uri, etag, sample.path.stat().st_size, run_id))
    return uploads


@dataclass
class RunProgress:
    upload: Upload
    run: RunRecord | None = None
    tasks: list[TaskRecord] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.run is not None and self.run.status == "Done" and bool(self.run.manifest_uri)

    def count(self, *statuses: str) -> int:
        return sum(1 for task in self.tasks if task.status in statuses)

    @property
    def follow_ups(self) -> int:
        return sum(1 for task in self.tasks if task.depth > 1)


class PhaseClock:
    """Where the demo's wall time goes, for ``--json`` (``bench/bench_demo.py`` prints it).

    :meth:`mark` closes a set-up phase (seconds since the previous mark); :meth:`follow_phases`
    splits the time from the last upload to the moment the demo saw every manifest, by the ledger's
    own timestamps (the local cloud and the demo share this machine's clock)."""

    def __init__(self, begun: float) -> None:
        """``begun``: when the demo began, by ``time.monotonic()``."""
        self.phases: dict[str, float] = {}
        self.ended_at: dict[str, float] = {}  # wall clock, to compare with the ledger's
        self._last = begun

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        self.phases[phase] = round(now - self._last, 3)
        self.ended_at[phase] = time.time()
        self._last = now

    def follow_phases(self, progress: list[RunProgress]) -> dict[str, float]:
        def seconds(moment: datetime | None) -> float | None:
            if moment is None:
                return None
            return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()

        tasks = [task for item in progress for task in item.tasks]
        created = [t for t in (seconds(task.created_at) for task in tasks) if t is not None]
        ended = [t for t in (seconds(task.ended_at) for task in tasks) if t is not None]
        busy = [
            e - s
            for s, e in ((seconds(task.started_at), seconds(task.ended_at)) for task in tasks)
            if s is not None and e is not None
        ]
        manifests = [
            t for t in (seconds(item.run.ended_at) for item in progress if item.run) if t is not None
        ]
        follow = {name: value for name, value in self.phases.items() if name != "follow"}
        if created and ended and manifests and {"uploads", "follow"} <= self.ended_at.keys():
            follow["first_task_created"] = round(min(created) - self.ended_at["uploads"], 3)
            follow["tasks"] = round(max(ended) - min(created), 3)
            follow["last_manifest"] = round(max(manifests) - max(ended), 3)
            follow["seen_by_demo"] = round(self.ended_at["follow"] - max(manifests), 3)
            follow["imm_task_seconds_sum"] = round(sum(busy), 3)
        return follow


def poll(ledger: Ledger, progress: list[RunProgress]) -> None:
    for item in progress:
        if item.done:
            continue
        item.run = ledger.get_run(item.upload.run_id)
        item.tasks = ledger.tasks_of_run(item.upload.run_id) if item.run else []


def fc_invocations(endpoints: dict[str, str]) -> dict[str, Any]:
    import requests

    from localcloud.core.admin import admin_headers

    url = endpoints["fc"] + "/_localcloud/invocations?state=failed&limit=5"
    try:
        response = requests.get(url, headers=admin_headers(endpoints["admin_token"]), timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
    except (requests.RequestException, ValueError) as error:
        raise DemoError(
            f"the local FC did not answer {url}: {error}; see the state folder's localcloud.log"
        ) from None
    return result


#: How often the demo reads every run, its tasks and the FC's counts (the live table), and how often
#: in between it reads only the run record of each run not yet done, to see a manifest soon after it
#: is written (one ledger read per such run) without reading every task ten times a second.
FULL_POLL_SECONDS = 0.5
RUN_POLL_SECONDS = 0.1


def wait(
    endpoints: dict[str, str],
    ledger: Ledger,
    progress: list[RunProgress],
    timeout: float,
    on_tick: Callable[[dict[str, Any]], None],
) -> bool:
    """Poll the ledger until every run is done (manifest written); False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        poll(ledger, progress)
        invocations = fc_invocations(endpoints)
        on_tick(invocations)
        if all(item.done for item in progress):
            return True
        if time.monotonic() > deadline:
            return False
        next_full = time.monotonic() + FULL_POLL_SECONDS
        while time.monotonic() + RUN_POLL_SECONDS < next_full:
            time.sleep(RUN_POLL_SECONDS)
            if _a_run_finished(ledger, progress):
                break
        else:
            time.sleep(max(0.0, next_full - time.monotonic()))


def _a_run_finished(ledger: Ledger, progress: list[RunProgress]) -> bool:
    """Whether a run not yet seen done has its manifest now (its tasks are then read by `poll`)."""
    for item in progress:
        if item.run is not None and not item.done:
            run = ledger.get_run(item.upload.run_id)
            if run is not None and run.status == "Done" and run.manifest_uri:
                return True
    return False


def _object_size(bucket: oss2.Bucket, key: str) -> int | None:
    try:
        return int(bucket.head_object(key).content_length)
    except oss2.exceptions.NotFound:
        return None


def verify(
    endpoints: dict[str, str], pipeline: Pipeline, item: RunProgress
) -> tuple[dict[str, Any], list[str]]:
    """The upload's report, and every promise of the pipeline it broke (empty when all is there)."""
    auth = oss2.Auth(endpoints["access_key_id"], endpoints["access_key_secret"])
    buckets: dict[str, oss2.Bucket] = {}

    def size_of(uri: str) -> int | None:
        parsed = OssUri.parse(uri)
        bucket = buckets.setdefault(parsed.bucket, oss2.Bucket(auth, endpoints["oss"], parsed.bucket))
        return _object_size(bucket, parsed.key)

    upload = item.upload
    problems: list[str] = []
    tasks_report = []
    if item.run is None:
        problems.append(f"{upload.uri}: no run was recorded (did on_upload run? see the FC log)")
    for task in item.tasks:
        outputs = [{"uri": uri, "size": size_of(uri)} for uri in task.outputs]
        where = f"{upload.uri}: task {task.rule}/{task.task_name} ({task.task_id})"
        if task.status != "Succeeded":
            problems.append(f"{where} ended {task.status}: {task.code} {task.message}".rstrip())
        for output in outputs:
            if not output["size"]:
                problems.append(f"{where}: output {output['uri']} is missing or empty")
        if (
            task.status == "Succeeded"
            and pipeline.task(task.rule, task.task_name).target_templates()
            and not outputs
        ):
            problems.append(f"{where}: produced no output, though its targets promise some")
        for follow_up in pipeline.follow_ups(task.rule, task.task_name, task.status) if task.task_id else []:
            kept = [uri for uri in task.outputs if follow_up.keeps(OssUri.parse(uri))]
            children = [t for t in item.tasks if t.parent_task_id == task.task_id]
            if kept and not children:
                problems.append(f"{where}: its follow-up ({follow_up.tasks[0].name}) never started")
        tasks_report.append(
            {
                "task_id": task.task_id,
                "rule": task.rule,
                "task": task.task_name,
                "type": task.task_type,
                "depth": task.depth,
                "parent": task.parent_task_id,
                "status": task.status,
                "code": task.code,
                "message": task.message,
                "outputs": outputs,
            }
        )
    manifest = item.run.manifest_uri if item.run else None
    manifest_size = size_of(manifest) if manifest else None
    if item.run is not None and not manifest_size:
        problems.append(f"{upload.uri}: the run manifest {manifest or '(not written)'} is missing")
    report = {
        "source": str(upload.uri),
        "size": upload.size,
        "etag": upload.etag,
        "rule": upload.rule,
        "run_id": upload.run_id,
        "run_status": item.run.status if item.run else None,
        "manifest": {"uri": manifest, "size": manifest_size},
        "tasks": tasks_report,
        "follow_ups": item.follow_ups,
    }
    return report, problems


def demo_folder() -> str:
    return f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def ledger_for(state_dir: Path) -> Ledger:
    return local_ledger(state_dir.resolve())


def load_inputs(project_dir: Path) -> tuple[Path, Pipeline]:
    s_yaml, pipeline_yaml = project_dir / "s.yaml", project_dir / "pipeline.yaml"
    for path in (s_yaml, pipeline_yaml):
        if not path.exists():
            raise DemoError(f"{path} is missing: run the demo from the project folder, or pass --project DIR")
    return s_yaml, load_pipeline(pipeline_yaml)


def summary_json(reports: list[dict[str, Any]], problems: list[str], extra: dict[str, Any]) -> str:
    return json.dumps({"ok": not problems, **extra, "uploads": reports, "problems": problems}, indent=2)
