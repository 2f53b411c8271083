"""The test cloud: the local cloud as the test folders start it, and a handle on it with SDK clients.

Every folder that needs the whole local cloud starts it with :func:`start_local_cloud` (on free
ports, state in the test's temporary folder); :func:`start_cloud` adds a bucket and the clients.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import oss2
from alibabacloud_imm20200930.client import Client as ImmClient
from mns.account import Account as MnsAccount

from localcloud.core.account import Account
from localcloud.launcher import LocalCloud
from tests.support.clients import imm_client, mns_account, oss_bucket

if TYPE_CHECKING:
    from localcloud.mns import MnsService
    from localcloud.ots import OtsService

#: MNS's waits (visibility timeouts, push retries) pass 1000 times faster, so retries show within a test.
MNS_TIME_SCALE = 0.001


@contextmanager
def start_local_cloud(state_dir: Path) -> Iterator[LocalCloud]:
    with LocalCloud.start(state_dir, mns_time_scale=MNS_TIME_SCALE) as local:
        yield local


@dataclass
class Cloud:
    """A started test cloud: its bucket (created), an MNS account and an IMM client of it."""

    local: LocalCloud
    bucket: oss2.Bucket
    mns: MnsAccount
    imm: ImmClient

    @property
    def state_dir(self) -> Path:
        return self.local.state_dir

    @property
    def account(self) -> Account:
        return self.local.account

    @property
    def oss_url(self) -> str:
        return self.local.endpoints["oss"]

    @property
    def mns_url(self) -> str:
        return self.local.endpoints["mns"]

    @property
    def imm_endpoint(self) -> str:
        return self.local.endpoints["imm"]

    @property
    def ots_url(self) -> str:
        return self.local.endpoints["ots"]

    @property
    def mns_service(self) -> MnsService:
        """The local MNS service itself (``wait_for_deliveries``)."""
        service: MnsService = self.local.services["mns"]
        return service

    @property
    def ots(self) -> OtsService:
        """The local Tablestore service (a test makes an instance of its own with ``create_instance``)."""
        service: OtsService = self.local.services["ots"]
        return service

    def client(
        self,
        *,
        key_id: str | None = None,
        secret: str | None = None,
        endpoint: str | None = None,
        **config: Any,
    ) -> ImmClient:
        """Another IMM client: other keys, another endpoint, other SDK options."""
        return imm_client(self.local, key_id=key_id, secret=secret, endpoint=endpoint, **config)

    def uri(self, key: str) -> str:
        return f"oss://{self.bucket.bucket_name}/{key}"


@contextmanager
def start_cloud(state_dir: Path, bucket: str) -> Iterator[Cloud]:
    with start_local_cloud(state_dir) as local:
        oss = oss_bucket(local, bucket)
        oss.create_bucket()
        yield Cloud(local, oss, mns_account(local), imm_client(local))
