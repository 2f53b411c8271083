"""The task engine: worker threads that run queued tasks, and the notification outbox publisher.

Scheduling: ``engine_concurrency`` worker threads take the oldest queued task whose project has
fewer running tasks than its ``EngineConcurrency``; a task waiting for a slot stays ``Running``
with progress 0 (docs/imm.md#gettask-listtasks-retention). The queue is the ``tasks`` table, so it survives a restart.

Restart: a task that was running when the process died is **run again from the start** (its
outputs are written again under the same names, so the result is the same as one clean run);
it is never forgotten and never reported twice, because its final state and notification are
recorded together, once, when it ends.

Notifications: the final state and the outbox row are one transaction; the publisher sends each
row to the MNS topic with aliyun-mns-sdk and deletes it once MNS has accepted it, retrying with
backoff (up to a minute apart) while MNS is down or the topic is missing, for about a day
(`MAX_PUBLISH_ATTEMPTS`); an error retrying cannot cure (MNS refuses the message itself) is logged
and the notification dropped at once. Either way GetTask still has the task's final state. Each final
state is therefore published at most once; the one window for a duplicate is a crash between MNS
accepting the message and the row's deletion (milliseconds), and the envelope ``id`` (the task's
EventId) lets a consumer drop such a duplicate.

Injected faults (:mod:`localcloud.core.faults`), keyed by the task id: ``imm.hang`` keeps a task
``Running`` for ``hang_seconds`` before its work starts (it holds its worker, as a stuck task holds
an engine slot), ``imm.notification.lost`` ends a task without publishing its notification
(GetTask still has its final state).

A notification that would be larger than MNS accepts (64 KB: an ArchiveFileInspection of a few
hundred files) is sent with the result's common fields only (docs/imm-notifications.md: the
details go to ``Notification.ExtendedMessageURI``, the message carries the status; what IMM does
without one is UNCONFIRMED).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from immflow.tasks import TASK_TYPES

from localcloud.core.account import Account
from localcloud.core.faults import FaultPlan, stable_digest
from localcloud.imm import archive, images, media, office
from localcloud.imm.context import TaskContext
from localcloud.imm.errors import Interrupted, TaskFailure
from localcloud.imm.ossio import OssAccess
from localcloud.imm.policy import Policy
from localcloud.imm.store import Store, TaskRow
from localcloud.imm.wire import rfc3339

log = logging.getLogger("localcloud.imm")

Processor = Callable[[TaskContext], dict[str, Any]]


@dataclass(frozen=True)
class LocalProcessor:
    """How the local IMM runs one task type: ``run`` does the work and returns the result's fields;
    ``check``, when given, refuses at create time (``NotImplemented``) what ``run`` cannot do."""

    run: Processor
    check: Callable[[Mapping[str, Any]], None] | None = None


PROCESSORS: dict[str, LocalProcessor] = {
    "MediaConvert": LocalProcessor(media.run, media.check_supported),
    "OfficeConversion": LocalProcessor(office.run, office.check_supported),
    "FileCompression": LocalProcessor(archive.compress),
    "FileUncompression": LocalProcessor(archive.uncompress),
    "ArchiveFileInspection": LocalProcessor(archive.inspect),
    "ImageSplicing": LocalProcessor(images.splice, images.check_splicing),
    "ImageToPDF": LocalProcessor(images.to_pdf),
}
COMMON_FIELDS = (
    "ProjectName",
    "DatasetName",
    "RequestId",
    "StartTime",
    "EndTime",
    "UserData",
    "TaskType",
    "TaskId",
    "Status",
    "Code",
    "Message",
    "EventSourceId",
    "Tags",
)
"""What every notification carries (docs/imm-notifications.md), whatever the result's size."""
MNS_MAX_MESSAGE_BYTES = 65536
"""The largest message body an MNS topic accepts (its MaximumMessageSize at most)."""
MAX_PUBLISH_BACKOFF = 60.0
MAX_PUBLISH_ATTEMPTS = 1450
"""About a day of retries at `MAX_PUBLISH_BACKOFF`, as MNS's own longest push retry policy."""
PERMANENT_PUBLISH_ERRORS = frozenset({"InvalidArgument", "MalformedXML", "AccessDenied"})
"""MNS error codes that the same message published again would meet again."""
PURGE_INTERVAL = 3600.0


def notification_content(
    task: TaskRow, *, status: str, code: str, message: str, end_time: float, result: dict[str, Any]
) -> dict[str, Any]:
    """The ``content`` of the notification (docs/imm.md#notifications): the common fields, ``Tags`` when the
    task has any (UNCONFIRMED in the cloud), and the task's own result; a failed task echoes the
    request's source and target fields instead."""
    content: dict[str, Any] = {
        "ProjectName": task.project,
        "DatasetName": "",
        "RequestId": task.request_id,
        "StartTime": rfc3339(task.start_time),
        "EndTime": rfc3339(end_time),
        "UserData": task.user_data or "",
        "TaskType": task.task_type,
        "TaskId": task.task_id,
        "Status": status,
        "Code": code,
        "Message": message,
        "EventSourceId": "",
    }
    if task.tags:
        content["Tags"] = task.tags
    if status == "Succeeded":
        content.update(result)
    else:
        content.update(TASK_TYPES[task.task_type].failure_echo(task.request))
    return content


def task_fault_item(task: TaskRow) -> str:
    """What a fault on a task is keyed by: its project, type and request (sources, targets,
    UserData), which the same uploads give again in another run, unlike its TaskId."""
    return f"{task.project}/{task.task_type}:{stable_digest(task.request)}"


class Engine:
    def __init__(
        self,
        *,
        store: Store,
        account: Account,
        policy: Policy,
        work_root: Path,
        oss_endpoint: str,
        mns_endpoint: str,
        engine_limits: Callable[[], dict[str, int]],
        concurrency: int,
        clock: Callable[[], float],
        office_timeout: float,
        media_timeout: float,
        retention: float,
        faults: FaultPlan | None = None,
    ) -> None:
        self._store = store
        self._faults = faults or FaultPlan()
        self._retention = retention
        self._account = account
        self._policy = policy
        self._work_root = work_root
        self._oss_endpoint = oss_endpoint
        self._mns_endpoint = mns_endpoint
        self._engine_limits = engine_limits
        self._clock = clock
        self._office_timeout = office_timeout
        self._media_timeout = media_timeout
        self._wake_workers = threading.Condition()
        self._wake_publisher = threading.Condition()
        self._stopping = False
        interrupted = store.requeue_interrupted()
        if interrupted:
            log.warning(
                "imm: running %d task(s) interrupted by the last stop again: %s",
                len(interrupted),
                interrupted,
            )
        self._profile_root = work_root.parent / "office-profiles"
        self._offices = office.OfficePool(self._profile_root, concurrency)
        self._threads = [
            threading.Thread(target=self._work, args=(index,), name=f"imm-worker-{index}", daemon=True)
            for index in range(concurrency)
        ]
        self._threads.append(threading.Thread(target=self._publish_loop, name="imm-outbox", daemon=True))
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        with self._wake_workers:
            self._wake_workers.notify_all()

    def close(self) -> None:
        self._stopping = True
        for condition in (self._wake_workers, self._wake_publisher):
            with condition:
                condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)
        self._offices.close()

    # workers ------------------------------------------------------------------------------------

    def _work(self, worker: int) -> None:
        while not self._stopping:
            task = self._store.claim_next(self._engine_limits())
            if task is None:
                with self._wake_workers:
                    self._wake_workers.wait(timeout=1.0)
                continue
            self._run(task, worker)
            # A finished task frees a slot of its project: another worker may now start one.
            self.wake()

    def _run(self, task: TaskRow, worker: int) -> None:
        if self._faults.fires("imm.hang", task_fault_item(task), task.task_id):
            self._hang(self._faults.setting("hang_seconds"))
            if self._stopping:
                return  # still Running in the store: the next start runs it again
        workdir = self._work_root / task.task_id
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        last = [0]

        def report(fraction: float) -> None:
            percent = max(0, min(99, int(fraction * 100)))
            if percent > last[0]:
                last[0] = percent
                self._store.set_progress(task.task_id, percent)

        ctx = TaskContext(
            task_id=task.task_id,
            task_type=task.task_type,
            request=task.request,
            tags=task.tags,
            task_time=datetime.fromtimestamp(task.start_time, tz=timezone.utc),
            oss=OssAccess(self._oss_endpoint, self._account, self._policy, task.role),
            workdir=workdir,
            report_progress=report,
            worker=worker,
            profile_root=self._profile_root,
            office=self._offices,
            office_timeout=self._office_timeout,
            media_timeout=self._media_timeout,
        )
        status, code, message, result = "Succeeded", "", "", {}
        try:
            result = PROCESSORS[task.task_type].run(ctx)
        except Interrupted:
            log.info("imm: %s interrupted by the stop; it runs again at the next start", task.task_id)
            return
        except TaskFailure as failure:
            status, code, message = "Failed", failure.code, failure.message
        except Exception as exc:
            log.exception("imm: task %s failed unexpectedly", task.task_id)
            status, code, message = "Failed", "InternalError", f"unknown error: {type(exc).__name__}: {exc}"
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        end_time = self._clock()
        content = notification_content(
            task, status=status, code=code, message=message, end_time=end_time, result=result
        )
        topic = ((task.request.get("Notification") or {}).get("MNS") or {}).get("TopicName")
        envelope = None
        if topic and not self._faults.fires(
            "imm.notification.lost", task_fault_item(task), f"{task.task_id} on {topic}"
        ):
            envelope = (topic, self._notification_body(task, content, end_time))
        self._store.finish(
            task.task_id,
            status=status,
            code=code,
            message=message,
            end_time=end_time,
            result=content,
            notification=envelope,
        )
        log.info("imm: %s %s %s", task.task_id, status, f"{code}: {message}" if code else "")
        if envelope:
            with self._wake_publisher:
                self._wake_publisher.notify_all()

    def _hang(self, seconds: float) -> None:
        """Wait as a stuck task would, but give way to a stop."""
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            with self._wake_workers:
                self._wake_workers.wait(timeout=min(1.0, deadline - time.monotonic()))

    def _notification_body(self, task: TaskRow, content: dict[str, Any], end_time: float) -> str:
        """The envelope as JSON text, with the common fields only if the whole result would not fit."""
        body = _json(self._envelope(task, content, end_time))
        size = len(body.encode())
        if size <= MNS_MAX_MESSAGE_BYTES:
            return body
        log.warning(
            "imm: the notification of %s would be %d bytes, more than MNS accepts; sent with the common "
            "fields only (the full result goes to Notification.ExtendedMessageURI when the request sets it)",
            task.task_id,
            size,
        )
        common = {name: content[name] for name in COMMON_FIELDS if name in content}
        return _json(self._envelope(task, common, end_time))

    def _envelope(self, task: TaskRow, content: dict[str, Any], end_time: float) -> dict[str, str]:
        """The message body IMM publishes (docs/imm.md#notifications)."""
        return {
            "id": task.event_id,
            "source": "acs.imm",
            "type": f"imm:Task:{task.task_type}",
            "subject": f"acs:imm:{self._account.region}:{self._account.account_id}:{task.project}/imm:Task:{task.task_type}",
            "time": str(int(end_time * 1000)),
            "content": _json(content),
        }

    # outbox -------------------------------------------------------------------------------------

    def _publish_loop(self) -> None:
        from mns.account import Account as MnsAccount
        from mns.topic import TopicMessage

        mns = MnsAccount(self._mns_endpoint, self._account.access_key_id, self._account.access_key_secret)
        next_purge = 0.0
        while not self._stopping:
            if time.time() >= next_purge:
                # Records past retention are invisible already (the service checks the clock); this frees the disk.
                self._store.purge_tasks(self._clock() - self._retention)
                next_purge = time.time() + PURGE_INTERVAL
            # Not the injectable clock: retry backoff is about real time passing.
            now = time.time()
            for row in self._store.due_notifications(now):
                try:
                    mns.get_topic(row.topic).publish_message(TopicMessage(row.body))
                except Exception as exc:
                    permanent = getattr(exc, "type", "") in PERMANENT_PUBLISH_ERRORS
                    if permanent or row.attempts + 1 >= MAX_PUBLISH_ATTEMPTS:
                        log.error(
                            "imm: notification of %s to topic %s dropped after %d attempts (%s); "
                            "GetTask still has the task's final state",
                            row.task_id,
                            row.topic,
                            row.attempts + 1,
                            exc,
                        )
                        self._store.notification_dropped(row.id)
                        continue
                    delay = min(MAX_PUBLISH_BACKOFF, 0.5 * 2**row.attempts)
                    log.warning(
                        "imm: notification of %s to topic %s not sent (%s); retry in %.1f s",
                        row.task_id,
                        row.topic,
                        exc,
                        delay,
                    )
                    self._store.notification_failed(row.id, now + delay, str(exc))
                else:
                    self._store.notification_sent(row.id)
            next_due = self._store.next_notification_time()
            wait = 5.0 if next_due is None else max(0.05, min(5.0, next_due - time.time()))
            with self._wake_publisher:
                if not self._stopping:
                    self._wake_publisher.wait(timeout=wait)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
