"""One local cloud on free ports for the attack replays (tests/security)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcloud.launcher import LocalCloud
from tests.support.cloud import start_local_cloud


@pytest.fixture(scope="session")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with start_local_cloud(tmp_path_factory.mktemp("attacked") / "state") as started:
        yield started
