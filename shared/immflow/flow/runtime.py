"""What a handler works with: the settings, the pipeline, the ledger and the service adapters.

Built once per FC instance (module-level cache; FC reuses the process between invocations) and handed
the invocation's credentials each time. Nothing here imports an SDK at module load: the adapters do
that on first use, or the function's initializer (`initialize`) does it ahead of the first event.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple, TypeVar

from immflow.adapters.imm import ImmAdapter
from immflow.adapters.oss import OssAdapter
from immflow.adapters.protocols import ImmTasks, OssObjects
from immflow.fc import Credentials, Invocation, credentials_for
from immflow.flow.retry import with_retries
from immflow.ledger import Ledger, utcnow
from immflow.logging import logger, start_invocation
from immflow.pipeline import Pipeline
from immflow.pipeline_file import load_pipeline
from immflow.settings import Settings, load_settings

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    pipeline: Pipeline
    ledger: Ledger
    imm: ImmTasks
    oss: OssObjects
    clock: Callable[[], datetime] = utcnow
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    @classmethod
    def from_settings(cls, settings: Settings, credentials: Credentials | None = None) -> Services:
        return cls(
            settings=settings,
            pipeline=load_pipeline(settings.pipeline_path),
            ledger=Ledger(settings.ledger_url),
            imm=ImmAdapter(endpoint=settings.imm_endpoint, region=settings.region, credentials=credentials),
            oss=OssAdapter(endpoint=settings.oss_endpoint, credentials=credentials),
        )

    def use_credentials(self, credentials: Credentials) -> None:
        self.ledger.use_credentials(credentials)
        self.imm.use_credentials(credentials)
        self.oss.use_credentials(credentials)

    def now(self) -> datetime:
        return self.clock()


class Call(NamedTuple):
    """One invocation's view: the services and the time budget."""

    services: Services
    invocation: Invocation

    def claim_expiry(self, now: datetime) -> datetime:
        """Until when a claim taken now is held: this invocation cannot outlive its timeout."""
        return now + timedelta(seconds=self.invocation.remaining_seconds() + 1.0)

    def retry(self, operation: Callable[[], T]) -> T:
        """`operation` with retries of retryable cloud errors, within this invocation's time budget."""
        return with_retries(
            operation,
            remaining_seconds=self.invocation.remaining_seconds,
            sleep=self.services.sleep,
            jitter=self.services.jitter,
        )


_services: dict[Path | None, Services] = {}

#: A run id no run has (`start_run` makes ids of hex digits): the initializer's read of the ledger.
_NO_RUN = "immflow-initializer-probe"


def services_for(context: object, code_dir: Path | None = None) -> Services:
    """This instance's services (built by the first caller, `initialize` or `begin`), with the keys
    of `context`."""
    services = _services.get(code_dir)
    if services is None:
        services = _services[code_dir] = Services.from_settings(load_settings(code_dir))
    services.use_credentials(credentials_for(context))
    return services


def begin(context: object, code_dir: Path | None = None) -> Call:
    """Start an invocation: reset the log correlation ids, get this instance's services, refresh keys."""
    invocation = Invocation.from_context(context)
    start_invocation(invocation.request_id)
    return Call(services_for(context, code_dir), invocation)


def initialize(
    context: object, code_dir: Path | None = None, *, imm: bool = False, oss: bool = False
) -> None:
    """The body of a function's FC initializer: once per instance, what every event of the function
    does on a cold instance anyway: the settings, the checked pipeline, the services, the ledger's
    backend and connection (a read of a run that does not exist), and, when every event of the
    function calls them, the IMM client (`imm`) and the OSS client of the manifest bucket (`oss`),
    with the SDK imports they bring. On FC an instance runs it just before its first event;
    the local FC's pre-warmed instance runs it at deploy (docs/cold-start.md).

    Never raises: a failed initializer would keep FC from serving any event on this instance, while
    the handler can do all of this itself. What failed is logged, and the first event redoes it."""
    start_invocation(str(getattr(context, "request_id", "") or ""))
    try:
        services = services_for(context, code_dir)
        services.ledger.get_run(_NO_RUN)
        # (Adapters given by a test have no SDK client to build.)
        if imm and isinstance(services.imm, ImmAdapter):
            services.imm.client  # noqa: B018 - builds the client (and imports the IMM SDK)
        if oss and isinstance(services.oss, OssAdapter) and services.settings.manifest_uri:
            services.oss.bucket(services.settings.manifest_for_bucket("").bucket)
    except Exception:
        logger.warning("initializer failed; the first event sets up what it needs itself", exc_info=True)
