"""OSS event notifications as the FC OSS trigger delivers them, and their durable delivery.

A :class:`Trigger` says which events (``oss:ObjectCreated:*`` style, ``*`` wildcards), which
keys (literal prefix and suffix) and where to (an HTTP URL, or an FC function invoked through
``fc2`` asynchronously, the way the cloud trigger invokes it). In the cloud, FC's CreateTrigger
configures this on the bucket; locally it is registered on the OSS server (see
:mod:`localcloud.oss.service` for the admin API).

The event body follows docs/events.md#oss-trigger-event and docs/events.md#oss-trigger-event: the key is the raw object name
(not URL-encoded), ``eTag`` is upper-case hex without quotes, ``eventName`` has no ``oss:``
prefix, one record per event. Choices where the reference is UNCONFIRMED:

- ``objectMeta`` (``mimeType``, ``userMeta`` with the ``x-oss-meta-*`` names) is always present,
  as in the 2025 FC 3.0 sample.
- Delete events carry the deleted object's ``size``, ``eTag`` and ``objectMeta`` and
  ``deltaSize = -size``; deleting a key that does not exist emits nothing.
- ``DeleteMultipleObjects`` emits one ``ObjectRemoved:DeleteObjects`` event per deleted key.
- AppendObject events add ``oss.object.position`` (the append position) and ``deltaSize`` is
  the number of bytes appended.
- ``ruleId`` is the trigger name.
- Multipart objects' ``eTag`` keeps its ``-N`` suffix, as in the ETag header.

Delivery is at least once and survives restarts: the event rows are committed with the object
write (see :mod:`localcloud.oss.store`), worker threads send them and delete a row only after a
2xx (http) or an accepted invocation (fc). Failures are retried with capped exponential backoff;
an event still undelivered after ``max_event_age`` seconds (default 5 h, FC's default
``maxAsyncEventAgeInSeconds``) is dropped with an error log line.

Injected faults (:mod:`localcloud.core.faults`), decided on an event's first attempt and keyed by
its trigger, bucket, key and ETag: ``oss.event.drop`` removes it unsent,
``oss.event.duplicate`` sends it a second time once it was accepted, ``oss.event.delay`` holds it
back a seeded share of ``delay_seconds`` (events behind it overtake it). A delayed event is held
back once per process: after a restart it may be held back once more.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from localcloud.core.account import Account
from localcloud.core.faults import FaultPlan
from localcloud.oss.errors import OssError, no_such_bucket
from localcloud.oss.store import Store

log = logging.getLogger("localcloud.oss.events")

#: Event names an OSS trigger can subscribe to (the fc3 OSS trigger schema's enum; without ``oss:``).
EVENT_NAMES = (
    "ObjectCreated:AppendObject",
    "ObjectCreated:CompleteMultipartUpload",
    "ObjectCreated:CopyObject",
    "ObjectCreated:InitiateMultipartUpload",
    "ObjectCreated:PostObject",
    "ObjectCreated:PutObject",
    "ObjectCreated:PutSymlink",
    "ObjectCreated:UploadPart",
    "ObjectCreated:UploadPartCopy",
    "ObjectModified:UpdateObjectMeta",
    "ObjectRemoved:AbortMultipartUpload",
    "ObjectRemoved:DeleteObject",
    "ObjectRemoved:DeleteObjects",
)

#: The cloud allows at most this many native OSS triggers on one bucket.
MAX_TRIGGERS_PER_BUCKET = 10


def _trigger_error(message: str) -> OssError:
    return OssError(400, "InvalidArgument", message)


@dataclass(frozen=True)
class Trigger:
    name: str
    bucket: str
    events: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""
    target: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any]) -> Trigger:
        """Validate a trigger registration; errors name the field and the accepted forms."""
        if not isinstance(config, dict):
            raise _trigger_error("The trigger body must be a JSON object.")
        bucket = config.get("bucket")
        if not isinstance(bucket, str) or not bucket:
            raise _trigger_error("Trigger field 'bucket' is required: the bucket name.")
        events = config.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise _trigger_error("Trigger field 'events' must be a list like ['oss:ObjectCreated:*'].")
        for pattern in events:
            if not pattern.startswith("oss:") or not _names_matching(pattern):
                raise _trigger_error(
                    f"Trigger event {pattern!r} matches no OSS event; use e.g. 'oss:ObjectCreated:PutObject' "
                    f"or 'oss:ObjectCreated:*'. Known events: {', '.join('oss:' + n for n in EVENT_NAMES)}."
                )
        prefix, suffix = config.get("prefix", ""), config.get("suffix", "")
        if not isinstance(prefix, str) or not isinstance(suffix, str):
            raise _trigger_error("Trigger fields 'prefix' and 'suffix' must be strings (use '' for none).")
        target = config.get("target")
        _validate_target(target)
        assert isinstance(target, dict)
        return cls(name, bucket, tuple(events), prefix, suffix, target)

    def to_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bucket": self.bucket,
            "events": list(self.events),
            "prefix": self.prefix,
            "suffix": self.suffix,
            "target": self.target,
        }

    def matches(self, event_name: str, key: str) -> bool:
        return (
            key.startswith(self.prefix)
            and key.endswith(self.suffix)
            and any(fnmatch.fnmatchcase("oss:" + event_name, p) for p in self.events)
        )

    def overlaps(self, other: Trigger) -> bool:
        """OSS refuses two rules on one bucket that could both fire for one event on one key."""
        prefixes = self.prefix.startswith(other.prefix) or other.prefix.startswith(self.prefix)
        suffixes = self.suffix.endswith(other.suffix) or other.suffix.endswith(self.suffix)
        mine = set().union(*(_names_matching(p) for p in self.events))
        theirs = set().union(*(_names_matching(p) for p in other.events))
        return prefixes and suffixes and bool(mine & theirs)


def _names_matching(pattern: str) -> set[str]:
    return {name for name in EVENT_NAMES if fnmatch.fnmatchcase("oss:" + name, pattern)}


def _validate_target(target: object) -> None:
    if not isinstance(target, dict):
        raise _trigger_error(
            "Trigger field 'target' is required: {'kind': 'http', 'url': ...} or "
            "{'kind': 'fc', 'endpoint': ..., 'service': ..., 'function': ..., 'qualifier': null}."
        )
    kind = target.get("kind")
    if kind == "http":
        url = target.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _trigger_error("An http target needs 'url', an http:// or https:// URL.")
    elif kind == "fc":
        for name in ("endpoint", "service", "function"):
            if not isinstance(target.get(name), str) or not target[name]:
                raise _trigger_error(f"An fc target needs {name!r} (a non-empty string).")
        if target.get("qualifier") is not None and not isinstance(target["qualifier"], str):
            raise _trigger_error("An fc target's 'qualifier' must be a string or null.")
    else:
        raise _trigger_error(f"Trigger target kind must be 'http' or 'fc', not {kind!r}.")


def check_new_trigger(trigger: Trigger, existing: list[Trigger]) -> None:
    others = [t for t in existing if t.bucket == trigger.bucket and t.name != trigger.name]
    if any(trigger.overlaps(t) for t in others):
        raise _trigger_error("Cannot specify overlapping prefix and suffix with same event type.")
    if len(others) >= MAX_TRIGGERS_PER_BUCKET:
        raise _trigger_error(
            f"Bucket {trigger.bucket!r} already has {MAX_TRIGGERS_PER_BUCKET} triggers, the most OSS allows."
        )


class Triggers:
    """The registered triggers, kept in memory for matching and in the store for restarts."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._by_name = {
            row["name"]: Trigger.from_config(row["name"], json.loads(row["config"]))
            for row in store.trigger_configs()
        }

    def put(self, name: str, config: dict[str, Any]) -> Trigger:
        """Register (or replace) trigger ``name``; raises :class:`OssError` when invalid."""
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", name):
            raise _trigger_error("Trigger names are 1-128 letters, digits, '_' or '-'.")
        trigger = Trigger.from_config(name, config)
        with self._lock:
            check_new_trigger(trigger, list(self._by_name.values()))
            with self._store.transaction():
                if self._store.bucket_row(trigger.bucket) is None:
                    raise no_such_bucket(trigger.bucket)
                stored = json.dumps({k: v for k, v in trigger.to_config().items() if k != "name"})
                self._store.put_trigger(name, trigger.bucket, stored)
            self._by_name[name] = trigger
        return trigger

    def delete(self, name: str) -> bool:
        with self._lock, self._store.transaction():
            found = self._store.remove_trigger(name)
            self._by_name.pop(name, None)
            return found

    def all(self) -> list[Trigger]:
        with self._lock:
            return sorted(self._by_name.values(), key=lambda t: t.name)

    def matching(self, bucket: str, event_name: str, key: str) -> list[Trigger]:
        with self._lock:
            return [t for t in self._by_name.values() if t.bucket == bucket and t.matches(event_name, key)]

    def forget_bucket(self, bucket: str) -> None:
        """Drop a deleted bucket's triggers from memory (the store drops its rows with the bucket)."""
        with self._lock:
            for name in [n for n, t in self._by_name.items() if t.bucket == bucket]:
                del self._by_name[name]


@dataclass(frozen=True)
class ObjectFacts:
    """What an event says about the object it is about."""

    key: str
    size: int
    etag: str
    content_type: str
    user_meta: dict[str, str]


def _event_item(job: dict[str, Any]) -> str:
    """What a fault on this delivery is keyed by: the trigger and the object version the event is
    about (not its request id, so the same uploads meet the same faults in another run)."""
    try:
        record = json.loads(job["payload"])["events"][0]
        obj = record["oss"]["object"]
        what = f"{record['oss']['bucket']['name']}/{obj['key']}@{obj.get('eTag', '')}"
    except (ValueError, KeyError, IndexError, TypeError):
        what = f"delivery-{job['id']}"
    return f"{job['trigger_name']}:{what}"


def build_event(
    event_name: str,
    bucket: str,
    obj: ObjectFacts,
    delta_size: int,
    *,
    account: Account,
    request_id: str,
    source_ip: str,
    rule_id: str,
    event_time: float,
    position: int | None = None,
) -> bytes:
    millis = int(event_time * 1000) % 1000
    obj_json: dict[str, Any] = {
        "deltaSize": delta_size,
        "eTag": obj.etag,
        "key": obj.key,
        "objectMeta": {"mimeType": obj.content_type, "userMeta": obj.user_meta},
        "size": obj.size,
    }
    if position is not None:
        obj_json["position"] = position
    record = {
        "eventName": event_name,
        "eventSource": "acs:oss",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event_time)) + f".{millis:03d}Z",
        "eventVersion": "1.0",
        "oss": {
            "bucket": {
                "arn": f"acs:oss:{account.region}:{account.account_id}:{bucket}",
                "name": bucket,
                "ownerIdentity": account.account_id,
            },
            "object": obj_json,
            "ossSchemaVersion": "1.0",
            "ruleId": rule_id,
        },
        "region": account.region,
        "requestParameters": {"sourceIPAddress": source_ip},
        "responseElements": {"requestId": request_id},
        "userIdentity": {"principalId": account.account_id},
    }
    return json.dumps({"events": [record]}, ensure_ascii=False).encode("utf-8")


class Deliverer:
    """Worker threads that send queued events until each is accepted."""

    def __init__(
        self,
        store: Store,
        account: Account,
        *,
        workers: int = 4,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
        max_event_age: float = 5 * 3600.0,
        attempt_timeout: float = 10.0,
        faults: FaultPlan | None = None,
    ) -> None:
        self._store = store
        self._faults = faults or FaultPlan()
        self._held: set[int] = set()
        self._account = account
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._max_event_age = max_event_age
        self._attempt_timeout = attempt_timeout
        self._cond = threading.Condition()
        self._in_flight: set[int] = set()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._run, name=f"oss-events-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def pending(self) -> int:
        return self._store.count_deliveries()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.pending() or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def _claim(self) -> dict[str, Any] | None:
        with self._cond:
            while not self._stopping:
                busy = sorted(self._in_flight)
                row = self._store.next_delivery(time.time(), busy)
                if row is not None:
                    self._in_flight.add(row["id"])
                    return dict(row)
                upcoming = self._store.next_attempt_time(busy)
                wait = 1.0 if upcoming is None else upcoming - time.time()
                self._cond.wait(max(0.01, min(wait, 1.0)))
            return None

    def _run(self) -> None:
        while True:
            job = self._claim()
            if job is None:
                return
            try:
                if job["attempts"] == 0 and job["id"] not in self._held and self._inject(job):
                    continue
                error = self._send(json.loads(job["target"]), job["payload"])
                if error is None and job["attempts"] == 0 and self._fault_fires(job, "oss.event.duplicate"):
                    self._send(json.loads(job["target"]), job["payload"])
                self._settle(job, error)
            except Exception:
                log.exception("OSS event %s: bookkeeping failed; it stays queued", job["id"])
            finally:
                with self._cond:
                    self._in_flight.discard(job["id"])
                    self._cond.notify_all()

    def _fault_fires(self, job: dict[str, Any], kind: str) -> bool:
        return self._faults.fires(kind, _event_item(job), job["trigger_name"])

    def _inject(self, job: dict[str, Any]) -> bool:
        """Drop or hold back an event as the fault plan says; True when it was not sent now."""
        if not self._faults.active:
            return False
        if self._fault_fires(job, "oss.event.drop"):
            with self._store.transaction():
                self._store.remove_delivery(job["id"])
            return True
        if self._fault_fires(job, "oss.event.delay"):
            self._held.add(job["id"])
            wait = self._faults.setting("delay_seconds") * self._faults.share(
                "oss.event.delay", _event_item(job)
            )
            with self._store.transaction():
                self._store.retry_delivery(
                    job["id"], 0, time.time() + wait, "held back by the fault plan (oss.event.delay)"
                )
            return True
        return False

    def _settle(self, job: dict[str, Any], error: str | None) -> None:
        with self._store.transaction():
            if error is None:
                self._store.remove_delivery(job["id"])
                return
            attempts = job["attempts"] + 1
            if time.time() - job["created"] > self._max_event_age:
                log.error(
                    "OSS event for trigger %s dropped after %d attempts over %.0f s; last error: %s",
                    job["trigger_name"],
                    attempts,
                    self._max_event_age,
                    error,
                )
                self._store.remove_delivery(job["id"])
                return
            delay = min(self._retry_cap, self._retry_base * 2 ** (attempts - 1))
            log.warning(
                "OSS event for trigger %s not delivered (attempt %d): %s; retrying in %.1f s",
                job["trigger_name"],
                attempts,
                error,
                delay,
            )
            self._store.retry_delivery(job["id"], attempts, time.time() + delay, error)

    def _send(self, target: dict[str, Any], payload: bytes) -> str | None:
        """Deliver once; ``None`` when accepted, else what went wrong."""
        try:
            if target["kind"] == "http":
                response = requests.post(
                    target["url"],
                    data=payload,
                    headers={"Content-Type": "application/json"},
                    timeout=self._attempt_timeout,
                )
                if 200 <= response.status_code < 300:
                    return None
                return f"{target['url']} answered HTTP {response.status_code}"
            return self._invoke_fc(target, payload)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    def _invoke_fc(self, target: dict[str, Any], payload: bytes) -> str | None:
        import fc2  # imported here: only fc targets need it, and it is slow to import

        client = fc2.Client(
            endpoint=target["endpoint"],
            accessKeyID=self._account.access_key_id,
            accessKeySecret=self._account.access_key_secret,
            Timeout=self._attempt_timeout,
        )
        client.invoke_function(
            target["service"],
            target["function"],
            payload=payload,
            headers={"x-fc-invocation-type": "Async"},
            qualifier=target.get("qualifier"),
        )
        return None
