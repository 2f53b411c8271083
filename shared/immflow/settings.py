"""The functions' settings: one object, read from the environment once, validated, failing fast.

The variable names are the contract shared with ``s.yaml``, ``template.yml`` and the README
(docs/design.md#settings); a test checks that both deploy files set every one of them. Plain pydantic
is used rather than pydantic-settings: the mapping is a dozen lines, and pydantic-settings would add
about 60 ms to every cold start for nothing.

Credentials are not settings: they rotate (FC hands out STS keys) and on python3.10 they come from the
invocation's context, so `immflow.fc.credentials_for` picks them per invocation.

The ledger (``IMMFLOW_LEDGER_URL``) defaults to the stack's Tablestore instance, ``tablestore://immflow``
(`immflow.ledger.tablestore`; its endpoint follows the region unless ``IMMFLOW_OTS_ENDPOINT`` names one,
as the local cloud does). A function running on FC (``FC_INSTANCE_ID`` is set) with a SQLite URL refuses
to start: every FC instance has its own disk, so a SQLite file there is one ledger per instance, whose
claims cannot stop another instance from creating a task again. The local FC runs every instance on one
machine's disk and says so by giving its functions ``IMMFLOW_LEDGER_SHARED_DISK=1``; with it, SQLite is
allowed (the functions' SQL tests run that way). Nothing else should set it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from immflow.errors import ImmflowError
from immflow.ossuri import OssUri

DEFAULT_LEDGER_URL = "tablestore://immflow"
SHARED_DISK_VARIABLE = "IMMFLOW_LEDGER_SHARED_DISK"
"""Set to ``1`` by the local FC only: its function instances share one disk, so SQLite is one ledger."""
OTS_ENDPOINT_VARIABLE = "IMMFLOW_OTS_ENDPOINT"
"""The Tablestore endpoint of a ``tablestore://`` ledger, when not the region's (`immflow.ledger.tablestore`)."""
DEFAULT_REGION = "cn-hangzhou"
DEFAULT_MANIFEST_FOLDER = "immflow/manifests/"
DEFAULT_RECONCILE_AFTER_SECONDS = 900

#: Setting field -> environment variable, in the order the deploy files list them.
ENVIRONMENT_VARIABLES: Mapping[str, str] = {
    "project": "IMMFLOW_PROJECT",
    "topic": "IMMFLOW_TOPIC",
    "pipeline_path": "IMMFLOW_PIPELINE",
    "ledger_url": "IMMFLOW_LEDGER_URL",
    "manifest_uri": "IMMFLOW_MANIFEST_URI",
    "region": "IMMFLOW_REGION",
    "imm_endpoint": "IMMFLOW_IMM_ENDPOINT",
    "oss_endpoint": "IMMFLOW_OSS_ENDPOINT",
    "reconcile_after_seconds": "IMMFLOW_RECONCILE_AFTER_SECONDS",
    "verify_notifications": "IMMFLOW_VERIFY_NOTIFICATIONS",
}
REQUIRED_VARIABLES = ("IMMFLOW_PROJECT", "IMMFLOW_TOPIC")


class SettingsError(ImmflowError, ValueError):
    """The environment does not configure immflow correctly; the message names the variable."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    """The IMM project every task is created in."""
    topic: str = Field(min_length=1, max_length=256)
    """The MNS topic IMM notifies when a task ends (the topic ``on_task_done`` is triggered by)."""
    pipeline_path: Path
    ledger_url: str = DEFAULT_LEDGER_URL
    manifest_uri: str | None = None
    """An ``oss://bucket/folder/`` for run manifests; None: ``oss://<source bucket>/immflow/manifests/``."""
    region: str = DEFAULT_REGION
    imm_endpoint: str
    oss_endpoint: str
    reconcile_after_seconds: int = Field(default=DEFAULT_RECONCILE_AFTER_SECONDS, ge=1)
    verify_notifications: bool = True
    """Confirm each notification with GetTask before recording it (docs/imm-notifications.md). Turn it
    off only when nobody but IMM can publish to the topic: a forged message is then believed."""

    @field_validator("manifest_uri")
    @classmethod
    def _manifest_folder(cls, value: str | None) -> str | None:
        if value is None:
            return None
        uri = OssUri.parse(value, field="IMMFLOW_MANIFEST_URI", allow_prefix=True)
        return str(uri) if not uri.key or uri.key.endswith("/") else f"{uri}/"

    def manifest_for_bucket(self, source_bucket: str) -> OssUri:
        """The folder of the manifests of uploads to `source_bucket`."""
        return OssUri.parse(
            self.manifest_uri or f"oss://{source_bucket}/{DEFAULT_MANIFEST_FOLDER}", allow_prefix=True
        )

    def manifest_for(self, source: OssUri, run_id: str) -> OssUri:
        folder = self.manifest_for_bucket(source.bucket)
        return OssUri(folder.bucket, f"{folder.key}{run_id}.json")


def region_from_env(environ: Mapping[str, str]) -> str:
    """``IMMFLOW_REGION``, else the region FC runs the function in, else `DEFAULT_REGION`."""
    return (
        environ.get("IMMFLOW_REGION")
        or environ.get("FC_REGION")
        or environ.get("ALIBABA_CLOUD_REGION_ID")
        or DEFAULT_REGION
    )


def settings_from_env(environ: Mapping[str, str], *, code_dir: Path | None = None) -> Settings:
    """Build `Settings` from `environ`; `code_dir` is the function's code folder (default for the pipeline).

    Raises `SettingsError` naming every missing variable, or the variable whose value is wrong.
    """
    missing = [name for name in REQUIRED_VARIABLES if not environ.get(name)]
    if missing:
        raise SettingsError(
            f"missing environment variable{'s' if len(missing) > 1 else ''} {', '.join(missing)}: "
            "set it in the function's environmentVariables (s.yaml) or in your shell"
        )
    region = region_from_env(environ)
    folder = Path(environ.get("FC_FUNC_CODE_PATH") or code_dir or Path.cwd())
    values: dict[str, object] = {
        "region": region,
        # A relative IMMFLOW_PIPELINE is inside the function's code folder (s.yaml sets "pipeline.yaml").
        "pipeline_path": folder / (environ.get("IMMFLOW_PIPELINE") or "pipeline.yaml"),
        "imm_endpoint": environ.get("IMMFLOW_IMM_ENDPOINT") or f"imm.{region}.aliyuncs.com",
        "oss_endpoint": environ.get("IMMFLOW_OSS_ENDPOINT") or f"https://oss-{region}-internal.aliyuncs.com",
    }
    for field, variable in ENVIRONMENT_VARIABLES.items():
        if field not in values and environ.get(variable):
            values[field] = environ[variable]
    if environ.get("FC_INSTANCE_ID"):
        _refuse_a_disk_ledger(str(values.get("ledger_url", DEFAULT_LEDGER_URL)), environ)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = ENVIRONMENT_VARIABLES.get(field, field)
        message = str(error["msg"]).removeprefix("Value error, ")
        raise SettingsError(
            f"environment variable {variable}={values.get(field)!r} is invalid: {message}"
        ) from None


def _refuse_a_disk_ledger(url: str, environ: Mapping[str, str]) -> None:
    """On FC, a SQLite ledger is a file on one instance's own disk: refused unless the disks are shared."""
    if url.split(":", 1)[0].split("+", 1)[0] != "sqlite" or environ.get(SHARED_DISK_VARIABLE) == "1":
        return
    raise SettingsError(
        f"environment variable IMMFLOW_LEDGER_URL={url!r} is a SQLite file, and this function runs on "
        "Function Compute, where every instance has its own disk: each instance would keep a ledger of its "
        "own, so its claims could not stop another instance from creating the same IMM task, and no "
        "instance would see a whole run. Set IMMFLOW_LEDGER_URL=tablestore://<instance> (the Tablestore "
        "instance template.yml creates; the default is tablestore://immflow) or a PostgreSQL/MySQL URL "
        "that the function can reach"
    )


@cache
def load_settings(code_dir: Path | None = None) -> Settings:
    """The process's settings, read from ``os.environ`` on first use and kept (FC reuses instances)."""
    return settings_from_env(os.environ, code_dir=code_dir)
