"""What the flow and the dashboard ask of each cloud service: one ``Protocol`` per adapter.

The code that uses a service depends on these, not on the adapter classes, so a test fake is checked
by mypy against the same interface as the real adapter (`immflow.adapters.imm.ImmAdapter`,
`immflow.adapters.oss.OssAdapter`, the one implementation each).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

from immflow.adapters.imm import CreatedTask
from immflow.adapters.oss import ObjectHead, ObjectInfo
from immflow.fc import Credentials
from immflow.ossuri import OssUri


class ImmTasks(Protocol):
    """IMM's asynchronous tasks: create one, get one (GetTask), find one already created (ListTasks)."""

    def use_credentials(self, credentials: Credentials) -> None: ...

    def create_task(self, action: str, request: Mapping[str, Any]) -> CreatedTask: ...

    def get_task(
        self, project: str, task_type: str, task_id: str, *, request_definition: bool = False
    ) -> dict[str, Any]: ...

    def find_listed_task(
        self,
        project: str,
        task_type: str,
        *,
        started_since: datetime,
        matches: Callable[[Mapping[str, Any]], bool],
    ) -> dict[str, Any] | None: ...


class OssObjects(Protocol):
    """OSS objects: list a prefix, look at one object, read part of it, write a JSON document."""

    def use_credentials(self, credentials: Credentials) -> None: ...

    def list_objects(self, prefix: OssUri) -> list[ObjectInfo]: ...

    def last_modified(self, uri: OssUri) -> datetime: ...

    def head(self, uri: OssUri) -> ObjectHead | None: ...

    def read_range(self, uri: OssUri, first: int, last: int) -> Iterator[bytes]: ...

    def put_json(self, uri: OssUri, document: object) -> None: ...
