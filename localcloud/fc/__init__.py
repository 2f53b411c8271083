"""The local Function Compute: fc3 s.yaml deploys, the FC 2.0 invoke API, triggers, async queue.

Kept import-free on purpose: ``python -m localcloud.fc.worker`` imports this package first, and
a function's instance must not pay for (or see) the server's modules. ``FcService`` is loaded
on first access.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FcService"]


def __getattr__(name: str) -> Any:
    if name == "FcService":
        from localcloud.fc.service import FcService

        return FcService
    raise AttributeError(name)
