"""FC's function and trigger name rules (docs/fc-api.md "Names")."""

from __future__ import annotations

import pytest

from localcloud.fc import names


@pytest.mark.parametrize("name", ["a", "_x", "Fn-1_b", "A" * 64])
def test_function_names_fc_accepts(name: str) -> None:
    names.check_function_name(name)


@pytest.mark.parametrize("name", ["", "A" * 65, "1a", "-a", "a.b", "a/b", "..", "a\x00", "é", " a", None])
def test_function_names_fc_refuses(name: object) -> None:
    with pytest.raises(names.InvalidName, match="1 to 64"):
        names.check_function_name(name)


def test_trigger_names_may_be_longer() -> None:
    names.check_trigger_name("t" * 128)
    with pytest.raises(names.InvalidName, match="1 to 128"):
        names.check_trigger_name("t" * 129)
