"""OSS URIs (immflow.ossuri): the only form IMM accepts, and the names of a key's parts."""

from __future__ import annotations

import pytest
from immflow.ossuri import RIGHT_FORM, OssUri, OssUriError, check_bucket_name, check_object_key


def test_parse_and_print_round_trip() -> None:
    uri = OssUri.parse("oss://my-bucket/videos/2024/intro.mp4")
    assert uri == OssUri("my-bucket", "videos/2024/intro.mp4")
    assert str(uri) == "oss://my-bucket/videos/2024/intro.mp4"


@pytest.mark.parametrize(
    ("key", "dirname", "basename", "barename", "ext"),
    [
        ("path1/path2/name.png", "path1/path2", "name.png", "name", "png"),
        ("name.png", "", "name.png", "name", "png"),
        ("dir/README", "dir", "README", "README", ""),
        ("dir/archive.tar.gz", "dir", "archive.tar.gz", "archive.tar", "gz"),
        ("dir/.hidden", "dir", ".hidden", ".hidden", ""),
        ("dir/Photo.JPG", "dir", "Photo.JPG", "Photo", "JPG"),
        ("a/b/c/d.e.f", "a/b/c", "d.e.f", "d.e", "f"),
        ("dir/trailing.", "dir", "trailing.", "trailing", ""),
    ],
)
def test_parts_of_a_key(key: str, dirname: str, basename: str, barename: str, ext: str) -> None:
    uri = OssUri("my-bucket", key)
    assert (uri.dirname, uri.basename, uri.barename, uri.ext) == (dirname, basename, barename, ext)


def test_dirname_has_no_leading_or_trailing_slash() -> None:
    assert OssUri("my-bucket", "a/b/").dirname == "a/b"
    assert OssUri("my-bucket", "a//b.jpg").dirname == "a"


def test_child_keeps_the_bucket() -> None:
    assert OssUri("my-bucket", "a/b.mp4").child("c/d.jpg") == OssUri("my-bucket", "c/d.jpg")


def test_uris_sort_by_bucket_then_key() -> None:
    uris = [OssUri("b-2", "a"), OssUri("b-1", "z"), OssUri("b-1", "a")]
    assert sorted(uris) == [OssUri("b-1", "a"), OssUri("b-1", "z"), OssUri("b-2", "a")]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("http://bucket.oss-cn-hangzhou.aliyuncs.com/test-object/test.docx", "an HTTP URL is not accepted"),
        ("HTTPS://bucket/x.docx", "an HTTP URL is not accepted"),
        ("oss://bucket.oss-cn-hangzhou.aliyuncs.com/test-object/test.docx", "endpoint host"),
        ("oss://bucket.oss-cn-hangzhou-internal.aliyuncs.com/x.docx", "endpoint host"),
        ("oss://bucket.oss.aliyuncs.com/x.docx", "endpoint host"),
        ("s3://bucket/x.docx", "does not start with oss://"),
        ("bucket/x.docx", "does not start with oss://"),
        ("oss://bucket", "no object key after the bucket"),
        ("oss://bucket/", "the object key is empty"),
        ("oss://bucket//x.docx", "must not start with '/'"),
        ("oss://bucket/\\x.docx", "must not start with '/'"),
        ("oss://Bucket/x.docx", "bucket name 'Bucket'"),
        ("oss://my_bucket/x.docx", "bucket name"),
        ("oss://ab/x.docx", "bucket name"),
        ("oss://-bucket/x.docx", "bucket name"),
        ("oss://bucket-/x.docx", "bucket name"),
        ("oss:///x.docx", "bucket name"),
        ("oss://bucket/a/../b.docx", "'..' segment"),
        ("oss://bucket/a\\..\\b.docx", "'..' segment"),
        ("oss://bucket/a\x00b", "NUL"),
        ("oss://bucket/folder/", "names a folder"),
        ("oss://bucket/" + "k" * 1024, "longer than 1023 bytes"),
    ],
)
def test_parse_refuses_with_the_reason_and_the_right_form(text: str, problem: str) -> None:
    with pytest.raises(OssUriError) as caught:
        OssUri.parse(text, field="TargetURI")
    message = str(caught.value)
    assert problem in message
    assert message.startswith("TargetURI: ")
    assert RIGHT_FORM in message
    assert caught.value.field == "TargetURI"
    assert isinstance(caught.value, ValueError)


def test_a_non_string_is_refused() -> None:
    with pytest.raises(OssUriError, match="not a string"):
        OssUri.parse(42)  # type: ignore[arg-type]


def test_key_length_counts_utf8_bytes() -> None:
    assert OssUri.parse("oss://bucket/" + "k" * 1023).key == "k" * 1023
    with pytest.raises(OssUriError, match="1023 bytes"):
        OssUri.parse("oss://bucket/" + "é" * 512)  # 1024 bytes, 512 characters


def test_bucket_name_length_limits() -> None:
    assert check_bucket_name("abc") is None
    assert check_bucket_name("a" * 63) is None
    assert check_bucket_name("a" * 64) is not None
    assert check_bucket_name("ab") is not None


@pytest.mark.parametrize("key", ["a b.jpg", "dir/中文.png", "a+b%41.jpg", "x/./y.jpg", "...", "a..b/c.jpg"])
def test_unusual_but_valid_keys_are_kept_as_written(key: str) -> None:
    assert OssUri.parse(f"oss://bucket/{key}").key == key


def test_prefixes_when_allowed() -> None:
    assert OssUri.parse("oss://bucket/out/", allow_prefix=True) == OssUri("bucket", "out/")
    assert OssUri.parse("oss://bucket/", allow_prefix=True) == OssUri("bucket", "")
    assert OssUri.parse("oss://bucket", allow_prefix=True) == OssUri("bucket", "")
    assert check_object_key("", allow_prefix=True) is None
    assert check_object_key("/out/", allow_prefix=True) is not None
