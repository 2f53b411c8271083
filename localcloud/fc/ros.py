"""ROS ``ALIYUN::FC3::*`` resources into the same :class:`FunctionSpec` objects an s.yaml gives.

The local ROS (:mod:`localcloud.ros`) resolves a template and hands the local FC, per function, the
resolved ``Properties`` of its ``ALIYUN::FC3::Function``, of each ``ALIYUN::FC3::Trigger`` naming
it and of its ``ALIYUN::FC3::AsyncInvokeConfig`` (``POST /_localcloud/deploy`` with
``{"ros": {"region": ..., "functions": [{"function": {...}, "triggers": [...], "async_invoke_config":
{...} | null}]}}``). Property names are ROS's (docs/deploy.md lists the types' documentation pages);
``TriggerConfig`` keeps the FC API's own lower-camel keys, as in ROS.

Code (``Code``) is fetched as FC does it: ``OssBucketName``/``OssObjectName`` is a zip read from the
local OSS with the account's keys, ``ZipFile`` a base64 zip in the template. It is unpacked into
``<fc state>/ros-code/<function>/<sha256 of the zip>`` and then deployed like an s.yaml's code
folder. ``SourceCode`` and custom containers are refused (the local FC runs Python zips only).
Properties with no local effect (``Role``, ``LogConfig``, ``Cpu``, ``VpcConfig``, ...) are accepted
and ignored, as the s.yaml reader does with ``role`` and ``logConfig``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

from localcloud.core.account import Account
from localcloud.fc import names
from localcloud.fc.syaml import PYTHON_RUNTIMES, TRIGGER_TYPES, AsyncConfig, FunctionSpec, TriggerSpec

#: ALIYUN::FC3::Function's FunctionName rule (its ROS page): letters, digits, '_' and '-', not first a digit or '-'.


class RosFunctionError(ValueError):
    """A function the local FC cannot deploy from the template; the message names the resource and property."""


def _text(props: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = props.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise RosFunctionError(f"{where}.{key}: must be a non-empty string, got {value!r}")
    return value


def _integer(props: dict[str, Any], key: str, default: int, where: str) -> int:
    value = props.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RosFunctionError(f"{where}.{key}: must be an integer, got {value!r}")
    return value


def _zip_bytes(code: dict[str, Any], where: str, oss_endpoint: str, account: Account) -> bytes:
    if code.get("ZipFile"):
        try:
            return base64.b64decode(str(code["ZipFile"]), validate=True)
        except (binascii.Error, ValueError) as error:
            raise RosFunctionError(f"{where}.Code.ZipFile: not base64: {error}") from error
    bucket, key = code.get("OssBucketName"), code.get("OssObjectName")
    if not (isinstance(bucket, str) and bucket and isinstance(key, str) and key):
        raise RosFunctionError(
            f"{where}.Code: give OssBucketName and OssObjectName (a zip in OSS) or ZipFile; the local FC "
            "does not run SourceCode or custom containers"
        )
    if not oss_endpoint:
        raise RosFunctionError(f"{where}.Code: the code is in OSS but this local FC has no local OSS")
    import oss2

    try:
        return bytes(
            oss2.Bucket(oss2.Auth(account.access_key_id, account.access_key_secret), oss_endpoint, bucket)
            .get_object(key)
            .read()
        )
    except oss2.exceptions.OssError as error:
        raise RosFunctionError(
            f"{where}.Code: cannot read oss://{bucket}/{key} from the local OSS: {error.code} {error.message}"
        ) from error


def _unpack(data: bytes, target_root: Path, name: str, where: str) -> Path:
    digest = hashlib.sha256(data).hexdigest()[:16]
    target = target_root / name / digest
    if target.is_dir():
        return target
    staging = target.with_name(f".{digest}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.infolist():
                destination = (staging / member.filename).resolve()
                if not destination.is_relative_to(staging.resolve()):
                    raise RosFunctionError(
                        f"{where}.Code: zip member {member.filename!r} points outside the code folder"
                    )
            archive.extractall(staging)
    except zipfile.BadZipFile as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise RosFunctionError(f"{where}.Code: not a zip file: {error}") from error
    except RosFunctionError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.replace(staging, target)
    return target


def _trigger(props: dict[str, Any], where: str) -> TriggerSpec:
    kind = _text(props, "TriggerType", where)
    if kind not in TRIGGER_TYPES:
        raise RosFunctionError(
            f"{where}.TriggerType: {kind!r} triggers are not implemented locally (only {', '.join(TRIGGER_TYPES)})"
        )
    config = props.get("TriggerConfig")
    if not isinstance(config, dict):
        raise RosFunctionError(f"{where}.TriggerConfig: must be a mapping, got {config!r}")
    return TriggerSpec(
        name=_text(props, "TriggerName", where),
        type=kind,
        config=config,
        source_arn=_text(props, "SourceArn", where, required=False),
        qualifier=_text(props, "Qualifier", where, required=False) or "LATEST",
    )


def _async_config(props: dict[str, Any] | None, where: str) -> AsyncConfig:
    if props is None:
        return AsyncConfig()
    destinations = props.get("DestinationConfig") or {}
    return AsyncConfig(
        max_retry_attempts=_integer(props, "MaxAsyncRetryAttempts", 3, where),
        max_event_age_seconds=_integer(props, "MaxAsyncEventAgeInSeconds", 18000, where),
        on_success=str((destinations.get("OnSuccess") or {}).get("Destination", "")),
        on_failure=str((destinations.get("OnFailure") or {}).get("Destination", "")),
    )


def function_spec(
    entry: dict[str, Any], region: str, account: Account, oss_endpoint: str, code_root: Path
) -> FunctionSpec:
    """One ``{"function", "triggers", "async_invoke_config"}`` entry as a :class:`FunctionSpec`."""
    props = entry.get("function")
    if not isinstance(props, dict):
        raise RosFunctionError(
            "each function entry needs the ALIYUN::FC3::Function properties under 'function'"
        )
    name = _text(props, "FunctionName", "ALIYUN::FC3::Function")
    # Checked before the code is unpacked into a folder named after it.
    names.check_function_name(name, "ALIYUN::FC3::Function.FunctionName")
    where = f"function {name}"
    runtime = _text(props, "Runtime", where)
    if runtime not in PYTHON_RUNTIMES:
        raise RosFunctionError(
            f"{where}.Runtime: {runtime!r}: the local FC runs {', '.join(PYTHON_RUNTIMES)} only"
        )
    code = props.get("Code")
    if not isinstance(code, dict):
        raise RosFunctionError(f"{where}.Code: must be a mapping (OssBucketName/OssObjectName or ZipFile)")
    code_dir = _unpack(_zip_bytes(code, where, oss_endpoint, account), code_root, name, where)
    environment = props.get("EnvironmentVariables") or {}
    if not isinstance(environment, dict):
        raise RosFunctionError(f"{where}.EnvironmentVariables: must be a mapping of names to strings")
    initializer = ((props.get("InstanceLifecycleConfig") or {}).get("Initializer")) or {}
    return FunctionSpec(
        name=name,
        runtime=runtime,
        handler=_text(props, "Handler", where),
        code_dir=str(code_dir),
        region=region,
        memory_size=_integer(props, "MemorySize", 512, where),
        timeout=_integer(props, "Timeout", 3, where),
        environment={str(k): "" if v is None else str(v) for k, v in environment.items()},
        initializer=str(initializer.get("Handler", "")),
        initializer_timeout=_integer(
            initializer, "Timeout", 3, f"{where}.InstanceLifecycleConfig.Initializer"
        ),
        async_config=_async_config(entry.get("async_invoke_config"), f"async invoke config of {name}"),
        triggers=tuple(
            _trigger(t, f"trigger {t.get('TriggerName', i)} of {name}")
            for i, t in enumerate(entry.get("triggers") or [])
        ),
    )
