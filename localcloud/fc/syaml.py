"""Reading a Serverless Devs ``s.yaml`` (component ``fc3``, ``edition: 3.0.0``) into function specs.

What is read (docs/fc.md): every resource whose ``component`` is ``fc3`` and its
``props``: ``functionName``, ``runtime``, ``handler``, ``code`` (a local folder, relative to the
s.yaml), ``memorySize`` (default 512), ``timeout`` (default 3), ``environmentVariables``,
``instanceLifecycleConfig.initializer``, ``asyncInvokeConfig`` and ``triggers`` of type ``oss``,
``mns_topic`` and ``timer``. Other props (role, logConfig, vpcConfig, ...) are accepted and have
no local effect.

Variables (Serverless Devs 3.x syntax, §1.1.3): ``${vars.x}`` (nested ``vars.a.b`` too),
``${env('X')}`` and ``${env('X', 'default')}``, ``${config('AccountID')}`` (the local account id;
``AccessKeyID``/``AccessKeySecret`` give the local key pair), ``${path('./x')}`` (absolute path
from the s.yaml folder). A value that is exactly one ``${...}`` keeps the variable's type (so
``timeout: ${vars.timeout}`` stays an int); otherwise the values are joined as text.

Refused, with an error naming the field: ``${resources.*}``, ``${this.*}``, ``${file(...)}`` and
``${json(...)}``; any other component; FC 2.0 files (``services:``); non-Python runtimes; code
stored in OSS; trigger types other than the three above.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localcloud.core.account import Account

PYTHON_RUNTIMES = ("python3", "python3.9", "python3.10", "python3.12")
TRIGGER_TYPES = ("oss", "mns_topic", "timer")
_EXPRESSION = re.compile(r"\$\{([^}]*)\}")
_CALL = re.compile(r"^(\w+)\((.*)\)$", re.S)
_STRING_ARG = re.compile(r"""\s*(?:'([^']*)'|"([^"]*)")\s*(?:,|$)""")


class SYamlError(ValueError):
    """An s.yaml the local FC cannot deploy; the message names the file and the field."""

    def __init__(self, path: Path, where: str, problem: str) -> None:
        super().__init__(f"{path}: {where}: {problem}")


@dataclass(frozen=True)
class TriggerSpec:
    name: str
    type: str
    config: dict[str, Any]
    source_arn: str = ""
    qualifier: str = "LATEST"

    def arn_tail(self) -> str:
        """The resource part of ``sourceArn`` (after ``acs:<svc>:<region>:<account>:``)."""
        parts = self.source_arn.split(":", 4)
        return parts[4] if len(parts) == 5 else ""


@dataclass(frozen=True)
class AsyncConfig:
    max_retry_attempts: int = 3
    max_event_age_seconds: int = 18000
    on_success: str = ""
    on_failure: str = ""


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    runtime: str
    handler: str
    code_dir: str
    region: str
    memory_size: int = 512
    timeout: int = 3
    environment: dict[str, str] = field(default_factory=dict)
    initializer: str = ""
    initializer_timeout: int = 3
    async_config: AsyncConfig = field(default_factory=AsyncConfig)
    triggers: tuple[TriggerSpec, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FunctionSpec:
        data = json.loads(text)
        data["async_config"] = AsyncConfig(**data["async_config"])
        data["triggers"] = tuple(TriggerSpec(**t) for t in data["triggers"])
        return cls(**data)


class _Resolver:
    def __init__(self, path: Path, account: Account, variables: dict[str, Any], environ: dict[str, str]):
        self.path = path
        self.account = account
        self.variables = variables
        self.environ = environ

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = _EXPRESSION.fullmatch(value.strip())
        if whole:
            return self._evaluate(whole.group(1).strip(), where)
        return _EXPRESSION.sub(lambda m: str(self._evaluate(m.group(1).strip(), where)), value)

    def _evaluate(self, expression: str, where: str) -> Any:
        if expression.startswith("vars."):
            node: Any = self.variables
            for part in expression[5:].split("."):
                if not isinstance(node, dict) or part not in node:
                    raise SYamlError(self.path, where, f"${{{expression}}}: no such entry in the vars: block")
                node = node[part]
            return self.resolve(node, f"vars.{expression[5:]}")
        call = _CALL.match(expression)
        if call:
            name, args = call.group(1), self._string_args(call.group(2), expression, where)
            if name == "env" and len(args) in (1, 2):
                if args[0] in self.environ:
                    return self.environ[args[0]]
                if len(args) == 2:
                    return args[1]
                raise SYamlError(
                    self.path,
                    where,
                    f"${{{expression}}}: environment variable {args[0]} is not set "
                    "(set it, or give a default: env('NAME', 'default'))",
                )
            if name == "config" and len(args) == 1:
                known = {
                    "AccountID": self.account.account_id,
                    "AccessKeyID": self.account.access_key_id,
                    "AccessKeySecret": self.account.access_key_secret,
                }
                if args[0] in known:
                    return known[args[0]]
            if name == "path" and len(args) == 1:
                return str((self.path.parent / args[0]).resolve())
        raise SYamlError(
            self.path,
            where,
            f"${{{expression}}} is not supported by the local FC; it resolves ${{vars.*}}, "
            "${env('NAME'[, 'default'])}, ${config('AccountID'|'AccessKeyID'|'AccessKeySecret')} and "
            "${path('...')}",
        )

    def _string_args(self, text: str, expression: str, where: str) -> list[str]:
        args, position = [], 0
        while position < len(text):
            match = _STRING_ARG.match(text, position)
            if not match:
                raise SYamlError(
                    self.path, where, f"${{{expression}}}: arguments must be quoted strings, e.g. env('NAME')"
                )
            args.append(match.group(1) if match.group(1) is not None else match.group(2))
            position = match.end()
        return args


def _require(props: dict[str, Any], key: str, kind: type, path: Path, where: str) -> Any:
    value = props.get(key)
    if value is None:
        raise SYamlError(path, f"{where}.{key}", "is required")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise SYamlError(path, f"{where}.{key}", f"must be a {kind.__name__}, got {value!r}")
    return value


def _optional_int(props: dict[str, Any], key: str, default: int, path: Path, where: str) -> int:
    value = props.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SYamlError(path, f"{where}.{key}", f"must be an integer, got {value!r}")
    return value


def _trigger(raw: Any, path: Path, where: str) -> TriggerSpec:
    if not isinstance(raw, dict):
        raise SYamlError(path, where, "each trigger must be a mapping")
    name = _require(raw, "triggerName", str, path, where)
    kind = _require(raw, "triggerType", str, path, where)
    config = _require(raw, "triggerConfig", dict, path, where)
    if kind not in TRIGGER_TYPES:
        raise SYamlError(
            path,
            f"{where}.triggerType",
            f"{kind!r} triggers are not implemented locally (only {', '.join(TRIGGER_TYPES)})",
        )
    trigger = TriggerSpec(
        name=name,
        type=kind,
        config=config,
        source_arn=str(raw.get("sourceArn", "")),
        qualifier=str(raw.get("qualifier", "LATEST")),
    )
    if kind == "oss":
        if not trigger.arn_tail():
            raise SYamlError(path, f"{where}.sourceArn", "must be acs:oss:<region>:<account>:<bucket>")
        events = config.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise SYamlError(
                path, f"{where}.triggerConfig.events", "must be a non-empty list of oss:... event names"
            )
    elif kind == "mns_topic":
        if not trigger.arn_tail().startswith("/topics/"):
            raise SYamlError(path, f"{where}.sourceArn", "must be acs:mns:<region>:<account>:/topics/<topic>")
        content_format = config.get("notifyContentFormat", "STREAM")
        if content_format not in ("STREAM", "JSON"):
            raise SYamlError(path, f"{where}.triggerConfig.notifyContentFormat", "must be STREAM or JSON")
        strategy = config.get("notifyStrategy", "BACKOFF_RETRY")
        if strategy not in ("BACKOFF_RETRY", "EXPONENTIAL_DECAY_RETRY"):
            raise SYamlError(
                path,
                f"{where}.triggerConfig.notifyStrategy",
                "must be BACKOFF_RETRY or EXPONENTIAL_DECAY_RETRY",
            )
    else:
        _require(config, "cronExpression", str, path, f"{where}.triggerConfig")
    return trigger


def _function(resource: str, props: dict[str, Any], path: Path) -> FunctionSpec:
    where = f"resources.{resource}.props"
    name = _require(props, "functionName", str, path, where)
    runtime = _require(props, "runtime", str, path, where)
    if runtime not in PYTHON_RUNTIMES:
        raise SYamlError(
            path, f"{where}.runtime", f"{runtime!r}: the local FC runs {', '.join(PYTHON_RUNTIMES)} only"
        )
    code = props.get("code")
    if not isinstance(code, str):
        raise SYamlError(
            path, f"{where}.code", "must be a local folder (code stored in OSS is not supported locally)"
        )
    code_dir = (path.parent / code).resolve()
    if not code_dir.is_dir():
        raise SYamlError(path, f"{where}.code", f"folder {code_dir} does not exist")
    environment = props.get("environmentVariables") or {}
    if not isinstance(environment, dict):
        raise SYamlError(path, f"{where}.environmentVariables", "must be a mapping of names to strings")
    initializer = (props.get("instanceLifecycleConfig") or {}).get("initializer") or {}
    async_raw = props.get("asyncInvokeConfig") or {}
    destinations = async_raw.get("destinationConfig") or {}
    async_where = f"{where}.asyncInvokeConfig"
    async_config = AsyncConfig(
        max_retry_attempts=_optional_int(async_raw, "maxAsyncRetryAttempts", 3, path, async_where),
        max_event_age_seconds=_optional_int(async_raw, "maxAsyncEventAgeInSeconds", 18000, path, async_where),
        on_success=str((destinations.get("onSuccess") or {}).get("destination", "")),
        on_failure=str((destinations.get("onFailure") or {}).get("destination", "")),
    )
    triggers = props.get("triggers") or []
    if not isinstance(triggers, list):
        raise SYamlError(path, f"{where}.triggers", "must be a list")
    return FunctionSpec(
        name=name,
        runtime=runtime,
        handler=_require(props, "handler", str, path, where),
        code_dir=str(code_dir),
        region=_require(props, "region", str, path, where),
        memory_size=_optional_int(props, "memorySize", 512, path, where),
        timeout=_optional_int(props, "timeout", 3, path, where),
        environment={str(k): "" if v is None else str(v) for k, v in environment.items()},
        initializer=str(initializer.get("handler", "")),
        initializer_timeout=_optional_int(
            initializer, "timeout", 3, path, f"{where}.instanceLifecycleConfig.initializer"
        ),
        async_config=async_config,
        triggers=tuple(_trigger(t, path, f"{where}.triggers[{i}]") for i, t in enumerate(triggers)),
    )


def load(path: Path, account: Account, environ: dict[str, str] | None = None) -> list[FunctionSpec]:
    """The functions of an fc3 s.yaml with every variable resolved; raises :class:`SYamlError`."""
    path = path.resolve()
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SYamlError(path, "file", f"cannot be read: {error}") from error
    except yaml.YAMLError as error:
        raise SYamlError(path, "file", f"is not valid YAML: {error}") from error
    if not isinstance(document, dict):
        raise SYamlError(path, "file", "must be a mapping with edition, vars and resources")
    if "services" in document and "resources" not in document:
        raise SYamlError(
            path, "services", "FC 2.0 (component fc, edition 1.0.0) files are not supported; use fc3"
        )
    if str(document.get("edition")) != "3.0.0":
        raise SYamlError(
            path, "edition", f"must be 3.0.0 (Serverless Devs 3.x), got {document.get('edition')!r}"
        )
    resources = document.get("resources")
    if not isinstance(resources, dict) or not resources:
        raise SYamlError(
            path, "resources", "must be a non-empty mapping of resource names to {component, props}"
        )
    resolver = _Resolver(
        path, account, document.get("vars") or {}, dict(os.environ if environ is None else environ)
    )
    functions = []
    for resource, body in resources.items():
        if not isinstance(body, dict):
            raise SYamlError(path, f"resources.{resource}", "must be a mapping with component and props")
        component = str(body.get("component", ""))
        if component.split("@")[0] != "fc3":
            raise SYamlError(
                path, f"resources.{resource}.component", f"{component!r} is not supported locally (only fc3)"
            )
        props = resolver.resolve(body.get("props") or {}, f"resources.{resource}.props")
        functions.append(_function(resource, props, path))
    names = [f.name for f in functions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SYamlError(path, "resources", f"functionName {duplicates[0]!r} is used twice")
    return functions
