"""What only the Tablestore ledger has: its tables as data, the message for missing ones, and index rows
checked against the rows they point to."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
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
from immflow.ledger.tablestore import TABLES, TASKS_BY_RUN, TASKS_BY_STATUS, TablestoreBackend

if TYPE_CHECKING:
    from tests.support.ots import LocalOts

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def _open(ots: LocalOts) -> Ledger:
    keys = Credentials(ots.account.access_key_id, ots.account.access_key_secret)
    return Ledger(f"tablestore://{ots.instance}", endpoint=ots.url, credentials=keys)


def _backend(ledger: Ledger) -> TablestoreBackend:
    assert isinstance(ledger.backend, TablestoreBackend)
    return ledger.backend


def _claimed(claim: CreateClaim | NotClaimed) -> TaskRecord:
    assert isinstance(claim, CreateClaim), f"not claimed: {claim}"
    return claim.task


def _new_task(name: str = "web") -> NewTask:
    return NewTask(
        claim_key=claim_key("run1", name),
        run_id="run1",
        rule="videos",
        task_name=name,
        task_type="MediaConvert",
        action="CreateMediaConvertTask",
        parent_task_id=None,
        depth=1,
        sources=["oss://media-in/in/a.mp4"],
        tags={"profile": "web"},
        user_data="{}",
        request={"ProjectName": "p"},
    )


def test_create_schema_creates_exactly_the_tables_template_yml_declares(ots_server: LocalOts) -> None:
    ledger = _open(ots_server)
    ledger.create_schema()
    ledger.create_schema()  # the second time finds them all
    client = ots_server.client()
    assert sorted(client.list_table()) == sorted(table.name for table in TABLES)
    for table in TABLES:
        assert [
            tuple(column) for column in client.describe_table(table.name).table_meta.schema_of_primary_key
        ] == list(table.primary_key)


def test_a_missing_table_is_named_with_what_creates_it(ots_server: LocalOts) -> None:
    ledger = _open(ots_server)
    with pytest.raises(LedgerError, match=r"immflow_runs does not exist in instance immflow .*template\.yml"):
        ledger.get_run("run1")


def test_keys_come_from_the_environment_when_none_are_given(
    ots_server: LocalOts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ots_server.account.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ots_server.account.access_key_secret)
    monkeypatch.setenv("IMMFLOW_OTS_ENDPOINT", ots_server.url)
    ledger = Ledger(f"tablestore://{ots_server.instance}")
    ledger.create_schema()
    assert ledger.list_runs() == []
    ledger.use_credentials(Credentials(ots_server.account.access_key_id, "wrong-secret"))
    with pytest.raises(Exception, match="OTSAuthFailed"):
        ledger.list_runs()


def test_index_rows_of_a_writer_that_stopped_half_way_are_skipped(ots_server: LocalOts) -> None:
    ledger = _open(ots_server)
    ledger.create_schema()
    ledger.ensure_run(NewRun("run1", "media-in", "in/a.mp4", "E", "ObjectCreated:PutObject", T0), now=T0)
    claimed = _claimed(ledger.claim_task(_new_task(), now=T0, expires_at=T0 + timedelta(minutes=1)))
    # A writer that stopped after writing its index rows, before its task row:
    client = ots_server.client()
    orphan = [("claim_key", claim_key("never-written"))]
    for table, key in [
        (TASKS_BY_RUN, [("run_id", "run1"), ("created_at", 1), ("row_id", 99)]),
        (TASKS_BY_STATUS, [("status", "Creating"), ("created_at", 1), ("row_id", 99)]),
    ]:
        _backend(ledger)._put(
            table, key, dict(orphan)
        )  # the backend's own write, as the stopped writer made it
    # ... and an index row left pointing at a row that has moved on (another row number):
    _backend(ledger)._put(
        TASKS_BY_STATUS,
        [("status", "Creating"), ("created_at", 2), ("row_id", 98)],
        {"claim_key": claimed.claim_key},
    )
    assert [t.row_id for t in ledger.tasks_of_run("run1")] == [claimed.row_id]
    assert [t.row_id for t in ledger.list_tasks(TaskQuery(status="Creating"))] == [claimed.row_id]
    assert [t.row_id for t in ledger.stale_tasks(started_before=T0, now=T0 + timedelta(hours=1))] == [
        claimed.row_id
    ]
    assert (
        client.get_row(TASKS_BY_RUN.name, [("run_id", "run1"), ("created_at", 1), ("row_id", 99)])[1]
        is not None
    )


def _count_requests(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the SDK calls the ledger makes from now on (each one a round trip)."""
    backend = _backend(ledger)
    calls: list[str] = []
    real = backend._call

    def counted(table: Any, action: str, *args: Any) -> Any:
        calls.append(action)
        return real(table, action, *args)

    monkeypatch.setattr(backend, "_call", counted)
    return calls


def test_an_upload_with_two_tasks_makes_no_round_trip_it_can_do_without(
    ots_server: LocalOts, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _open(ots_server)
    ledger.create_schema()
    calls = _count_requests(ledger, monkeypatch)
    upload = NewRun("", "media-in", "in/a.mp4", "E", "ObjectCreated:PutObject", T0, request_id="r1")
    start = ledger.start_run(upload, now=T0)
    assert start.outcome == "started" and start.run is not None
    # head read and written, then the run inserted (index rows, row): no read before the insert nor after
    assert calls == ["get_row", "put_row", "batch_write_row", "put_row"]
    # ... and the run start_run returned is the row as written.
    assert start.run == ledger.get_run(start.run.run_id)
    calls.clear()
    claims = [
        _claimed(
            ledger.claim_task(
                _new_task(name)._replace(run_id=start.run.run_id),
                now=T0,
                expires_at=T0 + timedelta(minutes=1),
                new_run=True,
            )
        )
        for name in ("web", "thumb")
    ]
    # Each: a row number, its index rows, its row (not read back); no claim read first, the run being
    # new. The second row number comes from the counter as the first left it: one conditional write.
    first = ["get_row", "put_row", "batch_write_row", "put_row"]  # counter: read, created
    second = ["update_row", "batch_write_row", "put_row"]
    assert calls == first + second
    # ... and the tasks claim_task returned are the rows as written.
    assert claims == [_backend(ledger).task_by_claim(task.claim_key) for task in claims]
    calls.clear()
    created = [
        ledger.mark_created(task.claim_key, task_id=f"MC-{number}", now=T0, known=task)
        for number, task in enumerate(claims)
    ]
    # Each: its new index rows, the conditional update, the old status's index row deleted; not read back.
    assert calls == ["batch_write_row", "update_row", "delete_row"] * 2
    # ... and the tasks mark_created returned are the rows as written.
    assert created == [_backend(ledger).task_by_claim(task.claim_key) for task in created]
    assert [task.status for task in created] == ["Running", "Running"]
    assert [ledger.task_by_id(f"MC-{number}") is not None for number in range(2)] == [True, True]


def test_a_redelivered_upload_reads_the_head_the_run_and_each_claim_only(
    ots_server: LocalOts, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _open(ots_server)
    ledger.create_schema()
    upload = NewRun("", "media-in", "in/a.mp4", "E", "ObjectCreated:PutObject", T0, request_id="r1")
    start = ledger.start_run(upload, now=T0)
    assert start.run is not None
    tasks = [_new_task(name)._replace(run_id=start.run.run_id) for name in ("web", "thumb")]
    for number, new in enumerate(tasks):
        claimed = _claimed(ledger.claim_task(new, now=T0, expires_at=T0 + timedelta(minutes=1), new_run=True))
        ledger.mark_created(new.claim_key, task_id=f"MC-{number}", now=T0, known=claimed)
    calls = _count_requests(ledger, monkeypatch)
    again = ledger.start_run(upload, now=T0 + timedelta(seconds=5))
    assert again.outcome == "joined" and again.run == start.run
    later = T0 + timedelta(seconds=5)
    assert [ledger.claim_task(new, now=later, expires_at=later + timedelta(minutes=1)) for new in tasks] == [
        "done",
        "done",
    ]
    # The head, the run (a redelivery may be the first to record it), each claim; no task read.
    assert calls == ["get_row"] * 4


def test_reconcile_reads_no_task_too_young_to_be_stale(
    ots_server: LocalOts, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _open(ots_server)
    ledger.create_schema()
    ledger.ensure_run(NewRun("run1", "media-in", "in/a.mp4", "E", "ObjectCreated:PutObject", T0), now=T0)
    old, young = (
        _claimed(ledger.claim_task(_new_task(name), now=at, expires_at=at + timedelta(minutes=1)))
        for name, at in (("web", T0), ("thumb", T0 + timedelta(hours=1)))
    )
    ledger.mark_created(old.claim_key, task_id="MC-old", now=T0)
    ledger.mark_created(young.claim_key, task_id="MC-young", now=T0 + timedelta(hours=1))
    calls = _count_requests(ledger, monkeypatch)
    later = T0 + timedelta(hours=1, minutes=5)
    assert [
        t.task_id for t in ledger.stale_tasks(started_before=later - timedelta(minutes=15), now=later)
    ] == ["MC-old"]
    # The Running index up to the bound, one batch read of the old task, the Creating index (empty).
    assert calls == ["get_range", "batch_get_row", "get_range"]
    calls.clear()
    assert ledger.stale_tasks(started_before=T0 - timedelta(minutes=15), now=T0) == []
    assert "batch_get_row" not in calls
