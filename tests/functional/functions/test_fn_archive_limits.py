"""FileUncompression limits through the handlers and the local cloud: a zip over its task's limits is
recorded Failed before IMM is asked, from its central directory alone; a zip that fails midway in
IMM leaves partial outputs, and the manifest lists them as such."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from typing import Any

import pytest
from immflow.archives import LIMIT_EXCEEDED

from tests.support.handlers import Harness

BOTH_LEDGERS = pytest.mark.parametrize(
    "harness", ["python3.12-tablestore", "python3.10-sqlite"], indirect=True
)


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def lying_zip() -> bytes:
    """``a.txt`` (100 bytes), then ``b.txt`` whose headers declare 10 bytes for 100,000 of data: IMM
    writes a.txt, then fails on b.txt."""
    data = bytearray(_zip({"a.txt": b"a" * 100, "b.txt": b"b" * 100_000}))
    central = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    struct.pack_into("<I", data, central + 24, 10)
    local = data.find(b"PK\x03\x04", 4)
    struct.pack_into("<I", data, local + 22, 10)
    return bytes(data)


def _only_task(harness: Harness, key: str, data: bytes) -> tuple[dict[str, Any], str]:
    summary = harness.on_upload(harness.put(key, data))
    [run] = harness.ledger.list_runs(source=f"oss://fn-media/{key}")
    return summary, run.run_id


@BOTH_LEDGERS
def test_a_zip_over_its_limits_is_failed_before_imm_is_asked(harness: Harness) -> None:
    bomb = _zip({"zeros.bin": bytes(5_000_000)})
    assert len(bomb) < 10_000
    summary, run_id = _only_task(harness, harness.key("bombs", "bomb.zip"), bomb)
    assert summary["started"] == [] and summary["failed"] == 1
    [task] = harness.ledger.tasks_of_run(run_id)
    assert (task.status, task.code, task.task_id) == ("Failed", LIMIT_EXCEEDED, None)
    assert "5,000,000 bytes" in task.message and "1,000,000 bytes (max_uncompressed_size)" in task.message
    assert "rule 'bombs', task 'unzip'" in task.message and "pipeline.yaml" in task.message
    run = harness.ledger.get_run(run_id)
    assert run is not None and run.status == "Done"  # nothing left open: the manifest says why
    manifest = json.loads(harness.cloud.bucket.get_object(f"immflow/manifests/{run_id}.json").read())
    assert manifest["succeeded"] is False and manifest["tasks"][0]["code"] == LIMIT_EXCEEDED

    many = _zip({f"{n}.txt": b"x" for n in range(4)})
    _, many_run = _only_task(harness, harness.key("bombs", "many.zip"), many)
    [task] = harness.ledger.tasks_of_run(many_run)
    assert task.code == LIMIT_EXCEEDED and "4 entries, more than the limit of 3 (max_entries)" in task.message
    assert harness.cloud.bucket.list_objects(f"processed/uploads/bombs/{harness.prefix}/").object_list == []


@BOTH_LEDGERS
def test_what_a_failed_extraction_left_is_in_the_manifest_as_partial(harness: Harness) -> None:
    key = harness.key("bombs", "lying.zip")
    summary, run_id = _only_task(harness, key, lying_zip())
    assert len(summary["started"]) == 1  # its declared 110 bytes are within the limits
    harness.run_to_end(run_id)
    [task] = harness.ledger.tasks_of_run(run_id)
    folder = f"oss://fn-media/processed/uploads/bombs/{harness.prefix}/lying"
    assert (task.status, task.outputs) == ("Failed", [f"{folder}/a.txt"])
    manifest = json.loads(harness.cloud.bucket.get_object(f"immflow/manifests/{run_id}.json").read())
    [written] = manifest["tasks"][0]["output_objects"]
    assert written["uri"] == f"{folder}/a.txt" and written["size"] == 100 and written["partial"] is True
