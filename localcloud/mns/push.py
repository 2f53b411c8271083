"""Delivering pending pushes to HTTP and queue endpoints, with MNS's retry strategies.

A delivery row is deleted only once its endpoint accepted it (HTTP 2xx, or the message is in
the queue), so pushes survive a restart and are delivered at least once. Retries follow the
subscription's NotifyStrategy (docs/events.md#mns-topic-trigger-event), each wait multiplied by ``time_scale``:
- BACKOFF_RETRY: 3 retries, a random 10–20 s apart;
- EXPONENTIAL_DECAY_RETRY: 176 retries, waiting 1, 2, 4, …, 512 s and then 512 s each (a day).
After the last retry the push is dropped, with a warning in the log.

HTTP pushes are POSTed to the endpoint (path ``/notifications`` when it has none) with
x-mns-request-id, x-mns-version, Date, Content-Type, Content-MD5 (base64 of the hex MD5, the
convention of MNS's own requests: UNCONFIRMED for pushes) and User-Agent, plus the SIMPLIFIED
headers. The cloud also signs pushes with RSA (``Authorization`` and ``x-mns-signing-cert-url``);
the local cloud omits both, so endpoints must not verify them when run locally.

Injected faults (:mod:`localcloud.core.faults`), keyed by the topic, subscription and message:
``mns.push.fail`` fails an attempt as an endpoint's 5xx would (keyed by the attempt too, so the
strategy's retry can succeed), ``mns.push.delay`` holds a push back a seeded share of
``delay_seconds`` before its first attempt (later pushes overtake it; once per process), and
``mns.push.duplicate`` delivers an accepted push a second time.

Pushes run on a thread pool with at most :data:`PER_ENDPOINT_CONCURRENCY` at a time per
endpoint, so one slow endpoint cannot hold up the others.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import random
import secrets
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from urllib.parse import urlsplit

from localcloud.core.faults import FaultPlan, stable_digest
from localcloud.core.redact import redact_url
from localcloud.mns.errors import MnsError
from localcloud.mns.queues import OutgoingMessage, Queues
from localcloud.mns.store import Store
from localcloud.mns.topics import queue_endpoint

log = logging.getLogger("localcloud.mns.push")

PER_ENDPOINT_CONCURRENCY = 4
WORKERS = 32
PUSH_TIMEOUT_SECONDS = 15
BACKOFF_RETRIES = 3
EXPONENTIAL_RETRIES = 176
EXPONENTIAL_MAX_WAIT_SECONDS = 512


def retry_wait(strategy: str, failures: int) -> float | None:
    """Seconds to wait after the ``failures``-th failed attempt, or ``None`` to give up."""
    if strategy == "EXPONENTIAL_DECAY_RETRY":
        if failures > EXPONENTIAL_RETRIES:
            return None
        return float(min(2 ** (failures - 1), EXPONENTIAL_MAX_WAIT_SECONDS))
    return random.uniform(10, 20) if failures <= BACKOFF_RETRIES else None


class Pusher:
    def __init__(
        self, store: Store, queues: Queues, time_scale: float, faults: FaultPlan | None = None
    ) -> None:
        self._store = store
        self._faults = faults or FaultPlan()
        self._held: set[int] = set()
        self._queues = queues
        self._time_scale = time_scale
        self._in_flight: dict[int, str] = {}
        self._per_endpoint: Counter[str] = Counter()
        self._closing = False
        self._executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="mns-push")
        self._dispatcher = threading.Thread(target=self._dispatch, name="mns-push-dispatcher", daemon=True)

    def start(self) -> None:
        self._dispatcher.start()

    def close(self) -> None:
        with self._store.lock:
            self._closing = True
            self._store.changed.notify_all()
        self._dispatcher.join(timeout=5)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no push is pending (retries included); ``False`` on timeout."""
        db = self._store.read()
        with self._store.changed:
            return bool(
                self._store.changed.wait_for(
                    lambda: db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 0, timeout
                )
            )

    def _dispatch(self) -> None:
        db = self._store.read()
        with self._store.lock:
            while not self._closing:
                now = _now_ms()
                full = [
                    endpoint for endpoint, n in self._per_endpoint.items() if n >= PER_ENDPOINT_CONCURRENCY
                ]
                busy = list(self._in_flight)
                rows = db.execute(
                    f"SELECT id, endpoint FROM deliveries WHERE next_attempt_at <= ? "
                    f"AND id NOT IN ({','.join('?' * len(busy))}) "
                    f"AND endpoint NOT IN ({','.join('?' * len(full))}) ORDER BY next_attempt_at, id LIMIT 1000",
                    (now, *busy, *full),
                ).fetchall()
                for row in rows:
                    if self._per_endpoint[row["endpoint"]] >= PER_ENDPOINT_CONCURRENCY:
                        continue
                    self._in_flight[row["id"]] = row["endpoint"]
                    self._per_endpoint[row["endpoint"]] += 1
                    self._executor.submit(self._attempt, row["id"])
                upcoming = db.execute(
                    "SELECT MIN(next_attempt_at) FROM deliveries WHERE next_attempt_at > ?", (now,)
                ).fetchone()[0]
                self._store.changed.wait(None if upcoming is None else (upcoming - now) / 1000)

    def _attempt(self, delivery_id: int) -> None:
        try:
            with self._store.lock:
                row = (
                    self._store.read()
                    .execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,))
                    .fetchone()
                )
            if row is not None and not self._held_back(row):
                item = _push_item(row)
                if self._faults.fires("mns.push.fail", f"{item}#{row['attempts']}", row["endpoint"]):
                    failure: str | None = "HTTP 503 (injected by the fault plan: mns.push.fail)"
                else:
                    failure = self._deliver(row)
                    if (
                        failure is None
                        and row["attempts"] == 0
                        and self._faults.fires("mns.push.duplicate", item, row["endpoint"])
                    ):
                        self._deliver(row)
                if failure is not None:
                    self._schedule_retry(row, failure)
        except Exception:
            log.exception("push %s failed unexpectedly", delivery_id)
        finally:
            with self._store.lock:
                endpoint = self._in_flight.pop(delivery_id)
                self._per_endpoint[endpoint] -= 1
                self._store.changed.notify_all()

    def _deliver(self, row: sqlite3.Row) -> str | None:
        queue = queue_endpoint(row["endpoint"])
        return self._to_queue(row, queue[2]) if queue else self._to_http(row)

    def _held_back(self, row: sqlite3.Row) -> bool:
        """Hold a push back before its first attempt when the fault plan delays it."""
        if row["attempts"]:
            return False
        if row["id"] in self._held:
            self._held.discard(row["id"])  # its wait is over; forgotten, so the set stays small
            return False
        item = _push_item(row)
        if not self._faults.fires("mns.push.delay", item, row["endpoint"]):
            return False
        self._held.add(row["id"])
        wait = self._faults.setting("delay_seconds") * self._faults.share("mns.push.delay", item)
        with self._store.transaction() as db:
            db.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE id = ?",
                (_now_ms() + int(wait * 1000), row["id"]),
            )
        return True

    def _to_queue(self, row: sqlite3.Row, queue: str) -> str | None:
        try:
            with self._store.transaction() as db:
                self._queues.send(queue, [OutgoingMessage(body=row["body"])])
                db.execute("DELETE FROM deliveries WHERE id = ?", (row["id"],))
        except MnsError as e:
            return f"{e.code}: {e.message}"
        return None

    def _to_http(self, row: sqlite3.Row) -> str | None:
        url = urlsplit(row["endpoint"])
        target = (url.path or "/notifications") + (f"?{url.query}" if url.query else "")
        body = row["body"].encode()
        headers = {
            "Content-Type": row["content_type"],
            "Content-MD5": base64.b64encode(hashlib.md5(body).hexdigest().encode()).decode(),
            "Date": formatdate(usegmt=True),
            "x-mns-request-id": secrets.token_hex(12).upper(),
            "x-mns-version": "2015-06-06",
            "User-Agent": "Aliyun Notification Service Agent",
            **json.loads(row["headers"]),
        }
        connection_class = (
            http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(url.netloc, timeout=PUSH_TIMEOUT_SECONDS)
        try:
            connection.request("POST", target, body, headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as e:
            return f"{type(e).__name__}: {e}"
        finally:
            connection.close()
        if 200 <= response.status < 300:
            with self._store.transaction() as db:
                db.execute("DELETE FROM deliveries WHERE id = ?", (row["id"],))
            return None
        return f"HTTP {response.status}"

    def _schedule_retry(self, row: sqlite3.Row, failure: str) -> None:
        failures = row["attempts"] + 1
        wait = retry_wait(row["notify_strategy"], failures)
        with self._store.transaction() as db:
            if wait is None:
                log.warning(
                    "dropping push to %s for %s/%s after %d attempts (%s), as %s does",
                    redact_url(row["endpoint"]), row["topic"], row["subscription"], failures, failure,
                    row["notify_strategy"],
                )  # fmt: skip
                db.execute("DELETE FROM deliveries WHERE id = ?", (row["id"],))
                return
            log.info(
                "push to %s failed (%s); retry %d in %.3f s",
                redact_url(row["endpoint"]),
                failure,
                failures,
                wait,
            )
            db.execute(
                "UPDATE deliveries SET attempts = ?, next_attempt_at = ? WHERE id = ?",
                (failures, _now_ms() + int(wait * self._time_scale * 1000), row["id"]),
            )


def _push_item(row: sqlite3.Row) -> str:
    return push_fault_item(row["topic"], row["subscription"], row["body"])


def push_fault_item(topic: str, subscription: str, body: str) -> str:
    """What a push fault is keyed by: the subscription and the pushed body without what differs
    from one run to the next (the MessageId, the publish time and, in a published IMM
    notification, the TaskId and times: `localcloud.core.faults.stable_digest`)."""
    return f"{topic}/{subscription}:{stable_digest(body)}"


def _now_ms() -> int:
    # Push schedules use the real clock: their waits are real waits, scaled by time_scale.
    return int(time.time() * 1000)
