"""FileCompression, FileUncompression, ArchiveFileInspection, ImageSplicing and ImageToPDF for real."""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
import zipfile
from pathlib import Path

from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from immflow.events.imm import ImmTaskResult
from PIL import Image
from pypdf import PdfReader

from tests.support.cloud import Cloud
from tests.support.imm import PROJECT, Inbox, MakeImm, outbox_empty
from tests.support.wait import wait_until


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def _keys(cloud: Cloud, prefix: str) -> list[str]:
    return sorted(o.key for o in cloud.bucket.list_objects(prefix, max_keys=1000).object_list)


def _wait(inbox: Inbox, task_id: str) -> ImmTaskResult:
    return inbox.wait(task_id).content


def test_compression_rules_and_aliases(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    for key in ("zip-src/docs/a.txt", "zip-src/docs/sub/b.txt", "zip-src/one.jpg"):
        cloud.bucket.put_object(key, key.encode())
    Rule = models.CreateFileCompressionTaskRequestSources
    request = models.CreateFileCompressionTaskRequest(
        project_name=PROJECT,
        sources=[
            Rule(uri=cloud.uri("zip-src/docs/")),
            Rule(uri=cloud.uri("zip-src/docs/"), alias="/copy/"),
            Rule(uri=cloud.uri("zip-src/one.jpg"), mode="fullname", alias="/renamed.jpg"),
            Rule(uri=cloud.uri("zip-src/docs/sub/b.txt"), mode="fullname", alias="/"),
        ],
        target_uri="oss://{bucket}/zips/bundle.zip",
        notification=notify,
    )
    result = _wait(inbox, imm.create_file_compression_task(request).body.task_id)
    assert result.Status == "Succeeded", result.Message
    assert result.TargetURI == cloud.uri("zips/bundle.zip")
    with zipfile.ZipFile(io.BytesIO(cloud.bucket.get_object("zips/bundle.zip").read())) as archive:
        assert sorted(archive.namelist()) == sorted(
            [
                "zip-src/docs/a.txt",
                "zip-src/docs/sub/b.txt",
                "copy/a.txt",
                "copy/sub/b.txt",
                "renamed.jpg",
                "b.txt",
            ]
        )
        assert archive.read("renamed.jpg") == b"zip-src/one.jpg"

    cloud.bucket.put_object(
        "zip-src/manifest.json",
        json.dumps([{"URI": cloud.uri("zip-src/one.jpg"), "Mode": "fullname"}]).encode(),
    )
    from_manifest = models.CreateFileCompressionTaskRequest(
        project_name=PROJECT,
        source_manifest_uri=cloud.uri("zip-src/manifest.json"),
        target_uri=cloud.uri("zips/manifest.zip"),
        notification=notify,
    )
    assert _wait(inbox, imm.create_file_compression_task(from_manifest).body.task_id).Status == "Succeeded"
    with zipfile.ZipFile(io.BytesIO(cloud.bucket.get_object("zips/manifest.zip").read())) as archive:
        assert archive.namelist() == ["zip-src/one.jpg"]


def test_uncompression_of_zip_tar_and_gz(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    cloud.bucket.put_object(
        "arc/set.zip", _zip({"a/1.txt": b"1", "a/2.txt": b"2", "b/3.txt": b"3", "../evil.txt": b"x"})
    )
    request = models.CreateFileUncompressionTaskRequest(
        project_name=PROJECT,
        source_uri=cloud.uri("arc/set.zip"),
        target_uri=cloud.uri("unzipped/set"),
        selected_files=["a/", "../evil.txt"],
        notification=notify,
    )
    result = _wait(inbox, imm.create_file_uncompression_task(request).body.task_id)
    assert result.Status == "Succeeded", result.Message
    assert _keys(cloud, "unzipped/set/") == ["unzipped/set/a/1.txt", "unzipped/set/a/2.txt"]
    assert _keys(cloud, "unzipped/evil") == [] and _keys(cloud, "evil") == []

    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:gz") as archive:
        info = tarfile.TarInfo("docs/readme.md")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))
    cloud.bucket.put_object("arc/docs.tar.gz", tar_bytes.getvalue())
    default_folder = models.CreateFileUncompressionTaskRequest(
        project_name=PROJECT, source_uri=cloud.uri("arc/docs.tar.gz"), notification=notify
    )
    assert _wait(inbox, imm.create_file_uncompression_task(default_folder).body.task_id).Status == "Succeeded"
    assert cloud.bucket.get_object("arc/docs.tar/docs/readme.md").read() == b"hello"

    cloud.bucket.put_object("arc/log.txt.gz", gzip.compress(b"line\n" * 10))
    single = models.CreateFileUncompressionTaskRequest(
        project_name=PROJECT,
        source_uri=cloud.uri("arc/log.txt.gz"),
        target_uri=cloud.uri("gunzipped/"),
        notification=notify,
    )
    assert _wait(inbox, imm.create_file_uncompression_task(single).body.task_id).Status == "Succeeded"
    assert cloud.bucket.get_object("gunzipped/log.txt").read() == b"line\n" * 10

    cloud.bucket.put_object("arc/not-an-archive.zip", b"plain text")
    bad = models.CreateFileUncompressionTaskRequest(
        project_name=PROJECT, source_uri=cloud.uri("arc/not-an-archive.zip"), notification=notify
    )
    failed = _wait(inbox, imm.create_file_uncompression_task(bad).body.task_id)
    assert (failed.Status, failed.Code) == ("Failed", "InvalidArgument") and "rar and 7z" in failed.Message


def lying_zip() -> bytes:
    """``a.txt`` (100 bytes), then ``b.txt`` whose headers declare 10 bytes for 100,000 of data."""
    data = bytearray(_zip({"a.txt": b"a" * 100, "b.txt": b"b" * 100_000}))
    central = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    struct.pack_into("<I", data, central + 24, 10)
    local = data.find(b"PK\x03\x04", 4)
    struct.pack_into("<I", data, local + 22, 10)
    return bytes(data)


def test_an_entry_never_writes_past_what_it_declares_and_earlier_entries_stay(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    cloud.bucket.put_object("arc/lying.zip", lying_zip())
    request = models.CreateFileUncompressionTaskRequest(
        project_name=PROJECT,
        source_uri=cloud.uri("arc/lying.zip"),
        target_uri=cloud.uri("lying/"),
        notification=notify,
    )
    failed = _wait(inbox, imm.create_file_uncompression_task(request).body.task_id)
    assert (failed.Status, failed.Code) == ("Failed", "InvalidArgument") and "b.txt" in failed.Message
    # Streaming extraction, as IMM's: what was written before the failure stays; nothing of b.txt.
    assert _keys(cloud, "lying/") == ["lying/a.txt"]


def test_more_entries_than_imm_allows_fail_before_anything_is_written(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for n in range(80_001):
            archive.writestr(f"{n}", b"")
    cloud.bucket.put_object("arc/many.zip", out.getvalue())
    request = models.CreateFileUncompressionTaskRequest(
        project_name=PROJECT,
        source_uri=cloud.uri("arc/many.zip"),
        target_uri=cloud.uri("many/"),
        notification=notify,
    )
    failed = _wait(inbox, imm.create_file_uncompression_task(request).body.task_id)
    assert (failed.Status, failed.Code) == ("Failed", "InvalidArgument") and "80000 entries" in failed.Message
    assert _keys(cloud, "many/") == []


def test_archive_inspection_lists_entries(cloud: Cloud, imm: Client, inbox: Inbox) -> None:
    cloud.bucket.put_object("arc/inspect.zip", _zip({"x/1.bin": b"12345", "y.txt": b"ab"}))
    notification = models.Notification(
        mns=models.MNS(topic_name="imm-done"), extended_message_uri=cloud.uri("arc/inspect.json")
    )
    request = models.CreateArchiveFileInspectionTaskRequest(
        project_name=PROJECT, source_uri=cloud.uri("arc/inspect.zip"), notification=notification
    )
    result = _wait(inbox, imm.create_archive_file_inspection_task(request).body.task_id)
    assert result.Status == "Succeeded", result.Message
    content = result.model_dump()
    assert content["FileCount"] == 2 and content["TotalSize"] == 7
    assert [(f["Path"], f["Size"]) for f in content["Files"]] == [("x/1.bin", 5), ("y.txt", 2)]
    extended = json.loads(cloud.bucket.get_object("arc/inspect.json").read())
    assert extended["Files"] == content["Files"]


def _png(size: tuple[int, int], color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def test_image_splicing_and_image_to_pdf(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    cloud.bucket.put_object("pics/a.png", _png((100, 50), "red"))
    cloud.bucket.put_object("pics/b.png", _png((40, 40), "blue"))
    Source = models.CreateImageSplicingTaskRequestSources
    request = models.CreateImageSplicingTaskRequest(
        project_name=PROJECT,
        sources=[Source(uri=cloud.uri("pics/a.png")), Source(uri=cloud.uri("pics/b.png"), rotate=90)],
        target_uri="oss://{bucket}/spliced/{barename}.png",
        direction="horizontal",
        align=50,
        padding=4,
        margin=3,
        image_format="png",
        background_color="#00FF00",
        notification=notify,
    )
    result = _wait(inbox, imm.create_image_splicing_task(request).body.task_id)
    assert result.Status == "Succeeded", result.Message
    spliced = Image.open(io.BytesIO(cloud.bucket.get_object("spliced/a.png").read()))
    assert spliced.size == (100 + 4 + 50 + 2 * 3, 50 + 2 * 3)
    assert spliced.convert("RGB").getpixel((1, 1)) == (0, 255, 0)
    assert spliced.convert("RGB").getpixel((110, 20)) == (0, 0, 255)

    PdfSource = models.CreateImageToPDFTaskRequestSources
    pdf_request = models.CreateImageToPDFTaskRequest(
        project_name=PROJECT,
        sources=[PdfSource(uri=cloud.uri("pics/a.png"), rotate=90), PdfSource(uri=cloud.uri("pics/b.png"))],
        target_uri=cloud.uri("pdfs/pics.pdf"),
        notification=notify,
    )
    assert _wait(inbox, imm.create_image_to_pdftask(pdf_request).body.task_id).Status == "Succeeded"
    pages = PdfReader(io.BytesIO(cloud.bucket.get_object("pdfs/pics.pdf").read())).pages
    assert len(pages) == 2
    assert (round(float(pages[0].mediabox.width)), round(float(pages[0].mediabox.height))) == (50, 100)


def test_a_result_too_big_for_mns_is_notified_with_its_common_fields(
    cloud: Cloud, imm: Client, inbox: Inbox
) -> None:
    names = [f"a-folder-with-a-rather-long-name/entry-number-{index:04d}-padded.txt" for index in range(800)]
    cloud.bucket.put_object("arc/many.zip", _zip(dict.fromkeys(names, b"x")))
    notification = models.Notification(
        mns=models.MNS(topic_name="imm-done"), extended_message_uri=cloud.uri("arc/many.json")
    )
    request = models.CreateArchiveFileInspectionTaskRequest(
        project_name=PROJECT, source_uri=cloud.uri("arc/many.zip"), notification=notification
    )
    task_id = imm.create_archive_file_inspection_task(request).body.task_id
    # It arrives at once (the whole result would be ~120 KB, more than MNS's 64 KB) ...
    result = inbox.wait(task_id, timeout=30).content
    [body] = inbox.raw[task_id]
    assert len(body.encode()) <= 65536
    # ... with the status and the other common fields, and without the listing ...
    assert (result.Status, result.TaskType, result.StartTime is not None) == (
        "Succeeded",
        "ArchiveFileInspection",
        True,
    )
    assert "Files" not in result.model_dump()
    # ... which the ExtendedMessageURI file holds in full.
    extended = json.loads(cloud.bucket.get_object("arc/many.json").read())
    assert [entry["Path"] for entry in extended["Files"]] == names


def test_a_notification_mns_refuses_for_good_is_not_retried(
    cloud: Cloud, make_imm: MakeImm, tmp_path: Path
) -> None:
    from mns.topic import TopicMeta

    topic = "imm-tiny-topic"
    meta = TopicMeta()
    meta.set_maximum_message_size(1024)  # smaller than any notification: MNS answers InvalidArgument
    cloud.mns.get_topic(topic).create(meta)
    extra = make_imm()
    cloud.bucket.put_object("arc/small.zip", _zip({f"entry-{index}.txt": b"a" for index in range(20)}))
    request = models.CreateArchiveFileInspectionTaskRequest(
        project_name=PROJECT,
        source_uri=cloud.uri("arc/small.zip"),
        notification=models.Notification(mns=models.MNS(topic_name=topic)),
    )
    task_id = extra.client.create_archive_file_inspection_task(request).body.task_id
    request = models.GetTaskRequest(project_name=PROJECT, task_type="ArchiveFileInspection", task_id=task_id)

    def settled() -> bool:
        task = extra.client.get_task(request).body
        return bool(task.status == "Succeeded" and outbox_empty(tmp_path / "imm-0"))

    # The notification is dropped after its one refused attempt, not left to be retried for ever.
    wait_until(settled, 20, "the task succeeded and its notification left the outbox")
