"""The ledger's contract: its records, its queries, and the claim algorithm, written once.

Every run (one per change of an object's content: `Ledger.start_run`) and every IMM task immflow
started is kept in the ledger. Idempotency is kept here, in claims next to the rows they protect,
rather than with Powertools' idempotency utility (it cannot be imported without boto3: +36 MB in the package, +~200 ms on every
cold start). Like that utility's ``BasePersistenceLayer``, the algorithm lives once, in `Ledger`, and each
backend (a `LedgerBackend`) fills in a few small operations:

* A **create claim** (key: bucket/key/ETag/rule/task for an upload's task; parent TaskId/task/output for
  a follow-up) is inserted together with the task row, in state ``Creating``, *before* IMM is called,
  so two deliveries of one event cannot both create it: the second finds the claim. A claim has an
  in-progress expiry; a delivery that finds an expired claim (the first one stopped before it recorded
  IMM's TaskId) takes it over with a compare-and-set, and creates the task unless IMM already has it
  (`immflow.flow.creation`).
* A **result claim** (key: TaskId + Status) is taken before a result is recorded and marked done after
  its follow-ups are claimed, so a notification delivered twice, or delivered again after reconcile saw
  the same result through GetTask, changes the ledger once.

The algorithm (`Ledger._acquire`, over `LedgerBackend`'s operations): read the claim; done -> ``done``;
absent -> insert it (the backend's insert fails when the key exists: a unique key in SQL,
``EXPECT_NOT_EXIST`` in Tablestore) -> ``claimed``; present, or the insert lost -> take it over when it is
still in progress and expired (one conditional update) -> ``claimed`` (retaken), else ``busy``.

``Ledger(url)`` opens the backend the URL names (`open_backend`), on first use: ``tablestore://<instance>``
is `immflow.ledger.tablestore`, anything else a SQLAlchemy URL for `immflow.ledger.sql`. A backend's
module is imported only then (``import tablestore`` costs 300-500 ms, SQLAlchemy 150-300 ms:
docs/ledger.md).

Times are timezone-aware UTC datetimes; a naive one is refused.

The records are named tuples (``typing.NamedTuple``, changed with ``_replace``): immutable like frozen
dataclasses, which generate their methods with ``exec`` when defined (~0.3-0.7 ms each, on every cold
start: docs/cold-start.md). `TaskQuery`, with its default factory, stays a dataclass.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, NamedTuple

from immflow.errors import ImmflowError
from immflow.fc import Credentials

#: A task record's status in the ledger: IMM's states, and the ledger's own ``Creating`` (claimed, not
#: yet created in IMM) and ``Lost`` (reconcile gave up on it, docs/imm.md#gettask-listtasks-retention).
LedgerTaskState = Literal["Creating", "Running", "Succeeded", "Failed", "Lost"]
LEDGER_FINAL_STATES: frozenset[str] = frozenset({"Succeeded", "Failed", "Lost"})
LEDGER_OPEN_STATES: frozenset[str] = frozenset({"Creating", "Running"})
RunStatus = Literal["Running", "Done", "Superseded"]
RunOutcome = Literal["started", "joined", "older"]
ClaimKind = Literal["create", "result"]
ClaimStatus = Literal["in_progress", "done"]
TABLESTORE_SCHEME = "tablestore://"
RUN_ID_HEX_CHARS = 20
CLOCK_SKEW = timedelta(minutes=1)
"""How far IMM's StartTime of a task may be before the ledger's claim time of it (two clocks): a task
IMM started for a claim starts after ``created_at - CLOCK_SKEW``."""
_HEAD_ATTEMPTS = 20


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def run_id_for(bucket: str, key: str, etag: str, sequence: int) -> str:
    """A run's id: the first 20 hex characters of sha256("bucket/key/ETag/sequence"). The sequence makes
    it unique per run (A, B, A are runs 1, 2 and 3 of the key), and the same for every delivery that
    starts that run, so two deliveries racing to start it insert one row."""
    text = f"{bucket}/{key}/{etag}/{sequence}"
    return hashlib.sha256(text.encode()).hexdigest()[:RUN_ID_HEX_CHARS]


def source_digest(source_uri: str) -> str:
    """A fixed-length key for an object's row of run heads: SHA-256 of its ``oss://`` URI."""
    return hashlib.sha256(source_uri.encode("utf-8")).hexdigest()


def claim_key(*parts: str | None) -> str:
    """A fixed-length key for a claim: SHA-256 of the parts (None written as "")."""
    return hashlib.sha256("\x1f".join(part or "" for part in parts).encode("utf-8")).hexdigest()


def iso_time(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with ``Z``, as the cloud writes times; ``None`` stays ``None``."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class LedgerError(ImmflowError):
    pass


def aware(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is refused (the ledger would not know its zone)."""
    if value.tzinfo is None:
        raise LedgerError(f"naive datetime {value!r} given to the ledger; use timezone-aware UTC times")
    return value.astimezone(timezone.utc)


def tag_text(value: Any) -> str:
    """A tag's value as the tag queries compare it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


class EventOrder(NamedTuple):
    """Where an upload event stands among the uploads of its key: OSS's event time (when OSS finished
    the request, millisecond precision), then the event's identity (the object's version id on a
    versioned bucket, else the OSS request id) to tell apart and order two uploads of one millisecond.
    The tie-break is arbitrary but the same everywhere; see `Ledger.start_run` for what is UNCONFIRMED."""

    time: datetime
    identity: str


class NewRun(NamedTuple):
    run_id: str
    bucket: str
    key: str
    etag: str
    event_name: str
    upload_time: datetime
    size: int | None = None
    content_type: str | None = None
    request_id: str = ""
    """The ``x-oss-request-id`` of the upload that started the run."""
    version_id: str | None = None
    """The object's version id, when the bucket is versioned and the event carries it."""
    sequence: int = 0
    """The run's place among the runs of its key, 1 for the first (`Ledger.start_run` sets it)."""

    @property
    def source_uri(self) -> str:
        return f"oss://{self.bucket}/{self.key}"

    @property
    def order(self) -> EventOrder:
        return EventOrder(aware(self.upload_time), self.version_id or self.request_id)


class RunHead(NamedTuple):
    """The latest run of one object key, and the newest upload event that ran into it (its own, or a
    later upload of the same bytes that joined it). One row per key, changed only by compare-and-set
    on `revision`, so two events of one key decide one after the other."""

    source_uri: str
    run_id: str
    sequence: int
    etag: str
    order: EventOrder
    revision: int


class RunStart(NamedTuple):
    """What `Ledger.start_run` decided for an upload event: ``started`` a new run, ``joined`` the key's
    latest run (the same bytes: a retry, a redelivery, an identical upload), or ``older`` (the event is
    older than the key's latest run: nothing to do). `run` is the run the event belongs to (None for
    ``older``); `latest` the key's latest run id."""

    outcome: RunOutcome
    run: RunRecord | None
    latest: str


class RunRecord(NamedTuple):
    run_id: str
    source_uri: str
    bucket: str
    key: str
    etag: str
    event_name: str
    upload_time: datetime
    size: int | None
    content_type: str | None
    status: RunStatus
    manifest_uri: str | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    sequence: int = 0
    """1 for a key's first run, then 2, 3...; 0 for a run recorded before runs were numbered."""
    request_id: str = ""
    version_id: str | None = None
    superseded_by: str | None = None
    """The newer run of the same key whose outputs replaced this run's (status ``Superseded``)."""


class NewTask(NamedTuple):
    """A task immflow is about to create: everything but IMM's TaskId, including the full request."""

    claim_key: str
    run_id: str
    rule: str
    task_name: str
    task_type: str
    action: str
    parent_task_id: str | None
    depth: int
    sources: Sequence[str]
    tags: Mapping[str, Any]
    user_data: str
    request: Mapping[str, Any]


class TaskRecord(NamedTuple):
    row_id: int
    claim_key: str
    task_id: str | None
    run_id: str
    rule: str
    task_name: str
    task_type: str
    action: str
    parent_task_id: str | None
    depth: int
    status: LedgerTaskState
    code: str
    message: str
    sources: list[str]
    outputs: list[str]
    tags: dict[str, Any]
    user_data: str
    request: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    updated_at: datetime
    claim_expires_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.status in LEDGER_FINAL_STATES

    def to_json(self) -> dict[str, Any]:
        """The task as JSON, as the manifest and ``immflow tasks`` show it."""
        return {
            "task_id": self.task_id,
            "rule": self.rule,
            "task": self.task_name,
            "type": self.task_type,
            "parent": self.parent_task_id,
            "depth": self.depth,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "sources": self.sources,
            "outputs": self.outputs,
            "tags": self.tags,
            "created_at": iso_time(self.created_at),
            "started_at": iso_time(self.started_at),
            "ended_at": iso_time(self.ended_at),
        }


ClaimState = Literal["claimed", "done", "busy"]
NotClaimed = Literal["done", "busy"]
"""Why a claim was not taken: ``done`` (already created or failed, or its result already recorded:
skip it) or ``busy`` (another invocation holds the claim right now)."""


class CreateClaim(NamedTuple):
    """A task this call claimed: create it now. `task` is its row, in state ``Creating``."""

    task: TaskRecord
    retaken: bool = False
    """Claimed by taking over an earlier attempt's expired or released claim: that attempt may have
    reached IMM before it stopped, so look for its task before creating another."""


@dataclass(frozen=True)
class TaskQuery:
    run_id: str | None = None
    source: str | None = None
    """An ``oss://bucket/key``: the tasks of every run of that object."""
    tags: Mapping[str, str] = field(default_factory=dict)
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None

    def matches(self, task: TaskRecord) -> bool:
        """Whether `task` passes every filter but ``source`` (which needs the runs): a backend that
        reads candidates through one index checks the other filters with this."""
        return (
            (self.run_id is None or task.run_id == self.run_id)
            and all(
                key in task.tags and tag_text(task.tags[key]) == value for key, value in self.tags.items()
            )
            and (self.status is None or task.status == self.status)
            and (self.since is None or task.created_at >= self.since)
            and (self.until is None or task.created_at < self.until)
        )


class Claim(NamedTuple):
    """What a backend reads of a claim: its state and until when an in-progress one is held."""

    status: ClaimStatus
    expires_at: datetime


class LedgerBackend(ABC):
    """What a backend fills in: rows, conditional writes and the queries its indexes answer."""

    url: str

    @abstractmethod
    def use_credentials(self, credentials: Credentials) -> None:
        """Use the invocation's keys from now on; a backend that needs none (SQL) ignores them."""

    @abstractmethod
    def create_schema(self) -> None:
        """Create whatever tables are missing (locally and from the CLI; a deployed stack has them)."""

    @abstractmethod
    def insert_run(self, run: NewRun, *, now: datetime) -> bool:
        """Insert the run in state ``Running``; False when it exists already."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    def read_head(self, source_uri: str) -> RunHead | None:
        """The latest run of the object `source_uri` names, as its head row says; None before its first."""

    @abstractmethod
    def write_head(self, head: RunHead, *, expect_revision: int | None) -> bool:
        """Compare-and-set the head row of ``head.source_uri``: with `expect_revision` None insert it
        only if the key has none, else replace it only while its revision is `expect_revision`. Only
        one of many concurrent callers expecting the same revision may get True."""

    @abstractmethod
    def supersede_run(self, run_id: str, *, by: str, now: datetime) -> bool:
        """Mark a ``Done`` run ``Superseded`` by run `by`; False when it is not ``Done``."""

    @abstractmethod
    def list_runs(self, *, source: str | None, status: str | None, limit: int | None) -> list[RunRecord]:
        """Newest first."""

    @abstractmethod
    def finish_run(self, run_id: str, *, manifest_uri: str, now: datetime) -> None:
        """Mark the run ``Done`` with its manifest; a ``Superseded`` run stays as it is."""

    @abstractmethod
    def statuses_of_run(self, run_id: str) -> Collection[str]:
        """The status of each task of the run (repeats allowed)."""

    @abstractmethod
    def read_claim(self, kind: ClaimKind, key: str) -> Claim | None: ...

    @abstractmethod
    def insert_claim(
        self, kind: ClaimKind, key: str, *, now: datetime, expires_at: datetime, new: NewTask | None
    ) -> bool:
        """Insert an in-progress claim (for ``create``, with `new` as a ``Creating`` task, atomically);
        False when the key exists already. Only one of many concurrent callers may get True."""

    def updated_task(self, key: str) -> TaskRecord | None:
        """The task this backend's last successful `update_task` of claim `key` wrote: the task as that
        update last read it with the update's changes, as reading it back would decode them; or None
        (read it). Saves a round trip where the backend can tell."""
        return None

    def inserted_run(self, run_id: str) -> RunRecord | None:
        """The run this backend's last successful `insert_run` of `run_id` wrote, exactly as reading it
        back would return it, or None (read it). Saves a round trip where the backend can tell."""
        return None

    def inserted_task(self, key: str) -> TaskRecord | None:
        """The task this backend's last successful `insert_claim` of `key` wrote, exactly as reading it
        back would return it, or None (read it). Saves a round trip where the backend can tell."""
        return None

    @abstractmethod
    def take_over(self, kind: ClaimKind, key: str, *, now: datetime, expires_at: datetime) -> bool:
        """Compare-and-set: when the claim is in progress and expired before `now`, hold it until
        `expires_at` and return True; otherwise change nothing and return False."""

    @abstractmethod
    def release_claim(self, key: str, *, now: datetime) -> None:
        """Expire an in-progress claim of either kind now."""

    @abstractmethod
    def finish_result_claim(self, key: str, *, now: datetime) -> None: ...

    @abstractmethod
    def task_by_claim(self, key: str) -> TaskRecord | None: ...

    @abstractmethod
    def task_by_id(self, task_id: str) -> TaskRecord | None: ...

    @abstractmethod
    def task_by_row(self, row_id: int) -> TaskRecord | None: ...

    @abstractmethod
    def update_task(
        self, task: TaskRecord, *, expect: frozenset[str], changes: Mapping[str, Any], close_claim: bool
    ) -> bool:
        """Apply `changes` (TaskRecord field -> value) when the task's status is in `expect`, and with
        `close_claim` mark its create claim done (whether or not the status matched); True when the
        task changed."""

    @abstractmethod
    def list_tasks(self, query: TaskQuery) -> list[TaskRecord]:
        """The tasks matching every filter of `query`, oldest first (creation time, then row number)."""

    @abstractmethod
    def stale_tasks(self, *, started_before: datetime, now: datetime) -> list[TaskRecord]:
        """``Running`` since before `started_before`, and ``Creating`` with an expired claim; oldest first."""

    @abstractmethod
    def children_of(self, task_ids: Iterable[str]) -> list[TaskRecord]:
        """The tasks whose parent is one of `task_ids`, in row order."""


def open_backend(url: str, **options: Any) -> LedgerBackend:
    """The backend `url` names, its module imported only now."""
    if url.startswith(TABLESTORE_SCHEME):
        from immflow.ledger.tablestore import TablestoreBackend

        return TablestoreBackend(url, **options)
    from immflow.ledger.sql import SqlBackend

    return SqlBackend(url, **options)


class Ledger:
    """The ledger: ``Ledger(url, **options)`` opens the backend `url` names (`open_backend`; options
    go to it: ``schema`` for SQL, ``endpoint`` and ``credentials`` for Tablestore)."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self._options = options
        self._backend: LedgerBackend | None = None
        self._credentials: Credentials | None = None

    @property
    def backend(self) -> LedgerBackend:
        """The backend, opened (its module imported) on first use: an invocation that never reads the
        ledger, such as on_upload ignoring an object no rule matches, never pays for the import."""
        if self._backend is None:
            self._backend = open_backend(self.url, **self._options)
            if self._credentials is not None:
                self._backend.use_credentials(self._credentials)
        return self._backend

    def use_credentials(self, credentials: Credentials) -> None:
        """Use the invocation's keys from now on (FC refreshes them per invocation)."""
        self._credentials = credentials
        if self._backend is not None:
            self._backend.use_credentials(credentials)

    def create_schema(self) -> None:
        """Create whatever tables are missing (locally and from the CLI; a deployed stack has them)."""
        self.backend.create_schema()

    # ---- runs

    def ensure_run(self, run: NewRun, *, now: datetime) -> RunRecord:
        """The run's record, inserting it the first time (`start_run` chose its id and sequence)."""
        found = self.get_run(run.run_id)
        if found is not None:
            return found
        self.backend.insert_run(run, now=aware(now))  # False: a concurrent delivery inserted it first
        found = self.get_run(run.run_id)
        if found is None:
            raise LedgerError(f"run {run.run_id} could not be recorded")
        return found

    def _insert_run(self, run: NewRun, now: datetime) -> RunRecord:
        """The record of a run this call just started, inserted without looking for it first: only
        another delivery of the same run could have recorded it, and then the insert finds it."""
        inserted = self.backend.insert_run(run, now=now)
        found = (self.backend.inserted_run(run.run_id) if inserted else None) or self.get_run(run.run_id)
        if found is None:
            raise LedgerError(f"run {run.run_id} could not be recorded")
        return found

    def get_run(self, run_id: str) -> RunRecord | None:
        return self.backend.get_run(run_id)

    def start_run(self, upload: NewRun, *, now: datetime) -> RunStart:
        """Decide which run an upload event belongs to, once per key at a time (compare-and-set on the
        key's head row, `RunHead`); `upload.run_id` and `upload.sequence` are ignored.

        * The key has no run yet, or the event is newer than the newest event of its latest run and
          its ETag differs from that run's: a new run starts (``started``), numbered one more than the
          latest. A, B, A uploaded one after the other are three runs.
        * The event is the one the latest run last saw (a redelivery), or it is newer and its ETag is
          the latest run's (the same bytes again: a client's retry, an identical upload): it joins
          that run (``joined``) and the head remembers it as the newest event, so an older event that
          arrives after it is still recognised as older.
        * The event is older than the latest run's newest event: ``older``, nothing starts. An upload
          whose event arrives late never starts a run that would overwrite the newer run's outputs.

        "Older" compares `EventOrder`: OSS's event time, then the version id (versioned buckets) or
        request id. UNCONFIRMED: that OSS's event time orders two uploads of one key as OSS applied
        them (it is documented as the time OSS finished the request); the tie-break within one
        millisecond is arbitrary, since OSS documents no order among request ids or version ids.
        """
        now = aware(now)
        order = upload.order
        for _ in range(_HEAD_ATTEMPTS):
            head = self.backend.read_head(upload.source_uri)
            if head is not None:
                if order == head.order or (order > head.order and upload.etag == head.etag):
                    newer = head._replace(order=order, revision=head.revision + 1)
                    if order > head.order and not self.backend.write_head(
                        newer, expect_revision=head.revision
                    ):
                        continue  # another event of the key changed the head: decide again
                    joined = upload._replace(run_id=head.run_id, sequence=head.sequence)
                    return RunStart("joined", self.ensure_run(joined, now=now), head.run_id)
                if order < head.order:
                    return RunStart("older", None, head.run_id)
            sequence = 1 if head is None else head.sequence + 1
            run_id = run_id_for(upload.bucket, upload.key, upload.etag, sequence)
            started = RunHead(
                upload.source_uri,
                run_id,
                sequence,
                upload.etag,
                order,
                1 if head is None else head.revision + 1,
            )
            # The head first, then the run's row: a stop in between leaves a head whose run a redelivery
            # (or the same bytes again) records; never a run row that no head names.
            if not self.backend.write_head(started, expect_revision=None if head is None else head.revision):
                continue
            return RunStart(
                "started", self._insert_run(upload._replace(run_id=run_id, sequence=sequence), now), run_id
            )
        raise LedgerError(f"could not decide the run of {upload.source_uri}: too many concurrent uploads")

    def latest_run(self, source_uri: str) -> RunRecord | None:
        """The latest run of the object `source_uri` names (the one its newest upload started or joined)."""
        head = self.backend.read_head(source_uri)
        return None if head is None else self.get_run(head.run_id)

    def supersede_run(self, run_id: str, *, by: str, now: datetime) -> bool:
        """Mark a ``Done`` run ``Superseded`` by the newer run `by`, which wrote over its outputs."""
        return self.backend.supersede_run(run_id, by=by, now=aware(now))

    def list_runs(
        self, *, source: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        """Newest first."""
        return self.backend.list_runs(source=source, status=status, limit=limit)

    def finish_run(self, run_id: str, *, manifest_uri: str, now: datetime) -> None:
        self.backend.finish_run(run_id, manifest_uri=manifest_uri, now=aware(now))

    def run_is_complete(self, run_id: str) -> bool:
        """True when the run has tasks and none of them is still being created or running."""
        statuses = self.backend.statuses_of_run(run_id)
        return bool(statuses) and not any(status in LEDGER_OPEN_STATES for status in statuses)

    # ---- claims: the algorithm, once

    def _acquire(
        self,
        kind: ClaimKind,
        key: str,
        *,
        now: datetime,
        expires_at: datetime,
        new: NewTask | None = None,
        likely_new: bool = False,
    ) -> Literal["claimed", "retaken", "done", "busy"]:
        """`likely_new`: the claim is most likely absent (its run was just started by this call), so it
        is inserted without reading it first; the insert is conditional all the same, and one that
        loses goes on exactly as after a read that found the claim."""
        now, expires_at = aware(now), aware(expires_at)
        found = None if likely_new else self.backend.read_claim(kind, key)
        if found is not None and found.status == "done":
            return "done"  # the common redelivery: one read, no failed insert
        if found is None:
            if self.backend.insert_claim(kind, key, now=now, expires_at=expires_at, new=new):
                return "claimed"
            found = self.backend.read_claim(kind, key)
            if found is not None and found.status == "done":
                return "done"
        return "retaken" if self.backend.take_over(kind, key, now=now, expires_at=expires_at) else "busy"

    def claim_task(
        self, new: NewTask, *, now: datetime, expires_at: datetime, new_run: bool = False
    ) -> CreateClaim | NotClaimed:
        """Insert the task in state ``Creating`` with its claim, or say why not (``done``, ``busy``:
        the task is not read then, since the caller skips it).

        An existing claim that expired while still ``Creating`` (its creator stopped) is taken over.
        `new_run`: the task's run was started by this call (`start_run` said ``started``), so only a
        concurrent delivery that joined it since can hold the claim: it is inserted without a read first.
        """
        outcome = self._acquire(
            "create", new.claim_key, now=now, expires_at=expires_at, new=new, likely_new=new_run
        )
        if outcome == "done" or outcome == "busy":
            return outcome
        inserted = self.backend.inserted_task(new.claim_key) if outcome == "claimed" else None
        return CreateClaim(inserted or self._require_task(new.claim_key), retaken=outcome == "retaken")

    def take_over_creation(self, task: TaskRecord, *, now: datetime, expires_at: datetime) -> bool:
        """Claim an expired ``Creating`` task (for reconcile); False when someone else holds it."""
        return self.backend.take_over("create", task.claim_key, now=aware(now), expires_at=aware(expires_at))

    def claim_result(self, key: str, *, now: datetime, expires_at: datetime) -> ClaimState:
        """``claimed``: record this result now; ``done``: already recorded; ``busy``: being recorded."""
        outcome = self._acquire("result", key, now=now, expires_at=expires_at)
        return "claimed" if outcome == "retaken" else outcome

    def release_claim(self, key: str, *, now: datetime) -> None:
        """Give an in-progress claim up (this invocation is about to fail), so the next delivery takes it."""
        self.backend.release_claim(key, now=aware(now))

    def finish_claim(self, key: str, *, now: datetime) -> None:
        """Mark a result claim done: its result and follow-ups are recorded."""
        self.backend.finish_result_claim(key, now=aware(now))

    # ---- task state

    def mark_created(
        self, claim: str, *, task_id: str, now: datetime, known: TaskRecord | None = None
    ) -> TaskRecord:
        """`known`: the task as this call last read it, which saves reading it again (the update is
        conditional on the task's status, so a task changed since is read again and rechecked)."""
        now = aware(now)
        changes = {"task_id": task_id, "status": "Running", "started_at": now, "updated_at": now}
        return self._change(claim, expect=frozenset({"Creating"}), changes=changes, known=known)

    def mark_create_failed(
        self, claim: str, *, code: str, message: str, now: datetime, known: TaskRecord | None = None
    ) -> TaskRecord:
        """IMM refused to create the task (a permanent error): the task ends ``Failed`` with IMM's code.
        `known` as for `mark_created`."""
        now = aware(now)
        changes = {"status": "Failed", "code": code, "message": message, "ended_at": now, "updated_at": now}
        return self._change(claim, expect=frozenset({"Creating"}), changes=changes, known=known)

    def _change(
        self, claim: str, *, expect: frozenset[str], changes: Mapping[str, Any], known: TaskRecord | None
    ) -> TaskRecord:
        """End a create claim with `changes` to its task; returns the task as it is now."""
        task = known if known is not None and known.claim_key == claim else self._require_task(claim)
        if self.backend.update_task(task, expect=expect, changes=changes, close_claim=True):
            written = self.backend.updated_task(claim)
            if written is not None:
                return written
        return self._require_task(claim)

    def record_result(
        self,
        task_id: str,
        *,
        status: str,
        code: str,
        message: str,
        started_at: datetime | None,
        ended_at: datetime | None,
        outputs: Sequence[str],
        now: datetime,
        known: TaskRecord | None = None,
    ) -> bool:
        """Record a task's final state; False when the task is unknown or already had a final result.

        ``Lost`` (reconcile gave up on it) may still be replaced by a real result that arrives late.
        `known` as for `mark_created`.
        """
        now = aware(now)
        task = known if known is not None and known.task_id == task_id else self.task_by_id(task_id)
        if task is None:
            return False
        changes: dict[str, Any] = {
            "status": status,
            "code": code,
            "message": message,
            "outputs": list(outputs),
            "ended_at": aware(ended_at) if ended_at is not None else now,
            "updated_at": now,
        }
        if started_at is not None:
            changes["started_at"] = aware(started_at)
        return self.backend.update_task(
            task, expect=frozenset({"Creating", "Running", "Lost"}), changes=changes, close_claim=False
        )

    def mark_lost(self, task: TaskRecord, *, reason: str, now: datetime) -> bool:
        now = aware(now)
        changes = {"status": "Lost", "code": "Lost", "message": reason, "ended_at": now, "updated_at": now}
        return self.backend.update_task(task, expect=LEDGER_OPEN_STATES, changes=changes, close_claim=True)

    # ---- reading tasks

    def _require_task(self, key: str) -> TaskRecord:
        found = self.backend.task_by_claim(key)
        if found is None:
            raise LedgerError(f"no task holds claim {key}")
        return found

    def task_by_id(self, task_id: str) -> TaskRecord | None:
        """A task by IMM TaskId."""
        return self.backend.task_by_id(task_id)

    def task_by_id_or_row(self, identifier: str) -> TaskRecord | None:
        """A task by IMM TaskId, or by ledger row number (tasks IMM refused have no TaskId)."""
        found = self.task_by_id(identifier)
        if found is None and identifier.isdigit():
            found = self.backend.task_by_row(int(identifier))
        return found

    def tasks_of_run(self, run_id: str) -> list[TaskRecord]:
        return self.list_tasks(TaskQuery(run_id=run_id))

    def list_tasks(self, query: TaskQuery) -> list[TaskRecord]:
        """The tasks matching every filter of `query`, oldest first (creation time, then row number)."""
        return self.backend.list_tasks(query)

    def stale_tasks(self, *, started_before: datetime, now: datetime) -> list[TaskRecord]:
        """Tasks reconcile should look at: ``Running`` since before `started_before`, and ``Creating``
        ones whose claim expired (their creator stopped and no redelivery came); oldest first."""
        return self.backend.stale_tasks(started_before=aware(started_before), now=aware(now))

    def children_of(self, task_ids: Iterable[str]) -> list[TaskRecord]:
        """The tasks whose parent is one of `task_ids`, in row order."""
        return self.backend.children_of(task_ids)
