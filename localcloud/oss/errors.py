"""OSS errors as the service reports them: an HTTP status, a code, a message, extra elements.

Codes and messages are the ones OSS documents (help "HTTP status code 4xx" pages) so that oss2
maps each to the same exception class it raises against the cloud.
"""

from __future__ import annotations

from xml.sax.saxutils import escape


class OssError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        #: Further ``<Name>value</Name>`` elements of the error XML (BucketName, Key, ...).
        self.extra = extra
        #: Response headers that go with the error (e.g. ``x-oss-next-append-position``).
        self.headers: dict[str, str] = {}

    def to_xml(self, request_id: str, host_id: str) -> bytes:
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>',
            f"<Code>{escape(self.code)}</Code>",
            f"<Message>{escape(self.message)}</Message>",
            f"<RequestId>{request_id}</RequestId>",
            f"<HostId>{escape(host_id)}</HostId>",
        ]
        parts += [f"<{name}>{escape(value)}</{name}>" for name, value in self.extra.items()]
        parts.append("</Error>\n")
        return "".join(parts).encode()


def no_such_bucket(bucket: str) -> OssError:
    return OssError(404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=bucket)


def no_such_key(key: str) -> OssError:
    return OssError(404, "NoSuchKey", "The specified key does not exist.", Key=key)


def no_such_upload(upload_id: str) -> OssError:
    return OssError(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, "
        "or the upload may have been aborted or completed.",
        UploadId=upload_id,
    )


def invalid_argument(message: str, name: str, value: str) -> OssError:
    return OssError(400, "InvalidArgument", message, ArgumentName=name, ArgumentValue=value)


def malformed_xml(detail: str) -> OssError:
    return OssError(
        400,
        "MalformedXML",
        f"The XML you provided was not well-formed or did not validate against our published schema ({detail}).",
    )


def not_implemented(action: str) -> OssError:
    return OssError(501, "NotImplemented", f"{action} is not implemented locally by immflow's local OSS")


def entity_too_large(size: int, limit: int) -> OssError:
    return OssError(
        400,
        "EntityTooLarge",
        f"Your proposed upload exceeds the maximum allowed size: the body has {size} bytes or more, "
        f"this request takes at most {limit}.",
        MaxSizeAllowed=str(limit),
        ProposedSize=str(size),
    )


def incomplete_body(detail: str) -> OssError:
    return OssError(
        400,
        "IncompleteBody",
        f"You did not provide the number of bytes specified by the Content-Length HTTP header ({detail}).",
    )
