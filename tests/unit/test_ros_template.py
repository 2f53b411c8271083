"""template.yml against ROS's resource type specs (tests/schemas/ros/, tests/schemas/README.md says where each comes from).

Every resource's type must have a spec; every property must be one the type has, with the type's
value type, allowed values and range; required properties must be there; every Ref, Fn::GetAtt,
Fn::Sub variable and DependsOn must name a declared parameter, resource, pseudo parameter or one of
the resource type's attributes.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPECS = {
    spec["type"]: spec
    for spec in (
        json.loads(path.read_text()) for path in sorted((ROOT / "tests" / "schemas" / "ros").glob("*.json"))
    )
}
#: ROS's pseudo parameters (ROS documentation, "Pseudo parameters").
PSEUDO_PARAMETERS = {
    "ALIYUN::AccountId",
    "ALIYUN::NoValue",
    "ALIYUN::Region",
    "ALIYUN::StackId",
    "ALIYUN::StackName",
    "ALIYUN::TenantId",
}
_INTRINSICS = {
    "Ref",
    "Fn::GetAtt",
    "Fn::Sub",
    "Fn::Join",
    "Fn::Select",
    "Fn::If",
    "Fn::Base64Encode",
    "Fn::Replace",
}
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "String": (str,),
    "Integer": (int,),
    "Number": (int, float),
    "Boolean": (bool,),
    "Map": (dict,),
    "List": (list,),
}


def _is_intrinsic(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _INTRINSICS


def _check_value(value: Any, spec: dict[str, Any], where: str, problems: list[str]) -> None:
    if _is_intrinsic(value):
        return  # its type is known only once resolved; references are checked apart
    kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    allowed_types = tuple(t for kind in kinds for t in _PYTHON_TYPES[kind])
    if isinstance(value, bool) and bool not in allowed_types:
        problems.append(f"{where}: must be {'/'.join(kinds)}, got the boolean {value!r}")
        return
    if not isinstance(value, allowed_types):
        problems.append(f"{where}: must be {'/'.join(kinds)}, got {type(value).__name__} {value!r}")
        return
    if "allowed" in spec and value not in spec["allowed"]:
        problems.append(f"{where}: {value!r} is not one of {spec['allowed']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "min" in spec and value < spec["min"]:
            problems.append(f"{where}: {value} is below the minimum {spec['min']}")
        if "max" in spec and value > spec["max"]:
            problems.append(f"{where}: {value} is above the maximum {spec['max']}")
    if isinstance(value, dict) and "properties" in spec:
        _check_properties(value, spec["properties"], where, problems)
    if isinstance(value, dict) and "values" in spec:
        for key, item in value.items():
            _check_value(item, spec["values"], f"{where}.{key}", problems)
    if isinstance(value, list) and "items" in spec:
        for index, item in enumerate(value):
            _check_value(item, spec["items"], f"{where}[{index}]", problems)


def _check_properties(
    properties: dict[str, Any], specs: dict[str, Any], where: str, problems: list[str]
) -> None:
    for name in properties:
        if name not in specs:
            problems.append(f"{where}: unknown property {name!r} (the type has {', '.join(sorted(specs))})")
    for name, spec in specs.items():
        if name in properties:
            _check_value(properties[name], spec, f"{where}.{name}", problems)
        elif spec.get("required"):
            problems.append(f"{where}: required property {name!r} is missing")


def _check_references(value: Any, template: dict[str, Any], where: str, problems: list[str]) -> None:
    parameters = set(template.get("Parameters") or {})
    resources = template.get("Resources") or {}

    def get_att(resource: str, attribute: str) -> None:
        if resource not in resources:
            problems.append(f"{where}: Fn::GetAtt names undeclared resource {resource!r}")
            return
        attributes = SPECS.get(resources[resource].get("Type"), {}).get("attributes", [])
        if attribute not in attributes:
            problems.append(
                f"{where}: {resources[resource]['Type']} has no attribute {attribute!r} (it has {attributes})"
            )

    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_references(item, template, f"{where}[{index}]", problems)
        return
    if not isinstance(value, dict):
        return
    if _is_intrinsic(value):
        ((function, argument),) = value.items()
        if function == "Ref":
            if argument not in parameters | set(resources) | PSEUDO_PARAMETERS:
                problems.append(f"{where}: Ref names undeclared {argument!r}")
        elif function == "Fn::GetAtt":
            if not (isinstance(argument, list) and len(argument) == 2):
                problems.append(f"{where}: Fn::GetAtt takes [resource, attribute], got {argument!r}")
            else:
                get_att(str(argument[0]), str(argument[1]))
        elif function == "Fn::Sub":
            text, names = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
            for variable in _SUB_VARIABLE.findall(text):
                if variable in names:
                    continue
                if "." in variable and variable.split(".", 1)[0] in resources:
                    get_att(*variable.split(".", 1))
                elif variable not in parameters | set(resources) | PSEUDO_PARAMETERS:
                    problems.append(f"{where}: Fn::Sub names undeclared ${{{variable}}}")
        if not isinstance(argument, str):
            _check_references(argument, template, f"{where}.{function}", problems)
        return
    for key, item in value.items():
        _check_references(item, template, f"{where}.{key}", problems)


def validate(template: dict[str, Any]) -> list[str]:
    """Every problem of ``template`` against the ROS specs, each naming the resource and property."""
    problems: list[str] = []
    resources = template.get("Resources") or {}
    for name, resource in resources.items():
        where = f"Resources.{name}"
        spec = SPECS.get(resource.get("Type"))
        if spec is None:
            problems.append(f"{where}: no ROS spec for type {resource.get('Type')!r} in tests/schemas/ros/")
            continue
        _check_properties(
            resource.get("Properties") or {}, spec["properties"], f"{where}.Properties", problems
        )
        _check_references(resource.get("Properties") or {}, template, f"{where}.Properties", problems)
        for dependency in resource.get("DependsOn") or []:
            if dependency not in resources:
                problems.append(f"{where}.DependsOn: undeclared resource {dependency!r}")
    _check_references(template.get("Outputs") or {}, template, "Outputs", problems)
    return problems


def _template() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "template.yml").read_text())
    return document


def test_template_yml_passes_the_ros_specs() -> None:
    template = _template()
    assert template["ROSTemplateFormatVersion"] == "2015-09-01"
    assert validate(template) == []


def test_every_spec_names_its_source() -> None:
    readme = (ROOT / "tests" / "schemas" / "README.md").read_text()
    for type_name, spec in SPECS.items():
        assert "help" in spec["source"] and type_name in spec["source"]
        assert type_name in readme


def test_the_template_creates_the_whole_stack() -> None:
    types = [resource["Type"] for resource in _template()["Resources"].values()]
    for wanted, count in {
        "ALIYUN::OSS::Bucket": 1,
        "ALIYUN::MNS::Topic": 1,
        "ALIYUN::MNS::Queue": 1,
        "ALIYUN::IMM::Project": 1,
        "ALIYUN::RAM::Role": 4,
        "ALIYUN::OTS::Instance": 1,
        "ALIYUN::SLS::Project": 1,
        "ALIYUN::SLS::Logstore": 1,
        "ALIYUN::FC3::Function": 3,
        "ALIYUN::FC3::AsyncInvokeConfig": 3,
    }.items():
        assert types.count(wanted) == count, wanted
    assert types.count("ALIYUN::OTS::Table") >= 1


def test_the_template_creates_exactly_the_ledgers_tables() -> None:
    from immflow.ledger.tablestore import TABLES

    tables = {
        resource["Properties"]["TableName"]: [
            (k["Name"], k["Type"]) for k in resource["Properties"]["PrimaryKey"]
        ]
        for resource in _template()["Resources"].values()
        if resource["Type"] == "ALIYUN::OTS::Table"
    }
    assert tables == {table.name: list(table.primary_key) for table in TABLES}


def test_async_configs_match_s_yaml() -> None:
    resources = _template()["Resources"]
    configs = {
        resources[c["Properties"]["FunctionName"]["Fn::GetAtt"][0]]["Properties"]["FunctionName"]: c[
            "Properties"
        ]
        for c in resources.values()
        if c["Type"] == "ALIYUN::FC3::AsyncInvokeConfig"
    }
    s_yaml = yaml.safe_load((ROOT / "s.yaml").read_text())["resources"]
    for body in s_yaml.values():
        wanted = body["props"]["asyncInvokeConfig"]
        config = configs[body["props"]["functionName"]]
        assert config["MaxAsyncRetryAttempts"] == wanted["maxAsyncRetryAttempts"]
        assert config["MaxAsyncEventAgeInSeconds"] == wanted["maxAsyncEventAgeInSeconds"]
        assert ("DestinationConfig" in config) == ("destinationConfig" in wanted)


# --- the checker catches what it must -------------------------------------------------------------


def _with(change: Any) -> list[str]:
    template = copy.deepcopy(_template())
    change(template["Resources"])
    return validate(template)


def test_the_old_project_name_bug_is_caught() -> None:
    def old_project(resources: dict[str, Any]) -> None:
        resources["ImmProject"]["Properties"] = {
            "ProjectName": {"Ref": "Project"},
            "ServiceRole": {"Fn::GetAtt": ["ImmServiceRole", "RoleName"]},
        }

    problems = _with(old_project)
    assert any("unknown property 'ProjectName'" in p and "ImmProject" in p for p in problems)
    assert any("required property 'Project' is missing" in p for p in problems)


def test_a_wrong_value_type_is_caught() -> None:
    def text_timeout(resources: dict[str, Any]) -> None:
        resources["OnUpload"]["Properties"]["Timeout"] = "60"

    assert any("Resources.OnUpload.Properties.Timeout: must be Integer" in p for p in _with(text_timeout))


def test_a_value_outside_the_allowed_ones_is_caught() -> None:
    def runtime(resources: dict[str, Any]) -> None:
        resources["OnUpload"]["Properties"]["Runtime"] = "python3.13"

    def retries(resources: dict[str, Any]) -> None:
        resources["ReconcileAsyncConfig"]["Properties"]["MaxAsyncRetryAttempts"] = 9

    assert any("'python3.13' is not one of" in p for p in _with(runtime))
    assert any("above the maximum 8" in p for p in _with(retries))


def test_an_unknown_nested_key_is_caught() -> None:
    def code(resources: dict[str, Any]) -> None:
        resources["OnUpload"]["Properties"]["Code"]["Bucket"] = "x"

    assert any("OnUpload.Properties.Code: unknown property 'Bucket'" in p for p in _with(code))


def test_references_to_undeclared_names_and_attributes_are_caught() -> None:
    def bad_refs(resources: dict[str, Any]) -> None:
        resources["MediaBucket"]["Properties"]["BucketName"] = {"Ref": "NoSuchParameter"}
        resources["ImmProject"]["Properties"]["ServiceRole"] = {"Fn::GetAtt": ["ImmServiceRole", "Name"]}
        resources["OnUpload"]["Properties"]["Role"] = {"Fn::GetAtt": ["NoSuchRole", "Arn"]}
        resources["ResultsTopic"]["Properties"]["TopicName"] = {"Fn::Sub": "${Topicc}"}
        resources["OnTaskDoneTrigger"]["DependsOn"] = ["NoSuchTopic"]

    problems = _with(bad_refs)
    for expected in (
        "Ref names undeclared 'NoSuchParameter'",
        "has no attribute 'Name'",
        "undeclared resource 'NoSuchRole'",
        "Fn::Sub names undeclared ${Topicc}",
        "DependsOn: undeclared resource 'NoSuchTopic'",
    ):
        assert any(expected in p for p in problems), expected


@pytest.mark.parametrize("type_name", sorted(SPECS))
def test_a_resource_without_its_required_properties_is_caught(type_name: str) -> None:
    required = [name for name, spec in SPECS[type_name]["properties"].items() if spec.get("required")]
    problems = validate({"Resources": {"Thing": {"Type": type_name, "Properties": {}}}})
    assert len(problems) == len(required)


def test_an_unknown_resource_type_is_caught() -> None:
    problems = validate({"Resources": {"Thing": {"Type": "ALIYUN::FC::Nope", "Properties": {}}}})
    assert problems == ["Resources.Thing: no ROS spec for type 'ALIYUN::FC::Nope' in tests/schemas/ros/"]
