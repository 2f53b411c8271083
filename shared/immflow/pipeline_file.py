"""Reading a pipeline file for the functions: validated, or its checked form.

`load_pipeline` refuses a file with any error `immflow validate` reports (`immflow.validation`, imported
only when the file has to be validated).

The checked form: ``immflow package`` validates ``pipeline.yaml`` and ships beside it
``pipeline.yaml.checked`` (`write_checked`), the validated `Pipeline` pickled with the SHA-256 of the
YAML it came from and the immflow and pydantic versions that made it. `load_pipeline` takes it instead
of validating again (~100 ms of a cold start: YAML, the checks and their models) only when all three
still match; the YAML stays the one source of truth: an edited YAML, or a package made by another
version, is validated as if there were no checked form. The pickle is read only from the function's
own code folder, which is trusted as much as the code beside it.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from immflow.pipeline import Pipeline

CHECKED_SUFFIX = ".checked"
_CHECKED_FORMAT = 1


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and check a pipeline file; `PipelineError` lists every error `immflow validate` would report.

    A checked form beside it (``<path>.checked``, `write_checked`) made from these very bytes is taken
    without validating again."""
    checked = _load_checked(Path(path))
    return checked if checked is not None else _validated(path)


def _checked_header(source: bytes) -> tuple[int, str, str, str]:
    from pydantic import VERSION as pydantic_version

    from immflow import __version__

    return (_CHECKED_FORMAT, __version__, pydantic_version, hashlib.sha256(source).hexdigest())


def write_checked(path: Path, out: Path) -> Pipeline:
    """Validate the pipeline at `path` (`PipelineError` when it has errors) and write its checked form to `out`."""
    pipeline = _validated(path)
    out.write_bytes(pickle.dumps((_checked_header(path.read_bytes()), pipeline)))
    return pipeline


def _validated(path: str | Path) -> Pipeline:
    from immflow.validation import PipelineError, validate_file  # only when validating: ~100 ms

    report = validate_file(path)
    if report.pipeline is None or report.errors:
        raise PipelineError(str(path), report.errors)
    return report.pipeline


def _load_checked(path: Path) -> Pipeline | None:
    checked = path.with_name(path.name + CHECKED_SUFFIX)
    try:
        header, pipeline = pickle.loads(checked.read_bytes())
        source = path.read_bytes()
    except (OSError, ValueError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None  # none, unreadable, or made by code that no longer exists: validate the YAML
    if header != _checked_header(source) or not isinstance(pipeline, Pipeline):
        return None
    return pipeline
