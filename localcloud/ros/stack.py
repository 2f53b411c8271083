"""Creating a ROS template's resources on the running local cloud, each through its service's public API.

One function per resource type, each taking the resolved ``Properties`` and answering the
resource's physical id and its ``Fn::GetAtt`` attributes. Creating is idempotent (a second
deploy finds the resources and reports them ``exists``), as re-running ``immflow local deploy``
must be safe. What the local cloud does differently from ROS is said per type:

* ``ALIYUN::OSS::Bucket``, ``ALIYUN::MNS::Topic``/``Queue``: ``oss2`` and ``aliyun-mns-sdk``.
* ``ALIYUN::IMM::Project``: the IMM SDK's ``CreateProject`` with the ``ServiceRole``; an existing
  project gets the template's role with ``UpdateProject``.
* ``ALIYUN::RAM::Role``: the local cloud has no RAM and runs functions with the account's keys, so a
  function role grants nothing locally. A role that ``imm.aliyuncs.com`` may assume becomes an entry
  of the local IMM's role file (``<state>/imm/policy.json``, the local stand-in for RAM that
  :mod:`localcloud.imm.policy` documents): the buckets its Allow statements give ``oss:GetObject``
  on become ``read``, those with ``oss:PutObject`` ``write``. So the project's service role is
  enforced locally as the template writes it.
* ``ALIYUN::OTS::Instance``: the local Tablestore's admin route ``PUT /_localcloud/instances/<name>``
  (instances are made in the console in the cloud; ``immflow`` exists from the start, so the
  template's default is reported ``exists``). ``ALIYUN::OTS::Table``: the
  ``tablestore`` SDK's ``CreateTable`` with the template's primary key, TTL, versions and reserved
  throughput. Both are skipped, saying so, on a local cloud without Tablestore (no ``ots``).
* ``ALIYUN::SLS::Project``/``Logstore``: skipped, saying so: there is no local Simple Log Service;
  function output goes to ``<state>/fc/logs/<function>.log``.
* ``ALIYUN::FC3::Function``/``Trigger``/``AsyncInvokeConfig``: gathered per function and deployed
  together, once every other resource exists, with the local FC's admin deploy route
  (:mod:`localcloud.fc.ros` reads them there). Their attributes are known from their properties.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from localcloud.core.admin import admin_headers
from localcloud.core.durable import atomic_write_bytes
from localcloud.ros.template import PSEUDO_PARAMETERS, Resolver, RosError, RosTemplate

STACK_NAME = "immflow-local"
_NO_LOCAL_OTS = "this local cloud has no Tablestore ('ots' is not in endpoints.json)"


@dataclass
class Created:
    logical_id: str
    type: str
    physical_id: str
    status: str
    """``created``, ``exists``, ``deployed`` (functions and their triggers) or ``skipped``."""
    note: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class _Outcome:
    physical_id: str
    attributes: dict[str, Any]
    status: str
    note: str = ""


class _Stack:
    def __init__(self, endpoints: dict[str, str], state_dir: Path) -> None:
        self.endpoints = endpoints
        self.state_dir = state_dir
        self.region = endpoints["region"]
        self.account_id = endpoints["account_id"]
        self.functions: dict[str, dict[str, Any]] = {}

    # --- OSS and MNS ---------------------------------------------------------------------------

    def bucket(self, props: dict[str, Any], where: str) -> _Outcome:
        import oss2

        name = _required(props, "BucketName", where)
        bucket = oss2.Bucket(self._oss_auth(), self.endpoints["oss"], name)
        try:
            bucket.get_bucket_info()
            status = "exists"
        except oss2.exceptions.NoSuchBucket:
            bucket.create_bucket(str(props.get("AccessControl", "private")))
            status = "created"
        host = self.endpoints["oss"].split("://", 1)[-1]
        return _Outcome(
            name,
            {"Name": name, "DomainName": f"{name}.{host}", "InternalDomainName": f"{name}.{host}"},
            status,
        )

    def topic(self, props: dict[str, Any], where: str) -> _Outcome:
        from mns.topic import TopicMeta

        name = _required(props, "TopicName", where)
        meta = TopicMeta(
            maximum_message_size=int(props.get("MaximumMessageSize", 65536)),
            logging_enabled=bool(props.get("LoggingEnabled", False)),
        )
        status = self._mns_create(lambda account: account.get_topic(name).create(meta), "TopicAlreadyExist")
        arn = f"acs:mns:{self.region}:{self.account_id}:/topics/{name}"
        return _Outcome(
            name,
            {"TopicName": name, "TopicUrl": f"{self.endpoints['mns']}/topics/{name}", "ARN.WithSlash": arn},
            status,
        )

    def queue(self, props: dict[str, Any], where: str) -> _Outcome:
        from mns.queue import QueueMeta

        name = _required(props, "QueueName", where)
        meta = QueueMeta()
        for ros_name, setter in (
            ("DelaySeconds", meta.set_delay_seconds),
            ("MaximumMessageSize", meta.set_maximum_message_size),
            ("MessageRetentionPeriod", meta.set_message_retention_period),
            ("VisibilityTimeout", meta.set_visibilitytimeout),
            ("PollingWaitSeconds", meta.set_polling_wait_seconds),
        ):
            if ros_name in props:
                setter(int(props[ros_name]))
        status = self._mns_create(lambda account: account.get_queue(name).create(meta), "QueueAlreadyExist")
        arn = f"acs:mns:{self.region}:{self.account_id}:/queues/{name}"
        return _Outcome(
            name,
            {"QueueName": name, "QueueUrl": f"{self.endpoints['mns']}/queues/{name}", "ARN.WithSlash": arn},
            status,
        )

    def _mns_create(self, create: Callable[[Any], Any], exists_code: str) -> str:
        from mns.account import Account as MnsAccount
        from mns.mns_exception import MNSServerException

        account = MnsAccount(
            self.endpoints["mns"], self.endpoints["access_key_id"], self.endpoints["access_key_secret"]
        )
        try:
            create(account)
        except MNSServerException as error:
            if error.type != exists_code:
                raise
            return "exists"
        return "created"

    # --- RAM and IMM ---------------------------------------------------------------------------

    def role(self, props: dict[str, Any], where: str) -> _Outcome:
        name = _required(props, "RoleName", where)
        attributes = {
            "RoleName": name,
            "RoleId": f"local-{name}",
            "Arn": f"acs:ram::{self.account_id}:role/{name}",
        }
        trusted = {
            service
            for statement in (props.get("AssumeRolePolicyDocument") or {}).get("Statement") or []
            for service in _as_list((statement.get("Principal") or {}).get("Service"))
        }
        if "imm.aliyuncs.com" not in trusted:
            return _Outcome(
                name, attributes, "skipped", "no local RAM: functions run with the account's keys"
            )
        access: dict[str, list[str]] = {"read": [], "write": []}
        for policy in props.get("Policies") or []:
            for statement in (policy.get("PolicyDocument") or {}).get("Statement") or []:
                if statement.get("Effect") != "Allow":
                    continue
                actions = set(_as_list(statement.get("Action")))
                for resource in _as_list(statement.get("Resource")):
                    bucket = _oss_bucket(str(resource))
                    if bucket is None:
                        continue
                    if actions & {"oss:GetObject", "oss:*"} and bucket not in access["read"]:
                        access["read"].append(bucket)
                    if actions & {"oss:PutObject", "oss:*"} and bucket not in access["write"]:
                        access["write"].append(bucket)
        path = self.state_dir / "imm" / "policy.json"
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            document = {"roles": {}}
        status = "exists" if document.get("roles", {}).get(name) == access else "created"
        document.setdefault("roles", {})[name] = access
        atomic_write_bytes(path, (json.dumps(document, indent=2) + "\n").encode())
        note = f"the local IMM's role file {path} lets it read {access['read']} and write {access['write']}"
        return _Outcome(name, attributes, status, note)

    def imm_project(self, props: dict[str, Any], where: str) -> _Outcome:
        from alibabacloud_imm20200930 import models
        from alibabacloud_imm20200930.client import Client
        from alibabacloud_tea_openapi.models import Config
        from Tea.exceptions import TeaException

        name = _required(props, "Project", where)
        role = str(props.get("ServiceRole") or "AliyunIMMDefaultRole")
        client = Client(
            Config(
                access_key_id=self.endpoints["access_key_id"],
                access_key_secret=self.endpoints["access_key_secret"],
                endpoint=self.endpoints["imm"],
                protocol="http",
                region_id=self.region,
            )
        )
        try:
            client.create_project(models.CreateProjectRequest(project_name=name, service_role=role))
            status = "created"
        except TeaException as error:
            if error.code != "ResourceAlreadyExists":
                raise
            client.update_project(models.UpdateProjectRequest(project_name=name, service_role=role))
            status = "exists"
        return _Outcome(name, {"Project": name}, status, f"service role {role}")

    # --- not local -----------------------------------------------------------------------------

    def ots_instance(self, props: dict[str, Any], where: str) -> _Outcome:
        name = _required(props, "InstanceName", where)
        attributes = {"InstanceName": name, **self._ots_endpoints(name)}
        if "ots" not in self.endpoints:
            return _Outcome(name, attributes, "skipped", _NO_LOCAL_OTS)
        response = requests.put(
            f"{self.endpoints['ots']}/_localcloud/instances/{quote(name, safe='')}",
            headers=admin_headers(self.endpoints["admin_token"]),
            timeout=30,
        )
        if response.status_code >= 400:
            try:
                message = response.json().get("Message", response.text)
            except ValueError:
                message = response.text
            raise RosError(f"{where}.InstanceName: the local Tablestore refused instance {name!r}: {message}")
        status = "created" if response.json().get("created") else "exists"
        return _Outcome(name, attributes, status, f"endpoint {self.endpoints['ots']}")

    def ots_table(self, props: dict[str, Any], where: str) -> _Outcome:
        instance = _required(props, "InstanceName", where)
        name = _required(props, "TableName", where)
        attributes = {"TableName": name}
        if "ots" not in self.endpoints:
            return _Outcome(name, attributes, "skipped", _NO_LOCAL_OTS)
        from tablestore import CapacityUnit, ReservedThroughput, TableMeta, TableOptions
        from tablestore.error import OTSServiceError

        client = self._ots_client(instance)
        if name in client.list_table():
            return _Outcome(name, attributes, "exists")
        primary_key = [
            (_required(k, "Name", where), _required(k, "Type", where)) for k in props["PrimaryKey"]
        ]
        throughput = props.get("ReservedThroughput") or {}
        options = TableOptions(
            time_to_live=int(props.get("TimeToLive", -1)),
            max_version=int(props.get("MaxVersions", 1)),
            max_time_deviation=int(props.get("DeviationCellVersionInSec", 86400)),
        )
        try:
            client.create_table(
                TableMeta(name, primary_key),
                options,
                ReservedThroughput(
                    CapacityUnit(int(throughput.get("Read", 0)), int(throughput.get("Write", 0)))
                ),
            )
        except OTSServiceError as error:
            raise RosError(
                f"{where}: the local Tablestore refused table {name!r}: {error.code}: {error.message}"
            ) from error
        return _Outcome(name, attributes, "created")

    def _ots_client(self, instance: str) -> Any:
        from tablestore import OTSClient
        from tablestore.retry import NoRetryPolicy

        return OTSClient(
            self.endpoints["ots"],
            self.endpoints["access_key_id"],
            self.endpoints["access_key_secret"],
            instance,
            retry_policy=NoRetryPolicy(),
        )

    def _ots_endpoints(self, instance: str) -> dict[str, str]:
        """ALIYUN::OTS::Instance's endpoint attributes: the cloud's forms (docs/deploy.md), the local one when it runs."""
        local = self.endpoints.get("ots", "")
        return {
            "PublicEndpoint": local or f"https://{instance}.{self.region}.ots.aliyuncs.com",
            "PrivateEndpoint": local or f"https://{instance}.{self.region}.ots-internal.aliyuncs.com",
            "VpcEndpoint": local or f"https://{instance}.{self.region}.vpc.tablestore.aliyuncs.com",
        }

    def log_service(self, props: dict[str, Any], where: str) -> _Outcome:
        name = str(props.get("LogstoreName") or props.get("Name") or "")
        attributes = {
            "Name": str(props.get("Name", "")),
            "ProjectName": str(props.get("ProjectName", "")),
            "LogstoreName": name,
        }
        logs = self.state_dir / "fc" / "logs"
        return _Outcome(
            name, attributes, "skipped", f"no local Simple Log Service: function output goes to {logs}"
        )

    # --- FC ------------------------------------------------------------------------------------

    def function(self, props: dict[str, Any], where: str) -> _Outcome:
        name = _required(props, "FunctionName", where)
        self.functions[name] = {"function": props, "triggers": [], "async_invoke_config": None}
        arn = f"acs:fc:{self.region}:{self.account_id}:functions/{name}"
        return _Outcome(name, {"FunctionName": name, "FunctionArn": arn}, "deployed")

    def trigger(self, props: dict[str, Any], where: str) -> _Outcome:
        entry = self._function_entry(props, where)
        entry["triggers"].append(props)
        name = _required(props, "TriggerName", where)
        attributes = {
            "FunctionName": props["FunctionName"],
            "TriggerName": name,
            "TriggerId": f"local-{name}",
        }
        return _Outcome(name, attributes, "deployed")

    def async_invoke_config(self, props: dict[str, Any], where: str) -> _Outcome:
        entry = self._function_entry(props, where)
        entry["async_invoke_config"] = props
        return _Outcome(str(props["FunctionName"]), {}, "deployed")

    def _function_entry(self, props: dict[str, Any], where: str) -> dict[str, Any]:
        name = _required(props, "FunctionName", where)
        if name not in self.functions:
            raise RosError(f"{where}.FunctionName: {name!r} is no ALIYUN::FC3::Function of this template")
        return self.functions[name]

    def deploy_functions(self) -> list[dict[str, Any]]:
        if not self.functions:
            return []
        response = requests.post(
            self.endpoints["fc"] + "/_localcloud/deploy",
            json={"ros": {"region": self.region, "functions": list(self.functions.values())}},
            headers=admin_headers(self.endpoints["admin_token"]),
            timeout=300,
        )
        if response.status_code >= 400:
            try:
                message = response.json().get("ErrorMessage", response.text)
            except ValueError:
                message = response.text
            raise RosError(f"the local FC refused the functions: {message}")
        functions: list[dict[str, Any]] = response.json()["functions"]
        return functions

    def _oss_auth(self) -> Any:
        import oss2

        return oss2.Auth(self.endpoints["access_key_id"], self.endpoints["access_key_secret"])


_HANDLERS: dict[str, Callable[[_Stack, dict[str, Any], str], _Outcome]] = {
    "ALIYUN::OSS::Bucket": _Stack.bucket,
    "ALIYUN::MNS::Topic": _Stack.topic,
    "ALIYUN::MNS::Queue": _Stack.queue,
    "ALIYUN::RAM::Role": _Stack.role,
    "ALIYUN::IMM::Project": _Stack.imm_project,
    "ALIYUN::OTS::Instance": _Stack.ots_instance,
    "ALIYUN::OTS::Table": _Stack.ots_table,
    "ALIYUN::SLS::Project": _Stack.log_service,
    "ALIYUN::SLS::Logstore": _Stack.log_service,
    "ALIYUN::FC3::Function": _Stack.function,
    "ALIYUN::FC3::Trigger": _Stack.trigger,
    "ALIYUN::FC3::AsyncInvokeConfig": _Stack.async_invoke_config,
}


def deploy(
    template_path: Path, endpoints: dict[str, str], state_dir: Path, parameters: dict[str, str] | None = None
) -> list[Created]:
    """Create every resource of the template on the local cloud whose ``endpoints.json`` is ``endpoints``."""
    template = RosTemplate.load(template_path, parameters or {})
    for name, resource in template.resources.items():
        if resource.get("Type") not in _HANDLERS:
            raise RosError(
                f"{template_path}: Resources.{name}: type {resource.get('Type')!r} is not supported by the local "
                f"ROS (it creates {', '.join(_HANDLERS)})"
            )
    stack = _Stack(endpoints, state_dir)
    outcomes: dict[str, _Outcome] = {}

    def physical_id(resource: str, where: str) -> str:
        if resource not in outcomes:
            raise RosError(f"{template_path}: {where}: Ref {resource!r} before it is created")
        return outcomes[resource].physical_id

    def attribute(resource: str, name: str, where: str) -> Any:
        if resource not in template.resources:
            raise RosError(f"{template_path}: {where}: Fn::GetAtt names no resource {resource!r}")
        attributes = outcomes[resource].attributes
        if name not in attributes:
            raise RosError(
                f"{template_path}: {where}: {template.resources[resource]['Type']} has no attribute {name!r} "
                f"locally (it has {', '.join(attributes) or 'none'})"
            )
        return attributes[name]

    pseudo = dict(
        zip(
            PSEUDO_PARAMETERS,
            (endpoints["region"], endpoints["account_id"], STACK_NAME, f"local-{STACK_NAME}"),
            strict=True,
        )
    )
    resolver = Resolver(template, pseudo, physical_id, attribute)
    created = []
    for name in template.creation_order():
        resource = template.resources[name]
        where = f"Resources.{name}.Properties"
        properties = resolver.resolve(resource.get("Properties") or {}, where)
        outcome = _HANDLERS[resource["Type"]](stack, properties, where)
        outcomes[name] = outcome
        created.append(Created(name, resource["Type"], outcome.physical_id, outcome.status, outcome.note))
    deployed = {f["name"]: f for f in stack.deploy_functions()}
    for entry in created:
        if entry.type == "ALIYUN::FC3::Function" and entry.physical_id in deployed:
            entry.note = f"version {deployed[entry.physical_id]['version']}"
    return created


def _required(props: dict[str, Any], key: str, where: str) -> str:
    value = props.get(key)
    if not isinstance(value, str) or not value:
        raise RosError(f"{where}.{key}: required, got {value!r}")
    return value


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _oss_bucket(resource: str) -> str | None:
    """The bucket of an OSS resource ARN ``acs:oss:<region>:<account>:<bucket>[/<key>]``; None for others."""
    parts = resource.split(":", 4)
    if len(parts) != 5 or parts[:2] != ["acs", "oss"]:
        return None
    return parts[4].split("/", 1)[0] or None
