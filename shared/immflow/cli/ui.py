"""``immflow ui``: the dashboard, on the local cloud or, given a ledger URL and credentials, a deployed stack.

Without ``--ledger-url`` (and ``IMMFLOW_LEDGER_URL``) it reads the local cloud of ``--state-dir``:
its ledger, and its OSS with the key pair of ``endpoints.json``. With one, OSS is the region's
(``IMMFLOW_OSS_ENDPOINT`` to choose another) and the credentials are the ``ALIBABA_CLOUD_*``
variables, as for the functions. It listens on 127.0.0.1 (port base + 9 of the local cloud, 9419)
unless ``--host`` names another address, which needs ``--token``.
"""

from __future__ import annotations

import json
import os
import secrets
import webbrowser
from datetime import timedelta
from pathlib import Path

import click

from immflow.cli import main
from immflow.cli.local import state_dir_option
from localcloud.core.ports import DEFAULT_PORT_BASE

DEFAULT_PORT = DEFAULT_PORT_BASE + 9


def build_dashboard(state_dir: Path, ledger_url: str | None, pipeline: Path | None) -> object:
    """The `Dashboard` for the local cloud of `state_dir`, or for the deployed stack of `ledger_url`."""
    try:
        from immflow.ui.data import Dashboard
    except ImportError as error:  # the web stack is an extra: the functions never need it
        raise click.ClickException(
            f"the dashboard needs its web packages ({error.name} is missing): pip install 'immflow[ui]'"
        ) from None
    from immflow.adapters.oss import OssAdapter
    from immflow.fc import Credentials, credentials_from_env
    from immflow.ledger import Ledger, LedgerError, local_ledger
    from immflow.settings import DEFAULT_RECONCILE_AFTER_SECONDS

    url = ledger_url or os.environ.get("IMMFLOW_LEDGER_URL")
    if url is None:
        endpoints_path = state_dir / "endpoints.json"
        if not endpoints_path.exists():
            raise click.ClickException(
                f"no local cloud in {state_dir} ({endpoints_path} is missing): run `immflow demo` or "
                "`immflow local up --detach`, or give a deployed stack's --ledger-url"
            )
        endpoints = json.loads(endpoints_path.read_text())
        try:
            ledger = local_ledger(state_dir)
        except LedgerError as error:
            raise click.ClickException(str(error)) from None
        url = ledger.url
        oss = OssAdapter(
            endpoint=endpoints["oss"],
            credentials=Credentials(endpoints["access_key_id"], endpoints["access_key_secret"]),
        )
    else:
        region = (
            os.environ.get("IMMFLOW_REGION") or os.environ.get("ALIBABA_CLOUD_REGION_ID") or "cn-hangzhou"
        )
        oss = OssAdapter(
            endpoint=os.environ.get("IMMFLOW_OSS_ENDPOINT") or f"https://oss-{region}.aliyuncs.com",
            credentials=credentials_from_env(os.environ),
        )
        ledger = Ledger(url)
    stuck_after = int(os.environ.get("IMMFLOW_RECONCILE_AFTER_SECONDS") or DEFAULT_RECONCILE_AFTER_SECONDS)
    return Dashboard(
        ledger,
        ledger_url=url,
        oss=oss,
        pipeline_path=pipeline,
        stuck_after=timedelta(seconds=stuck_after),
    )


def serve(dashboard: object, host: str, port: int, token: str | None, *, open_browser: bool) -> None:
    import uvicorn

    from immflow.ui.app import Access, create_app
    from immflow.ui.data import Dashboard

    assert isinstance(dashboard, Dashboard)
    app = create_app(dashboard, Access(token))
    shown_host = "127.0.0.1" if host in ("127.0.0.1", "0.0.0.0") else host
    address = f"http://{shown_host}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"immflow dashboard on {address} (Ctrl-C stops it)")
    if open_browser:
        webbrowser.open(address)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.command()
@state_dir_option
@click.option(
    "--ledger-url", help="A deployed stack's ledger (default: IMMFLOW_LEDGER_URL, else the local cloud's)."
)
@click.option(
    "--pipeline",
    type=click.Path(dir_okay=False, path_type=Path),
    default="pipeline.yaml",
    show_default=True,
    help="The pipeline file the Pipeline page draws.",
)
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Another address needs --token.")
@click.option("--token", help="Required with --host: every request must carry it (the printed address does).")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in the browser.")
def ui(
    state_dir: Path,
    ledger_url: str | None,
    pipeline: Path,
    port: int,
    host: str,
    token: str | None,
    open_browser: bool,
) -> None:
    """Serve the web dashboard: runs, their task graphs and outputs, the pipeline."""
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise click.ClickException(
            f"serving on {host} shows your outputs to anyone who reaches it: add --token "
            f"(for example --token {secrets.token_urlsafe(16)})"
        )
    dashboard = build_dashboard(state_dir, ledger_url, pipeline if pipeline.exists() else None)
    serve(dashboard, host, port, token, open_browser=open_browser)
