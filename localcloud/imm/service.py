"""The local IMM (API 2020-09-30): projects, asynchronous tasks that really process media, GetTask
and ListTasks, over the RPC wire protocol of the official ``alibabacloud-imm20200930`` SDK.

One method per action, named like the action. Actions and task types not listed in
:data:`TASK_ACTIONS` / ``_ACTIONS`` answer ``NotImplemented`` (HTTP 501) saying so; nothing
answers an empty success. Differences from the cloud are stated where they happen:

* ``ResourceNotFound`` is HTTP 400 (the documented table; docs/imm.md#gettask-listtasks-retention); GetTask answers it
  alike for unknown and expired task ids.
* Throttling: over ``ProjectQueriesPerSecond`` calls of one project within one second answer
  HTTP 400 ``Throttling.User`` with ``x-acs-retry-after`` (docs/imm.md#errors), so the SDK raises
  ``ThrottlingException``.
* ``EngineConcurrency`` and ``ProjectQueriesPerSecond`` of new projects are the service's
  ``engine_concurrency`` and ``project_qps`` (the cloud's default is 100 for both; a laptop runs
  two ffmpeg at a time well). The dataset quotas are stored and echoed, not enforced: there are no
  datasets locally.
* Injected faults (:mod:`localcloud.core.faults`): ``imm.throttle`` answers a call
  ``Throttling.User`` with ``x-acs-retry-after``, ``imm.error`` answers HTTP 500 ``InternalError``;
  both before the action runs (nothing is created); ``imm.response.lost`` answers 500
  ``InternalError`` *after* the action ran (a task was created, but the client cannot know). Each is
  keyed by the action, its parameters and how many times this process has seen that same call, so
  a client's retry of it may pass.
* A source that does not exist, or that the project's ``ServiceRole`` may not read
  (:mod:`localcloud.imm.policy`), is found when the task runs: it ends ``Failed``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from immflow import templates
from immflow.errors import PayloadError
from immflow.ossuri import OssUri, OssUriError
from immflow.tasks import TASK_REQUESTS_BY_ACTION, TaskRequest

from localcloud.core.account import Account
from localcloud.core.faults import FaultPlan, stable_digest
from localcloud.core.http import Request, Response
from localcloud.core.nonces import NonceLedger
from localcloud.imm import auth, wire
from localcloud.imm.engine import PROCESSORS, Engine, task_fault_item
from localcloud.imm.errors import (
    ImmError,
    internal_error,
    invalid_argument,
    not_available,
    resource_already_exists,
    resource_not_found,
    throttled,
)
from localcloud.imm.policy import DEFAULT_ROLE, Policy
from localcloud.imm.store import INFINITY, Store, TaskQuery, TaskRow

log = logging.getLogger("localcloud.imm")

#: Every asynchronous action of the SDK (docs/imm.md#tasks); those with a request model and a local
#: processor run (`LOCAL_TASKS`), the others answer NotImplemented.
SDK_TASK_ACTIONS = frozenset(
    {
        "CreateMediaConvertTask",
        "CreateOfficeConversionTask",
        "CreateFileCompressionTask",
        "CreateFileUncompressionTask",
        "CreateArchiveFileInspectionTask",
        "CreateImageSplicingTask",
        "CreateImageToPDFTask",
        "CreateImageModerationTask",
        "CreateVideoModerationTask",
        "CreateVideoLabelClassificationTask",
        "CreateDecodeBlindWatermarkTask",
        "CreateCompressPointCloudTask",
        "CreateFigureClusteringTask",
        "CreateFigureClustersMergingTask",
        "CreateFacesSearchingTask",
        "CreateLocationDateClusteringTask",
        "CreateSimilarImageClusteringTask",
        "CreateHighlightTask",
    }
)
LOCAL_TASKS = {
    action: request for action, request in TASK_REQUESTS_BY_ACTION.items() if request.TASK_TYPE in PROCESSORS
}
"""The task actions the local IMM runs: immflow's request model validates them, a processor runs them."""

#: 1 to 128 letters, digits, ``-`` or ``_``, starting with a letter or ``_`` (docs/signatures.md).
PROJECT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,127}")
MAX_PROJECTS = 100
_PROJECT_DEFAULTS = {
    "ProjectMaxDatasetCount": 1_000_000_000,
    "DatasetMaxBindCount": 10,
    "DatasetMaxFileCount": 100_000_000,
    "DatasetMaxEntityCount": 10_000_000_000,
    "DatasetMaxRelationCount": 100_000_000_000,
    "DatasetMaxTotalFileSize": 90_000_000_000_000_000,
}
_SORT_KEYS = {"taskid": "TaskId", "starttime": "StartTime", "endtime": "EndTime"}
TASK_STATUSES = ("Running", "Succeeded", "Failed")
# The sample values with which a TargetURI template is checked to be an OSS URI at create time.
_SAMPLE_VALUES = {
    "bucket": "sample-bucket",
    "key": "dir/name.ext",
    "dirname": "dir",
    "barename": "name",
    "basename": "name.ext",
    "ext": "ext",
    **templates.TASK_VARIABLE_EXAMPLES,
    **{name: "01" for name in templates.UPLOAD_TIME_VARIABLES | templates.TASK_TIME_VARIABLES},
}


class ImmService:
    """``clock`` (epoch seconds) is what task times, retention and the one-second windows of
    ``ProjectQueriesPerSecond`` are measured with; tests inject one to expire tasks and to end a
    throttled second without waiting for it. ``project_qps`` and ``engine_concurrency`` become new projects'
    ``ProjectQueriesPerSecond`` and ``EngineConcurrency``; ``engine_concurrency`` is also the number
    of tasks run at once. ``office_timeout`` / ``media_timeout`` (seconds) bound one LibreOffice
    conversion / one ffmpeg run; past them the process is killed and the task fails."""

    name = "imm"

    def __init__(
        self,
        state_dir: Path,
        account: Account,
        *,
        oss_endpoint: str,
        mns_endpoint: str,
        clock: Callable[[], float] = time.time,
        retention: timedelta = timedelta(days=7),
        engine_concurrency: int = 2,
        project_qps: int = 100,
        office_timeout: float = 120.0,
        media_timeout: float = 3600.0,
        faults: FaultPlan | None = None,
    ) -> None:
        self.account = account
        self._faults = faults or FaultPlan()
        self._clock = clock
        self._retention = retention.total_seconds()
        self._engine_concurrency = engine_concurrency
        self._project_qps = project_qps
        root = state_dir / "imm"
        self._store = Store(root / "imm.sqlite3")
        # Signatures are checked against the real clock: ``clock`` ages tasks, not requests.
        self._nonces = NonceLedger(root / "nonces.sqlite3")
        self._signatures = auth.SignatureChecker(account, self._nonces)
        self.policy = Policy(root / "policy.json")
        self._calls: dict[str, tuple[int, int]] = {}
        self._calls_lock = threading.Lock()
        self._engine = Engine(
            store=self._store,
            account=account,
            policy=self.policy,
            work_root=root / "work",
            oss_endpoint=oss_endpoint,
            mns_endpoint=mns_endpoint,
            engine_limits=self._engine_limits,
            concurrency=engine_concurrency,
            clock=clock,
            office_timeout=office_timeout,
            media_timeout=media_timeout,
            retention=self._retention,
            faults=self._faults,
        )
        self._actions: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
            "CreateProject": self.CreateProject,
            "GetProject": self.GetProject,
            "ListProjects": self.ListProjects,
            "UpdateProject": self.UpdateProject,
            "DeleteProject": self.DeleteProject,
            "GetTask": self.GetTask,
            "ListTasks": self.ListTasks,
        }

    def close(self) -> None:
        self._engine.close()
        self._store.close()
        self._nonces.close()

    # transport ----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        request_id = wire.new_request_id()
        host = request.headers.get("host", "imm.local")
        try:
            query = request.query()
            form = wire.form_params(request)
            self._signatures.check(request, query, form)
            action = wire.action_of(request, query)
            params = {k: v for k, v in {**form, **query}.items() if k not in wire.V1_SIGNATURE_PARAMETERS}
            self._throttle(params.get("ProjectName", ""))
            fault_item = self._inject_fault(action, params)
            if action in LOCAL_TASKS:
                body = self._create_task(LOCAL_TASKS[action], params, request_id)
            elif action in self._actions:
                body = self._actions[action](params)
            elif action in SDK_TASK_ACTIONS:
                raise not_available(
                    action, "Only media conversion, office conversion, archive and image tasks run locally."
                )
            elif not action:
                raise invalid_argument("No action: send the x-acs-action header or the Action parameter.")
            else:
                raise not_available(action)
            if fault_item and self._faults.fires("imm.response.lost", fault_item, action):
                raise internal_error()  # the action was carried out; only its answer is lost
        except ImmError as error:
            return wire.error_response(error, request_id, host)
        return wire.json_response({"RequestId": request_id, **body}, request_id)

    def _throttle(self, project: str) -> None:
        if not project:
            return
        data = self._store.get_project(project)
        if data is None:
            return
        second = int(self._clock())
        with self._calls_lock:
            window, count = self._calls.get(project, (second, 0))
            count = count + 1 if window == second else 1
            self._calls[project] = (second, count)
        if count > int(data["ProjectQueriesPerSecond"]):
            raise throttled()

    def _inject_fault(self, action: str, params: Mapping[str, str]) -> str:
        """Refuse a call as the fault plan says: throttled, or a 500 (see the module's docstring).
        Returns the call's fault item ("" without a plan)."""
        if not self._faults.active:
            return ""
        keyed = dict(params)
        task = self._store.task_row(params.get("ProjectName", ""), params.get("TaskId", ""))
        if task is not None:  # a TaskId is new in every run; the task's request is not
            keyed["TaskId"] = task_fault_item(task)
        call = f"{action}:{stable_digest(keyed)}"
        item = f"{call}#{self._faults.occurrence(call)}"
        if self._faults.fires("imm.throttle", item, action):
            raise throttled()
        if self._faults.fires("imm.error", item, action):
            raise internal_error()
        return item

    def _engine_limits(self) -> dict[str, int]:
        limits = {}
        for data in self._store.list_projects("", "", 10_000):
            limits[data["ProjectName"]] = int(data["EngineConcurrency"])
        return limits

    def _project(self, params: Mapping[str, str]) -> dict[str, Any]:
        data = self._store.get_project(_project_name(params))
        if data is None:
            raise resource_not_found("project")
        return data

    # projects -----------------------------------------------------------------------------------

    def _project_fields(self, params: Mapping[str, str], data: dict[str, Any]) -> dict[str, Any]:
        description = params.get("Description")
        if description is not None:
            if len(description) > 256:
                raise invalid_argument("The parameter Description must be at most 256 characters.")
            data["Description"] = description
        for name in ("ServiceRole", "TemplateId"):
            if params.get(name):
                data[name] = params[name]
        for name, default in _PROJECT_DEFAULTS.items():
            if params.get(name):
                data[name] = wire.integer(params, name, default, 1, 10**18)
        if params.get("Tag"):
            tags = wire.decode_params({"Tag": params["Tag"]}).get("Tag", [])
            if not isinstance(tags, list) or not all(isinstance(t, dict) and "Key" in t for t in tags):
                raise invalid_argument(
                    'The parameter Tag must be a JSON array of {"Key": ..., "Value": ...}.'
                )
            data["Tags"] = [{"TagKey": str(t["Key"]), "TagValue": str(t.get("Value", ""))} for t in tags]
        data["UpdateTime"] = wire.rfc3339(self._clock())
        return data

    def CreateProject(self, params: dict[str, str]) -> dict[str, Any]:
        name = _project_name(params)
        if len(self._store.list_projects("", "", MAX_PROJECTS + 1)) >= MAX_PROJECTS:
            raise ImmError(
                400, "LimitExceededError", f"resource count exceeds the limit ({MAX_PROJECTS} projects)."
            )
        now = self._clock()
        data: dict[str, Any] = {
            "ProjectName": name,
            "ServiceRole": DEFAULT_ROLE,
            "TemplateId": "",
            "Description": "",
            "CreateTime": wire.rfc3339(now),
            "ProjectQueriesPerSecond": self._project_qps,
            "EngineConcurrency": self._engine_concurrency,
            **_PROJECT_DEFAULTS,
            "DatasetCount": 0,
            "FileCount": 0,
            "TotalFileSize": 0,
            "Tags": [],
        }
        data = self._project_fields(params, data)
        if not self._store.insert_project(name, data, now):
            raise resource_already_exists("project")
        return {"Project": data}

    def GetProject(self, params: dict[str, str]) -> dict[str, Any]:
        wire.boolean(params, "WithStatistics")
        return {"Project": self._project(params)}

    def UpdateProject(self, params: dict[str, str]) -> dict[str, Any]:
        data = self._project_fields(params, self._project(params))
        self._store.update_project(data["ProjectName"], data)
        return {"Project": data}

    def DeleteProject(self, params: dict[str, str]) -> dict[str, Any]:
        if not self._store.delete_project(_project_name(params)):
            raise resource_not_found("project")
        return {}

    def ListProjects(self, params: dict[str, str]) -> dict[str, Any]:
        """``Tag`` filters projects that have every given ``{Key, Value}``."""
        limit = wire.integer(params, "MaxResults", 100, 0, 200) or 100
        prefix = params.get("Prefix", "")
        after = _decode_token(params.get("NextToken", ""), "project")
        wanted = wire.decode_params({"Tag": params["Tag"]}).get("Tag", []) if params.get("Tag") else []
        matches: list[dict[str, Any]] = []
        cursor = after
        while len(matches) <= limit:
            batch = self._store.list_projects(prefix, cursor, 200)
            if not batch:
                break
            for data in batch:
                have = {(t["TagKey"], t["TagValue"]) for t in data.get("Tags", [])}
                if all((str(t.get("Key")), str(t.get("Value", ""))) in have for t in wanted):
                    matches.append(data)
            cursor = batch[-1]["ProjectName"]
        body: dict[str, Any] = {"Projects": matches[:limit]}
        if len(matches) > limit:
            body["NextToken"] = _encode_token("project", matches[limit - 1]["ProjectName"])
        return body

    # tasks --------------------------------------------------------------------------------------

    def _create_task(
        self, request_class: type[TaskRequest], params: dict[str, str], request_id: str
    ) -> dict[str, Any]:
        """Validate everything that can be checked without reading OSS, then queue the task."""
        try:
            model = request_class.from_wire(params)
        except PayloadError as exc:
            raise invalid_argument(
                f"The parameter {exc.field or 'request'} is not valid: {exc.problem}."
            ) from None
        project = self._project(params)
        task_type = request_class.TASK_TYPE
        request = model.model_dump(mode="json", exclude_none=True)
        notification = request.get("Notification") or {}
        if notification.get("RocketMQ"):
            raise invalid_argument("RocketMQ notification is not available locally; use Notification.MNS.")
        tags = request.get("Tags")
        self._check_uris(request_class, request, tags)
        check = PROCESSORS[task_type].check
        if check is not None:
            check(request)
        task_id = f"{task_type}-{uuid.uuid4()}"
        event_id = wire.new_event_id()
        self._store.insert_task(
            task_id=task_id,
            project=project["ProjectName"],
            task_type=task_type,
            role=project["ServiceRole"],
            tags=tags,
            user_data=request.get("UserData"),
            request=request,
            request_id=request_id,
            event_id=event_id,
            start_time=self._clock(),
        )
        self._engine.wake()
        return {"TaskId": task_id, "EventId": event_id}

    def _check_uris(
        self, request_class: type[TaskRequest], request: Mapping[str, Any], tags: Mapping[str, Any] | None
    ) -> None:
        for source in request_class.source_fields(request):
            try:
                OssUri.parse(source.uri, field=source.field, allow_prefix=source.folder)
            except OssUriError as exc:
                raise invalid_argument(str(exc)) from None
        targets = [
            (target.field, target.template, target.shape.layout == "folder")
            for target in request_class.target_fields(request)
            if target.template
        ]
        extended = (request.get("Notification") or {}).get("ExtendedMessageURI")
        if extended:
            targets.append(("Notification.ExtendedMessageURI", extended, False))
        # A type that provides no variables of its own is named in no error about them.
        task_type = request_class.TASK_TYPE if request_class.TEMPLATE_VARIABLES else None
        for field, template, folder in targets:
            try:
                parsed = templates.parse(template)
                parsed.check(task_type, tags or {})
                sample = parsed.expand(_SAMPLE_VALUES, tags or {})
                OssUri.parse(sample, field=field, allow_prefix=folder)
            except templates.TemplateError as exc:
                raise invalid_argument(f"{field}: {exc}") from None
            except OssUriError as exc:
                raise invalid_argument(
                    f"{field}: {template!r} does not make an OSS URI: {exc.problem}."
                ) from None

    def _task_info(self, task: TaskRow, with_definition: bool) -> dict[str, Any]:
        info: dict[str, Any] = {
            "ProjectName": task.project,
            "TaskType": task.task_type,
            "TaskId": task.task_id,
            "Status": task.status,
            "Progress": task.progress,
            "Code": task.code,
            "Message": task.message,
            "StartTime": wire.rfc3339(task.start_time),
            "EventId": task.event_id,
        }
        if task.end_time is not None:
            info["EndTime"] = wire.rfc3339(task.end_time)
        if task.tags is not None:
            info["Tags"] = task.tags
        if task.user_data is not None:
            info["UserData"] = task.user_data
        if with_definition:
            info["TaskRequestDefinition"] = json.dumps(task.request, ensure_ascii=False)
        return info

    def _live(self, task: TaskRow | None) -> TaskRow | None:
        if task is None or task.start_time < self._clock() - self._retention:
            return None
        return task

    def GetTask(self, params: dict[str, str]) -> dict[str, Any]:
        """``RequestDefinition`` is honoured for every task type (the cloud lists the types it honours)."""
        project = self._project(params)
        task_type = wire.text(params, "TaskType", required=True)
        task_id = wire.text(params, "TaskId", required=True)
        task = self._live(self._store.task_row(project["ProjectName"], task_id))
        if task is None or task.task_type != task_type:
            raise resource_not_found("task")
        return self._task_info(task, wire.boolean(params, "RequestDefinition"))

    def ListTasks(self, params: dict[str, str]) -> dict[str, Any]:
        """Filters as docs/imm.md#gettask-listtasks-retention: ``TagSelector`` ``k=v`` (several joined by ``,`` must all
        match, our extension); time ranges are inclusive and either side may be left out."""
        project = self._project(params)
        decoded = wire.decode_params(
            {k: v for k, v in params.items() if k in ("TaskTypes", "StartTimeRange", "EndTimeRange")}
        )
        limit = wire.integer(params, "MaxResults", 100, 1, 100)
        sort_text = params.get("Sort") or "TaskId"
        sort = _SORT_KEYS.get(sort_text.lower())
        if sort is None:
            raise invalid_argument(
                f"The parameter Sort must be TaskId, StartTime or EndTime, not {sort_text!r}."
            )
        order = (params.get("Order") or "asc").lower()
        if order not in ("asc", "desc"):
            raise invalid_argument(f"The parameter Order must be asc or desc, not {params['Order']!r}.")
        status = params.get("Status") or ""
        if status and status not in TASK_STATUSES:
            raise invalid_argument(
                f"The parameter Status must be one of {', '.join(TASK_STATUSES)}, not {status!r}."
            )
        task_types = decoded.get("TaskTypes") or []
        if not isinstance(task_types, list):
            raise invalid_argument('The parameter TaskTypes must be a JSON array such as ["MediaConvert"].')
        selector = _tag_selector(params.get("TagSelector") or "")
        ranges = {name: _time_range(decoded.get(name), name) for name in ("StartTimeRange", "EndTimeRange")}
        token = params.get("NextToken") or ""
        query = TaskQuery(
            project=project["ProjectName"],
            not_before=self._clock() - self._retention,
            sort=sort,
            descending=order == "desc",
            task_types=tuple(str(t) for t in task_types),
            status=status,
            start_range=ranges["StartTimeRange"],
            end_range=ranges["EndTimeRange"],
            after=_decode_cursor(token, sort, order) if token else None,
        )
        rows: list[TaskRow] = []
        for task in self._store.query_tasks(query):
            if all(_tag_matches(task.tags, k, v) for k, v in selector):
                rows.append(task)
                if len(rows) > limit:  # one more than the page says whether there is a next one
                    break
        page = rows[:limit]
        with_definition = wire.boolean(params, "RequestDefinition")
        body: dict[str, Any] = {
            "ProjectName": project["ProjectName"],
            "MaxResults": str(limit),
            "Tasks": [self._task_info(task, with_definition) for task in page],
        }
        if len(rows) > limit:
            body["NextToken"] = _encode_cursor(sort, order, _sort_key(page[-1], sort))
        return body


def _project_name(params: Mapping[str, str]) -> str:
    """The ProjectName of any action, checked against IMM's naming rule before it is looked up."""
    name = wire.text(params, "ProjectName", required=True)
    if not PROJECT_NAME.fullmatch(name):
        raise invalid_argument(
            f"The parameter ProjectName {name[:200]!r} must be 1 to 128 letters, digits, '-' or '_', starting "
            "with a letter or '_'."
        )
    return name


def _tag_matches(tags: Mapping[str, Any] | None, key: str, value: str) -> bool:
    if not tags or key not in tags:
        return False
    have = tags[key]
    return (have if isinstance(have, str) else json.dumps(have)) == value


def _tag_selector(text: str) -> list[tuple[str, str]]:
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, equals, value = part.partition("=")
        if not equals or not key.strip():
            raise invalid_argument(
                f"The parameter TagSelector must be key=value (e.g. test=val1), not {text!r}."
            )
        pairs.append((key.strip(), value.strip()))
    return pairs


def _time_range(value: Any, name: str) -> tuple[float | None, float | None]:
    if value is None:
        return (None, None)
    if not isinstance(value, dict):
        raise invalid_argument(f'The parameter {name} must be a JSON object {{"Start": ..., "End": ...}}.')
    start, end = value.get("Start"), value.get("End")
    return (
        wire.parse_time(str(start), f"{name}.Start") if start else None,
        wire.parse_time(str(end), f"{name}.End") if end else None,
    )


def _encode_token(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([kind, value]).encode()).decode()


def _decode_token(token: str, kind: str) -> str:
    if not token:
        return ""
    try:
        found_kind, value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error, TypeError):
        found_kind, value = None, None
    if found_kind != kind or not isinstance(value, str):
        raise invalid_argument(
            "The parameter NextToken is not valid: pass the NextToken of the previous answer."
        )
    return value


def _sort_key(task: TaskRow, sort: str) -> tuple[float, str]:
    """Where a task is in ListTasks' order (as `localcloud.imm.store.Store.query_tasks` sorts)."""
    if sort == "TaskId":
        return (0.0, task.task_id)
    value = task.start_time if sort == "StartTime" else task.end_time
    return (INFINITY if value is None else value, task.task_id)


def _encode_cursor(sort: str, order: str, key: tuple[float, str]) -> str:
    return _encode_token(
        "task", json.dumps([sort, order, key[0] if key[0] != float("inf") else None, key[1]])
    )


def _decode_cursor(token: str, sort: str, order: str) -> tuple[float, str]:
    try:
        token_sort, token_order, value, task_id = json.loads(_decode_token(token, "task"))
    except (ValueError, TypeError):
        token_sort = None
    if token_sort != sort or token_order != order:
        raise invalid_argument(
            "The parameter NextToken is not valid for this Sort and Order: pass the NextToken of the previous "
            "answer with the same parameters."
        )
    return (float("inf") if value is None else float(value), str(task_id))
