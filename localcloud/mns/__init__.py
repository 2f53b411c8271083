"""The local MNS: queues, topics and pushes to HTTP and queue endpoints, for aliyun-mns-sdk."""

from localcloud.mns.service import MnsService

__all__ = ["MnsService"]
