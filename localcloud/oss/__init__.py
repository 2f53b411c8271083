"""The local OSS server: the OSS REST API for oss2, with FC-trigger-style event notifications."""

from localcloud.oss.service import OssService

__all__ = ["OssService"]
