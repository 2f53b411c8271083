"""The local IMM: projects and asynchronous tasks that really process media, for alibabacloud-imm20200930.

``ImmService`` is imported on first use (it brings the media code, immflow's task models and oss2),
so that the launcher can load it on a thread of its own (`localcloud.launcher`).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.imm.service import ImmService

__all__ = ["ImmService"]


def __getattr__(name: str) -> Any:
    if name == "ImmService":
        from localcloud.imm.service import ImmService

        return ImmService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
