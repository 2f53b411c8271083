"""``immflow backfill oss://bucket/prefix/``: run the upload function on objects already in OSS.

Objects uploaded before the trigger existed never produced an event. This lists them with oss2
and invokes the function behind the OSS trigger once per object, through the FC invoke API,
with the event the trigger would have sent (``ObjectCreated:PutObject``, the object's real
ETag, size and content type). Invocations are asynchronous by default, as the trigger's are;
immflow's runs are keyed by bucket/key/ETag, so backfilling twice starts nothing new.

Against the local cloud it reads ``endpoints.json``; the function defaults to the one deployed
function that has an OSS trigger.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import fc2
import oss2
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from immflow.cli import main
from immflow.cli.events import oss_put_event
from immflow.cli.invoke import fc_client
from immflow.cli.local import fc_admin, read_endpoints, state_dir_option
from immflow.ossuri import OssUri


def _upload_function(endpoints: dict[str, str]) -> str:
    functions = fc_admin(endpoints, "GET", "/_localcloud/functions")["functions"]
    with_oss = [f["name"] for f in functions if any(t["type"] == "oss" for t in f["triggers"])]
    if len(with_oss) != 1:
        found = ", ".join(with_oss) or "none"
        raise click.ClickException(f"pass --function: deployed functions with an OSS trigger: {found}")
    return str(with_oss[0])


@main.command()
@click.argument("uri")
@click.option(
    "--function", "function", default=None, help="Default: the deployed function with an OSS trigger."
)
@click.option("--sync", "is_sync", is_flag=True, help="Wait for each invocation instead of queueing it.")
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the invocations as JSON.")
def backfill(uri: str, function: str | None, is_sync: bool, state_dir: Path, as_json: bool) -> None:
    """Invoke the upload function for every object under URI (oss://bucket/prefix/)."""
    try:
        location = OssUri.parse(uri, field="URI", allow_prefix=True)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="URI") from None
    endpoints = read_endpoints(state_dir)
    target = function or _upload_function(endpoints)
    bucket = oss2.Bucket(
        oss2.Auth(endpoints["access_key_id"], endpoints["access_key_secret"]),
        endpoints["oss"],
        location.bucket,
    )
    try:
        objects = [o for o in oss2.ObjectIteratorV2(bucket, prefix=location.key) if not o.key.endswith("/")]
    except oss2.exceptions.OssError as error:
        raise click.ClickException(f"cannot list {uri}: {error.code} {error.message}") from None
    client = fc_client(endpoints)
    headers = {} if is_sync else {"x-fc-invocation-type": "Async"}
    results: list[dict[str, Any]] = []
    console = Console(stderr=True)
    with Progress(
        TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.description}"),
        console=console, disable=as_json,
    ) as progress:  # fmt: skip
        task = progress.add_task("", total=len(objects))
        for obj in objects:
            progress.update(task, description=obj.key)
            head = bucket.head_object(obj.key)
            event = oss_put_event(
                location.bucket,
                obj.key,
                obj.size,
                region=endpoints["region"],
                account_id=endpoints["account_id"],
                content_type=head.content_type or "application/octet-stream",
                etag=obj.etag.strip('"').upper(),
            )
            result: dict[str, Any] = {"uri": f"oss://{location.bucket}/{obj.key}", "size": obj.size}
            try:
                response = client.invoke_function(
                    target, target, payload=json.dumps(event).encode(), headers=headers
                )
                result.update(request_id=response.headers.get("X-Fc-Request-Id", ""), ok=True)
            except fc2.FcError as error:
                result.update(request_id=error.request_id, ok=False, error=str(error.message))
            results.append(result)
            progress.advance(task)
    failed = [r for r in results if not r["ok"]]
    if as_json:
        click.echo(
            json.dumps({"function": target, "mode": "sync" if is_sync else "async", "invocations": results})
        )
    else:
        verb = "ran" if is_sync else "queued"
        console.print(
            f"{verb} {target} for {len(results) - len(failed)} of {len(results)} objects under {uri}"
        )
        for result in failed:
            console.print(f"[red]failed[/red] {result['uri']}: {result['error']}")
    if failed:
        sys.exit(1)
