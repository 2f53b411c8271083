"""The dashboard's app against a real local OSS and a SQLite ledger, through Starlette's test client:
who may look, what an object route serves, and the pages for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import oss2
import pytest
from immflow.adapters.oss import OssAdapter
from immflow.fc import Credentials
from immflow.ledger import Ledger, NewRun, NewTask, utcnow
from immflow.ui.app import Access, create_app
from immflow.ui.data import Dashboard
from starlette.testclient import TestClient

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.oss import OssService

BUCKET = "ui-media"
VIDEO = bytes(range(256)) * 40  # 10 KiB of something to range over


@pytest.fixture(scope="module")
def oss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceServer, Account]]:
    account = Account.new()
    service = OssService(tmp_path_factory.mktemp("oss"), account)
    server = ServiceServer(service).start()
    bucket = oss2.Bucket(oss2.Auth(account.access_key_id, account.access_key_secret), server.url, BUCKET)
    bucket.create_bucket()
    bucket.put_object("in/clip.mp4", VIDEO)
    bucket.put_object("out/clip/web.mp4", VIDEO)
    bucket.put_object("private/secret.txt", b"not for the dashboard")
    yield server, account
    server.stop()
    service.close()


@pytest.fixture(scope="module")
def dashboard(oss: tuple[ServiceServer, Account], tmp_path_factory: pytest.TempPathFactory) -> Dashboard:
    server, account = oss
    url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.sqlite3'}"
    ledger = Ledger(url)
    now = utcnow()
    ledger.ensure_run(
        NewRun("run-1", BUCKET, "in/clip.mp4", "ETAG", "ObjectCreated:PutObject", now, len(VIDEO)), now=now
    )
    for name, outputs, status in (
        ("web", ["out/clip/web.mp4", "out/clip/gone.jpg"], "Succeeded"),
        ("bad", [], "Failed"),
    ):
        claim = f"claim-{name}"
        ledger.claim_task(
            NewTask(
                claim,
                "run-1",
                "videos",
                name,
                "MediaConvert",
                "CreateMediaConvertTask",
                None,
                1,
                [f"oss://{BUCKET}/in/clip.mp4"],
                {},
                "{}",
                {},
            ),
            now=now,
            expires_at=now + timedelta(minutes=5),
        )
        ledger.mark_created(claim, task_id=f"MediaConvert-{name}", now=now)
        ledger.record_result(
            f"MediaConvert-{name}",
            status=status,
            code="" if status == "Succeeded" else "InvalidArgument",
            message=""
            if status == "Succeeded"
            else "The source is damaged or truncated: it decodes to 0.40 s",
            started_at=now,
            ended_at=now,
            outputs=[f"oss://{BUCKET}/{key}" for key in outputs],
            now=now,
        )
    return Dashboard(
        ledger,
        ledger_url=url,
        oss=OssAdapter(
            endpoint=server.url, credentials=Credentials(account.access_key_id, account.access_key_secret)
        ),
        pipeline_path=None,
        stuck_after=timedelta(minutes=15),
    )


@pytest.fixture
def client(dashboard: Dashboard) -> TestClient:
    return TestClient(create_app(dashboard), base_url="http://127.0.0.1:9419")


def test_the_run_page_shows_the_failure_with_its_fix_and_a_deleted_output(client: TestClient) -> None:
    page = client.get("/runs/run-1")
    assert page.status_code == 200
    assert "InvalidArgument" in page.text and "What to do: The uploaded media is cut off" in page.text
    assert "deleted since the run" in page.text  # out/clip/gone.jpg was never written


def test_objects_stream_with_ranges_as_a_video_player_asks(client: TestClient) -> None:
    uri = f"oss://{BUCKET}/out/clip/web.mp4"
    whole = client.get("/runs/run-1/object", params={"uri": uri})
    assert whole.status_code == 200 and whole.content == VIDEO
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    part = client.get("/runs/run-1/object", params={"uri": uri}, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == VIDEO[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(VIDEO)}"
    tail = client.get("/runs/run-1/object", params={"uri": uri}, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == VIDEO[-10:]
    assert (
        client.get("/runs/run-1/object", params={"uri": uri}, headers={"Range": "bytes=99999-"}).status_code
        == 416
    )


def test_only_the_runs_own_objects_are_served(client: TestClient) -> None:
    secret = client.get("/runs/run-1/object", params={"uri": f"oss://{BUCKET}/private/secret.txt"})
    assert secret.status_code == 404 and b"not for the dashboard" not in secret.content
    gone = client.get("/runs/run-1/object", params={"uri": f"oss://{BUCKET}/out/clip/gone.jpg"})
    assert gone.status_code == 410


def test_an_unknown_run_is_a_404_page_with_a_search_box(client: TestClient) -> None:
    page = client.get("/runs/nope")
    assert page.status_code == 404 and 'name="key"' in page.text


def test_filters_and_the_live_fragment(client: TestClient) -> None:
    assert 'data-run="run-1"' in client.get("/", params={"state": "failed"}).text
    assert 'data-run="run-1"' not in client.get("/", params={"state": "succeeded"}).text
    assert 'data-run="run-1"' in client.get("/", params={"key": "CLIP"}).text
    assert 'data-run="run-1"' not in client.get("/", params={"key": "other"}).text
    fragment = client.get("/fragments/runs").json()
    assert fragment["runs"] == ["run-1"] and fragment["counts"]["failed"] == 1


def test_a_foreign_host_is_refused_and_a_token_opens_another_address(dashboard: Dashboard) -> None:
    rebinding = TestClient(create_app(dashboard), base_url="http://evil.example:9419")
    assert rebinding.get("/").status_code == 403
    assert rebinding.get("/healthz").text == "ok"  # liveness only
    shared = TestClient(create_app(dashboard, Access(token="t0ken")), base_url="http://10.0.0.5:9419")
    assert shared.get("/").status_code == 401
    assert shared.get("/", params={"token": "t0ken"}).status_code == 200
    assert shared.get("/runs/run-1").status_code == 200  # the cookie set by the first visit


def test_an_unreachable_ledger_is_a_banner_naming_the_url_without_its_password(
    dashboard: Dashboard, tmp_path: Path
) -> None:
    url = "postgresql+psycopg://immflow:hunter2@127.0.0.1:1/immflow"
    broken = Dashboard(
        Ledger(url), ledger_url=url, oss=dashboard.oss, pipeline_path=None, stuck_after=timedelta(minutes=15)
    )
    page = TestClient(create_app(broken), base_url="http://127.0.0.1:9419").get("/")
    assert page.status_code == 503
    assert "immflow:***@127.0.0.1:1" in page.text and "hunter2" not in page.text


def test_a_superseded_run_says_so_and_names_the_run_that_replaced_it(
    oss: tuple[ServiceServer, Account], tmp_path: Path
) -> None:
    server, account = oss
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    ledger = Ledger(url)
    now = utcnow()
    upload = NewRun("", BUCKET, "in/pic.png", "A", "ObjectCreated:PutObject", now, request_id="r1")
    first = ledger.start_run(upload, now=now).run
    second = ledger.start_run(
        upload._replace(etag="B", upload_time=now + timedelta(seconds=1), request_id="r2"), now=now
    ).run
    assert first is not None and second is not None
    ledger.finish_run(first.run_id, manifest_uri=f"oss://{BUCKET}/m/1.json", now=now)
    assert ledger.supersede_run(first.run_id, by=second.run_id, now=now)
    dashboard = Dashboard(
        ledger,
        ledger_url=url,
        oss=OssAdapter(
            endpoint=server.url, credentials=Credentials(account.access_key_id, account.access_key_secret)
        ),
        pipeline_path=None,
        stuck_after=timedelta(minutes=15),
    )
    client = TestClient(create_app(dashboard), base_url="http://127.0.0.1:9419")
    page = client.get(f"/runs/{first.run_id}")
    assert page.status_code == 200
    assert '<span class="state superseded" id="run-state">superseded</span>' in page.text
    assert f'href="/runs/{second.run_id}"' in page.text
    assert client.get("/fragments/runs").json()["counts"]["superseded"] == 1
    assert f'data-run="{first.run_id}"' in client.get("/", params={"state": "superseded"}).text
