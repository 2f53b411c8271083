"""A deploy's shared layer: the code folder's hard-linked dependencies (what ``immflow package``
links from its cache) are linked once per digest into ``fc/layers/``, not once per function and
deploy, and the snapshot keeps the guarantee that later edits of the code folder change nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.support.fc import FcCloud

HANDLER = "import dep\nimport own\n\n\ndef handler(event, context):\n    return dep.VALUE + '+' + own.VALUE\n"


def _function(name: str, code: Path) -> str:
    return (
        f"  {name}:\n    component: fc3\n    props:\n      region: cn-hangzhou\n"
        f"      functionName: {name}\n      runtime: python3.10\n      handler: index.handler\n"
        f"      code: {code}\n      timeout: 10\n"
    )


def _code_folder(tmp_path: Path, name: str, cache: Path) -> Path:
    """A function's folder as ``immflow package`` makes it: dependencies linked from the cache."""
    code = tmp_path / name
    code.mkdir()
    (code / "index.py").write_text(HANDLER)
    (code / "own.py").write_text("VALUE = 'own-1'\n")
    (code / "dep").mkdir()
    os.link(cache / "dep" / "__init__.py", code / "dep" / "__init__.py")
    return code


def test_functions_with_the_same_dependencies_share_one_layer_and_edits_after_deploy_change_nothing(
    fc_cloud: FcCloud, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    (cache / "dep").mkdir(parents=True)
    (cache / "dep" / "__init__.py").write_text("VALUE = 'dep-1'\n")
    first, second = _code_folder(tmp_path, "first", cache), _code_folder(tmp_path, "second", cache)
    fc_cloud.fc.deploy(fc_cloud.write_s_yaml(_function("first", first) + _function("second", second)))

    layers = list((fc_cloud.state_dir / "fc" / "layers").iterdir())
    assert len(layers) == 1 and (layers[0] / "dep" / "__init__.py").exists()
    for function in ("first", "second"):
        snapshot = fc_cloud.fc.function(function).code_path
        assert (snapshot / "own.py").exists() and not (snapshot / "dep").exists()
    # The code folder edited, its dependency replaced (as pip does) and the cache deleted after the deploy.
    (first / "own.py").write_text("VALUE = 'own-2'\n")
    (first / "dep" / "__init__.py").unlink()
    (first / "dep" / "__init__.py").write_text("VALUE = 'dep-2'\n")
    shutil.rmtree(cache)

    answer = fc_cloud.client().invoke_function("s", "first", payload=b"{}").data
    assert answer == b"dep-1+own-1"

    fc_cloud.fc.deploy(fc_cloud.write_s_yaml(_function("first", first)))  # a redeploy sees the edits
    assert fc_cloud.client().invoke_function("s", "first", payload=b"{}").data == b"dep-2+own-2"
