"""The import diet (`immflow.imports`) keeps every SDK call the functions make working.

Each test runs a fresh interpreter (the test process has imported the SDKs whole already) with the
diet installed, against the local OSS, IMM and Tablestore: every IMM, OSS and Tablestore call the
functions make, their error paths, then an asynchronous IMM call. It checks that the synchronous
calls left every deferred module unloaded (an SDK upgrade that starts needing one fails here, not as
a slower function) and that the asynchronous call, which needs aiohttp, loads it and works.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from immflow import imports

from tests.support.cloud import start_cloud

ROOT = Path(__file__).resolve().parents[2]

NATIVE_STATE = r"""
def native_state():
    # What tablestore decided at import: its encoder, decoder and C++ client, and the word size it read.
    import tablestore.decoder, tablestore.encoder, tablestore.ots_sdk
    from tablestore.plainbuffer.plain_buffer_consts import const
    return [tablestore.encoder.NATIVE_ENCODER_AVAILABLE, tablestore.decoder.NATIVE_DECODER_AVAILABLE,
            tablestore.ots_sdk.OTS_SDK_AVAILABLE, const.SYS_BITS]
"""

SCRIPT = (
    NATIVE_STATE
    + r"""
import json, os, sys
from datetime import datetime, timedelta, timezone

from immflow import imports

imports.install()

import platform
file_runs = []  # what `platform` asks the `file` command
_real_file = platform._syscmd_file
platform._syscmd_file = lambda *args, **kwargs: (file_runs.append(args), _real_file(*args, **kwargs))[1]

from immflow.adapters import ServiceError
from immflow.adapters.imm import ImmAdapter
from immflow.adapters.oss import OssAdapter
from immflow.fc import Credentials
from immflow.ledger import Ledger, NewRun, NewTask, TaskQuery
from immflow.ossuri import OssUri

keys = Credentials(os.environ["KEY_ID"], os.environ["KEY_SECRET"])
imm = ImmAdapter(endpoint=os.environ["IMM"], region="cn-hangzhou", credentials=keys)
oss = OssAdapter(endpoint=os.environ["OSS"], credentials=keys)
done = {}

# OSS: what on_task_done, the manifests and the dashboard call
oss.put_json(OssUri("diet", "immflow/manifests/run.json"), {"ok": True})
done["list"] = [str(o.uri) for o in oss.list_objects(OssUri("diet", "immflow/"))]
done["head"] = oss.head(OssUri("diet", "immflow/manifests/run.json")).size
done["head_missing"] = oss.head(OssUri("diet", "nothing-here"))
done["modified"] = oss.last_modified(OssUri("diet", "in/a.png")).year
done["range"] = b"".join(oss.read_range(OssUri("diet", "in/a.png"), 0, 3)).hex()
try:
    oss.list_objects(OssUri("no-such-bucket-diet", ""))
except ServiceError as exc:
    done["oss_error"] = exc.code

# IMM: create, confirm, find, and the error paths
created = imm.create_task(
    "CreateImageSplicingTask",
    {"ProjectName": "diet", "Sources": [{"URI": "oss://diet/in/a.png"}],
     "TargetURI": "oss://diet/out/a.jpg", "UserData": "diet"},
)
done["get"] = imm.get_task("diet", "ImageSplicing", created.task_id)["TaskId"] == created.task_id
found = imm.find_listed_task(
    "diet", "ImageSplicing", started_since=datetime.now(timezone.utc) - timedelta(hours=1),
    matches=lambda task: task.get("TaskId") == created.task_id,
)
done["found"] = found is not None
try:
    imm.get_task("diet", "ImageSplicing", "no-such-task")
except ServiceError as exc:
    done["imm_error"] = exc.code
try:
    ImmAdapter(endpoint=os.environ["IMM"], region="cn-hangzhou",
               credentials=Credentials(keys.access_key_id, "wrong")).get_task("diet", "ImageSplicing", "x")
except ServiceError as exc:
    done["imm_auth_error"] = exc.code

# Tablestore: the ledger's rows, and its error path (a table that does not exist)
ledger = Ledger("tablestore://immflow", endpoint=os.environ["OTS"], credentials=keys)
ledger.create_schema()
now = datetime.now(timezone.utc)
run = ledger.ensure_run(
    NewRun(run_id="diet-run", bucket="diet", key="in/a.png", etag="E", event_name="ObjectCreated:PutObject",
           upload_time=now), now=now,
)
done["run"] = ledger.get_run(run.run_id).run_id
done["tasks"] = len(ledger.list_tasks(TaskQuery()))
try:
    Ledger("tablestore://missing-instance", endpoint=os.environ["OTS"], credentials=keys).get_run("x")
except Exception as exc:
    done["ots_error"] = type(exc).__name__

# The SQL ledger on SQLite: a new upload's run and claimed task, as on_upload records them
sql_ledger = Ledger("sqlite:///" + os.environ["SQLITE_FILE"])
sql_ledger.create_schema()
sql_start = sql_ledger.start_run(
    NewRun(run_id="", bucket="diet", key="in/a.png", etag="E", event_name="ObjectCreated:PutObject",
           upload_time=now), now=now,
)
sql_task = NewTask(claim_key="diet-claim", run_id=sql_start.run.run_id, rule="r", task_name="t",
                   task_type="ImageSplicing", action="CreateImageSplicingTask", parent_task_id=None, depth=1,
                   sources=["oss://diet/in/a.png"], tags={}, user_data="", request={})
sql_claim = sql_ledger.claim_task(sql_task, now=now, expires_at=now + timedelta(minutes=1), new_run=True)
done["sql"] = sql_ledger.mark_created(sql_claim.task.claim_key, task_id="T-1", now=now).status

# The functions' log lines (Powertools' Logger), an exception's included
from immflow.logging import correlation, logger, start_invocation
start_invocation("diet")
with correlation(run_id="diet-run"):
    logger.info("diet", extra={"n": 1})
    try:
        raise ValueError("diet")
    except ValueError:
        logger.warning("diet", exc_info=True)

done["unloaded_after_sync"] = imports.deferred_and_unloaded()
done["file_runs"] = len(file_runs)
done["tablestore_native"] = native_state()

# One asynchronous call: it needs asyncio and aiohttp, which load now.
import asyncio
from alibabacloud_imm20200930 import models

async def get_async():
    response = await imm.client.get_task_async(
        models.GetTaskRequest(project_name="diet", task_type="ImageSplicing", task_id=created.task_id)
    )
    return response.body.task_id

done["async"] = asyncio.run(get_async()) == created.task_id
done["unloaded_after_async"] = imports.deferred_and_unloaded()
print(json.dumps(done))
"""
)


@pytest.fixture
def environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The test cloud with a bucket ``diet`` holding a PNG and an IMM project ``diet``, as the
    variables the script reads."""
    from alibabacloud_imm20200930 import models
    from PIL import Image

    with start_cloud(tmp_path, "diet") as cloud:
        png = io.BytesIO()
        Image.new("RGB", (8, 8), (1, 2, 3)).save(png, format="PNG")
        cloud.bucket.put_object("in/a.png", png.getvalue())
        cloud.imm.create_project(models.CreateProjectRequest(project_name="diet"))
        yield {
            "KEY_ID": cloud.account.access_key_id,
            "KEY_SECRET": cloud.account.access_key_secret,
            "IMM": cloud.imm_endpoint,
            "OSS": cloud.oss_url,
            "OTS": cloud.ots_url,
            "SQLITE_FILE": str(tmp_path / "ledger.db"),
        }


def test_every_sdk_call_of_the_functions_works_with_the_sdks_unused_modules_deferred(
    environment: dict[str, str],
) -> None:
    env = {**os.environ, **environment, "PYTHONPATH": str(ROOT / "shared")}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", SCRIPT], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["list"] == ["oss://diet/immflow/manifests/run.json"]
    assert result["head"] > 0 and result["head_missing"] is None
    assert result["modified"] >= 2024 and result["range"] == "89504e47"  # the PNG signature
    assert result["oss_error"] == "NoSuchBucket"
    assert result["get"] and result["found"]
    assert result["imm_error"].startswith("ResourceNotFound")
    assert result["imm_auth_error"] not in ("", "Unknown")
    assert result["run"] == "diet-run" and result["tasks"] == 0
    assert result["sql"] == "Running"
    assert result["ots_error"] == "LedgerError" or result["ots_error"].startswith("OTS")
    # Every deferred module the SDKs imported stayed unloaded through the synchronous calls ...
    assert {
        "aiohttp",
        "asyncio",
        "apscheduler.schedulers.background",
        "cryptography.hazmat.primitives.serialization",
        "cryptography.hazmat.primitives.hashes",
        "darabonba.websocket",
        "alibabacloud_tea_openapi.websocket_utils",
        "Crypto.Cipher.AES",
        "Crypto.PublicKey.RSA",
        "aliyunsdkcore.client",
        "numpy",
        "crc32c",
        "importlib.metadata",
        "google.protobuf.text_format",
        "aws_lambda_powertools.metrics",
        "aws_lambda_powertools.tracing",
        "aws_lambda_powertools.utilities.jmespath_utils",
    } <= set(result["unloaded_after_sync"])
    # tablestore ran without the `file` command, and chose what it chooses without the diet.
    assert result["file_runs"] == 0
    assert result["tablestore_native"] == _native_state_without_the_diet()
    # ... and the asynchronous call loaded what it needs and worked.
    assert result["async"]
    assert "aiohttp" not in result["unloaded_after_async"]
    assert "asyncio" not in result["unloaded_after_async"]


GC_SCRIPT = r"""
import gc, json
from immflow import imports
imports.install()
paused = not gc.isenabled()

@imports.cold_start
def handler(event, context):
    return gc.isenabled()

during = handler(b"", None)
print(json.dumps({"paused": paused, "during_first": during, "after": gc.isenabled(),
                  "frozen": gc.get_freeze_count() > 0, "second": handler(b"", None)}))
"""


def test_the_collector_is_paused_until_the_first_invocation_ends() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
    done = subprocess.run([sys.executable, "-c", GC_SCRIPT], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "paused": True,
        "during_first": False,
        "after": True,
        "frozen": True,
        "second": True,
    }


PLUGINS_SCRIPT = r"""
import json, os
from immflow import imports
imports.install()
from pydantic import BaseModel

class Event(BaseModel):
    key: str

Event.model_validate({"key": "a"})
print(json.dumps({"variable": os.environ.get("PYDANTIC_DISABLE_PLUGINS"),
                  "unloaded": imports.deferred_and_unloaded()}))
"""


@pytest.mark.parametrize(("preset", "expected"), [(None, "__all__"), ("", "")])
def test_pydantic_looks_for_no_plugins_in_a_function_unless_told_to(
    preset: str | None, expected: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    if preset is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = preset
    done = subprocess.run([sys.executable, "-c", PLUGINS_SCRIPT], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["variable"] == expected
    # Off, the search never reads the installed distributions: importlib.metadata stays unloaded.
    assert ("importlib.metadata" in result["unloaded"]) == (expected == "__all__")


def _native_state_without_the_diet() -> list[object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            "-c",
            NATIVE_STATE + "import json; print(json.dumps(native_state()))",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    state: list[object] = json.loads(done.stdout.strip().splitlines()[-1])
    return state


@pytest.mark.parametrize("module", sorted(imports.NATIVE_BUILT_FOR))
def test_a_native_extension_the_diet_refuses_does_refuse_this_interpreter(module: str) -> None:
    """`imports.NATIVE_BUILT_FOR` is the SDK's fact, not ours: without the diet, the extension loads on
    the interpreter it names only (an SDK upgrade built for more interpreters fails here)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", f"import {module}"], capture_output=True, text=True, env=env
    )
    built_for = imports.NATIVE_BUILT_FOR[module]
    if sys.version_info[:2] == built_for:
        assert done.returncode == 0, done.stderr[-2000:]
    else:
        assert done.returncode != 0 and "ImportError" in done.stderr, done.stderr[-2000:]
        assert f"{built_for[0]}.{built_for[1]}" in done.stderr
