"""ListMultipartUploads, UploadPartCopy, tagging, symlinks, ACLs, storage classes, RestoreObject and
ListLiveChannel, through oss2 and alibabacloud-oss-v2, including the SDKs' helpers that use them."""

from __future__ import annotations

import os
from pathlib import Path

import alibabacloud_oss_v2 as oss
import oss2
import pytest
from oss2.models import PartInfo, Tagging, TaggingRule

from localcloud.oss import OssService
from tests.support.wait import wait_until

PART = 100 * 1024


# --- ListMultipartUploads ---------------------------------------------------------------------


def test_list_multipart_uploads_pages_prefixes_and_markers(bucket: oss2.Bucket) -> None:
    ids: dict[str, list[str]] = {}
    for key in ["a/1", "a/2", "b", "b", "c/x/1", "d"]:
        ids.setdefault(key, []).append(bucket.init_multipart_upload(key).upload_id)
    listed = bucket.list_multipart_uploads()
    assert [(u.key, u.upload_id) for u in listed.upload_list] == [(k, i) for k in sorted(ids) for i in ids[k]]
    assert not listed.is_truncated
    grouped = bucket.list_multipart_uploads(delimiter="/")
    assert grouped.prefix_list == ["a/", "c/"]
    assert [u.key for u in grouped.upload_list] == ["b", "b", "d"]
    assert [u.key for u in bucket.list_multipart_uploads(prefix="a/").upload_list] == ["a/1", "a/2"]
    first = bucket.list_multipart_uploads(max_uploads=3)
    assert first.is_truncated and [u.key for u in first.upload_list] == ["a/1", "a/2", "b"]
    assert (first.next_key_marker, first.next_upload_id_marker) == ("b", ids["b"][0])
    rest = bucket.list_multipart_uploads(
        key_marker=first.next_key_marker, upload_id_marker=first.next_upload_id_marker
    )
    assert [(u.key, u.upload_id) for u in rest.upload_list] == [
        ("b", ids["b"][1]),
        ("c/x/1", ids["c/x/1"][0]),
        ("d", ids["d"][0]),
    ]
    # oss2's iterator pages with the markers; DeleteBucket's advice (abort them) can now be followed.
    every = list(oss2.MultipartUploadIterator(bucket, max_uploads=2))
    assert len(every) == 6
    for upload in every:
        bucket.abort_multipart_upload(upload.key, upload.upload_id)
    assert bucket.list_multipart_uploads().upload_list == []
    bucket.delete_bucket()


def test_list_multipart_uploads_through_the_v2_paginator(bucket: oss2.Bucket, v2: oss.Client) -> None:
    for key in ["p/1", "p/2", "q"]:
        bucket.init_multipart_upload(key)
    paginator = v2.list_multipart_uploads_paginator(limit=1)
    keys = [
        u.key
        for page in paginator.iter_page(oss.ListMultipartUploadsRequest(bucket=bucket.bucket_name))
        for u in page.uploads or []
    ]
    assert keys == ["p/1", "p/2", "q"]


# --- UploadPartCopy -----------------------------------------------------------------------------


def test_upload_part_copy_with_ranges_and_conditions(bucket: oss2.Bucket) -> None:
    data = os.urandom(3 * PART + 17)
    source = bucket.put_object("src.bin", data)
    upload_id = bucket.init_multipart_upload("dst.bin").upload_id
    name = bucket.bucket_name
    first = bucket.upload_part_copy(name, "src.bin", (0, 2 * PART - 1), "dst.bin", upload_id, 1)
    second = bucket.upload_part_copy(name, "src.bin", (2 * PART, len(data) - 1), "dst.bin", upload_id, 2)
    bucket.complete_multipart_upload(
        "dst.bin", upload_id, [PartInfo(1, first.etag), PartInfo(2, second.etag)]
    )
    assert bucket.get_object("dst.bin").read() == data

    upload_id = bucket.init_multipart_upload("dst2.bin").upload_id
    with pytest.raises(oss2.exceptions.InvalidArgument) as bad_range:
        bucket.upload_part_copy(name, "src.bin", (0, len(data)), "dst2.bin", upload_id, 1)
    assert "x-oss-copy-source-range" in bad_range.value.message
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.upload_part_copy(
            name, "src.bin", None, "dst2.bin", upload_id, 1, headers={"x-oss-copy-source-if-match": '"00"'}
        )
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.upload_part_copy(
            name,
            "src.bin",
            None,
            "dst2.bin",
            upload_id,
            1,
            headers={"x-oss-copy-source-if-none-match": source.etag},
        )
    whole = bucket.upload_part_copy(
        name, "src.bin", None, "dst2.bin", upload_id, 1, headers={"x-oss-copy-source-if-match": source.etag}
    )
    assert bucket.list_parts("dst2.bin", upload_id).parts[0].size == len(data)
    assert whole.etag
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.upload_part_copy(name, "missing.bin", None, "dst2.bin", upload_id, 2)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part_copy(name, "src.bin", None, "dst2.bin", "0" * 32, 2)


def test_complete_refuses_wrong_parts(bucket: oss2.Bucket, v2: oss.Client) -> None:
    upload_id = bucket.init_multipart_upload("m.bin").upload_id
    one = bucket.upload_part("m.bin", upload_id, 1, b"a" * PART)
    two = bucket.upload_part("m.bin", upload_id, 2, b"b")
    # oss2 sorts the parts itself; oss-v2 sends them as given.
    with pytest.raises(oss.exceptions.OperationError) as order:
        v2.complete_multipart_upload(
            oss.CompleteMultipartUploadRequest(
                bucket=bucket.bucket_name,
                key="m.bin",
                upload_id=upload_id,
                complete_multipart_upload=oss.CompleteMultipartUpload(
                    parts=[
                        oss.UploadPart(part_number=2, etag=two.etag),
                        oss.UploadPart(part_number=1, etag=one.etag),
                    ]
                ),
            )
        )
    assert order.value.unwrap().code == "InvalidPartOrder"
    with pytest.raises(oss2.exceptions.ServerError) as part:
        bucket.complete_multipart_upload("m.bin", upload_id, [PartInfo(1, one.etag), PartInfo(2, one.etag)])
    assert part.value.code == "InvalidPart"


def test_oss2_resumable_upload_and_copy(bucket: oss2.Bucket, tmp_path: Path) -> None:
    data = os.urandom(3 * PART + 5)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    store = oss2.ResumableStore(root=str(tmp_path))
    oss2.resumable_upload(
        bucket, "resumable.bin", str(path), store=store, multipart_threshold=PART, part_size=PART
    )
    assert bucket.get_object("resumable.bin").read() == data
    assert bucket.head_object("resumable.bin").object_type == "Multipart"


def test_v2_uploader_and_copier(bucket: oss2.Bucket, v2: oss.Client, tmp_path: Path) -> None:
    data = os.urandom(3 * PART + 11)
    path = tmp_path / "up.bin"
    path.write_bytes(data)
    uploader = v2.uploader(part_size=PART)
    name = bucket.bucket_name
    uploader.upload_file(oss.PutObjectRequest(bucket=name, key="up.bin"), filepath=str(path))
    assert bucket.get_object("up.bin").read() == data

    other = oss2.Bucket(bucket.auth, bucket.endpoint, name + "-x", region=bucket.region)
    other.create_bucket()
    copier = v2.copier(part_size=PART, multipart_copy_threshold=PART, disable_shallow_copy=True)
    copier.copy(
        oss.CopyObjectRequest(
            bucket=other.bucket_name, key="copied.bin", source_bucket=name, source_key="up.bin"
        )
    )
    assert other.get_object("copied.bin").read() == data
    assert other.head_object("copied.bin").object_type == "Multipart"


# --- tagging ------------------------------------------------------------------------------------


def test_object_tagging(bucket: oss2.Bucket, v2: oss.Client) -> None:
    bucket.put_object("t.txt", b"x", headers={"x-oss-tagging": "a=1&b%20c=d%2Fe"})
    assert bucket.get_object_tagging("t.txt").tag_set.tagging_rule == {"a": "1", "b c": "d/e"}
    assert bucket.head_object("t.txt").headers["x-oss-tagging-count"] == "2"
    rule = TaggingRule()
    rule.add("k", "v")
    bucket.put_object_tagging("t.txt", Tagging(rule))
    tags = v2.get_object_tagging(oss.GetObjectTaggingRequest(bucket=bucket.bucket_name, key="t.txt"))
    assert [(t.key, t.value) for t in tags.tag_set.tags] == [("k", "v")]
    # CopyObject copies the tags unless told to replace them.
    bucket.copy_object(bucket.bucket_name, "t.txt", "copy.txt")
    assert bucket.get_object_tagging("copy.txt").tag_set.tagging_rule == {"k": "v"}
    bucket.copy_object(
        bucket.bucket_name,
        "t.txt",
        "replaced.txt",
        headers={"x-oss-tagging-directive": "Replace", "x-oss-tagging": "n=1"},
    )
    assert bucket.get_object_tagging("replaced.txt").tag_set.tagging_rule == {"n": "1"}
    bucket.delete_object_tagging("t.txt")
    assert bucket.get_object_tagging("t.txt").tag_set.tagging_rule == {}

    # oss2 checks lengths before sending; oss-v2 sends what it is given, so the server's checks show.
    for bad in (
        [(f"k{i}", "v") for i in range(11)],
        [("k" * 129, "v")],
        [("k", "v" * 257)],
        [("k", "v<")],
        [("k", "1"), ("k", "2")],
    ):
        with pytest.raises(oss.exceptions.OperationError) as refused:
            v2.put_object_tagging(
                oss.PutObjectTaggingRequest(
                    bucket=bucket.bucket_name,
                    key="t.txt",
                    tagging=oss.Tagging(tag_set=oss.TagSet(tags=[oss.Tag(key=k, value=v) for k, v in bad])),
                )
            )
        error = refused.value.unwrap()
        assert (error.status_code, error.code) == (400, "InvalidTag")
    with pytest.raises(oss2.exceptions.InvalidArgument) as header:
        bucket.put_object("u.txt", b"x", headers={"x-oss-tagging": "a=b=c"})
    assert "x-oss-tagging" in header.value.message
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.get_object_tagging("missing.txt")


# --- symlinks ----------------------------------------------------------------------------------


def test_symlinks(bucket: oss2.Bucket, v2: oss.Client) -> None:
    bucket.put_object("target.txt", b"target bytes", headers={"Content-Type": "text/plain"})
    bucket.put_symlink("target.txt", "link", headers={"x-oss-meta-who": "link"})
    assert bucket.get_symlink("link").target_key == "target.txt"
    got = bucket.get_object("link")
    assert got.read() == b"target bytes"
    assert got.headers["x-oss-object-type"] == "Symlink"
    assert bucket.head_object("link").content_length == len(b"target bytes")
    result = v2.get_symlink(oss.GetSymlinkRequest(bucket=bucket.bucket_name, key="link"))
    assert result.target == "target.txt"
    assert [o.key for o in bucket.list_objects_v2().object_list] == ["link", "target.txt"]

    bucket.put_symlink("nowhere.txt", "dangling")
    with pytest.raises(oss2.exceptions.NoSuchKey) as dangling:
        bucket.get_object("dangling")
    assert "nowhere.txt" in dangling.value.message
    with pytest.raises(oss2.exceptions.NotFound):
        bucket.head_object("dangling")
    bucket.put_symlink("loop-b", "loop-a")
    bucket.put_symlink("loop-a", "loop-b")
    with pytest.raises(oss2.exceptions.ServerError) as loop:
        bucket.get_object("loop-a")
    assert loop.value.status == 400 and "itself a symlink" in loop.value.message
    with pytest.raises(oss2.exceptions.ServerError) as not_link:
        bucket.get_symlink("target.txt")
    assert not_link.value.code == "NotSymlink"


# --- ACLs ---------------------------------------------------------------------------------------


def test_acls_are_stored_and_reported(bucket: oss2.Bucket, v2: oss.Client) -> None:
    assert bucket.get_bucket_acl().acl == "private"
    bucket.put_bucket_acl(oss2.BUCKET_ACL_PUBLIC_READ)
    assert bucket.get_bucket_acl().acl == "public-read"
    bucket.put_object("o", b"x", headers={"x-oss-object-acl": "private"})
    assert bucket.get_object_acl("o").acl == "private"
    bucket.put_object_acl("o", oss2.OBJECT_ACL_PUBLIC_READ)
    result = v2.get_object_acl(oss.GetObjectAclRequest(bucket=bucket.bucket_name, key="o"))
    assert result.acl == "public-read"
    assert bucket.get_object_acl("o").acl == "public-read"
    with pytest.raises(oss2.exceptions.InvalidArgument) as bad:
        bucket.put_object_acl("o", "everyone")
    assert "x-oss-object-acl" in bad.value.message


def test_list_live_channel_is_empty(bucket: oss2.Bucket) -> None:
    assert bucket.list_live_channel().channels == []


# --- storage classes and restore -----------------------------------------------------------------


def test_storage_class_and_restore(bucket: oss2.Bucket, oss_service: OssService) -> None:
    oss_service.restore_delay = 0.3
    bucket.put_object("cold.bin", b"cold", headers={"x-oss-storage-class": "Archive"})
    bucket.put_object("ia.bin", b"warm", headers={"x-oss-storage-class": "IA"})
    assert bucket.head_object("cold.bin").headers["x-oss-storage-class"] == "Archive"
    assert bucket.get_object("ia.bin").read() == b"warm"
    listed = {o.key: o.storage_class for o in bucket.list_objects_v2().object_list}
    assert listed == {"cold.bin": "Archive", "ia.bin": "IA"}
    with pytest.raises(oss2.exceptions.ServerError) as unrestored:
        bucket.get_object("cold.bin")
    assert (unrestored.value.status, unrestored.value.code) == (403, "InvalidObjectState")
    with pytest.raises(oss2.exceptions.ServerError) as copy:
        bucket.copy_object(bucket.bucket_name, "cold.bin", "copy.bin")
    assert copy.value.code == "InvalidObjectState"

    assert bucket.restore_object("cold.bin").status == 202
    assert bucket.head_object("cold.bin").headers["x-oss-restore"] == 'ongoing-request="true"'
    with pytest.raises(oss2.exceptions.ServerError) as again:
        bucket.restore_object("cold.bin")
    assert (again.value.status, again.value.code) == (409, "RestoreAlreadyInProgress")
    with pytest.raises(oss2.exceptions.ServerError):
        bucket.get_object("cold.bin")
    wait_until(
        lambda: bucket.head_object("cold.bin").headers["x-oss-restore"].startswith('ongoing-request="false"'),
        10,
        "the restore done",
    )
    assert (
        bucket.head_object("cold.bin")
        .headers["x-oss-restore"]
        .startswith('ongoing-request="false", expiry-date="')
    )
    assert bucket.get_object("cold.bin").read() == b"cold"
    assert bucket.restore_object("cold.bin").status == 200  # extends the restored copy

    with pytest.raises(oss2.exceptions.ServerError) as standard:
        bucket.restore_object("ia.bin")
    assert standard.value.code == "OperationNotSupported"
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.put_object("x.bin", b"x", headers={"x-oss-storage-class": "Frozen"})


def test_multipart_keeps_storage_class_and_tags(bucket: oss2.Bucket) -> None:
    upload_id = bucket.init_multipart_upload(
        "mp.bin", headers={"x-oss-storage-class": "ColdArchive", "x-oss-tagging": "t=1"}
    ).upload_id
    part = bucket.upload_part("mp.bin", upload_id, 1, b"x")
    bucket.complete_multipart_upload("mp.bin", upload_id, [PartInfo(1, part.etag)])
    assert bucket.head_object("mp.bin").headers["x-oss-storage-class"] == "ColdArchive"
    assert bucket.get_object_tagging("mp.bin").tag_set.tagging_rule == {"t": "1"}
    assert bucket.list_multipart_uploads().upload_list == []


def test_put_acl_without_an_acl_is_refused(bucket: oss2.Bucket) -> None:
    bucket.put_object("o", b"x")
    with pytest.raises(oss2.exceptions.InvalidArgument) as refused:
        bucket.put_object_acl("o", "")
    assert "x-oss-object-acl" in refused.value.message
    with pytest.raises(oss2.exceptions.InvalidArgument) as bucket_refused:
        bucket.put_bucket_acl("")
    assert "x-oss-acl" in bucket_refused.value.message
    assert bucket.get_object_acl("o").acl == "default"
