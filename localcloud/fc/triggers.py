"""The three trigger kinds the local FC wires up, each through the other service's public API.

- **oss**: registered on the local OSS through its admin API (``PUT /_localcloud/triggers/<name>``,
  see :mod:`localcloud.oss.service`) with target ``{"kind": "fc", ...}``; OSS then invokes the
  function with ``fc2`` asynchronously, as the cloud trigger does. The OSS trigger is named
  ``fc-<function>-<trigger>`` (it shows as the event's ``ruleId``).
- **mns_topic**: an HTTP-endpoint subscription ``fc-<function>-<trigger>`` on the topic, made
  with aliyun-mns-sdk (NotifyContentFormat JSON, the trigger's notifyStrategy and filterTag),
  pointing at ``<fc url>/_localcloud/mns/<function>/<trigger>?token=<admin token>``. Each push is turned into the
  event FC passes (:func:`mns_event`) and queued as an async invocation; the push is answered
  204 once the invocation is durably queued, so MNS's retries cover delivery and FC's async
  retries cover function errors (docs/events.md#mns-topic-trigger-event).
- **timer**: fired in-process on the trigger's schedule (:mod:`localcloud.fc.schedule`) as an
  async invocation with ``{"triggerTime", "triggerName", "payload"}`` (FC's "Time trigger" event
  format). Firings missed while the local cloud was down are not replayed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from localcloud.core.account import Account
from localcloud.core.admin import TOKEN_QUERY, admin_headers
from localcloud.fc.schedule import Schedule
from localcloud.fc.syaml import FunctionSpec, TriggerSpec

log = logging.getLogger("localcloud.fc.triggers")

_JSON_EVENT_KEYS = (
    "TopicOwner",
    "Message",
    "Subscriber",
    "PublishTime",
    "SubscriptionName",
    "MessageMD5",
    "TopicName",
    "MessageId",
)


class TriggerError(RuntimeError):
    pass


def resource_name(function: str, trigger: str) -> str:
    return f"fc-{function}-{trigger}"


def mns_event(notification: bytes, content_format: str) -> bytes:
    """The FC event for one MNS JSON push (docs/events.md#mns-topic-trigger-event).

    STREAM: the message body's exact bytes. JSON: compact, in the captured key order, with
    ``PublishTime`` an int (the MNS push has it as a string). ``MessageTag`` is left out, as in
    FC's documented event. The local MNS renders no message attributes into pushes, so the
    ``{"body", "attrs"}`` STREAM form and the flattened JSON attributes never arise here.
    """
    try:
        pushed = json.loads(notification)
        message = pushed["Message"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"not an MNS JSON notification: {error}") from error
    if content_format == "STREAM":
        return str(message).encode()
    event = {key: pushed.get(key, "") for key in _JSON_EVENT_KEYS}
    event["PublishTime"] = int(pushed.get("PublishTime") or 0)
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def apply_oss(
    oss_endpoint: str, admin_token: str, fc_url: str, spec: FunctionSpec, trigger: TriggerSpec
) -> None:
    key_filter = (trigger.config.get("filter") or {}).get("key") or {}
    body = {
        "bucket": trigger.arn_tail(),
        "events": list(trigger.config["events"]),
        "prefix": key_filter.get("prefix") or "",
        "suffix": key_filter.get("suffix") or "",
        "target": {"kind": "fc", "endpoint": fc_url, "service": spec.name, "function": spec.name},
    }
    name = resource_name(spec.name, trigger.name)
    response = requests.put(
        f"{oss_endpoint}/_localcloud/triggers/{quote(name)}",
        json=body,
        headers=admin_headers(admin_token),
        timeout=10,
    )
    if response.status_code != 200:
        raise TriggerError(
            f"OSS trigger {trigger.name!r} of function {spec.name!r} on bucket {body['bucket']!r}: "
            f"the local OSS refused it ({response.status_code}): {response.text.strip()}"
        )


def remove_stale_oss(oss_endpoint: str, admin_token: str, spec: FunctionSpec) -> None:
    """Delete this function's OSS triggers that the s.yaml no longer has."""
    keep = {resource_name(spec.name, t.name) for t in spec.triggers if t.type == "oss"}
    prefix = resource_name(spec.name, "")
    headers = admin_headers(admin_token)
    listed = requests.get(f"{oss_endpoint}/_localcloud/triggers", headers=headers, timeout=10)
    listed.raise_for_status()
    for trigger in listed.json()["triggers"]:
        if trigger["name"].startswith(prefix) and trigger["name"] not in keep:
            requests.delete(
                f"{oss_endpoint}/_localcloud/triggers/{quote(trigger['name'])}", headers=headers, timeout=10
            )


def apply_mns(
    mns_endpoint: str,
    account: Account,
    admin_token: str,
    fc_url: str,
    spec: FunctionSpec,
    trigger: TriggerSpec,
) -> None:
    from mns.account import Account as MnsAccount
    from mns.mns_exception import MNSExceptionBase, MNSServerException
    from mns.subscription import SubscriptionMeta

    topic_name = trigger.arn_tail()[len("/topics/") :]
    # The local MNS cannot add a header to its pushes: the token travels in the subscription's URL,
    # which only the account's key pair can read back (GetSubscriptionAttributes).
    endpoint = f"{fc_url}/_localcloud/mns/{quote(spec.name)}/{quote(trigger.name)}?{TOKEN_QUERY}={quote(admin_token)}"
    wanted = SubscriptionMeta(
        endpoint=endpoint,
        notify_strategy=trigger.config.get("notifyStrategy", "BACKOFF_RETRY"),
        notify_content_format="JSON",
        filter_tag=trigger.config.get("filterTag", "") or "",
    )
    client = MnsAccount(mns_endpoint, account.access_key_id, account.access_key_secret)
    subscription = client.get_topic(topic_name).get_subscription(resource_name(spec.name, trigger.name))
    try:
        try:
            subscription.subscribe(wanted)
        except MNSServerException as error:
            if error.type != "SubscriptionAlreadyExist":
                raise
            current = subscription.get_attributes()
            same = (
                current.endpoint,
                current.notify_strategy,
                current.notify_content_format,
                current.filter_tag,
            )
            if same != (endpoint, wanted.notify_strategy, "JSON", wanted.filter_tag):
                subscription.unsubscribe()
                subscription.subscribe(wanted)
    except MNSExceptionBase as error:
        raise TriggerError(
            f"MNS topic trigger {trigger.name!r} of function {spec.name!r} on topic {topic_name!r}: "
            f"the local MNS refused the subscription: {error}"
        ) from error


class Timers:
    """One thread that fires every enabled timer trigger on its schedule."""

    def __init__(self, fire: Callable[[str, TriggerSpec, float], Any]) -> None:
        self._fire = fire
        self._cond = threading.Condition()
        self._entries: dict[tuple[str, str], tuple[TriggerSpec, Schedule, float, float]] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="localcloud-fc-timers", daemon=True)
        self._thread.start()

    def replace(self, function: str, triggers: list[TriggerSpec]) -> None:
        now = time.time()
        with self._cond:
            for key in [k for k in self._entries if k[0] == function]:
                del self._entries[key]
            for trigger in triggers:
                if trigger.config.get("enable", True) is False:
                    continue
                schedule = Schedule.parse(trigger.config["cronExpression"])
                self._entries[(function, trigger.name)] = (
                    trigger,
                    schedule,
                    now,
                    schedule.next_after(now, now),
                )
            self._cond.notify_all()

    def _run(self) -> None:
        with self._cond:
            while not self._stopping:
                now = time.time()
                for key, (trigger, schedule, anchor, due) in list(self._entries.items()):
                    if due <= now:
                        try:
                            self._fire(key[0], trigger, due)
                        except Exception:
                            log.exception("timer trigger %s of function %s could not fire", key[1], key[0])
                        self._entries[key] = (trigger, schedule, anchor, schedule.next_after(now, anchor))
                upcoming = min((entry[3] for entry in self._entries.values()), default=now + 60)
                self._cond.wait(max(0.01, min(upcoming - time.time(), 60)))

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=5)


def timer_event(trigger: TriggerSpec, fired_at: float) -> bytes:
    return json.dumps(
        {
            "triggerTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(fired_at)),
            "triggerName": trigger.name,
            "payload": str(trigger.config.get("payload", "")),
        }
    ).encode()
