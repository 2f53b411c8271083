"""The local Function Compute: deploy an fc3 ``s.yaml``, serve the FC 2.0 and 3.0 APIs, run triggers.

FC 3.0 (``/2023-03-30/...``, ``alibabacloud-fc20230330``): see :mod:`localcloud.fc.api3`. FC 2.0
ListFunctions and GetFunction (``GET /2016-08-15/services/{service}/functions[/{function}]``):
see :meth:`FcService._read_api2`; like InvokeFunction they accept any service name. Both APIs
refuse a request dated more than 15 minutes off the local clock. ``docs/fc-api.md`` has the
sources, ``docs/local-cloud-compatibility.md`` the list of what is served.

Invoke API (docs/fc-api.md), so ``fc2.Client(endpoint=..., accessKeyID=...,
accessKeySecret=...).invoke_function(service, function, payload, headers)`` works unchanged:
``POST /2016-08-15/services/{service}[.{qualifier}]/functions/{function}/invocations``, signed
with the ``FC`` HMAC-SHA256 scheme (:mod:`localcloud.fc.auth`). fc3 functions have no service,
so **any service name and qualifier are accepted** and the function is looked up by name alone.

- Sync (no ``x-fc-invocation-type`` or ``Sync``): 200 with the handler's return value; a
  function error is 200 with ``X-Fc-Error-Type: UnhandledInvocationError`` and
  ``{"errorMessage", "errorType", "stackTrace"}``; a timeout kills the instance and reports
  ``errorType`` ``FunctionTimeoutError`` the same way (FC's exact timeout text is UNCONFIRMED).
- Async: 202 with an empty body once the invocation is committed to SQLite (it survives
  kill -9). It then runs with FC's async policy: up to ``maxAsyncRetryAttempts`` retries
  (default 3) of a function error, waiting ``async_retry_delay * 2**(n-1)`` seconds (FC's own
  intervals are not documented; the local default of 1 s keeps development fast), dropped once
  older than ``maxAsyncEventAgeInSeconds``, and routed to ``destinationConfig.onSuccess`` /
  ``onFailure`` (:mod:`localcloud.fc.destinations`). The fault plan's ``fc.crash``
  (:mod:`localcloud.core.faults`) kills an attempt's worker process mid-invocation, keyed by
  request id and attempt: that attempt fails as a crashed instance does and the retry covers it.
- Every response carries ``X-Fc-Request-Id``; FC 2.0 API errors are JSON ``{"ErrorCode",
  "ErrorMessage"}``, FC 3.0's ``{"Code", "Message", "RequestId"}``. Payload limits: 32 MB sync, 128 KB async (FC's documented limits).
  ``x-fc-log-type: Tail`` is accepted but no log is returned (each function's output goes to
  ``<state>/fc/logs/<function>.log``).

Local-only admin endpoints (the state folder's admin token instead of a signature, see
`localcloud.core.admin`; ``_localcloud`` is no valid service path):

- ``POST /_localcloud/deploy`` ``{"s_yaml": "/abs/path/s.yaml", "environ": {...}?, "extra_paths":
  ["/abs/folder", ...]?}`` deploys like :meth:`FcService.deploy` (all or nothing; names checked
  against FC's rules first); answers ``{"functions": [...]}``, or 400 JSON naming the field.
  ``{"ros": {...}}`` instead deploys functions of a ROS template (:meth:`FcService.deploy_ros`).
- ``GET /_localcloud/functions``: the deployed functions, each with ``python``: the interpreter its
  runtime runs on, or why it falls back to the local cloud's (:mod:`localcloud.fc.runtimes`).
- ``GET /_localcloud/invocations?state=queued|running|succeeded|failed&function=f&limit=n&payload=1``:
  ``{"counts": {state: n}, "invocations": [...]}`` (newest first; each with ``started``, and its
  event when ``payload=1``) for waiting on quiescence and measuring trigger latency.
- ``POST /_localcloud/mns/<function>/<trigger>?token=<admin token>``: the MNS topic trigger's push
  endpoint (the local MNS cannot send a header, so the token is in the subscription's URL).

Function environment (docs/fc-api.md, as ``s local invoke`` sets it): ``FC_FUNC_CODE_PATH``,
``FC_FUNCTION_NAME``, ``FC_FUNCTION_HANDLER``, ``FC_FUNCTION_MEMORY_SIZE``, ``FC_REGION``,
``FC_ACCOUNT_ID``, ``FC_INSTANCE_ID``, ``FC_RUNTIME``, ``FC_TIMEOUT``, ``FC_CUSTOM_LISTEN_PORT``,
``FC_INITIALIZER_HANDLER``/``FC_INITIALIZATION_TIMEOUT`` with an initializer,
``ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET`` (the local account's keys; ``SECURITY_TOKEN`` is empty:
the local cloud has no STS), then the s.yaml ``environmentVariables``, then ``env_overrides``
(the launcher's local endpoints), which **win over the s.yaml values**. ``PATH``, ``HOME``,
``LANG``, ``TMPDIR`` and ``PYTHONPATH`` are passed through from the local cloud's environment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from localcloud.core.account import Account
from localcloud.core.admin import AdminGuard
from localcloud.core.faults import FaultPlan, stable_digest
from localcloud.core.http import Request, Response
from localcloud.core.nonces import NonceLedger
from localcloud.fc import auth, destinations, names, ros, runtimes, syaml, triggers
from localcloud.fc.api3 import PREFIX as API3_PREFIX
from localcloud.fc.api3 import Fc3Api, list_page
from localcloud.fc.errors import (
    FcApiError,
    entity_too_large,
    function_not_found,
    invalid_argument,
    path_not_supported,
)
from localcloud.fc.instances import InvokeResult, Launch, Pool
from localcloud.fc.schedule import Schedule
from localcloud.fc.store import STATES, Deployed, InvocationRecord, Store

log = logging.getLogger("localcloud.fc")

_INVOKE_PATH = re.compile(r"^/2016-08-15/services/([^/]+)/functions/([^/]+)/invocations/?$")
_FUNCTIONS_PATH = re.compile(r"^/2016-08-15/services/([^/]+)/functions/?$")
_FUNCTION_PATH = re.compile(r"^/2016-08-15/services/([^/]+)/functions/([^/]+)/?$")
_PUSH_PATH = re.compile(r"^/_localcloud/mns/([^/]+)/([^/]+)$")
SYNC_PAYLOAD_LIMIT = 32 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 128 * 1024
#: The fault plan's fc.crash kills a worker at a seeded point within this many seconds of the attempt.
CRASH_WITHIN_SECONDS = 1.0
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
# Bytecode is kept: a package's unchecked-hash .pyc files are what FC runs (their digests are not
# part of the version, and a .pyc is only used by the Python whose tag it bears).
_COPY_IGNORE = shutil.ignore_patterns(".pytest_cache", ".mypy_cache")


def _json(status: int, data: Any, request_id: str = "") -> Response:
    headers = {"Content-Type": "application/json"}
    if request_id:
        headers["X-Fc-Request-Id"] = request_id
    return Response(status, headers, json.dumps(data).encode())


def _extra_paths(paths: Sequence[str]) -> tuple[str, ...]:
    """``extra_paths`` as given, each checked to be an existing folder named by its absolute path."""
    if isinstance(paths, str):
        raise ValueError(f"extra_paths must be a list of folders, not the string {paths!r}")
    for path in paths:
        if not isinstance(path, str) or not Path(path).is_absolute() or not Path(path).is_dir():
            raise ValueError(f"extra_paths: {path!r} is not the absolute path of an existing folder")
    return tuple(paths)


@dataclass(frozen=True)
class _CodeScan:
    """A code folder as a deploy sees it: its version, and the part of it that is a shared layer."""

    version: str
    #: Top-level entries whose every file is already a hard link (``immflow package`` links the
    #: dependencies from its cache: ~8,000 files per function, the same for every function).
    layer_entries: tuple[str, ...]
    #: The linked files of the top-level ``__pycache__`` (the bytecode of single-module dependencies).
    layer_bytecode: tuple[str, ...]
    layer_digest: str


def _scan_code(folder: Path) -> _CodeScan:
    """The code folder's version (its files' names and contents) and its shared layer, in one walk.

    A file that already has several hard links is taken by inode, size and modification time
    instead of being read: it is changed only by replacing it, which changes those."""
    # os.walk and one stat per file, in the order of sorted(folder.rglob("*")) (by path parts): the
    # same digest as Path objects give, in a third of the time (it runs at every deploy).
    files: list[tuple[tuple[str, ...], str]] = []
    for directory, subdirectories, file_names in os.walk(folder):
        parts = Path(directory).relative_to(folder).parts
        if "__pycache__" in subdirectories and parts:
            subdirectories.remove("__pycache__")
        files.extend(((*parts, name), os.path.join(directory, name)) for name in file_names)
    files.sort()
    digest, layer = hashlib.sha256(), hashlib.sha256()
    own_entries: set[str] = set()
    entries: set[str] = set()
    bytecode: list[str] = []
    for parts, path in files:
        try:
            status = os.stat(path)
        except OSError:  # a dangling link: Path.is_file() said False
            own_entries.add(parts[0])
            continue
        linked = stat.S_ISREG(status.st_mode) and status.st_nlink > 1
        if parts[0] == "__pycache__":
            if linked and len(parts) == 2:
                bytecode.append(parts[1])
            continue
        entries.add(parts[0])
        if not linked:
            own_entries.add(parts[0])
        if parts[-1].endswith(".pyc") or not stat.S_ISREG(status.st_mode):
            continue
        if linked:
            content = f"{status.st_ino}:{status.st_size}:{status.st_mtime_ns}".encode()
            layer.update("/".join(parts).encode() + b"\0" + content + b"\0")
        else:
            with open(path, "rb") as handle:
                content = handle.read()
        digest.update("/".join(parts).encode() + b"\0" + content + b"\0")
    layer_entries = tuple(sorted(entries - own_entries))
    for name in bytecode:
        layer.update(
            f"__pycache__/{name}\0{os.stat(os.path.join(folder, '__pycache__', name)).st_ino}".encode()
        )
    return _CodeScan(digest.hexdigest()[:16], layer_entries, tuple(bytecode), layer.hexdigest()[:16])


def _snapshot_file(source: str, destination: str) -> None:
    """Copy a file into a code snapshot; one that is already hard-linked (a cached dependency) is
    linked once more instead, so a deploy does not copy 120 MB per function that nobody edits."""
    if os.stat(source).st_nlink > 1:
        try:
            os.link(source, destination)
            return
        except OSError:
            pass  # another file system: copied
    shutil.copy2(source, destination)


class FcService:
    """The local FC. Call :meth:`start` with the URL it is served at before it takes requests.

    ``env_overrides`` are set in every function's environment over its s.yaml values (the
    launcher passes the local endpoints and ledger URL). ``max_instances`` bounds each
    function's concurrent instances, ``async_workers`` the async invocations run at once (all
    functions together: 8, so that a burst of one function's cold starts does not hold back another's
    events, as FC scales each function on its own; with 4, results waited up to 2 s behind uploads).
    ``prewarm`` starts an instance of each function as it is deployed (`localcloud.fc.instances`).
    """

    name = "fc"

    def __init__(
        self,
        state_dir: Path,
        account: Account,
        *,
        oss_endpoint: str = "",
        mns_endpoint: str = "",
        env_overrides: dict[str, str] | None = None,
        max_instances: int = 4,
        async_workers: int = 8,
        async_retry_delay: float = 1.0,
        faults: FaultPlan | None = None,
        prewarm: bool = False,
    ) -> None:
        self.account = account
        self._faults = faults or FaultPlan()
        self.admin_guard = AdminGuard.for_state_dir(state_dir)
        self.root = state_dir / "fc"
        self.oss_endpoint = oss_endpoint.rstrip("/")
        self.mns_endpoint = mns_endpoint.rstrip("/")
        self.env_overrides = dict(env_overrides or {})
        self.async_retry_delay = async_retry_delay
        self.prewarm = prewarm
        self.url = ""
        self._store = Store(self.root / "fc.sqlite3")
        self._pool = Pool(max_instances)
        self._functions = self._store.functions()
        self._functions_lock = threading.Lock()
        self._layers_lock = threading.Lock()
        self._layer_locks: dict[str, threading.Lock] = {}
        self._stopping = False
        self._async_workers = async_workers
        self._dispatchers: list[threading.Thread] = []
        self._timers: triggers.Timers | None = None
        self._api3 = Fc3Api(self, NonceLedger(self.root / "nonces.sqlite3"))

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, url: str) -> None:
        """Serve at ``url``: run queued async invocations, re-apply triggers, start the timers.

        Triggers are re-applied because the FC URL they point at may have changed since they
        were deployed (another port); failures are logged, not fatal, so one bad trigger does not
        keep the local cloud from starting.
        """
        self.url = url.rstrip("/")
        self._timers = triggers.Timers(self._fire_timer)
        for deployed in self._functions.values():
            try:
                self._apply_triggers(deployed.spec)
            except Exception as error:
                log.error("could not re-apply the triggers of function %s: %s", deployed.spec.name, error)
        for index in range(self._async_workers):
            thread = threading.Thread(target=self._dispatch, name=f"localcloud-fc-async-{index}", daemon=True)
            thread.start()
            self._dispatchers.append(thread)

    def close(self) -> None:
        with self._store.lock:
            self._stopping = True
            self._store.lock.notify_all()
        if self._timers:
            self._timers.close()
        self._pool.close()
        for thread in self._dispatchers:
            thread.join(timeout=10)
        self._store.close()
        self._api3.close()

    # --- deploy --------------------------------------------------------------------------------

    def deploy(
        self, s_yaml: Path, environ: dict[str, str] | None = None, extra_paths: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Register every fc3 function of ``s_yaml``, build its code, apply its triggers.

        ``extra_paths`` (absolute folders) go on each of its functions' ``sys.path`` right after the
        code folder: what a deployer whose code folders import a library kept elsewhere hands it
        (the local FC has no ``layers``), so the FC need not know any application's layout.

        Raises :class:`localcloud.fc.syaml.SYamlError` (the file is wrong),
        :class:`localcloud.fc.names.InvalidName`, :class:`localcloud.fc.triggers.TriggerError`
        (OSS or MNS refused a trigger: e.g. the bucket or topic does not exist yet) or
        :class:`destinations.DestinationError`; see :meth:`deploy_specs`.
        """
        specs = syaml.load(s_yaml, self.account, environ)
        return self.deploy_specs(specs, _extra_paths(extra_paths))

    def deploy_ros(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """Register the functions of a ROS template that :mod:`localcloud.ros` resolved (:mod:`localcloud.fc.ros`).

        Raises :class:`localcloud.fc.ros.RosFunctionError` (a property is wrong, or the code cannot be
        read from the local OSS) and whatever :meth:`deploy_specs` raises once the specs are built.
        """
        region = str(request.get("region") or self.account.region)
        code_root = self.root / "ros-code"
        specs = [
            ros.function_spec(entry, region, self.account, self.oss_endpoint, code_root)
            for entry in request.get("functions") or []
        ]
        return self.deploy_specs(specs, ())

    def deploy_specs(
        self, specs: list[syaml.FunctionSpec], extra_paths: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        """Deploy ``specs`` all or nothing: a refusal leaves no function registered or changed.

        Every name, destination and schedule is checked before any file is touched (a name
        is FC's, :mod:`localcloud.fc.names`, so no folder named after it leaves the state
        folder). Then the code is snapshotted and the triggers applied; if either fails, the new
        snapshots are removed and the triggers already applied are put back as they were (best
        effort: an MNS subscription made for a brand-new function stays, pushing to a function
        that does not exist). Only then are the functions registered, in one transaction.
        """
        for spec in specs:
            self._check_spec(spec)
        code_root = self.root / "code"
        existing = {p for spec in specs for p in (code_root / spec.name).glob("*")}
        built: list[Deployed] = []
        applied: list[syaml.FunctionSpec] = []
        try:
            # Side by side: each snapshot is thousands of stat and link calls, which release the GIL;
            # and each runtime's interpreter is looked for meanwhile (it runs every candidate Python
            # once, ~0.1 s per candidate), not after, when the deploy describes its functions.
            runtime_names = sorted({spec.runtime for spec in specs})
            with ThreadPoolExecutor(max(1, min(len(specs), 4)) + len(runtime_names)) as builders:
                for runtime in runtime_names:
                    builders.submit(runtimes.interpreter_for, runtime)
                futures = [builders.submit(self._build, spec, extra_paths) for spec in specs]
            built.extend(future.result() for future in futures)
            for deployed in built:
                applied.append(deployed.spec)
                self._apply_triggers(deployed.spec)
        except Exception:
            self._undo_deploy(
                applied, {p for spec in specs for p in (code_root / spec.name).glob("*")} - existing
            )
            raise
        configured_async = {d.spec.name for d in built if d.spec.async_config != syaml.AsyncConfig()}
        with self._functions_lock:
            self._store.put_functions(built, configured_async)
            self._functions.update((d.spec.name, d) for d in built)
        for deployed in built:
            self._pool.retire(deployed.spec.name, deployed.version)
            if self.prewarm:
                self._pool.prewarm(self._launch(deployed), float(deployed.spec.timeout))
        return [self._describe(d) for d in built]

    def _check_spec(self, spec: syaml.FunctionSpec) -> None:
        names.check_function_name(spec.name, f"function {spec.name!r}: functionName")
        for trigger in spec.triggers:
            names.check_trigger_name(trigger.name, f"function {spec.name!r}: triggerName")
            if trigger.type == "timer":
                Schedule.parse(trigger.config["cronExpression"])
        for arn in (spec.async_config.on_success, spec.async_config.on_failure):
            if arn:
                destinations.check_arn(arn)

    def _undo_deploy(self, applied: list[syaml.FunctionSpec], new_snapshots: set[Path]) -> None:
        for spec in applied:
            with self._functions_lock:
                previous = self._functions.get(spec.name)
            try:
                self._apply_triggers(previous.spec if previous else replace(spec, triggers=()))
            except Exception as error:
                log.error(
                    "could not restore the triggers of function %s after a failed deploy: %s",
                    spec.name,
                    error,
                )
        for path in new_snapshots:
            shutil.rmtree(path, ignore_errors=True)
            if not any(path.parent.iterdir()):
                path.parent.rmdir()

    def _build(self, spec: syaml.FunctionSpec, extra_paths: tuple[str, ...]) -> Deployed:
        """Snapshot the code folder, as ``s deploy`` uploads a zip: later edits need a redeploy.

        The top-level entries whose every file is already a hard link (the package's cached
        dependencies, which nobody edits in place) go into a layer, ``fc/layers/<digest>``, made once
        for every function and deploy that has the same ones (as an FC layer is shared); it is
        on the function's ``sys.path`` right after the snapshot of the rest of the code folder.

        ``extra_paths`` go on ``sys.path`` after the code folder and its layer (:meth:`deploy`). Third-party packages
        come from the code folder when the function runs on its runtime's own Python, else from the
        local cloud's environment (:mod:`localcloud.fc.instances`).
        """
        source = Path(spec.code_dir)
        scan = _scan_code(source)
        layer = self._layer(source, scan) if scan.layer_entries else None
        target = self.root / "code" / spec.name / scan.version
        if not target.exists():
            staging = target.with_name(f".{scan.version}.{os.getpid()}.{threading.get_ident()}.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            in_layer = set(scan.layer_entries)

            def ignore(directory: str, names: list[str]) -> set[str]:
                ignored = set(_COPY_IGNORE(directory, names))
                return ignored | (in_layer & set(names)) if Path(directory) == source else ignored

            shutil.copytree(source, staging, ignore=ignore, copy_function=_snapshot_file)
            os.replace(staging, target)
        extra = extra_paths if layer is None else (str(layer), *extra_paths)
        config_digest = hashlib.sha256(spec.to_json().encode()).hexdigest()[:8]
        return Deployed(spec, target, extra, f"{scan.version}-{config_digest}")

    def _layer(self, source: Path, scan: _CodeScan) -> Path:
        """The shared layer of ``scan`` (`_build`): hard links, made once per digest."""
        layer = self.root / "layers" / scan.layer_digest
        with self._layers_lock:
            lock = self._layer_locks.setdefault(scan.layer_digest, threading.Lock())
        with lock:  # functions deploying side by side share one layer: only one of them makes it
            if layer.exists():
                return layer
            staging = layer.with_name(f".{layer.name}.{os.getpid()}.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            for name in scan.layer_entries:
                if (source / name).is_dir():
                    shutil.copytree(source / name, staging / name, copy_function=_snapshot_file)
                else:
                    _snapshot_file(str(source / name), str(staging / name))
            if scan.layer_bytecode:
                (staging / "__pycache__").mkdir()
                for name in scan.layer_bytecode:
                    _snapshot_file(str(source / "__pycache__" / name), str(staging / "__pycache__" / name))
            os.replace(staging, layer)
        return layer

    def _apply_triggers(self, spec: syaml.FunctionSpec) -> None:
        if not self.url:
            return  # not serving yet: start() applies them
        oss = [t for t in spec.triggers if t.type == "oss"]
        mns = [t for t in spec.triggers if t.type == "mns_topic"]
        if oss or self.oss_endpoint:
            if oss and not self.oss_endpoint:
                raise triggers.TriggerError(
                    f"function {spec.name!r} has an OSS trigger but no local OSS is configured"
                )
            if self.oss_endpoint:
                triggers.remove_stale_oss(self.oss_endpoint, self.admin_guard.token, spec)
            for trigger in oss:
                triggers.apply_oss(self.oss_endpoint, self.admin_guard.token, self.url, spec, trigger)
        if mns and not self.mns_endpoint:
            raise triggers.TriggerError(
                f"function {spec.name!r} has an MNS topic trigger but no local MNS is configured"
            )
        for trigger in mns:
            triggers.apply_mns(
                self.mns_endpoint, self.account, self.admin_guard.token, self.url, spec, trigger
            )
        if self._timers:
            self._timers.replace(spec.name, [t for t in spec.triggers if t.type == "timer"])

    def _describe(self, deployed: Deployed) -> dict[str, Any]:
        spec = deployed.spec
        return {
            "name": spec.name,
            "runtime": spec.runtime,
            "python": runtimes.interpreter_for(spec.runtime).describe(),
            "handler": spec.handler,
            "timeout": spec.timeout,
            "memory_size": spec.memory_size,
            "code_path": str(deployed.code_path),
            "version": deployed.version,
            "triggers": [{"name": t.name, "type": t.type} for t in spec.triggers],
        }

    # --- running functions ---------------------------------------------------------------------

    def _launch(self, deployed: Deployed) -> Launch:
        spec = deployed.spec
        env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
        env.update(spec.environment)
        env.update(
            {
                "FC_FUNC_CODE_PATH": str(deployed.code_path),
                "FC_FUNCTION_NAME": spec.name,
                "FC_FUNCTION_HANDLER": spec.handler,
                "FC_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
                "FC_REGION": spec.region,
                "FC_ACCOUNT_ID": self.account.account_id,
                "FC_RUNTIME": spec.runtime,
                "FC_TIMEOUT": str(spec.timeout),
                "FC_CUSTOM_LISTEN_PORT": "9000",
                "ALIBABA_CLOUD_ACCESS_KEY_ID": self.account.access_key_id,
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.account.access_key_secret,
                "ALIBABA_CLOUD_SECURITY_TOKEN": "",
            }
        )
        if spec.initializer:
            env["FC_INITIALIZER_HANDLER"] = spec.initializer
            env["FC_INITIALIZATION_TIMEOUT"] = str(spec.initializer_timeout)
        env.update(self.env_overrides)
        meta = {
            "function": spec.name,
            "handler": spec.handler,
            "initializer": spec.initializer,
            "memory": spec.memory_size,
            "timeout": spec.timeout,
            "runtime": spec.runtime,
            "region": spec.region,
            "account_id": self.account.account_id,
            "extra_paths": list(deployed.extra_paths),
        }
        return Launch(
            function=spec.name,
            version=deployed.version,
            code_path=deployed.code_path,
            env=env,
            meta=meta,
            initializer_timeout=spec.initializer_timeout,
            log_path=self.root / "logs" / f"{spec.name}.log",
        )

    def _run(
        self, deployed: Deployed, request_id: str, payload: bytes, crash_after: float | None = None
    ) -> InvokeResult:
        try:
            return self._pool.invoke(
                self._launch(deployed), request_id, payload, deployed.spec.timeout, crash_after
            )
        except Exception as error:  # could not start an instance at all
            log.exception("function %s: no instance could run request %s", deployed.spec.name, request_id)
            return InvokeResult.failure(
                f"the local FC could not start an instance: {error}", "InternalServerError"
            )

    def _deployed(self, function: str) -> Deployed:
        with self._functions_lock:
            return self._deployed_locked(function)

    def _deployed_locked(self, function: str) -> Deployed:
        deployed = self._functions.get(function)
        if deployed is None:
            raise function_not_found(function)
        return deployed

    def enqueue(self, function: str, payload: bytes, source: str) -> str:
        """Accept an async invocation durably; returns its request id."""
        self._deployed(function)
        if len(payload) > ASYNC_PAYLOAD_LIMIT:
            raise entity_too_large(ASYNC_PAYLOAD_LIMIT)
        request_id = str(uuid.uuid4())
        self._store.add(request_id, function, "async", source, payload, "queued")
        return request_id

    def _fire_timer(self, function: str, trigger: syaml.TriggerSpec, fired_at: float) -> None:
        self.enqueue(function, triggers.timer_event(trigger, fired_at), f"timer:{trigger.name}")

    def _dispatch(self) -> None:
        while True:
            with self._store.lock:
                if self._stopping:
                    return
                invocation = self._store.claim_due()
                if invocation is None:
                    wait = self._store.next_due_in()
                    self._store.lock.wait(1.0 if wait is None else min(wait, 1.0))
                    continue
            try:
                self._run_async(invocation)
            except Exception:
                log.exception("async invocation %s: bookkeeping failed; it runs again", invocation.request_id)
                self._store.retry_later(
                    invocation.request_id, self.async_retry_delay, "InternalServerError", ""
                )

    def _run_async(self, invocation: InvocationRecord) -> None:
        try:
            deployed = self._deployed(invocation.function)
        except FcApiError as error:
            self._store.finish(invocation.request_id, "failed", error.code, error.message)
            return
        config = deployed.spec.async_config
        if time.time() - invocation.created > config.max_event_age_seconds:
            message = f"dropped: older than maxAsyncEventAgeInSeconds={config.max_event_age_seconds}"
            self._store.finish(invocation.request_id, "failed", "EventAgeExceeded", message)
            self._route(deployed, invocation, config.on_failure, "EventAgeExceeded", InvokeResult(False))
            return
        outcome = self._run(
            deployed, invocation.request_id, invocation.payload, self._crash_after(invocation)
        )
        if outcome.ok:
            self._store.finish(invocation.request_id, "succeeded")
            self._route(deployed, invocation, config.on_success, "", outcome)
            return
        error_type = str(outcome.error.get("errorType", "UnhandledInvocationError"))
        message = str(outcome.error.get("errorMessage", ""))
        log.warning(
            "async invocation %s of %s failed (attempt %d): %s: %s",
            invocation.request_id,
            invocation.function,
            invocation.attempts,
            error_type,
            message,
        )
        if invocation.attempts <= config.max_retry_attempts:
            delay = self.async_retry_delay * 2 ** (invocation.attempts - 1)
            self._store.retry_later(invocation.request_id, delay, error_type, message)
            return
        self._store.finish(invocation.request_id, "failed", error_type, message)
        condition = (
            "FunctionTimeoutError" if error_type == "FunctionTimeoutError" else "UnhandledInvocationError"
        )
        self._route(deployed, invocation, config.on_failure, condition, outcome)

    def _crash_after(self, invocation: InvocationRecord) -> float | None:
        """When the fault plan kills this attempt's worker: a seeded point in its first second.
        Keyed by the function, the payload without its ids and times, which of the invocations
        with that payload it is (a timer's firings look alike) and the attempt, so FC's retry of
        it may pass, and the same uploads meet the same crashes in another run."""
        if not self._faults.rates.get("fc.crash"):
            return None  # no digest of every payload when crashes are off
        work = f"{invocation.function}:{stable_digest(invocation.payload)}"
        occurrence = self._faults.occurrence(work, invocation.request_id)
        item = f"{work}.{occurrence}#{invocation.attempts}"
        if not self._faults.fires("fc.crash", item, invocation.source):
            return None
        return CRASH_WITHIN_SECONDS * self._faults.share("fc.crash", item)

    def _route(
        self,
        deployed: Deployed,
        invocation: InvocationRecord,
        arn: str,
        condition: str,
        outcome: InvokeResult,
    ) -> None:
        if not arn:
            return
        spec = deployed.spec
        body = destinations.record(
            request_id=invocation.request_id,
            function_arn=f"acs:fc:{spec.region}:{self.account.account_id}:functions/{spec.name}",
            condition=condition,
            attempts=invocation.attempts,
            payload=invocation.payload,
            status_code=200,
            response=outcome.body if outcome.ok else json.dumps(outcome.error).encode(),
        )
        try:
            destinations.deliver(
                arn,
                body,
                account=self.account,
                mns_endpoint=self.mns_endpoint,
                invoke_async=lambda fn, data: self.enqueue(fn, data, f"destination:{spec.name}"),
            )
        except Exception as error:
            log.error("destination %s of %s: %s", arn, invocation.request_id, error)
            self._store.set_destination_error(invocation.request_id, f"{arn}: {error}")

    # --- HTTP ----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            if request.raw_path.startswith("/_localcloud/"):
                return self._admin(request, request_id)
            if request.raw_path == API3_PREFIX or request.raw_path.startswith(API3_PREFIX + "/"):
                return self._api3.handle(request, request_id)
            if request.method == "GET" and (
                _FUNCTIONS_PATH.match(request.raw_path) or _FUNCTION_PATH.match(request.raw_path)
            ):
                auth.check(request, self.account)
                return self._read_api2(request, request_id)
            match = _INVOKE_PATH.match(request.path)
            if request.method != "POST" or not match:
                raise path_not_supported(request.method, request.path)
            auth.check(request, self.account)
            function = unquote(match.group(2))
            return self._invoke(request, function, request_id)
        except FcApiError as error:
            return error.response(request_id)

    def _invoke(self, request: Request, function: str, request_id: str) -> Response:
        deployed = self._deployed(function)
        mode = request.headers.get("x-fc-invocation-type", "Sync")
        if mode.lower() == "async":
            if len(request.body) > ASYNC_PAYLOAD_LIMIT:
                raise entity_too_large(ASYNC_PAYLOAD_LIMIT)
            self._store.add(request_id, function, "async", "api", request.body, "queued")
            return Response(202, {"X-Fc-Request-Id": request_id}, b"")
        if mode.lower() != "sync":
            raise invalid_argument(f"x-fc-invocation-type must be Sync or Async, got {mode!r}")
        if len(request.body) > SYNC_PAYLOAD_LIMIT:
            raise entity_too_large(SYNC_PAYLOAD_LIMIT)
        self._store.add(request_id, function, "sync", "api", request.body, "running")
        outcome = self._run(deployed, request_id, request.body)
        headers = {
            "X-Fc-Request-Id": request_id,
            "X-Fc-Invocation-Duration": str(int(outcome.duration * 1000)),
        }
        if outcome.ok:
            self._store.finish(request_id, "succeeded")
            return Response(200, {**headers, "Content-Type": "application/octet-stream"}, outcome.body)
        self._store.finish(
            request_id,
            "failed",
            str(outcome.error.get("errorType", "")),
            str(outcome.error.get("errorMessage", "")),
        )
        headers.update({"X-Fc-Error-Type": "UnhandledInvocationError", "Content-Type": "application/json"})
        return Response(200, headers, json.dumps(outcome.error).encode())

    def _read_api2(self, request: Request, request_id: str) -> Response:
        """FC 2.0's ListFunctions and GetFunction over the fc3 functions.

        fc3 functions have no service, so **any service name (and qualifier) is accepted**, as for
        InvokeFunction, and lists or finds the same functions. ListFunctions pages by ``limit``
        (1-100, default 20), ``nextToken`` or ``startKey`` (a function name to start from), and
        filters by ``prefix``. The fields are FC 2.0's ``function`` object; ``codeChecksum`` is the
        local code snapshot's digest, not a CRC-64 of a zip.
        """
        single = _FUNCTION_PATH.match(request.raw_path)
        if single:
            deployed = self.function(unquote(single.group(2)))
            return _json(200, self._describe_api2(deployed), request_id)
        query = request.query()
        query["nextToken"] = max(query.get("nextToken", ""), query.get("startKey", ""))
        by_name = {d.spec.name: d for d in self.functions()}
        page, next_token = list_page(list(by_name), query)
        body: dict[str, Any] = {"functions": [self._describe_api2(by_name[n]) for n in page]}
        if next_token:
            body["nextToken"] = next_token
        return _json(200, body, request_id)

    def _describe_api2(self, deployed: Deployed) -> dict[str, Any]:
        described = self._api3.describe_function(deployed)
        for key in ("functionArn", "state", "lastUpdateStatus", "instanceLifecycleConfig"):
            described.pop(key, None)
        described["initializer"] = deployed.spec.initializer
        described["initializationTimeout"] = deployed.spec.initializer_timeout
        return described

    # --- for the FC 3.0 API (localcloud.fc.api3) --------------------------------------------------

    def function(self, name: str) -> Deployed:
        """The deployed function ``name``; raises FunctionNotFound."""
        return self._deployed(name)

    def functions(self) -> list[Deployed]:
        with self._functions_lock:
            return list(self._functions.values())

    def function_times(self, name: str) -> tuple[float, float]:
        return self._store.function_times(name)

    def async_config_times(self, name: str) -> tuple[float, float] | None:
        return self._store.async_config_times(name)

    def set_async_config(self, name: str, config: syaml.AsyncConfig) -> Deployed:
        """Give function ``name`` a new async config, durably; later async invocations use it."""
        with self._functions_lock:
            deployed = self._deployed_locked(name)
            updated = replace(deployed, spec=replace(deployed.spec, async_config=config))
            self._store.put_async_config(updated)
            self._functions[name] = updated
        return updated

    def invoke(self, request: Request, function: str, request_id: str) -> Response:
        """InvokeFunction, the same for FC 2.0 and 3.0 (headers, status, body)."""
        return self._invoke(request, function, request_id)

    def _admin(self, request: Request, request_id: str) -> Response:
        path = request.path
        push = _PUSH_PATH.match(path)
        refusal = self.admin_guard.refusal(request, allow_query_token=push is not None)
        if refusal is not None:
            raise FcApiError(refusal.status, refusal.code, refusal.message)
        if push and request.method == "POST":
            return self._mns_push(push.group(1), push.group(2), request.body, request_id)
        if path == "/_localcloud/deploy" and request.method == "POST":
            try:
                body = json.loads(request.body or b"{}")
                if "ros" in body:
                    summaries = self.deploy_ros(body["ros"])
                else:
                    summaries = self.deploy(
                        Path(body["s_yaml"]), body.get("environ"), body.get("extra_paths") or ()
                    )
            except (ValueError, KeyError, TypeError, triggers.TriggerError) as error:
                raise invalid_argument(f"deploy failed: {error}") from error
            return _json(200, {"functions": summaries}, request_id)
        if path == "/_localcloud/functions" and request.method == "GET":
            with self._functions_lock:
                described = [self._describe(d) for d in self._functions.values()]
            return _json(200, {"functions": described}, request_id)
        if path == "/_localcloud/invocations" and request.method == "GET":
            query = request.query()
            state = query.get("state") or None
            if state and state not in STATES:
                raise invalid_argument(f"state must be one of {', '.join(STATES)}")
            limit = int(query.get("limit") or 1000) if (query.get("limit") or "1").isdigit() else 1000
            listed = self._store.list(state, query.get("function") or None, limit)
            with_payload = query.get("payload") == "1"
            return _json(
                200,
                {"counts": self._store.counts(), "invocations": [i.summary(with_payload) for i in listed]},
                request_id,
            )
        raise path_not_supported(request.method, path)

    def _mns_push(self, function: str, trigger_name: str, body: bytes, request_id: str) -> Response:
        deployed = self._deployed(function)
        trigger = next(
            (t for t in deployed.spec.triggers if t.type == "mns_topic" and t.name == trigger_name), None
        )
        if trigger is None:
            raise FcApiError(
                404, "TriggerNotFound", f"function {function!r} has no MNS topic trigger {trigger_name!r}"
            )
        try:
            event = triggers.mns_event(body, trigger.config.get("notifyContentFormat", "STREAM"))
        except ValueError as error:
            raise invalid_argument(f"MNS push to trigger {trigger_name!r}: {error}") from error
        self.enqueue(function, event, f"mns_topic:{trigger_name}")
        return Response(204, {"X-Fc-Request-Id": request_id}, b"")

    # --- for tests and tools in the same process -----------------------------------------------

    def invocations(self, state: str | None = None, function: str | None = None) -> list[dict[str, Any]]:
        return [i.summary() for i in self._store.list(state, function)]

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no async invocation is queued or running; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = self._store.counts()
            if counts["queued"] == 0 and counts["running"] == 0:
                return True
            time.sleep(0.05)
        return False
