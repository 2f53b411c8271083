"""s.yaml, template.yml and ram/: their structure, the settings they set, and the triggers pipeline.yaml needs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from immflow.ledger.tablestore import default_endpoint
from immflow.pipeline_file import load_pipeline
from immflow.settings import ENVIRONMENT_VARIABLES, settings_from_env

ROOT = Path(__file__).resolve().parents[2]
#: The schema Serverless Devs' fc3 component checks each function's props against (tests/schemas/README.md).
SCHEMA = json.loads((ROOT / "tests" / "schemas" / "fc3-function-props.schema.json").read_text())
FUNCTIONS = {
    "on_upload": "immflow-on-upload",
    "on_task_done": "immflow-on-task-done",
    "reconcile": "immflow-reconcile",
}
ACCOUNT_ID = "1234567890123456"
#: Every setting, and the Tablestore ledger's endpoint (immflow.ledger.tablestore reads it; the public one
#: of the template's instance, which a function without a VPC reaches).
DEPLOYED_VARIABLES = {*ENVIRONMENT_VARIABLES.values(), "IMMFLOW_OTS_ENDPOINT"}
_EXPRESSION = re.compile(r"\$\{([^}]*)\}")


def _resolve(value: Any, variables: dict[str, Any], environ: dict[str, str]) -> Any:
    """Serverless Devs 3.x variables as `s` resolves them: ${vars.x}, ${env('X'[, 'default'])}, ${config('AccountID')}."""
    if isinstance(value, dict):
        return {key: _resolve(item, variables, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, variables, environ) for item in value]
    if not isinstance(value, str):
        return value

    def evaluate(expression: str) -> Any:
        expression = expression.strip()
        if expression.startswith("vars."):
            return _resolve(variables[expression[5:]], variables, environ)
        env = re.fullmatch(r"env\('([^']+)'(?:,\s*'([^']*)')?\)", expression)
        if env:
            return environ.get(env.group(1), env.group(2))
        if expression == "config('AccountID')":
            return ACCOUNT_ID
        raise AssertionError(f"unexpected variable ${{{expression}}} in s.yaml")

    whole = _EXPRESSION.fullmatch(value)
    if whole:
        return evaluate(whole.group(1))
    return _EXPRESSION.sub(lambda match: str(evaluate(match.group(1))), value)


def _s_yaml(environ: dict[str, str] | None = None) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "s.yaml").read_text())
    variables = document["vars"]
    return {
        name: {**body, "props": _resolve(body["props"], variables, environ or {})}
        for name, body in document["resources"].items()
    }


def _template() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "template.yml").read_text())
    return document


def test_s_yaml_declares_the_three_functions() -> None:
    document = yaml.safe_load((ROOT / "s.yaml").read_text())
    assert str(document["edition"]) == "3.0.0"
    resources = _s_yaml()
    assert set(resources) == set(FUNCTIONS)
    for folder, name in FUNCTIONS.items():
        props = resources[folder]["props"]
        assert resources[folder]["component"] == "fc3"
        assert (props["functionName"], props["runtime"], props["handler"]) == (
            name,
            "python3.10",
            "index.handler",
        )
        assert props["code"] == f"./build/fc/{folder}"
        assert (ROOT / "functions" / folder / "index.py").exists()
        assert props["role"] == f"acs:ram::{ACCOUNT_ID}:role/{name}"


def test_both_files_declare_each_functions_initializer() -> None:
    """FC runs it once per instance before the first event (immflow.flow.runtime.initialize)."""
    resources = _s_yaml()
    template = _template()["Resources"]
    ros_names = {
        props["Properties"]["FunctionName"]: props["Properties"]
        for props in template.values()
        if props["Type"] == "ALIYUN::FC3::Function"
    }
    for folder, name in FUNCTIONS.items():
        hook = resources[folder]["props"]["instanceLifecycleConfig"]["initializer"]
        ros_hook = ros_names[name]["InstanceLifecycleConfig"]["Initializer"]
        assert hook == {"handler": "index.initializer", "timeout": ros_hook["Timeout"]}
        assert ros_hook["Handler"] == "index.initializer"
        assert "\ndef initializer(context" in (ROOT / "functions" / folder / "index.py").read_text()


def test_every_fc3_props_validates_against_the_components_schema() -> None:
    for name, resource in _s_yaml().items():
        errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(resource["props"]), key=str)
        assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"


def test_a_broken_props_is_refused_by_the_schema() -> None:
    # (Trigger configs are an anyOf in which one member requires nothing, so they cannot fail there.)
    props = _s_yaml()["on_task_done"]["props"]
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors({**props, "runtime": "python3.13"}))
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors({**props, "memorySize": "512 MB"}))


def test_every_setting_is_set_for_every_function_in_both_files(tmp_path: Path) -> None:
    template_functions = {
        res["Properties"]["FunctionName"]: res["Properties"]
        for res in _template()["Resources"].values()
        if res["Type"] == "ALIYUN::FC3::Function"
    }
    assert set(template_functions) == set(FUNCTIONS.values())
    for folder, name in FUNCTIONS.items():
        environment = _s_yaml()[folder]["props"]["environmentVariables"]
        assert set(environment) == DEPLOYED_VARIABLES
        assert set(template_functions[name]["EnvironmentVariables"]) == DEPLOYED_VARIABLES
        settings = settings_from_env({k: str(v) for k, v in environment.items()}, code_dir=tmp_path)
        assert settings.pipeline_path == tmp_path / "pipeline.yaml"
        assert settings.imm_endpoint == "imm.cn-hangzhou.aliyuncs.com"
        assert settings.manifest_uri == "oss://immflow-media/immflow/manifests/"


def test_the_oss_triggers_are_the_pipelines_trigger_filters() -> None:
    pipeline = load_pipeline(ROOT / "pipeline.yaml")
    wanted = {
        (f.bucket or "immflow-media", tuple(f.events), f.prefix, f.suffix) for f in pipeline.trigger_filters()
    }
    in_s_yaml = {
        (
            trigger["sourceArn"].rsplit(":", 1)[1],
            tuple(trigger["triggerConfig"]["events"]),
            trigger["triggerConfig"]["filter"]["key"]["prefix"],
            trigger["triggerConfig"]["filter"]["key"]["suffix"],
        )
        for trigger in _s_yaml()["on_upload"]["props"]["triggers"]
    }
    assert in_s_yaml == wanted
    in_template = {
        (
            "immflow-media",
            tuple(res["Properties"]["TriggerConfig"]["events"]),
            res["Properties"]["TriggerConfig"]["filter"]["key"]["prefix"],
            res["Properties"]["TriggerConfig"]["filter"]["key"]["suffix"],
        )
        for res in _template()["Resources"].values()
        if res["Type"] == "ALIYUN::FC3::Trigger" and res["Properties"]["TriggerType"] == "oss"
    }
    assert in_template == wanted


def test_the_result_and_timer_triggers() -> None:
    resources = _s_yaml()
    [mns] = resources["on_task_done"]["props"]["triggers"]
    assert mns["triggerType"] == "mns_topic"
    assert mns["sourceArn"] == f"acs:mns:cn-hangzhou:{ACCOUNT_ID}:/topics/immflow-imm-results"
    assert mns["triggerConfig"] == {
        "notifyContentFormat": "JSON",
        "notifyStrategy": "EXPONENTIAL_DECAY_RETRY",
    }
    [timer] = resources["reconcile"]["props"]["triggers"]
    assert (timer["triggerType"], timer["triggerConfig"]["cronExpression"]) == ("timer", "0 */5 * * * *")
    for folder in ("on_upload", "on_task_done"):
        config = resources[folder]["props"]["asyncInvokeConfig"]
        assert config["destinationConfig"]["onFailure"]["destination"] == (
            f"acs:mns:cn-hangzhou:{ACCOUNT_ID}:/queues/immflow-failed-events/messages"
        )
    types = {res["Type"] for res in _template()["Resources"].values()}
    assert {"ALIYUN::MNS::Topic", "ALIYUN::MNS::Queue", "ALIYUN::RAM::Role", "ALIYUN::FC3::Trigger"} <= types


def _actions(policy: dict[str, Any], effect: str = "Allow") -> set[str]:
    return {
        action
        for statement in policy["Statement"]
        if statement["Effect"] == effect
        for action in statement["Action"]
    }


def _with_defaults(value: Any, parameters: dict[str, Any]) -> Any:
    """A template value with each Fn::Sub resolved as ram/*.json writes it: parameter defaults, `*` for region and account."""
    if isinstance(value, list):
        return [_with_defaults(item, parameters) for item in value]
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        names = {
            **{k: v.get("Default") for k, v in parameters.items()},
            "ALIYUN::Region": "*",
            "ALIYUN::AccountId": "*",
        }
        return re.sub(r"\$\{([^}]+)\}", lambda match: str(names[match.group(1)]), value["Fn::Sub"])
    if isinstance(value, dict):
        return {key: _with_defaults(item, parameters) for key, item in value.items()}
    return value


def test_roles_are_least_privilege_and_template_yml_uses_the_same_policies() -> None:
    policies = {path.name: json.loads(path.read_text()) for path in (ROOT / "ram").glob("*.json")}
    upload, done, reconcile = (
        policies[f"{n}-policy.json"] for n in ("on-upload", "on-task-done", "reconcile")
    )
    assert "imm:GetTask" not in _actions(upload)
    assert not {a for a in _actions(upload) if a.startswith("oss:")}  # it reads only the event
    assert {"imm:GetTask", "oss:ListObjects", "oss:PutObject"} <= _actions(done)
    assert "imm:GetTask" in _actions(reconcile)
    for policy in (upload, done, reconcile):
        assert {"ots:GetRow", "ots:PutRow", "ots:UpdateRow", "ots:GetRange"} <= _actions(policy)
        assert not {a for a in _actions(policy) if a.startswith("ots:") and ("Table" in a or "Instance" in a)}
        # Only IMM may publish to the topic: every function role denies it, whatever else it is given later.
        assert "mns:PublishMessage" not in _actions(policy)
        assert "mns:PublishMessage" in _actions(policy, "Deny")
    assert "mns:SendMessage" in _actions(upload) and "mns:SendMessage" in _actions(done)
    assert {"oss:GetObject", "oss:PutObject", "mns:PublishMessage"} <= _actions(
        policies["imm-service-role-policy.json"]
    )
    template = _template()
    roles = {
        res["Properties"]["RoleName"]: _with_defaults(
            res["Properties"]["Policies"][0]["PolicyDocument"], template["Parameters"]
        )
        for res in template["Resources"].values()
        if res["Type"] == "ALIYUN::RAM::Role"
    }
    assert roles["immflow-on-upload"] == upload
    assert roles["immflow-on-task-done"] == done
    assert roles["immflow-reconcile"] == reconcile
    assert roles["immflow-imm-service"] == policies["imm-service-role-policy.json"]


def test_the_local_fc_reads_s_yaml() -> None:
    from localcloud.core.account import Account
    from localcloud.fc import syaml

    specs = syaml.load(ROOT / "s.yaml", Account.new(), {"IMMFLOW_CODE_DIR": "./functions"})
    assert {spec.name for spec in specs} == set(FUNCTIONS.values())


def _template_value(value: Any, template: dict[str, Any]) -> Any:
    """A template.yml value as ROS gives it with the parameters' defaults in cn-hangzhou, account ACCOUNT_ID."""
    names = {k: v.get("Default") for k, v in template["Parameters"].items()}
    names.update({"ALIYUN::Region": "cn-hangzhou", "ALIYUN::AccountId": ACCOUNT_ID})
    resources = template["Resources"]
    if isinstance(value, list):
        return [_template_value(item, template) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return names[value["Ref"]]
    if set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda match: str(names[match.group(1)]), value["Fn::Sub"])
    if set(value) == {"Fn::GetAtt"}:
        resource, attribute = value["Fn::GetAtt"]
        properties = resources[resource]["Properties"]
        if attribute == "Arn":
            return f"acs:ram::{ACCOUNT_ID}:role/{properties['RoleName']}"
        return _template_value(properties[{"Name": "Name"}.get(attribute, attribute)], template)
    return {key: _template_value(item, template) for key, item in value.items()}


def test_s_yaml_deploys_onto_what_template_yml_creates() -> None:
    """Same functions, roles, environment (Tablestore ledger included) and log config in both files."""
    template = _template()
    functions = {
        res["Properties"]["FunctionName"]: _template_value(res["Properties"], template)
        for res in template["Resources"].values()
        if res["Type"] == "ALIYUN::FC3::Function"
    }
    for resource in _s_yaml().values():
        props = resource["props"]
        function = functions[props["functionName"]]
        assert props["role"] == function["Role"]
        assert props["environmentVariables"] == function["EnvironmentVariables"]
        assert props["environmentVariables"]["IMMFLOW_LEDGER_URL"] == "tablestore://immflow"
        assert props["environmentVariables"]["IMMFLOW_OTS_ENDPOINT"] == default_endpoint(
            "immflow", "cn-hangzhou"
        )
        assert props["logConfig"]["project"] == function["LogConfig"]["Project"]
        assert props["logConfig"]["logstore"] == function["LogConfig"]["Logstore"]
        assert (props["memorySize"], props["timeout"]) == (function["MemorySize"], function["Timeout"])
