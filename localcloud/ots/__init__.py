"""The local Tablestore (OTS): tables, rows, batches and ranges, for the ``tablestore`` SDK."""

from localcloud.ots.service import OtsService

__all__ = ["OtsService"]
