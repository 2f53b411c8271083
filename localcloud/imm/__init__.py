"""The local IMM: projects and asynchronous tasks that really process media, for alibabacloud-imm20200930."""

from localcloud.imm.service import ImmService

__all__ = ["ImmService"]
