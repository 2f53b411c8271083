"""The local Tablestore (OTS): tables, rows, batches and ranges, for the ``tablestore`` SDK.

``OtsService`` is imported on first use (it brings the ``tablestore`` SDK, whose protobuf modules
it parses requests with), so that the launcher can load it on a thread of its own
(`localcloud.launcher`) and read `localcloud.ots.store` without it.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.ots.service import OtsService

__all__ = ["OtsService"]


def __getattr__(name: str) -> Any:
    if name == "OtsService":
        from localcloud.ots.service import OtsService

        return OtsService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
