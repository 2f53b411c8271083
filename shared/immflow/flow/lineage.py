"""Lineage: where a task comes from, carried in IMM's ``UserData`` and echoed back in its result.

Format (docs/design.md "Lineage"): ``{"v":1,"run","src","etag","rule","task","parent","depth"}``, compact
JSON, at most 2048 bytes of UTF-8 (IMM's limit for UserData). ``src``/``etag`` are the uploaded object
the run started from, also for follow-ups; ``run`` is the ledger's run id (`immflow.ledger.run_id_for`:
one per run of the key, so A, B, A are three). Results are matched to the ledger by TaskId; lineage is what
tells an immflow task from someone else's on the same topic, and lets a result that arrives before its
task was recorded be recognised (see `immflow.flow.results`).
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from immflow.errors import ImmflowError
from immflow.tasks import USER_DATA_MAX_BYTES


class LineageTooLongError(ImmflowError, ValueError):
    pass


class Lineage(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    v: int = 1
    run: str = Field(min_length=1)
    src: str
    etag: str
    rule: str
    task: str
    parent: str | None = None
    depth: int = Field(ge=1)

    def to_user_data(self) -> str:
        text = json.dumps(self.model_dump(), ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode("utf-8"))
        if size > USER_DATA_MAX_BYTES:
            raise LineageTooLongError(
                f"the lineage of task {self.rule}/{self.task} for {self.src} is {size} bytes, more than the "
                f"{USER_DATA_MAX_BYTES} bytes IMM accepts in UserData; use a shorter object key"
            )
        return text

    @classmethod
    def from_user_data(cls, user_data: str) -> Lineage | None:
        """The lineage in `user_data`, or None when it is not immflow's (another producer's task)."""
        try:
            data = json.loads(user_data)
        except (json.JSONDecodeError, TypeError):
            return None
        if not isinstance(data, dict) or data.get("v") != 1:
            return None
        try:
            return cls.model_validate(data)
        except ValidationError:
            return None
