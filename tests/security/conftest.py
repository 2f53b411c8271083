"""One local cloud on free ports for the attack replays (tests/security)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcloud.launcher import LocalCloud


@pytest.fixture(scope="session")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with LocalCloud.start(tmp_path_factory.mktemp("attacked") / "state", mns_time_scale=0.001) as started:
        yield started
