"""Run the whole local cloud: OSS, MNS, IMM, FC and Tablestore on 127.0.0.1, ports ``base+0..4``.

``python -m localcloud.launcher --state-dir DIR [--port-base N]`` (what ``immflow local up``
runs) starts the five servers, writes ``DIR/endpoints.json`` in the shape DESIGN.md fixes and
``DIR/localcloud.pid``, and stops cleanly on SIGTERM or SIGINT. ``LocalCloud.start(state_dir)``
is the in-process form for tests (free ports when ``port_base`` is None).

The launcher answers on every port as soon as OSS, MNS and FC are built: IMM and Tablestore, the
slowest to import, load on threads of their own meanwhile (a request to one of them waits until it
is built), so whoever started the cloud can deploy in the meantime; if one cannot load, the whole
cloud stops and says why in its log, as it would at start.

One local cloud per state folder: an exclusive lock on ``DIR/localcloud.lock`` is held while it
runs, so a second launcher on the same folder fails at once instead of corrupting state.

The local cloud knows no application: whoever starts it says what its functions need, as
``function_env`` (``--function-env NAME=VALUE``, repeated): variables set in every function's
environment over its s.yaml values, where ``{oss}``, ``{mns}``, ``{imm}`` and ``{ots}`` stand for
those services' endpoints (as ``endpoints.json`` writes them; ``{{`` and ``}}`` are literal braces).
``immflow local up`` hands it immflow's (`immflow.cli.local.function_env`).
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from immflow import imports

from localcloud.core import memtrace, redact
from localcloud.core.account import Account
from localcloud.core.admin import load_or_create_token, write_secret_file
from localcloud.core.durable import atomic_write_bytes
from localcloud.core.faults import FaultPlan, FaultSpecError
from localcloud.core.http import Request, Response, Service, ServiceServer
from localcloud.core.ports import DEFAULT_PORT_BASE

#: Start order (stop order is the reverse): Tablestore starts before FC, so that FC never runs a
#: function while a service it may call is not up yet, and stops after it.
SERVICES = ("oss", "mns", "imm", "ots", "fc")
ENDPOINTS_FILE = "endpoints.json"
PID_FILE = "localcloud.pid"
LOCK_FILE = "localcloud.lock"

log = logging.getLogger("localcloud.launcher")


class LaunchError(RuntimeError):
    """The local cloud cannot start; the message says why and what to do."""


def _function_env(function_env: Mapping[str, str], endpoints: Mapping[str, str]) -> dict[str, str]:
    """`function_env` with the endpoint placeholders filled in (see the module docstring)."""
    filled = {}
    for name, value in function_env.items():
        try:
            filled[name] = value.format_map(endpoints)
        except (KeyError, ValueError, IndexError) as error:
            names = ", ".join("{" + endpoint + "}" for endpoint in endpoints)
            raise LaunchError(
                f"function environment {name}={value!r}: {error!r} is not an endpoint placeholder; "
                f"use {names}, and {{{{ or }}}} for a literal brace"
            ) from None
    return filled


def _lock(state_dir: Path) -> TextIO:
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the cloud's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        handle.close()
        raise LaunchError(
            f"a local cloud is already running on {state_dir} (see {state_dir / PID_FILE}); "
            f"stop it with `immflow local down --state-dir {state_dir}` or use another --state-dir"
        ) from error
    return handle


def _serve(service: Service, name: str, host: str, port: int) -> ServiceServer:
    try:
        return ServiceServer(service, host, port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise LaunchError(
                f"port {port} ({name}) is already in use on {host}: another local cloud or program holds it; "
                "stop it or pick other ports with --port-base N"
            ) from error
        raise


class _Loading:
    """A service imported and built on a thread of its own while its port already answers: a request
    that comes before it is built waits for it (`LocalCloud.start`'s ``load_in_background``)."""

    def __init__(self, name: str, build: Callable[[], Any]) -> None:
        self.name = name
        self._service: Any = None
        self._error: BaseException | None = None
        self._built = threading.Event()
        self._thread = threading.Thread(
            target=self._build, args=(build,), name=f"localcloud-{name}-loading", daemon=True
        )
        self._thread.start()

    def _build(self, build: Callable[[], Any]) -> None:
        try:
            self._service = build()
        except BaseException as error:  # re-raised by `service`, in the launcher's thread too
            self._error = error
        finally:
            self._built.set()

    def service(self) -> Any:
        self._built.wait()
        if self._error is not None:
            raise LaunchError(f"the local {self.name} could not start: {self._error}") from self._error
        return self._service

    def handle(self, request: Request) -> Response:
        handled: Response = self.service().handle(request)
        return handled

    def close(self) -> None:
        self._built.wait()
        if self._service is not None:
            self._service.close()


class LocalCloud:
    """The five local services, each on its own server thread, sharing one account and state folder."""

    def __init__(self, state_dir: Path, account: Account, lock: TextIO) -> None:
        self.state_dir = state_dir
        self.account = account
        self.admin_token = load_or_create_token(state_dir)
        self._lock = lock
        self.services: dict[str, Any] = {}
        self.faults = FaultPlan()
        self.servers: dict[str, ServiceServer] = {}

    @classmethod
    def start(
        cls,
        state_dir: Path,
        port_base: int | None = None,
        host: str = "127.0.0.1",
        *,
        fc_options: dict[str, Any] | None = None,
        mns_time_scale: float = 1.0,
        function_env: Mapping[str, str] | None = None,
        faults: str | None = None,
        load_in_background: bool = False,
    ) -> LocalCloud:
        """Start OSS, MNS, IMM, Tablestore, FC in that order (each later one needs the earlier URLs).

        ``load_in_background``: IMM and Tablestore, whose modules take the longest to import (the
        local IMM's media code and oss2, the ``tablestore`` SDK's protobuf and client), are imported
        and built on threads of their own while their ports already answer; a request waits until its
        service is built. :meth:`wait_loaded` waits for both and raises if one could not start.

        ``port_base=None`` gives every service a free port. ``fc_options`` are passed to
        :class:`localcloud.fc.FcService` (e.g. ``async_retry_delay`` in tests). ``function_env`` is
        what every function gets over its s.yaml environment (see the module docstring).
        ``faults`` is a fault SPEC (:mod:`localcloud.core.faults`), saved in ``DIR/faults.json``;
        without one the folder's saved plan, if any, is used again.
        """
        from localcloud.fc import FcService
        from localcloud.mns import MnsService
        from localcloud.oss import OssService

        state_dir = state_dir.resolve()
        cloud = cls(state_dir, Account.load_or_create(state_dir), _lock(state_dir))
        account = cloud.account
        try:
            plan = FaultPlan.for_state_dir(state_dir, faults)
        except BaseException:
            cloud.stop()
            raise
        cloud.faults = plan
        if plan.active:
            log.warning("fault injection is on: %s (fired faults go to %s)", plan.to_json(), plan.log_path)

        def port(index: int) -> int:
            return 0 if port_base is None else port_base + index

        try:
            oss = cloud._add("oss", OssService(state_dir, account, faults=plan), host, port(0))
            mns = cloud._add(
                "mns", MnsService(state_dir, account, mns_time_scale, faults=plan), host, port(1)
            )

            def build_imm() -> Any:
                from localcloud.imm import ImmService

                return ImmService(state_dir, account, oss_endpoint=oss.url, mns_endpoint=mns.url, faults=plan)

            def build_ots() -> Any:
                from localcloud.ots import OtsService

                return OtsService(state_dir, account)

            if load_in_background:
                imm_service: Any = _Loading("imm", build_imm)
                ots_service: Any = _Loading("ots", build_ots)
            else:
                imm_service, ots_service = build_imm(), build_ots()
            imm = cloud._add("imm", imm_service, host, port(2))
            ots = cloud._add("ots", ots_service, host, port(4))
            endpoints = {"oss": oss.url, "mns": mns.url, "imm": f"{imm.host}:{imm.port}", "ots": ots.url}
            overrides = _function_env(function_env or {}, endpoints)
            fc_service = FcService(
                state_dir,
                account,
                oss_endpoint=oss.url,
                mns_endpoint=mns.url,
                env_overrides=overrides,
                faults=plan,
                **(fc_options or {}),
            )
            fc = cloud._add("fc", fc_service, host, port(3))
            fc_service.start(fc.url)
        except BaseException:
            cloud.stop()
            raise
        write_secret_file(state_dir / ENDPOINTS_FILE, json.dumps(cloud.endpoints, indent=2).encode() + b"\n")
        return cloud

    def _add(self, name: str, service: Any, host: str, port: int) -> ServiceServer:
        self.services[name] = service
        try:
            server = _serve(service, name, host, port)
        except BaseException:
            service.close()
            del self.services[name]
            raise
        self.servers[name] = server.start()
        return server

    def wait_loaded(self) -> None:
        """Wait for the services `start` builds in the background; :class:`LaunchError` if one failed."""
        for name, service in list(self.services.items()):
            if isinstance(service, _Loading):
                self.services[name] = service.service()

    @property
    def endpoints(self) -> dict[str, str]:
        """``endpoints.json``: URLs for oss, mns, fc, ots; ``host:port`` for imm (what the IMM SDK takes);
        ``ots_instance`` (the Tablestore instance to pass to ``OTSClient``), the key pair, and the
        admin routes' token (`localcloud.core.admin`)."""
        from localcloud.ots.store import DEFAULT_INSTANCE

        imm = self.servers["imm"]
        return {
            "oss": self.servers["oss"].url,
            "mns": self.servers["mns"].url,
            "imm": f"{imm.host}:{imm.port}",
            "fc": self.servers["fc"].url,
            "ots": self.servers["ots"].url,
            "ots_instance": DEFAULT_INSTANCE,
            "region": self.account.region,
            "account_id": self.account.account_id,
            "access_key_id": self.account.access_key_id,
            "access_key_secret": self.account.access_key_secret,
            "admin_token": self.admin_token,
        }

    @property
    def fc(self) -> Any:
        return self.services["fc"]

    def stop(self) -> None:
        """Stop in reverse order: FC first, so no function is mid-call when a service it calls goes away."""
        for name in reversed(SERVICES):
            server = self.servers.pop(name, None)
            if server is not None:
                server.stop()
            service = self.services.pop(name, None)
            if service is not None:
                try:
                    service.close()
                except Exception:
                    log.exception("%s did not close cleanly", name)
        self._lock.close()

    def __enter__(self) -> LocalCloud:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(
    state_dir: Path,
    port_base: int,
    on_ready: Callable[[dict[str, str]], None] | None = None,
    function_env: Mapping[str, str] | None = None,
    faults: str | None = None,
) -> int:
    """Run in the foreground until SIGTERM/SIGINT; ``on_ready`` gets the endpoints once serving."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # The services import the official SDKs (oss2 for its signatures, tablestore for its protobuf
    # messages, immflow's task models), which bring what no service calls: the functions' import diet
    # keeps it off the start (~0.25 s of CPU, most of it Tablestore's aiohttp and numpy, on the cores the
    # caller deploys on), and the collector waits until IMM and Tablestore have loaded.
    imports.install()
    # Pre-warmed instances: the first event after a deploy finds its function's modules imported.
    # IMM and Tablestore load while the caller deploys (the first request each gets is later).
    cloud = LocalCloud.start(
        state_dir,
        port_base,
        function_env=function_env,
        faults=faults,
        fc_options={"prewarm": True},
        load_in_background=True,
    )
    memtrace.install(cloud.state_dir)
    redact.install([cloud.account.access_key_secret, cloud.admin_token])
    pid_file = cloud.state_dir / PID_FILE
    atomic_write_bytes(pid_file, f"{os.getpid()}\n".encode())
    log.info(
        "local cloud running: %s",
        {k: v for k, v in cloud.endpoints.items() if k not in ("access_key_secret", "admin_token")},
    )
    if on_ready is not None:
        on_ready(cloud.endpoints)
    try:
        cloud.wait_loaded()  # a service that could not load stops the whole cloud, as at start
        imports.resume_collection()
        stop.wait()
    finally:
        log.info("stopping the local cloud")
        cloud.stop()
        if pid_file.exists() and pid_file.read_text().strip() == str(os.getpid()):
            pid_file.unlink()
    return 0


def _variable(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localcloud.launcher", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE)
    parser.add_argument(
        "--function-env",
        type=_variable,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set in every function's environment; {oss}, {mns}, {imm}, {ots} stand for the endpoints",
    )
    parser.add_argument(
        "--faults",
        default=None,
        metavar="SPEC",
        help="inject faults: seed=N,kind=probability,... (saved in DIR/faults.json; see localcloud.core.faults)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return run(
            args.state_dir,
            args.port_base,
            lambda endpoints: print(json.dumps(endpoints), flush=True),
            dict(args.function_env),
            faults=args.faults,
        )
    except (LaunchError, FaultSpecError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
