"""The ledger's contract, one suite run against every backend: SQLite, PostgreSQL, MariaDB and Tablestore.

Server tests use a schema (PostgreSQL) or database (MariaDB) of their own, dropped afterwards. They skip
when the server cannot be reached, unless ``IMMFLOW_REQUIRE_POSTGRES`` / ``IMMFLOW_REQUIRE_MYSQL`` is set
(CI sets them), in which case an unreachable server fails the test. Tablestore is the local one
(``ots_server``), reached with the official SDK as a deployed function reaches the cloud's.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from immflow.fc import Credentials
from immflow.ledger import (
    CreateClaim,
    Ledger,
    LedgerError,
    NewRun,
    NewTask,
    NotClaimed,
    TaskQuery,
    TaskRecord,
    claim_key,
)
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

    from tests.support.ots import LocalOts

POSTGRES_URL = os.environ.get(
    "IMMFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("IMMFLOW_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def _server_or_skip(url: str, required_variable: str) -> None:
    try:
        with create_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        if os.environ.get(required_variable):
            pytest.fail(f"{url} is unreachable and {required_variable} is set: {exc}")
        pytest.skip(
            f"{url} is unreachable ({type(exc).__name__}); set {required_variable}=1 to make this a failure"
        )


@dataclass(frozen=True)
class Backend:
    """How to open one backend's ledger: in this process, or again in another one."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)

    def open(self) -> Ledger:
        return Ledger(self.url, **self.options)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
        "tablestore",
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "tablestore":
        ots: LocalOts = request.getfixturevalue("ots_server")
        keys = Credentials(ots.account.access_key_id, ots.account.access_key_secret)
        yield Backend(
            "tablestore", f"tablestore://{ots.instance}", {"endpoint": ots.url, "credentials": keys}
        )
        return
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
        return
    name = f"immflow_test_{uuid.uuid4().hex[:12]}"
    url, variable = (
        (POSTGRES_URL, "IMMFLOW_REQUIRE_POSTGRES")
        if request.param == "postgres"
        else (MYSQL_URL, "IMMFLOW_REQUIRE_MYSQL")
    )
    _server_or_skip(url, variable)
    admin = create_engine(url)
    create = f"CREATE SCHEMA {name}" if request.param == "postgres" else f"CREATE DATABASE {name}"
    drop = f"DROP SCHEMA {name} CASCADE" if request.param == "postgres" else f"DROP DATABASE {name}"
    with admin.begin() as connection:
        connection.execute(text(create))
    try:
        yield Backend(request.param, url, {"schema": name})
    finally:
        with admin.begin() as connection:
            connection.execute(text(drop))
        admin.dispose()


@pytest.fixture
def ledger(backend: Backend) -> Ledger:
    found = backend.open()
    found.create_schema()
    return found


def _run(run_id: str = "run1", key: str = "in/a.mp4") -> NewRun:
    return NewRun(
        run_id, "media-in", key, "ETAG1", "ObjectCreated:PutObject", T0, size=10, content_type="video/mp4"
    )


def _task(
    name: str = "web", run_id: str = "run1", tags: dict[str, object] | None = None, parent: str | None = None
) -> NewTask:
    return NewTask(
        claim_key=claim_key(run_id, name, parent),
        run_id=run_id,
        rule="videos",
        task_name=name,
        task_type="MediaConvert",
        action="CreateMediaConvertTask",
        parent_task_id=parent,
        depth=1 if parent is None else 2,
        sources=["oss://media-in/in/a.mp4"],
        tags={"pipeline": "web-video", "n": 2, **(tags or {})},
        user_data='{"v":1,"note":"ünïcode"}',
        request={"ProjectName": "p", "UserData": '{"v":1}'},
    )


def _state(claim: CreateClaim | NotClaimed) -> str:
    return "claimed" if isinstance(claim, CreateClaim) else claim


def _claimed(claim: CreateClaim | NotClaimed) -> TaskRecord:
    assert isinstance(claim, CreateClaim), f"not claimed: {claim}"
    return claim.task


def _created(ledger: Ledger, name: str, task_id: str, **kwargs: Any) -> None:
    new = _task(name, **kwargs)
    _claimed(ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=1)))
    ledger.mark_created(new.claim_key, task_id=task_id, now=T0)


def test_a_run_is_recorded_once(ledger: Ledger) -> None:
    first = ledger.ensure_run(_run(), now=T0)
    again = ledger.ensure_run(_run(), now=T0 + timedelta(hours=1))
    assert first == again
    assert first.source_uri == "oss://media-in/in/a.mp4"
    assert first.upload_time == T0 and first.upload_time.tzinfo is not None
    assert first.status == "Running"


def test_a_claim_is_taken_once_then_reported_busy_then_done(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    new = _task()
    first = _claimed(ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=1)))
    assert first.status == "Creating" and first.task_id is None
    second = ledger.claim_task(new, now=T0 + timedelta(seconds=5), expires_at=T0 + timedelta(minutes=2))
    assert second == "busy"
    created = ledger.mark_created(new.claim_key, task_id="MediaConvert-1", now=T0)
    assert created.status == "Running" and created.task_id == "MediaConvert-1"
    assert ledger.claim_task(new, now=T0 + timedelta(hours=1), expires_at=T0 + timedelta(hours=2)) == "done"


def test_a_claim_found_done_or_busy_reads_no_task(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A redelivery skips the task, so claiming it reads the claim and nothing else."""
    ledger.ensure_run(_run(), now=T0)
    held, created = _task("held"), _task("created")
    for new in (held, created):
        _claimed(ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=1)))
    ledger.mark_created(created.claim_key, task_id="MC-1", now=T0)

    def no_task_read(key: str) -> None:
        raise AssertionError(f"task {key} read for a claim that is not taken")

    monkeypatch.setattr(ledger.backend, "task_by_claim", no_task_read)
    later = T0 + timedelta(seconds=5)
    assert ledger.claim_task(created, now=later, expires_at=later + timedelta(minutes=1)) == "done"
    assert ledger.claim_task(held, now=later, expires_at=later + timedelta(minutes=1)) == "busy"
    assert ledger.claim_task(held, now=later, expires_at=later + timedelta(minutes=1), new_run=True) == "busy"


def test_a_claim_of_a_new_run_unread_first_still_finds_one_a_concurrent_delivery_holds(
    ledger: Ledger,
) -> None:
    """`new_run`: the claim is inserted without a read first; an insert that loses ends as it would
    after a read (busy, done, or taken over when expired), and the task returned is the row."""
    ledger.ensure_run(_run(), now=T0)
    new = _task()
    first = _claimed(ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=1), new_run=True))
    assert first == ledger.list_tasks(TaskQuery(run_id="run1"))[0]
    busy = ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=1), new_run=True)
    assert busy == "busy"
    later = T0 + timedelta(minutes=5)
    retaken = ledger.claim_task(new, now=later, expires_at=later + timedelta(minutes=1), new_run=True)
    assert isinstance(retaken, CreateClaim) and retaken.retaken and retaken.task.row_id == first.row_id
    created = ledger.mark_created(new.claim_key, task_id="MediaConvert-1", now=later, known=retaken.task)
    assert created == ledger.task_by_id("MediaConvert-1")
    done = ledger.claim_task(new, now=later, expires_at=later + timedelta(minutes=1), new_run=True)
    assert done == "done"
    assert len(ledger.list_tasks(TaskQuery(run_id="run1"))) == 1


def test_an_expired_claim_is_taken_over_by_the_next_delivery(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    new = _task()
    ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=1))
    later = T0 + timedelta(minutes=5)
    retried = ledger.claim_task(new, now=later, expires_at=later + timedelta(minutes=1))
    assert isinstance(retried, CreateClaim) and retried.retaken
    # The takeover renewed the expiry, so a third delivery right now sees it busy.
    assert ledger.claim_task(new, now=later, expires_at=later + timedelta(minutes=1)) == "busy"


def test_concurrent_claims_of_one_task_let_exactly_one_through(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    new = _task()
    states: list[str] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        barrier.wait()
        states.append(_state(ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=1))))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(states) == ["busy"] * 5 + ["claimed"]
    assert len(ledger.tasks_of_run("run1")) == 1


def test_a_refused_task_ends_failed_with_imms_code(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    new = _task()
    ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=1))
    failed = ledger.mark_create_failed(new.claim_key, code="InvalidArgument", message="bad Targets", now=T0)
    assert (failed.status, failed.code, failed.message, failed.task_id) == (
        "Failed",
        "InvalidArgument",
        "bad Targets",
        None,
    )
    assert ledger.task_by_id_or_row(str(failed.row_id)) == failed
    assert ledger.run_is_complete("run1")


def test_a_result_changes_the_ledger_once(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    _created(ledger, "web", "MediaConvert-1")
    end = T0 + timedelta(seconds=30)
    kwargs: dict[str, Any] = {
        "status": "Succeeded",
        "code": "",
        "message": "",
        "started_at": T0,
        "ended_at": end,
        "now": end,
    }
    assert ledger.record_result("MediaConvert-1", outputs=["oss://b/out.mp4"], **kwargs)
    assert not ledger.record_result("MediaConvert-1", outputs=["oss://b/other.mp4"], **kwargs)
    assert not ledger.record_result("MediaConvert-unknown", outputs=[], **kwargs)
    task = ledger.task_by_id("MediaConvert-1")
    assert task is not None and task.outputs == ["oss://b/out.mp4"] and task.ended_at == end


def test_a_late_result_replaces_lost(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    _created(ledger, "web", "MediaConvert-1")
    task = ledger.task_by_id("MediaConvert-1")
    assert task is not None
    assert ledger.mark_lost(task, reason="older than IMM's 7-day retention", now=T0)
    lost = ledger.task_by_id("MediaConvert-1")
    assert lost is not None and (lost.status, lost.code) == ("Lost", "Lost")
    assert ledger.record_result(
        "MediaConvert-1",
        status="Failed",
        code="InvalidArgument",
        message="x",
        started_at=None,
        ended_at=None,
        outputs=[],
        now=T0,
    )


def test_result_claims(ledger: Ledger) -> None:
    key = claim_key("result", "MediaConvert-1", "Succeeded")
    soon = T0 + timedelta(minutes=1)
    assert ledger.claim_result(key, now=T0, expires_at=soon) == "claimed"
    assert ledger.claim_result(key, now=T0, expires_at=soon) == "busy"
    assert (
        ledger.claim_result(key, now=soon + timedelta(seconds=1), expires_at=soon + timedelta(minutes=1))
        == "claimed"
    )
    ledger.finish_claim(key, now=soon)
    assert ledger.claim_result(key, now=T0 + timedelta(days=1), expires_at=T0 + timedelta(days=2)) == "done"


def test_queries_by_run_source_tag_status_and_time(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    ledger.ensure_run(_run("run2", "in/b.mp4"), now=T0)
    _created(ledger, "web", "MC-1", tags={"profile": "web"})
    _created(ledger, "thumb", "MC-2", tags={"profile": "thumb"})
    _created(ledger, "web", "MC-3", run_id="run2", tags={"profile": "web"})
    assert [t.task_id for t in ledger.list_tasks(TaskQuery(run_id="run1"))] == ["MC-1", "MC-2"]
    assert [t.task_id for t in ledger.list_tasks(TaskQuery(source="oss://media-in/in/b.mp4"))] == ["MC-3"]
    assert [t.task_id for t in ledger.list_tasks(TaskQuery(tags={"profile": "web"}))] == ["MC-1", "MC-3"]
    assert [t.task_id for t in ledger.list_tasks(TaskQuery(tags={"profile": "web", "n": "2"}))] == [
        "MC-1",
        "MC-3",
    ]
    assert ledger.list_tasks(TaskQuery(tags={"profile": "none"})) == []
    ledger.record_result(
        "MC-2", status="Failed", code="X", message="y", started_at=None, ended_at=None, outputs=[], now=T0
    )
    assert [t.task_id for t in ledger.list_tasks(TaskQuery(status="Failed"))] == ["MC-2"]
    assert len(ledger.list_tasks(TaskQuery(since=T0, until=T0 + timedelta(seconds=1)))) == 3
    assert ledger.list_tasks(TaskQuery(since=T0 + timedelta(seconds=1))) == []
    assert [r.run_id for r in ledger.list_runs(source="oss://media-in/in/a.mp4")] == ["run1"]


def test_stale_tasks_and_run_completion(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    _created(ledger, "web", "MC-1")
    stuck = _task("thumb")
    ledger.claim_task(stuck, now=T0, expires_at=T0 + timedelta(minutes=1))
    assert ledger.stale_tasks(started_before=T0, now=T0) == []
    later = T0 + timedelta(minutes=20)
    stale = ledger.stale_tasks(started_before=later - timedelta(minutes=15), now=later)
    assert sorted(t.task_name for t in stale) == ["thumb", "web"]
    assert not ledger.run_is_complete("run1")
    for task in stale:
        ledger.mark_lost(task, reason="gone", now=later)
    assert ledger.run_is_complete("run1")
    ledger.finish_run("run1", manifest_uri="oss://media-in/immflow/manifests/run1.json", now=later)
    run = ledger.get_run("run1")
    assert run is not None and (run.status, run.ended_at) == ("Done", later)


def test_children_and_json_columns_round_trip(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    _created(ledger, "web", "MC-1")
    _created(ledger, "thumbs", "MC-2", parent="MC-1")
    [child] = ledger.children_of(["MC-1"])
    assert child.task_id == "MC-2" and child.depth == 2
    assert child.tags == {"pipeline": "web-video", "n": 2}
    assert child.user_data == '{"v":1,"note":"ünïcode"}'
    assert child.request == {"ProjectName": "p", "UserData": '{"v":1}'}


def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """A redelivery only reads: on SQLite its reads take no write lock, so they do not queue behind
    another instance's write transaction."""
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    ledger = Ledger(url)
    ledger.create_schema()
    ledger.ensure_run(_run(), now=T0)
    _created(ledger, "web", "MC-1")
    writer = create_engine(url, connect_args={"isolation_level": None}).raw_connection()
    writer.execute("BEGIN IMMEDIATE")  # another instance, in the middle of a write
    try:
        started = time.monotonic()
        assert ledger.get_run("run1") is not None
        assert ledger.backend.read_claim("create", _task("web").claim_key) is not None
        assert ledger.task_by_id("MC-1") is not None
        assert [task.task_id for task in ledger.tasks_of_run("run1")] == ["MC-1"]
        assert time.monotonic() - started < 5  # busy_timeout is 30 s: a read queueing would wait it out
    finally:
        writer.rollback()
        writer.close()


def test_naive_times_are_refused(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite3'}")
    with pytest.raises(Exception, match="naive datetime") as caught:
        ledger.ensure_run(_run(), now=datetime(2026, 1, 1))
    assert isinstance(caught.value, LedgerError) or isinstance(caught.value.__cause__, LedgerError)


def _claim_in_another_process(backend: Backend, barrier: Barrier, states: Queue[str]) -> None:
    ledger = backend.open()
    barrier.wait(timeout=60)
    states.put(_state(ledger.claim_task(_task(), now=T0, expires_at=T0 + timedelta(minutes=1))))


def test_processes_claiming_one_task_let_exactly_one_through(backend: Backend, ledger: Ledger) -> None:
    # Separate processes, each with its own client or connection pool: what two FC instances are.
    ledger.ensure_run(_run(), now=T0)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    states: Queue[str] = context.Queue()
    processes = [
        context.Process(target=_claim_in_another_process, args=(backend, barrier, states)) for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    assert sorted(states.get(timeout=10) for _ in processes) == ["busy"] * 3 + ["claimed"]
    [task] = ledger.tasks_of_run("run1")
    assert task.status == "Creating"


def test_concurrent_take_overs_of_an_expired_claim_let_exactly_one_through(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    new = _task()
    ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=1))
    later = T0 + timedelta(minutes=5)
    claims: list[tuple[str, bool]] = []
    barrier = threading.Barrier(5)

    def claim() -> None:
        barrier.wait()
        found = ledger.claim_task(new, now=later, expires_at=later + timedelta(minutes=1))
        claims.append((_state(found), isinstance(found, CreateClaim) and found.retaken))

    threads = [threading.Thread(target=claim) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims) == [("busy", False)] * 4 + [("claimed", True)]


def test_a_released_claim_is_taken_by_the_next_delivery_or_reconcile(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    new = _task()
    first = _claimed(ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=10)))
    assert not ledger.take_over_creation(first, now=T0, expires_at=T0 + timedelta(minutes=10))
    ledger.release_claim(new.claim_key, now=T0 + timedelta(seconds=1))
    assert ledger.take_over_creation(
        first, now=T0 + timedelta(seconds=2), expires_at=T0 + timedelta(minutes=1)
    )
    assert (
        ledger.claim_task(new, now=T0 + timedelta(seconds=3), expires_at=T0 + timedelta(minutes=1)) == "busy"
    )

    result = claim_key("result", "MC-1", "Succeeded")
    assert ledger.claim_result(result, now=T0, expires_at=T0 + timedelta(minutes=10)) == "claimed"
    ledger.release_claim(result, now=T0 + timedelta(seconds=1))
    assert (
        ledger.claim_result(result, now=T0 + timedelta(seconds=2), expires_at=T0 + timedelta(minutes=1))
        == "claimed"
    )
    ledger.finish_claim(result, now=T0 + timedelta(seconds=3))
    ledger.release_claim(result, now=T0 + timedelta(seconds=4))  # a done claim stays done
    assert (
        ledger.claim_result(result, now=T0 + timedelta(hours=1), expires_at=T0 + timedelta(hours=2)) == "done"
    )


def test_tasks_by_row_number_and_status_follow_every_change(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    new = _task()
    claimed = _claimed(ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=1)))
    assert ledger.task_by_id_or_row(str(claimed.row_id)) == claimed
    assert ledger.task_by_id_or_row("MC-unknown") is None and ledger.task_by_id_or_row("999999") is None
    assert [t.status for t in ledger.list_tasks(TaskQuery(status="Creating"))] == ["Creating"]
    ledger.mark_created(new.claim_key, task_id="MC-1", now=T0)
    assert ledger.list_tasks(TaskQuery(status="Creating")) == []
    assert [t.task_id for t in ledger.list_tasks(TaskQuery(status="Running"))] == ["MC-1"]
    ledger.record_result(
        "MC-1", status="Succeeded", code="", message="", started_at=T0, ended_at=T0, outputs=[], now=T0
    )
    assert ledger.list_tasks(TaskQuery(status="Running")) == []
    assert [t.task_id for t in ledger.list_tasks(TaskQuery(status="Succeeded"))] == ["MC-1"]
    found = ledger.task_by_id_or_row("MC-1")
    assert found is not None and found.row_id == claimed.row_id and found.status == "Succeeded"
    assert not ledger.mark_lost(found, reason="too late", now=T0)  # a final task is not lost


def test_runs_newest_first_by_status_and_limit_and_tasks_of_every_run_of_a_source(ledger: Ledger) -> None:
    ledger.ensure_run(_run("run1"), now=T0)
    ledger.ensure_run(_run("run2"), now=T0 + timedelta(seconds=1))
    ledger.ensure_run(_run("run3", "in/other.mp4"), now=T0 + timedelta(seconds=2))
    assert [r.run_id for r in ledger.list_runs()] == ["run3", "run2", "run1"]
    assert [r.run_id for r in ledger.list_runs(limit=2)] == ["run3", "run2"]
    assert [r.run_id for r in ledger.list_runs(source="oss://media-in/in/a.mp4")] == ["run2", "run1"]
    ledger.finish_run("run1", manifest_uri="oss://media-in/m/run1.json", now=T0)
    assert [r.run_id for r in ledger.list_runs(status="Done")] == ["run1"]
    assert [r.run_id for r in ledger.list_runs(source="oss://media-in/in/a.mp4", status="Running")] == [
        "run2"
    ]
    _created(ledger, "web", "MC-1", run_id="run1")
    _created(ledger, "web", "MC-2", run_id="run2")
    _created(ledger, "web", "MC-3", run_id="run3")
    source = TaskQuery(source="oss://media-in/in/a.mp4")
    assert [t.task_id for t in ledger.list_tasks(source)] == ["MC-1", "MC-2"]
    assert [t.task_id for t in ledger.list_tasks(TaskQuery(limit=2))] == ["MC-1", "MC-2"]
    assert [t.task_id for t in ledger.list_tasks(TaskQuery(source=source.source, run_id="run2"))] == ["MC-2"]
    assert ledger.list_runs(source="oss://media-in/none") == []
    assert ledger.get_run("run-unknown") is None
    assert not ledger.run_is_complete("run-unknown")


def test_children_of_several_parents_in_row_order(ledger: Ledger) -> None:
    ledger.ensure_run(_run(), now=T0)
    _created(ledger, "web", "MC-1")
    _created(ledger, "thumb", "MC-2")
    _created(ledger, "a", "MC-3", parent="MC-1")
    _created(ledger, "b", "MC-4", parent="MC-2")
    _created(ledger, "c", "MC-5", parent="MC-1")
    assert [t.task_id for t in ledger.children_of(["MC-2", "MC-1"])] == ["MC-3", "MC-4", "MC-5"]
    assert ledger.children_of([]) == [] and ledger.children_of(["MC-3"]) == []


def _upload(etag: str, at: datetime, request_id: str, key: str = "in/a.mp4") -> NewRun:
    """An upload event as on_upload hands it to `Ledger.start_run` (the run id is the ledger's to choose)."""
    return NewRun("", "media-in", key, etag, "ObjectCreated:PutObject", at, request_id=request_id)


def test_a_b_a_are_three_runs_and_the_same_bytes_join_the_latest(ledger: Ledger) -> None:
    first = ledger.start_run(_upload("A", T0, "r1"), now=T0)
    assert first.outcome == "started" and first.run is not None and first.run.sequence == 1
    retry = ledger.start_run(_upload("A", T0 + timedelta(seconds=1), "r2"), now=T0)
    assert retry.outcome == "joined" and retry.run == first.run
    redelivered = ledger.start_run(_upload("A", T0 + timedelta(seconds=1), "r2"), now=T0)
    assert redelivered.outcome == "joined" and redelivered.run == first.run
    second = ledger.start_run(_upload("B", T0 + timedelta(seconds=2), "r3"), now=T0 + timedelta(seconds=2))
    third = ledger.start_run(_upload("A", T0 + timedelta(seconds=3), "r4"), now=T0 + timedelta(seconds=3))
    assert second.outcome == third.outcome == "started"
    assert second.run is not None and third.run is not None
    assert [second.run.sequence, third.run.sequence] == [2, 3]
    assert len({first.run.run_id, second.run.run_id, third.run.run_id}) == 3
    assert third.run.etag == "A" and third.run.request_id == "r4"
    latest = ledger.latest_run("oss://media-in/in/a.mp4")
    assert latest is not None and latest.run_id == third.run.run_id
    assert ledger.latest_run("oss://media-in/in/other.mp4") is None
    assert [r.run_id for r in ledger.list_runs(source="oss://media-in/in/a.mp4")] == [
        third.run.run_id,
        second.run.run_id,
        first.run.run_id,
    ]


def test_an_event_older_than_the_latest_run_starts_nothing(ledger: Ledger) -> None:
    newer = ledger.start_run(_upload("B", T0 + timedelta(seconds=5), "r2"), now=T0)
    late = ledger.start_run(_upload("A", T0, "r1"), now=T0)
    assert late.outcome == "older" and late.run is None
    assert newer.run is not None and late.latest == newer.run.run_id
    # An older event of the same bytes after a newer one joined: older too (it must not count as newest).
    ledger.start_run(_upload("B", T0 + timedelta(seconds=9), "r4"), now=T0)
    delayed = ledger.start_run(_upload("C", T0 + timedelta(seconds=7), "r3"), now=T0)
    assert delayed.outcome == "older"
    # Within one millisecond the identity breaks the tie, the same way every time.
    tie = ledger.start_run(_upload("D", T0 + timedelta(seconds=9), "r5"), now=T0)
    assert tie.outcome == "started"
    assert ledger.start_run(_upload("E", T0 + timedelta(seconds=9), "r0"), now=T0).outcome == "older"


def test_concurrent_uploads_of_one_key_start_one_run_each_decided_once(ledger: Ledger) -> None:
    """Eight threads deliver the same event at once: one run, every delivery joins it."""
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    runs: set[str] = set()

    def deliver() -> None:
        barrier.wait()
        start = ledger.start_run(_upload("A", T0, "r1"), now=T0)
        outcomes.append(start.outcome)
        assert start.run is not None
        runs.add(start.run.run_id)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["joined"] * 7 + ["started"] and len(runs) == 1
    assert len(ledger.list_runs(source="oss://media-in/in/a.mp4")) == 1


def test_a_done_run_is_superseded_once(ledger: Ledger) -> None:
    first = ledger.start_run(_upload("A", T0, "r1"), now=T0)
    second = ledger.start_run(_upload("B", T0 + timedelta(seconds=1), "r2"), now=T0)
    assert first.run is not None and second.run is not None
    assert not ledger.supersede_run(first.run.run_id, by=second.run.run_id, now=T0)  # still Running
    ledger.finish_run(first.run.run_id, manifest_uri="oss://media-in/m/1.json", now=T0)
    assert ledger.supersede_run(first.run.run_id, by=second.run.run_id, now=T0)
    found = ledger.get_run(first.run.run_id)
    assert found is not None and found.status == "Superseded" and found.superseded_by == second.run.run_id
    assert [r.run_id for r in ledger.list_runs(status="Superseded")] == [first.run.run_id]
    ledger.finish_run(first.run.run_id, manifest_uri="oss://media-in/m/again.json", now=T0)  # a late repeat
    again = ledger.get_run(first.run.run_id)
    assert (
        again is not None and again.status == "Superseded" and again.manifest_uri == "oss://media-in/m/1.json"
    )


def test_a_sql_ledger_made_before_run_numbering_gets_the_new_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    with create_engine(url).begin() as db:
        db.execute(
            text(
                "CREATE TABLE immflow_runs (run_id VARCHAR(64) PRIMARY KEY, source_uri VARCHAR(1100) NOT NULL, "
                "bucket VARCHAR(63) NOT NULL, object_key VARCHAR(1023) NOT NULL, etag VARCHAR(128) NOT NULL, "
                "event_name VARCHAR(64) NOT NULL, upload_time DATETIME NOT NULL, size INTEGER, "
                "content_type VARCHAR(255), status VARCHAR(16) NOT NULL, manifest_uri VARCHAR(1100), "
                "created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, ended_at DATETIME)"
            )
        )
        db.execute(
            text(
                "INSERT INTO immflow_runs VALUES ('old', 'oss://media-in/in/a.mp4', 'media-in', 'in/a.mp4', 'A', "
                "'ObjectCreated:PutObject', '2026-11-28 12:00:00', 1, NULL, 'Done', NULL, "
                "'2026-11-28 12:00:00', '2026-11-28 12:00:00', NULL)"
            )
        )
    ledger = Ledger(url)
    ledger.create_schema()
    old = ledger.get_run("old")
    assert old is not None and old.sequence == 0 and old.request_id == "" and old.superseded_by is None
    started = ledger.start_run(_upload("B", T0, "r1"), now=T0)
    assert started.outcome == "started" and started.run is not None and started.run.sequence == 1
