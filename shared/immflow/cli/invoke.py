"""``immflow invoke FUNCTION --event FILE [--async]``: call a function on the local FC through fc2.

The request is what the cloud gets from ``s invoke``: the FC 2.0 invoke API, signed with the
local key pair from ``endpoints.json``. fc3 functions have no service; the local FC accepts any
service name, and this command sends the function's name.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import IO

import click
import fc2

from immflow.cli import main
from immflow.cli.local import read_endpoints, state_dir_option


def fc_client(endpoints: dict[str, str], timeout: float = 600) -> fc2.Client:
    # fc2 logs every error reply with logging.error on the root logger; the CLI reports them itself.
    logging.getLogger().addHandler(logging.NullHandler())
    return fc2.Client(
        endpoint=endpoints["fc"],
        accessKeyID=endpoints["access_key_id"],
        accessKeySecret=endpoints["access_key_secret"],
        Timeout=timeout,
    )


@main.command()
@click.argument("function")
@click.option(
    "--event",
    "event_file",
    type=click.File("rb"),
    required=True,
    help="File with the event bytes ('-' reads stdin); `immflow events ...` prints sample events.",
)
@click.option(
    "--async", "is_async", is_flag=True, help="Invoke asynchronously (202, queued, retried on error)."
)
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print {request_id, status, result|error} as JSON.")
def invoke(function: str, event_file: IO[bytes], is_async: bool, state_dir: Path, as_json: bool) -> None:
    """Invoke FUNCTION on the local FC with the event in --event; exits 1 if the function failed."""
    payload = event_file.read()
    headers = {"x-fc-invocation-type": "Async"} if is_async else {}
    try:
        response = fc_client(read_endpoints(state_dir)).invoke_function(
            function, function, payload=payload, headers=headers
        )
    except fc2.FcError as error:
        try:
            detail = json.loads(error.message)
        except ValueError:
            detail = {"message": str(error.message)}
        if as_json:
            click.echo(
                json.dumps({"request_id": error.request_id, "status": error.status_code, "error": detail})
            )
        else:
            click.echo(f"{function} failed (request {error.request_id}, HTTP {error.status_code}):", err=True)
            click.echo(json.dumps(detail, indent=2, ensure_ascii=False), err=True)
        sys.exit(1)
    request_id = response.headers.get("X-Fc-Request-Id", "")
    if as_json:
        body = response.data.decode("utf-8", "replace")
        click.echo(json.dumps({"request_id": request_id, "status": 202 if is_async else 200, "result": body}))
    elif is_async:
        click.echo(f"accepted: request {request_id} is queued; `immflow local status` shows the invocations")
    else:
        sys.stdout.buffer.write(response.data)
        if response.data and not response.data.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")
