"""The FC 3.0 API (``/2023-03-30/...``) of the local FC, as ``alibabacloud-fc20230330`` calls it.

One method per action, named like the SDK's. Every request is signed with ACS3-HMAC-SHA256
(:mod:`localcloud.core.acs3`): the key must be the local account's, ``x-acs-date`` within 15
minutes of the local clock (else 403 ``RequestTimeTooSkewed``), and each
``x-acs-signature-nonce`` is accepted once. Errors are FC 3.0's ``{"Code", "Message",
"RequestId"}`` (:meth:`localcloud.fc.errors.FcApiError.response_v3`). Shapes come from the SDK's
models (``alibabacloud_fc20230330/models``); ``docs/fc-api.md`` has the sources.

Served: InvokeFunction, GetFunction, ListFunctions, ListTriggers, GetTrigger,
GetAsyncInvokeConfig, PutAsyncInvokeConfig. Any other 2023-03-30 action answers 501
``NotImplemented`` naming the action (the SDK sends it as ``x-acs-action``); a path that is no
FC 3.0 action answers 400 ``PathNotSupported``.

What the local FC does differently from the cloud is said in each action's docstring. Common to
all: the only qualifier is ``LATEST`` (the local FC keeps no versions or aliases: a number
answers ``VersionNotFound``, any other name ``AliasNotFound``). Used nonces are kept in
``DIR/fc/nonces.sqlite3`` (:class:`~localcloud.core.nonces.NonceLedger`, as the local IMM's) until
their date leaves the window, so a replay stays refused across a restart and memory stays flat.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from localcloud.core import acs3
from localcloud.core.http import Request, Response
from localcloud.core.nonces import NonceLedger
from localcloud.fc import destinations
from localcloud.fc.errors import (
    FcApiError,
    async_config_not_exists,
    invalid_argument,
    missing_header,
    not_implemented_v3,
    path_not_supported,
    request_time_too_skewed,
    trigger_not_found,
)
from localcloud.fc.store import Deployed
from localcloud.fc.syaml import AsyncConfig, TriggerSpec

if TYPE_CHECKING:
    from localcloud.fc.service import FcService

PREFIX = "/2023-03-30"
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
MAX_ASYNC_RETRY_ATTEMPTS = 8
MAX_ASYNC_EVENT_AGE_SECONDS = 2592000
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/functions/([^/]+)/invocations/?$"), "invoke_function"),
    ("GET", re.compile(r"^/functions/?$"), "list_functions"),
    ("GET", re.compile(r"^/functions/([^/]+)/?$"), "get_function"),
    ("GET", re.compile(r"^/functions/([^/]+)/triggers/?$"), "list_triggers"),
    ("GET", re.compile(r"^/functions/([^/]+)/triggers/([^/]+)/?$"), "get_trigger"),
    ("GET", re.compile(r"^/functions/([^/]+)/async-invoke-config/?$"), "get_async_invoke_config"),
    ("PUT", re.compile(r"^/functions/([^/]+)/async-invoke-config/?$"), "put_async_invoke_config"),
]


def iso_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _json(data: Any, request_id: str) -> Response:
    return Response(
        200, {"Content-Type": "application/json", "X-Fc-Request-Id": request_id}, json.dumps(data).encode()
    )


def _limit(query: dict[str, str]) -> int:
    text = query.get("limit") or str(LIST_LIMIT_DEFAULT)
    if not text.isdigit() or not 1 <= int(text) <= LIST_LIMIT_MAX:
        raise invalid_argument(f"limit must be an integer from 1 to {LIST_LIMIT_MAX}, got {text!r}")
    return int(text)


def list_page(names: list[str], query: dict[str, str]) -> tuple[list[str], str]:
    """One page of sorted ``names`` after ``prefix``/``nextToken`` filtering, and the next token.

    The token is the first name of the next page (FC's tokens are opaque; clients only pass them back).
    """
    prefix = query.get("prefix", "")
    token = query.get("nextToken", "")
    chosen = [n for n in sorted(names) if n.startswith(prefix) and n >= token]
    limit = _limit(query)
    return chosen[:limit], (chosen[limit] if len(chosen) > limit else "")


class Fc3Api:
    """Routes and answers FC 3.0 requests against ``service``'s deployed functions."""

    def __init__(self, service: FcService, nonces: NonceLedger) -> None:
        self.service = service
        self._nonces = nonces

    def close(self) -> None:
        self._nonces.close()

    def handle(self, request: Request, request_id: str) -> Response:
        try:
            tail = request.raw_path[len(PREFIX) :]
            for method, pattern, action in _ROUTES:
                match = pattern.match(tail)
                if match and request.method == method:
                    self._check_signature(request)
                    handler: Callable[..., Response] = getattr(self, action)
                    return handler(request, request_id, *(unquote(g) for g in match.groups()))
            self._check_signature(request)
            if request.headers.get("x-acs-action"):
                raise not_implemented_v3(request.headers["x-acs-action"], request.method, request.path)
            raise path_not_supported(request.method, request.path)
        except FcApiError as error:
            return error.response_v3(request_id)

    # --- signature --------------------------------------------------------------------------------

    def _check_signature(self, request: Request) -> None:
        account = self.service.account
        header = request.headers.get("authorization")
        if not header:
            raise missing_header("Authorization")
        authorization = acs3.parse_authorization(header)
        if authorization is None:
            raise FcApiError(
                403,
                "SignatureNotMatch",
                "the FC 3.0 API takes ACS3-HMAC-SHA256 signatures (as alibabacloud-fc20230330 sends them)",
            )
        if authorization.key_id != account.access_key_id:
            raise FcApiError(
                403,
                "InvalidAccessKeyID",
                f"invalid access key ID '{authorization.key_id}' (the local cloud's key is in endpoints.json)",
            )
        if not acs3.signature_matches(request, request.query(), authorization, account.access_key_secret):
            raise FcApiError(
                403,
                "SignatureNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your access key and signing method",
            )
        date = request.headers.get("x-acs-date")
        if not date:
            raise missing_header("x-acs-date")
        problem = acs3.request_age_problem(date)
        signed_at = acs3.parse_request_time(date)
        if problem or signed_at is None:
            raise request_time_too_skewed(problem or f"the request time {date!r} is not a valid date")
        nonce = request.headers.get("x-acs-signature-nonce", "")
        if not nonce:
            raise missing_header("x-acs-signature-nonce")
        if not self._nonces.use(nonce, signed_at):
            raise FcApiError(
                400,
                "SignatureNonceUsed",
                f"Specified signature nonce was used already ({nonce!r}: a replayed request)",
            )

    # --- helpers ----------------------------------------------------------------------------------

    def _function(self, name: str, qualifier: str | None) -> Deployed:
        deployed = self.service.function(name)
        if qualifier not in (None, "", "LATEST"):
            if qualifier.isdigit():
                raise FcApiError(
                    404, "VersionNotFound", f"version '{qualifier}' of function '{name}' does not exist"
                )
            raise FcApiError(404, "AliasNotFound", f"alias '{qualifier}' of function '{name}' does not exist")
        return deployed

    def _arn(self, deployed: Deployed) -> str:
        return (
            f"acs:fc:{deployed.spec.region}:{self.service.account.account_id}:functions/{deployed.spec.name}"
        )

    def describe_function(self, deployed: Deployed) -> dict[str, Any]:
        spec = deployed.spec
        created, modified = self.service.function_times(spec.name)
        described: dict[str, Any] = {
            "functionName": spec.name,
            "functionId": str(uuid.uuid5(uuid.NAMESPACE_URL, self._arn(deployed))),
            "functionArn": self._arn(deployed),
            "description": "",
            "runtime": spec.runtime,
            "handler": spec.handler,
            "timeout": spec.timeout,
            "memorySize": spec.memory_size,
            "environmentVariables": dict(spec.environment),
            "codeChecksum": deployed.version.split("-")[0],
            "codeSize": sum(p.stat().st_size for p in deployed.code_path.rglob("*") if p.is_file()),
            "createdTime": iso_time(created),
            "lastModifiedTime": iso_time(modified),
            "state": "Active",
            "lastUpdateStatus": "Successful",
            "instanceConcurrency": 1,
        }
        if spec.initializer:
            described["instanceLifecycleConfig"] = {
                "initializer": {"handler": spec.initializer, "timeout": spec.initializer_timeout}
            }
        return described

    def _describe_trigger(self, deployed: Deployed, trigger: TriggerSpec) -> dict[str, Any]:
        created, modified = self.service.function_times(deployed.spec.name)
        return {
            "triggerName": trigger.name,
            "triggerType": trigger.type,
            "triggerId": str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{self._arn(deployed)}/triggers/{trigger.name}")
            ),
            "triggerConfig": json.dumps(trigger.config),
            "sourceArn": trigger.source_arn,
            "qualifier": trigger.qualifier,
            "targetArn": self._arn(deployed),
            "invocationRole": "",
            "description": "",
            "status": "Enabled",
            "createdTime": iso_time(created),
            "lastModifiedTime": iso_time(modified),
        }

    def _describe_async_config(self, deployed: Deployed) -> dict[str, Any]:
        times = self.service.async_config_times(deployed.spec.name)
        if times is None:
            raise async_config_not_exists(deployed.spec.name)
        config = deployed.spec.async_config
        destination_config = {
            key: {"destination": arn}
            for key, arn in (("onSuccess", config.on_success), ("onFailure", config.on_failure))
            if arn
        }
        return {
            "functionArn": self._arn(deployed),
            "maxAsyncRetryAttempts": config.max_retry_attempts,
            "maxAsyncEventAgeInSeconds": config.max_event_age_seconds,
            "destinationConfig": destination_config,
            "asyncTask": False,
            "createdTime": iso_time(times[0]),
            "lastModifiedTime": iso_time(times[1]),
        }

    # --- actions ----------------------------------------------------------------------------------

    def invoke_function(self, request: Request, request_id: str, function: str) -> Response:
        """Sync (200, the handler's bytes; a function error adds ``X-Fc-Error-Type``) or async (202).

        Async invocations follow the function's async config (retries, event age, destinations),
        as FC 2.0's do. Differences: ``x-fc-log-type: Tail`` returns no log; async tasks
        (``x-fc-async-task-id``) answer ``NotImplemented``.
        """
        self._function(function, request.query().get("qualifier"))
        if request.headers.get("x-fc-async-task-id"):
            raise not_implemented_v3(
                "InvokeFunction with x-fc-async-task-id (async tasks)", "POST", request.path
            )
        return self.service.invoke(request, function, request_id)

    def get_function(self, request: Request, request_id: str, function: str) -> Response:
        """The function as deployed from s.yaml. ``codeChecksum`` is the digest of the local code
        snapshot (the cloud's is the CRC-64 of the uploaded zip); ``codeSize`` is the snapshot's size."""
        deployed = self._function(function, request.query().get("qualifier"))
        return _json(self.describe_function(deployed), request_id)

    def list_functions(self, request: Request, request_id: str) -> Response:
        """Paged by ``limit`` (1-100, default 20) and ``nextToken``, filtered by ``prefix``.

        Other filters (``runtime``, ``tags``, ``gpuType``, ``fcVersion``, ...) are refused with
        InvalidArgument rather than ignored."""
        query = request.query()
        unsupported = sorted(set(query) - {"limit", "nextToken", "prefix"})
        if unsupported:
            raise invalid_argument(
                f"the local FC's ListFunctions does not filter by {', '.join(unsupported)}"
            )
        functions = {d.spec.name: d for d in self.service.functions()}
        page, next_token = list_page(list(functions), query)
        body: dict[str, Any] = {"functions": [self.describe_function(functions[n]) for n in page]}
        if next_token:
            body["nextToken"] = next_token
        return _json(body, request_id)

    def list_triggers(self, request: Request, request_id: str, function: str) -> Response:
        """The s.yaml's triggers of ``function``, paged like ListFunctions."""
        deployed = self._function(function, None)
        by_name = {t.name: t for t in deployed.spec.triggers}
        page, next_token = list_page(list(by_name), request.query())
        body: dict[str, Any] = {"triggers": [self._describe_trigger(deployed, by_name[n]) for n in page]}
        if next_token:
            body["nextToken"] = next_token
        return _json(body, request_id)

    def get_trigger(self, request: Request, request_id: str, function: str, trigger: str) -> Response:
        """One trigger; ``triggerConfig`` is a JSON string, as in FC 3.0."""
        deployed = self._function(function, None)
        for spec in deployed.spec.triggers:
            if spec.name == trigger:
                return _json(self._describe_trigger(deployed, spec), request_id)
        raise trigger_not_found(function, trigger)

    def get_async_invoke_config(self, request: Request, request_id: str, function: str) -> Response:
        """404 ``AsyncConfigNotExists`` unless the s.yaml set ``asyncInvokeConfig`` (with a value
        other than the defaults) or PutAsyncInvokeConfig was called since the last deploy."""
        deployed = self._function(function, request.query().get("qualifier"))
        return _json(self._describe_async_config(deployed), request_id)

    def put_async_invoke_config(self, request: Request, request_id: str, function: str) -> Response:
        """Replace the function's async config; it applies to async invocations from now on.

        Fields left out take the defaults (3 retries, 18000 s, no destinations). A later deploy
        replaces it with the s.yaml's, as ``s deploy`` does. ``asyncTask: true`` is refused
        (the local FC has no async tasks)."""
        deployed = self._function(function, request.query().get("qualifier"))
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as error:
            raise invalid_argument(f"the body is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise invalid_argument("the body must be a JSON object (PutAsyncInvokeConfigInput)")
        if body.get("asyncTask"):
            raise invalid_argument("asyncTask: true is not supported by the local FC (it has no async tasks)")
        retries = body.get("maxAsyncRetryAttempts", AsyncConfig.max_retry_attempts)
        age = body.get("maxAsyncEventAgeInSeconds", AsyncConfig.max_event_age_seconds)
        if not isinstance(retries, int) or not 0 <= retries <= MAX_ASYNC_RETRY_ATTEMPTS:
            raise invalid_argument(
                f"maxAsyncRetryAttempts must be 0 to {MAX_ASYNC_RETRY_ATTEMPTS}, got {retries!r}"
            )
        if not isinstance(age, int) or not 1 <= age <= MAX_ASYNC_EVENT_AGE_SECONDS:
            raise invalid_argument(
                f"maxAsyncEventAgeInSeconds must be 1 to {MAX_ASYNC_EVENT_AGE_SECONDS}, got {age!r}"
            )
        targets = body.get("destinationConfig") or {}
        arns = {}
        for key in ("onSuccess", "onFailure"):
            arn = ((targets.get(key) or {}).get("destination") or "") if isinstance(targets, dict) else ""
            if arn:
                try:
                    destinations.check_arn(arn)
                except destinations.DestinationError as error:
                    raise invalid_argument(f"destinationConfig.{key}.destination: {error}") from error
            arns[key] = str(arn)
        config = AsyncConfig(
            max_retry_attempts=retries,
            max_event_age_seconds=age,
            on_success=arns["onSuccess"],
            on_failure=arns["onFailure"],
        )
        updated = self.service.set_async_config(deployed.spec.name, config)
        return _json(self._describe_async_config(updated), request_id)
