"""A local MNS on a free port, SDK clients for it, a settable clock and an HTTP push receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mns.account
import pytest

from tests.support.clock import ManualClock
from tests.support.mns import LocalMns, Receiver, serve_receiver, start_mns


@pytest.fixture
def local_mns(tmp_path: Path) -> Iterator[LocalMns]:
    yield from start_mns(tmp_path)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def clocked_mns(tmp_path: Path, clock: ManualClock) -> Iterator[LocalMns]:
    yield from start_mns(tmp_path, clock=clock)


@pytest.fixture
def account(local_mns: LocalMns) -> mns.account.Account:
    return local_mns.client()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver(Receiver())


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    yield from serve_receiver(Receiver())
