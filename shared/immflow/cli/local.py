"""``immflow local up|down|status|deploy``: run the local cloud and deploy template.yml or an s.yaml onto it.

The state folder (default ``.immflow`` in the current folder) holds everything the local cloud
keeps: ``account.json`` (the key pair), ``endpoints.json`` (DESIGN.md's shape, for clients),
``localcloud.pid``, ``localcloud.log`` (detached runs) and each service's data. It survives a
restart. Whether a local cloud runs on a folder is told by the lock its launcher holds on
``localcloud.lock``, so a stale pid file never fools ``status`` or ``up``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import requests
import yaml
from rich.console import Console
from rich.table import Table

from immflow.cli import main
from localcloud.core.faults import FAULT_KINDS, FaultPlan, FaultSpecError
from localcloud.core.ports import DEFAULT_PORT_BASE, port_free

if TYPE_CHECKING:
    from immflow import package

# The same folder as immflow.ledger.DEFAULT_STATE_DIR, said again: importing the ledger here would
# load pydantic into every CLI command.
DEFAULT_STATE_DIR = Path(".immflow")
#: The bucket `local deploy template.yml` uploads the function zips to when CodeBucket is not given.
LOCAL_CODE_BUCKET = "immflow-code"
SERVICE_NAMES = ("oss", "mns", "imm", "fc", "ots")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
_ENDPOINT_KEYS = (
    *SERVICE_NAMES,
    "ots_instance",
    "region",
    "account_id",
    "access_key_id",
    "access_key_secret",
    "admin_token",
)
#: What `local up` and `local status` show: never the secret or the admin token (they are in the 0600
#: endpoints.json for clients that need them).
_SHOWN_KEYS = tuple(key for key in _ENDPOINT_KEYS if key not in ("access_key_secret", "admin_token"))

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="Folder with the local cloud's state and endpoints.json.",
)


def _say(message: str) -> None:
    click.echo(message, err=True)


def read_endpoints(state_dir: Path) -> dict[str, str]:
    """``state_dir/endpoints.json``, checked; a ClickException tells how to start the cloud."""
    path = state_dir / "endpoints.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise click.ClickException(
            f"no local cloud in {state_dir} ({path} is missing): start one with "
            f"`immflow local up --detach --state-dir {state_dir}`"
        ) from None
    except ValueError as error:
        raise click.ClickException(f"{path} is not valid JSON: {error}") from None
    missing = [key for key in _ENDPOINT_KEYS if not isinstance(data.get(key), str)]
    if missing:
        raise click.ClickException(f"{path} lacks {', '.join(missing)}; restart with `immflow local up`")
    return {key: str(data[key]) for key in _ENDPOINT_KEYS}


def is_running(state_dir: Path) -> bool:
    """True while a launcher holds the state folder's lock."""
    path = state_dir / "localcloud.lock"
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.removeprefix("http://").removeprefix("https://").rstrip("/").rpartition(":")
    return host, int(port)


def answers(endpoint: str, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(_host_port(endpoint), timeout=timeout):
            return True
    except OSError:
        return False


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def function_env() -> dict[str, str]:
    """What immflow's functions need from the local cloud, over their s.yaml values: its OSS, IMM and
    Tablestore endpoints (the launcher's ``{oss}``, ``{imm}``, ``{ots}``) and its ledger, the default
    one (`immflow.ledger.local_ledger`), in the local Tablestore. Every local function instance runs on
    this machine's disk, which a SQLite ledger given instead would need (`immflow.settings`)."""
    from immflow.settings import (
        DEFAULT_LEDGER_URL,
        ENVIRONMENT_VARIABLES,
        OTS_ENDPOINT_VARIABLE,
        SHARED_DISK_VARIABLE,
    )

    return {
        ENVIRONMENT_VARIABLES["oss_endpoint"]: "{oss}",
        ENVIRONMENT_VARIABLES["imm_endpoint"]: "{imm}",
        ENVIRONMENT_VARIABLES["ledger_url"]: DEFAULT_LEDGER_URL,
        OTS_ENDPOINT_VARIABLE: "{ots}",
        SHARED_DISK_VARIABLE: "1",
    }


def create_ledger(state_dir: Path) -> None:
    """Create the local cloud's ledger tables, as template.yml does for a deployed stack."""
    from immflow.ledger import local_ledger

    local_ledger(state_dir).create_schema()


@dataclass(frozen=True)
class Starting:
    """A launcher started in the background (`spawn`), not yet known to answer (`wait_ready`)."""

    process: subprocess.Popen[bytes]
    state_dir: Path
    started_at: float


def start_detached(
    state_dir: Path, port_base: int, timeout: float = START_TIMEOUT_SECONDS, faults: str | None = None
) -> dict[str, str]:
    """Start the launcher in the background, wait until every port answers, create the ledger's tables.

    ``faults`` is a fault SPEC for the launcher's ``--faults`` (None: the state folder's saved plan)."""
    endpoints = wait_ready(spawn(state_dir, port_base, faults), timeout)
    create_ledger(state_dir)
    return endpoints


def spawn(state_dir: Path, port_base: int, faults: str | None = None) -> Starting:
    """Start the launcher in the background and return at once (`start_detached` without the waits)."""
    if is_running(state_dir):
        raise click.ClickException(
            f"a local cloud is already running on {state_dir}; `immflow local status --state-dir {state_dir}` "
            f"shows it and `immflow local down --state-dir {state_dir}` stops it"
        )
    taken = [
        f"{port_base + i} ({name})" for i, name in enumerate(SERVICE_NAMES) if not port_free(port_base + i)
    ]
    if taken:
        raise click.ClickException(
            f"port {', '.join(taken)} already in use on 127.0.0.1; stop what holds it or use --port-base N"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    started_at = time.time()
    with open(state_dir / "localcloud.log", "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localcloud.launcher",
                "--state-dir",
                str(state_dir),
                "--port-base",
                str(port_base),
                *(f"--function-env={name}={value}" for name, value in function_env().items()),
                *([] if faults is None else ["--faults", faults]),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    return Starting(process, state_dir, started_at)


def wait_ready(starting: Starting, timeout: float = START_TIMEOUT_SECONDS) -> dict[str, str]:
    """Wait until the `spawn`ed launcher wrote its endpoints and every port answers; its endpoints."""
    process, state_dir = starting.process, starting.state_dir
    log_path = state_dir / "localcloud.log"
    endpoints_path = state_dir / "endpoints.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(
                f"the local cloud exited with status {process.returncode} while starting; "
                f"the end of {log_path}:\n{_log_tail(log_path)}"
            )
        if endpoints_path.exists() and endpoints_path.stat().st_mtime >= starting.started_at - 1:
            endpoints = read_endpoints(state_dir)
            if all(answers(endpoints[name]) for name in SERVICE_NAMES):
                return endpoints
        time.sleep(0.05)
    process.terminate()
    raise click.ClickException(f"the local cloud did not answer within {timeout:.0f} s; see {log_path}")


def stop(state_dir: Path, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
    """SIGTERM the launcher and wait for it; SIGKILL after ``timeout``. Returns the pid, or None."""
    if not is_running(state_dir):
        return None
    pid_file = state_dir / "localcloud.pid"
    deadline = time.monotonic() + 5
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # the launcher writes it just after taking the lock
    pid = int(pid_file.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_running(state_dir):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
            break
        time.sleep(0.1)
    return pid


def fc_admin(endpoints: dict[str, str], method: str, path: str, **kwargs: Any) -> Any:
    """Call a ``/_localcloud`` endpoint of the local FC; FC's JSON error becomes a ClickException."""
    from localcloud.core.admin import admin_headers

    response = requests.request(
        method,
        endpoints["fc"] + path,
        headers=admin_headers(endpoints["admin_token"]),
        timeout=kwargs.pop("timeout", 120),
        **kwargs,
    )
    if response.status_code >= 400:
        try:
            message = response.json().get("ErrorMessage", response.text)
        except ValueError:
            message = response.text
        raise click.ClickException(f"local FC: {message}")
    return response.json()


def is_immflow_project(folder: Path) -> bool:
    return (
        (folder / "functions").is_dir()
        and (folder / "shared" / "immflow").is_dir()
        and (folder / "pipeline.yaml").exists()
    )


def functions_runtime(s_yaml: Path) -> str | None:
    """The one runtime the fc3 functions of ``s_yaml`` name, or None when they name several or a variable."""
    try:
        document = yaml.safe_load(s_yaml.read_text())
        resources = document["resources"].values()
        named = {
            str(r["props"]["runtime"]) for r in resources if str(r.get("component", "")).startswith("fc3")
        }
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None  # the deploy itself says what is wrong with the file
    return named.pop() if len(named) == 1 else None


def deploy_environ(s_yaml: Path, state_dir: Path, say: Callable[[str], None] = _say) -> dict[str, str]:
    """The environment an s.yaml is deployed with on the local FC (``${env(...)}`` resolves in it).

    It is this shell's, as with ``s deploy``. For immflow's own s.yaml (its folder holds
    functions/, shared/immflow and pipeline.yaml) the functions are first built with
    `immflow.package.build`, the same folders the cloud gets, once per set of inputs
    (`cached_build`), and ``IMMFLOW_CODE_DIR`` points the s.yaml at them, unless it is already set
    in this shell:

    - when this machine has the Python of the functions' runtime (and it is not this one), with the
      dependencies built for it, since the local FC runs them on that Python with their code folder
      alone (localcloud.fc.runtimes). The dependencies are cached per runtime and requirement set,
      so only the first deploy pays for them (about a minute; ``scripts/setup`` prepares them);
    - otherwise without them: the local FC runs the functions on its own Python, whose environment
      (this one) has them.
    """
    environ = dict(os.environ)
    project = s_yaml.resolve().parent
    if is_immflow_project(project) and "IMMFLOW_CODE_DIR" not in environ:
        environ["IMMFLOW_CODE_DIR"] = str(cached_build(project, functions_runtime(s_yaml), say))
    return environ


#: Builds `cached_build` keeps per runtime beyond those younger than a day (others are deleted).
KEPT_BUILDS = 4


def build_inputs_digest(project: Path, runtime: str | None) -> str:
    """What a build of ``project`` for ``runtime`` is made from: the handlers, all of ``shared/immflow``
    (the packager included), pipeline.yaml, the runtime's interpreter (path, size, mtime) and every
    distribution installed here (the dependencies are pinned to their versions). Equal digests, equal builds."""
    from immflow.package import FUNCTIONS, RUNTIMES, target_python

    digest = hashlib.sha256()
    python = target_python(runtime) if runtime in RUNTIMES else None
    interpreter = os.stat(python) if python else None
    digest.update(
        json.dumps(
            [
                runtime,
                python,
                interpreter and [interpreter.st_size, interpreter.st_mtime_ns],
                sys.version,
                # name-version of each distribution: reading their metadata would cost ~0.5 s
                sorted(
                    p.name
                    for path in sys.path
                    if os.path.isdir(path)
                    for p in os.scandir(path)
                    if p.name.endswith(".dist-info")
                ),
            ]
        ).encode()
    )
    library = project / "shared" / "immflow"
    files = [project / "functions" / name / "index.py" for name in FUNCTIONS] + [project / "pipeline.yaml"]
    files += sorted(
        p for p in library.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    for path in files:
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cached_build(project: Path, runtime: str | None, say: Callable[[str], None] = _say) -> Path:
    """The folder of immflow's functions built for the local FC (`build_for_local_fc`), reused while its
    inputs are unchanged (`build_inputs_digest`): ``~/.cache/immflow/builds/<runtime>-<digest>``.

    A build folder is complete once it has its name (built aside, then renamed) and is never changed
    afterwards; the local FC snapshots the code at deploy, so a later build never alters a deployed
    function."""
    from immflow.package import default_cache_dir

    builds = default_cache_dir().parent / "builds"
    final = builds / f"{runtime or 'host'}-{build_inputs_digest(project, runtime)}"
    if final.is_dir():
        return final
    staging = builds / f".{final.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    build_for_local_fc(project, staging, runtime, say)
    try:
        os.replace(staging, final)
    except OSError:  # another build of the same inputs finished first: its folder is as good
        shutil.rmtree(staging, ignore_errors=True)
    _prune_builds(builds, final)
    return final


def _prune_builds(builds: Path, keep: Path) -> None:
    """Delete builds beyond the newest `KEPT_BUILDS` that are also more than a day old (another
    checkout may be deploying a recent one)."""
    old = time.time() - 86400
    done = sorted(
        (p for p in builds.iterdir() if not p.name.startswith(".") and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for path in done[KEPT_BUILDS:]:
        if path.stat().st_mtime < old:
            shutil.rmtree(path, ignore_errors=True)


def build_for_local_fc(
    project: Path, out: Path, runtime: str | None, say: Callable[[str], None] = _say
) -> list[package.BuiltFunction]:
    """Build immflow's functions into ``out`` for the local FC, as `deploy_environ` says."""
    from immflow.package import RUNTIMES, PackageError, build, default_cache_dir, target_python

    python = target_python(runtime) if runtime in RUNTIMES else None
    try:
        if runtime is not None and python not in (None, sys.executable):
            say(
                f"building the functions for {runtime} with {python} (dependencies cached in {default_cache_dir()})"
            )
            return build(project, out, runtime=runtime, cache_dir=default_cache_dir())
        return build(project, out, dependencies=False)
    except PackageError as error:
        raise click.ClickException(str(error)) from None


def function_paths(s_yaml: Path) -> list[str]:
    """What the local FC puts on each function's ``sys.path`` after its code folder: the project's
    ``shared/`` (next to the s.yaml) when it holds immflow, so that a bare ``functions/<name>`` code
    folder imports immflow as a packaged one does. A packaged folder (`immflow.package`) holds its own
    immflow, which comes first."""
    shared = s_yaml.resolve().parent / "shared"
    return [str(shared)] if (shared / "immflow").is_dir() else []


def deploy(endpoints: dict[str, str], s_yaml: Path, environ: dict[str, str]) -> list[dict[str, Any]]:
    body = {"s_yaml": str(s_yaml.resolve()), "environ": environ, "extra_paths": function_paths(s_yaml)}
    result = fc_admin(endpoints, "POST", "/_localcloud/deploy", json=body)
    functions: list[dict[str, Any]] = result["functions"]
    return functions


def _endpoints_table(endpoints: dict[str, str], title: str) -> Table:
    table = Table(title=title, show_header=False)
    for key in _SHOWN_KEYS:
        table.add_row(key, endpoints[key])
    table.add_row("key pair, admin token", "in endpoints.json (readable by you only)")
    return table


@main.group()
def local() -> None:
    """Run the local cloud (OSS, MNS, IMM, FC, Tablestore on 127.0.0.1) and deploy onto it."""


@local.command()
@state_dir_option
@click.option("--detach", is_flag=True, help="Start in the background, wait until it answers, and exit.")
@click.option(
    "--port-base",
    type=int,
    default=DEFAULT_PORT_BASE,
    show_default=True,
    help="oss=N, mns=N+1, imm=N+2, fc=N+3, ots=N+4",
)
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as JSON.")
@click.option(
    "--faults",
    metavar="SPEC",
    default=None,
    help="Inject seeded faults, e.g. seed=7,oss.event.drop=0.05,imm.throttle=0.1 (kept in the state "
    "folder for later starts; --faults '' turns them off). Kinds: " + ", ".join(sorted(FAULT_KINDS)) + ".",
)
def up(state_dir: Path, detach: bool, port_base: int, as_json: bool, faults: str | None) -> None:
    """Start the local cloud and print its endpoints (foreground until Ctrl-C, unless --detach)."""
    if faults is not None:
        try:
            FaultPlan.parse(faults)
        except FaultSpecError as error:
            raise click.BadParameter(str(error), param_hint="--faults") from None
    if detach:
        endpoints = start_detached(state_dir, port_base, faults=faults)
        if as_json:
            click.echo(json.dumps(endpoints))
        else:
            Console().print(
                _endpoints_table(endpoints, f"local cloud running in the background ({state_dir})")
            )
            click.echo(f"Stop it with: immflow local down --state-dir {state_dir}")
        return
    from localcloud.launcher import LaunchError, run

    def ready(endpoints: dict[str, str]) -> None:
        create_ledger(state_dir)
        if as_json:
            click.echo(json.dumps(endpoints))
        else:
            Console().print(
                _endpoints_table(endpoints, f"local cloud running ({state_dir}); Ctrl-C stops it")
            )

    try:
        run(state_dir, port_base, on_ready=ready, function_env=function_env(), faults=faults)
    except LaunchError as error:
        raise click.ClickException(str(error)) from None


@local.command()
@state_dir_option
def down(state_dir: Path) -> None:
    """Stop the local cloud running on the state folder."""
    pid = stop(state_dir)
    if pid is None:
        click.echo(f"no local cloud is running on {state_dir}")
    else:
        click.echo(f"stopped the local cloud (pid {pid}) on {state_dir}")


@local.command()
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(state_dir: Path, as_json: bool) -> None:
    """Say whether the local cloud runs, where, and what its FC is doing. Exits 1 when it is not running."""
    running = is_running(state_dir)
    report: dict[str, Any] = {"state_dir": str(state_dir.resolve()), "running": running}
    plan = FaultPlan.for_state_dir(state_dir) if state_dir.is_dir() else FaultPlan()
    if plan.active or plan.counts():
        report["faults"] = {**plan.to_json(), "injected": dict(sorted(plan.counts().items()))}
    if running:
        endpoints = read_endpoints(state_dir)
        report["pid"] = int((state_dir / "localcloud.pid").read_text().strip())
        report["endpoints"] = {k: endpoints[k] for k in _SHOWN_KEYS}
        report["answering"] = {name: answers(endpoints[name]) for name in SERVICE_NAMES}
        if report["answering"]["fc"]:
            report["invocations"] = fc_admin(endpoints, "GET", "/_localcloud/invocations?limit=0")["counts"]
            functions = fc_admin(endpoints, "GET", "/_localcloud/functions")["functions"]
            report["functions"] = [f["name"] for f in functions]
            # Which Python runs each runtime, and the fallback notice when it is missing here.
            report["pythons"] = sorted({f["python"] for f in functions if "python" in f})
    if as_json:
        click.echo(json.dumps(report))
    elif not running:
        click.echo(f"no local cloud is running on {state_dir}; start one with `immflow local up --detach`")
    else:
        table = Table(title=f"local cloud on {state_dir} (pid {report['pid']})")
        table.add_column("service")
        table.add_column("endpoint")
        table.add_column("answering")
        for name in SERVICE_NAMES:
            table.add_row(name, report["endpoints"][name], "yes" if report["answering"][name] else "NO")
        console = Console()
        console.print(table)
        if "functions" in report:
            console.print(f"functions: {', '.join(report['functions']) or '(none deployed)'}")
            for python in report["pythons"]:
                console.print(f"python: {python}")
            console.print("invocations: " + ", ".join(f"{k} {v}" for k, v in report["invocations"].items()))
    if not as_json and "faults" in report:  # also once the cloud stopped: what it went through
        faults = report["faults"]
        rates = ", ".join(f"{k}={v:g}" for k, v in faults["rates"].items() if v) or "none"
        click.echo(f"fault plan: seed {faults['seed']}, {rates}")
        injected = ", ".join(f"{k} {v}" for k, v in faults["injected"].items()) or "none yet"
        click.echo(f"faults injected: {injected} (each in {state_dir / 'faults.log'})")
    if not running:
        sys.exit(1)


def _is_ros_template(path: Path) -> bool:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(document, dict) and "ROSTemplateFormatVersion" in document


def missing_resources(endpoints: dict[str, str], s_yaml: Path, environ: dict[str, str]) -> list[str]:
    """What the functions of ``s_yaml`` need and the local cloud lacks: its triggers' buckets and topics, its
    failure-destination queues, the IMM project they name. Each entry says which resource and who needs it."""
    import oss2
    from mns.account import Account as MnsAccount
    from mns.mns_exception import MNSServerException

    from localcloud.core.account import Account
    from localcloud.fc import syaml

    account = Account(
        endpoints["account_id"],
        endpoints["region"],
        endpoints["access_key_id"],
        endpoints["access_key_secret"],
    )
    try:
        specs = syaml.load(s_yaml, account, environ)
    except syaml.SYamlError as error:
        raise click.ClickException(str(error)) from None
    auth = oss2.Auth(endpoints["access_key_id"], endpoints["access_key_secret"])
    mns = MnsAccount(endpoints["mns"], endpoints["access_key_id"], endpoints["access_key_secret"])
    missing: dict[str, list[str]] = {}
    for spec in specs:
        for trigger in spec.triggers:
            if trigger.type == "oss":
                try:
                    oss2.Bucket(auth, endpoints["oss"], trigger.arn_tail()).get_bucket_info()
                except oss2.exceptions.NoSuchBucket:
                    missing.setdefault(f"bucket {trigger.arn_tail()!r}", []).append(
                        f"OSS trigger {trigger.name} of {spec.name}"
                    )
            elif trigger.type == "mns_topic":
                topic = trigger.arn_tail().removeprefix("/topics/")
                try:
                    mns.get_topic(topic).get_attributes()
                except MNSServerException as error:
                    if error.type != "TopicNotExist":
                        raise
                    missing.setdefault(f"MNS topic {topic!r}", []).append(
                        f"trigger {trigger.name} of {spec.name}"
                    )
        for arn in (spec.async_config.on_success, spec.async_config.on_failure):
            tail = arn.split(":", 4)[-1]
            if arn.startswith("acs:mns:") and tail.startswith("/queues/"):
                queue = tail.removeprefix("/queues/").removesuffix("/messages")
                try:
                    mns.get_queue(queue).get_attributes()
                except MNSServerException as error:
                    if error.type != "QueueNotExist":
                        raise
                    missing.setdefault(f"MNS queue {queue!r}", []).append(
                        f"the failure destination of {spec.name}"
                    )
    projects: dict[str, list[str]] = {}
    for spec in specs:
        if spec.environment.get("IMMFLOW_PROJECT"):
            projects.setdefault(spec.environment["IMMFLOW_PROJECT"], []).append(spec.name)
    for project, users in projects.items():
        if not _imm_project_exists(endpoints, project):
            missing[f"IMM project {project!r}"] = [f"IMMFLOW_PROJECT of {', '.join(users)}"]
    return [f"{resource} (for {', '.join(users)})" for resource, users in missing.items()]


def _imm_project_exists(endpoints: dict[str, str], project: str) -> bool:
    from alibabacloud_imm20200930 import models
    from alibabacloud_imm20200930.client import Client
    from alibabacloud_tea_openapi.models import Config
    from Tea.exceptions import TeaException

    client = Client(
        Config(
            access_key_id=endpoints["access_key_id"],
            access_key_secret=endpoints["access_key_secret"],
            endpoint=endpoints["imm"],
            protocol="http",
            region_id=endpoints["region"],
        )
    )
    try:
        client.get_project(models.GetProjectRequest(project_name=project))
    except TeaException as error:
        if error.code != "ResourceNotFound":
            raise
        return False
    return True


def template_runtime(template: Path) -> str | None:
    """The one runtime the ALIYUN::FC3::Function resources of ``template`` name, or None."""
    try:
        resources = (yaml.safe_load(template.read_text()).get("Resources") or {}).values()
        named = {
            str(r["Properties"]["Runtime"]) for r in resources if r.get("Type") == "ALIYUN::FC3::Function"
        }
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None  # the deploy itself says what is wrong with the file
    return named.pop() if len(named) == 1 else None


def upload_code(
    endpoints: dict[str, str], project: Path, template: Path, state_dir: Path, bucket: str, prefix: str
) -> list[str]:
    """What a cloud deploy of template.yml asks of the user, done for the local cloud: `immflow package`
    (for the template's runtime, as `build_for_local_fc` builds), one zip per function, uploaded with
    oss2 to ``oss://bucket/prefix<function>.zip`` (the bucket is created if missing)."""
    import io
    import zipfile

    import oss2

    built = build_for_local_fc(project, (state_dir / "build" / "fc").resolve(), template_runtime(template))
    code_bucket = oss2.Bucket(
        oss2.Auth(endpoints["access_key_id"], endpoints["access_key_secret"]), endpoints["oss"], bucket
    )
    try:
        code_bucket.get_bucket_info()
    except oss2.exceptions.NoSuchBucket:
        code_bucket.create_bucket()
    keys = []
    for function in built:
        data = io.BytesIO()
        # Level 1: the dependencies make each zip about 100 MB, and only the local FC reads it.
        with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for path in sorted(function.path.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(function.path).as_posix())
        key = f"{prefix}{function.name}.zip"
        code_bucket.put_object(key, data.getvalue())
        keys.append(f"oss://{bucket}/{key}")
    return keys


def deploy_template(
    endpoints: dict[str, str], template: Path, state_dir: Path, parameters: dict[str, str]
) -> list[dict[str, str]]:
    """Create every resource of a ROS template on the local cloud; for immflow's own template the code
    is packaged and uploaded to CodeBucket first (default ``immflow-code`` locally)."""
    from localcloud.ros import RosError
    from localcloud.ros import deploy as ros_deploy

    declared = yaml.safe_load(template.read_text()).get("Parameters") or {}
    project = template.resolve().parent
    if is_immflow_project(project) and "CodeBucket" in declared:
        parameters = {"CodeBucket": LOCAL_CODE_BUCKET, **parameters}
        prefix = parameters.get("CodePrefix", str(declared.get("CodePrefix", {}).get("Default", "")))
        upload_code(endpoints, project, template, state_dir, parameters["CodeBucket"], prefix)
    try:
        created = ros_deploy(template, endpoints, state_dir.resolve(), parameters)
    except RosError as error:
        raise click.ClickException(str(error)) from None
    return [entry.to_dict() for entry in created]


def _parameters(values: tuple[str, ...]) -> dict[str, str]:
    parameters = {}
    for value in values:
        name, sep, given = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r}: write NAME=VALUE", param_hint="--parameter")
        parameters[name] = given
    return parameters


@local.command(name="deploy")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default="s.yaml")
@state_dir_option
@click.option(
    "--parameter",
    "-p",
    "parameters",
    multiple=True,
    help="NAME=VALUE for a template.yml parameter (repeatable); CodeBucket defaults to immflow-code locally.",
)
@click.option("--json", "as_json", is_flag=True)
def deploy_command(file: Path, state_dir: Path, parameters: tuple[str, ...], as_json: bool) -> None:
    """Deploy FILE onto the running local cloud.

    A ROS template (template.yml) creates every resource it declares: bucket, topic, queue, IMM
    project and its service role, Tablestore tables, functions and their triggers (SLS resources are
    reported as skipped: the local cloud has no log service). An s.yaml deploys the fc3 functions and
    triggers onto what exists (like `s deploy`), and names any bucket, topic or queue it lacks.
    """
    endpoints = read_endpoints(state_dir)
    if _is_ros_template(file):
        created = deploy_template(endpoints, file, state_dir, _parameters(parameters))
        if as_json:
            click.echo(json.dumps({"resources": created}))
            return
        table = Table(title=f"deployed {file}")
        for column in ("resource", "type", "name", "status", "note"):
            table.add_column(column)
        for entry in created:
            table.add_row(
                entry["logical_id"], entry["type"], entry["physical_id"], entry["status"], entry["note"]
            )
        Console().print(table)
        return
    if parameters:
        raise click.UsageError("--parameter is for ROS templates; an s.yaml reads ${env(...)} instead")
    environ = deploy_environ(file, state_dir)
    missing = missing_resources(endpoints, file, environ)
    if missing:
        raise click.ClickException(
            f"{file} deploys onto resources the local cloud at {state_dir} does not have: {'; '.join(missing)}. "
            f"Create them first with `immflow local deploy template.yml --state-dir {state_dir}` "
            "(the template creates the whole stack), then deploy this file again."
        )
    functions = deploy(endpoints, file, environ)
    if as_json:
        click.echo(json.dumps({"functions": functions}))
        return
    table = Table(title=f"deployed {file}")
    for column in ("function", "runtime", "handler", "triggers"):
        table.add_column(column)
    for function in functions:
        triggers = ", ".join(f"{t['name']} ({t['type']})" for t in function["triggers"]) or "-"
        table.add_row(function["name"], function["runtime"], function["handler"], triggers)
    Console().print(table)
