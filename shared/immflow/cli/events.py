"""``immflow events oss-put|mns-imm``: print sample trigger events in the cloud's exact shapes.

For testing your own handlers: ``immflow events oss-put --bucket b --key in/a.mp4 > e.json`` then
``immflow invoke on-upload --event e.json``. Each event is built in the documented shape
(docs/events.md#oss-trigger-event and §5, docs/imm.md#notifications) and parsed back with immflow's own event models before
it is printed, so a sample that immflow itself would reject is never printed.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any, get_args

import click

from immflow.cli import main
from immflow.events.imm import ImmFinalState, parse_imm_notification
from immflow.events.mns import parse_mns_trigger_event
from immflow.events.oss import parse_oss_event


def _iso_ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def oss_put_event(
    bucket: str, key: str, size: int, *, region: str, account_id: str, content_type: str, etag: str
) -> dict[str, Any]:
    """One ``ObjectCreated:PutObject`` record as the OSS trigger delivers it (key raw, eTag upper hex)."""
    return {
        "events": [
            {
                "eventName": "ObjectCreated:PutObject",
                "eventSource": "acs:oss",
                "eventTime": _iso_ms(datetime.now(timezone.utc)),
                "eventVersion": "1.0",
                "oss": {
                    "bucket": {
                        "arn": f"acs:oss:{region}:{account_id}:{bucket}",
                        "name": bucket,
                        "ownerIdentity": account_id,
                    },
                    "object": {
                        "deltaSize": size,
                        "eTag": etag,
                        "key": key,
                        "objectMeta": {"mimeType": content_type, "userMeta": {}},
                        "size": size,
                    },
                    "ossSchemaVersion": "1.0",
                    "ruleId": secrets.token_hex(20),
                },
                "region": region,
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"requestId": secrets.token_hex(12).upper()},
                "userIdentity": {"principalId": account_id},
            }
        ]
    }


def imm_notification(
    task_type: str, status: str, *, project: str, region: str, account_id: str, user_data: str
) -> dict[str, Any]:
    """IMM's task-finished envelope with ``content`` a JSON string (docs/imm.md#notifications)."""
    now = datetime.now(timezone.utc)
    failed = status == "Failed"
    content = {
        "ProjectName": project,
        "DatasetName": "",
        "RequestId": str(uuid.uuid4()).upper(),
        "StartTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 10000:02d}Z",
        "EndTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 10000:02d}Z",
        "UserData": user_data,
        "TaskType": task_type,
        "TaskId": f"{task_type}-{uuid.uuid4()}",
        "Status": status,
        "Code": "InvalidArgument" if failed else "",
        "Message": "sample failure" if failed else "",
        "EventSourceId": "",
    }
    return {
        "id": secrets.token_hex(16),
        "source": "acs.imm",
        "type": f"imm:Task:{task_type}",
        "subject": f"acs:imm:{region}:{account_id}:{project}/imm:Task:{task_type}",
        "time": str(int(now.timestamp() * 1000)),
        "content": json.dumps(content, separators=(",", ":")),
    }


def mns_trigger_event(body: str, content_format: str, *, topic: str, account_id: str) -> bytes:
    """What the FC MNS topic trigger passes: the body itself (STREAM) or FC's compact JSON form."""
    if content_format == "STREAM":
        return body.encode()
    event = {
        "TopicOwner": account_id,
        "Message": body,
        "Subscriber": account_id,
        "PublishTime": int(time.time() * 1000),
        "SubscriptionName": "fc-on-task-done",
        "MessageMD5": hashlib.md5(body.encode()).hexdigest().upper(),
        "TopicName": topic,
        "MessageId": secrets.token_hex(16).upper(),
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


@main.group()
def events() -> None:
    """Print sample FC trigger events (OSS upload, IMM notification via MNS) for testing handlers."""


region_option = click.option("--region", default="cn-hangzhou", show_default=True)
account_option = click.option("--account-id", default="1234567890123456", show_default=True)


@events.command(name="oss-put")
@click.option("--bucket", required=True)
@click.option("--key", required=True, help="The object key, raw (the trigger does not URL-encode it).")
@click.option("--size", type=click.IntRange(min=0), default=1024, show_default=True)
@click.option("--etag", default=None, help="Upper-case hex; default: a random one.")
@click.option("--content-type", default="application/octet-stream", show_default=True)
@region_option
@account_option
def oss_put(
    bucket: str, key: str, size: int, etag: str | None, content_type: str, region: str, account_id: str
) -> None:
    """The event an OSS trigger sends for a PutObject of --key in --bucket."""
    event = oss_put_event(
        bucket,
        key,
        size,
        region=region,
        account_id=account_id,
        content_type=content_type,
        etag=(etag or secrets.token_hex(16)).upper(),
    )
    parse_oss_event(event)
    click.echo(json.dumps(event, ensure_ascii=False, indent=2))


@events.command(name="mns-imm")
@click.option("--task-type", required=True, help="An IMM TaskType, e.g. MediaConvert.")
@click.option("--status", type=click.Choice(get_args(ImmFinalState)), required=True)
@click.option(
    "--format", "content_format", type=click.Choice(["STREAM", "JSON"]), default="STREAM", show_default=True,
    help="The MNS trigger's notifyContentFormat.",
)  # fmt: skip
@click.option("--project", default="immflow-demo", show_default=True)
@click.option("--topic", default="imm-notifications", show_default=True)
@click.option("--user-data", default="", help="The task's UserData (immflow puts its lineage JSON there).")
@region_option
@account_option
def mns_imm(
    task_type: str,
    status: str,
    content_format: str,
    project: str,
    topic: str,
    user_data: str,
    region: str,
    account_id: str,
) -> None:
    """The event an MNS topic trigger sends when IMM reports a task of --task-type ended with --status."""
    body = json.dumps(
        imm_notification(
            task_type, status, project=project, region=region, account_id=account_id, user_data=user_data
        ),
        separators=(",", ":"),
    )
    event = mns_trigger_event(body, content_format, topic=topic, account_id=account_id)
    parse_imm_notification(parse_mns_trigger_event(event, content_format).body)  # type: ignore[arg-type]
    # The STREAM event is the body's exact bytes: add a newline only for a person at a terminal.
    sys.stdout.buffer.write(event + (b"\n" if sys.stdout.isatty() else b""))
