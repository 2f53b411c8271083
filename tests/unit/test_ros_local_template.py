"""The local ROS's reading of a template (localcloud/ros/template.py): parameters, order, intrinsic functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from localcloud.ros.template import Resolver, RosError, RosTemplate

ROOT = Path(__file__).resolve().parents[2]
PSEUDO = {"ALIYUN::Region": "cn-hangzhou", "ALIYUN::AccountId": "1234", "ALIYUN::StackName": "s"}


def _template(tmp_path: Path, document: dict[str, Any], given: dict[str, str] | None = None) -> RosTemplate:
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump({"ROSTemplateFormatVersion": "2015-09-01", **document}, sort_keys=False))
    return RosTemplate.load(path, given or {})


def _resolver(template: RosTemplate, attributes: dict[str, dict[str, Any]] | None = None) -> Resolver:
    attributes = attributes or {}
    return Resolver(
        template,
        PSEUDO,
        lambda resource, where: f"id-of-{resource}",
        lambda resource, name, where: attributes[resource][name],
    )


def test_parameters_take_the_given_value_else_the_default_and_numbers_become_numbers(tmp_path: Path) -> None:
    template = _template(
        tmp_path,
        {
            "Parameters": {"A": {"Type": "String", "Default": "a"}, "N": {"Type": "Number", "Default": 3}},
            "Resources": {"X": {"Type": "T"}},
        },
        {"N": "7"},
    )
    assert template.parameters == {"A": "a", "N": 7}


def test_a_parameter_without_default_or_unknown_is_refused(tmp_path: Path) -> None:
    document = {"Parameters": {"CodeBucket": {"Type": "String"}}, "Resources": {"X": {"Type": "T"}}}
    with pytest.raises(
        RosError, match=r"parameter CodeBucket has no Default: give it, e\.g\. --parameter CodeBucket="
    ):
        _template(tmp_path, document)
    with pytest.raises(RosError, match="no parameter 'Nope' is declared"):
        _template(tmp_path, document, {"CodeBucket": "b", "Nope": "x"})


def test_resources_come_after_what_they_reference(tmp_path: Path) -> None:
    template = _template(
        tmp_path,
        {
            "Resources": {
                "Trigger": {"Type": "T", "Properties": {"F": {"Fn::GetAtt": ["Function", "FunctionName"]}}},
                "Function": {"Type": "T", "Properties": {"Role": {"Fn::Sub": "${Role.Arn}"}}},
                "Queue": {"Type": "T", "DependsOn": ["Function"]},
                "Role": {"Type": "T"},
            }
        },
    )
    assert template.creation_order() == ["Role", "Function", "Trigger", "Queue"]


def test_a_cycle_is_refused(tmp_path: Path) -> None:
    template = _template(
        tmp_path,
        {
            "Resources": {
                "A": {"Type": "T", "Properties": {"x": {"Ref": "B"}}},
                "B": {"Type": "T", "DependsOn": "A"},
            }
        },
    )
    with pytest.raises(RosError, match="A, B depend on each other in a cycle"):
        template.creation_order()


def test_intrinsic_functions_resolve_as_ros_does(tmp_path: Path) -> None:
    template = _template(
        tmp_path,
        {
            "Parameters": {"Bucket": {"Type": "String", "Default": "media"}},
            "Resources": {"Role": {"Type": "T"}},
        },
    )
    resolver = _resolver(template, {"Role": {"Arn": "acs:ram::1234:role/r"}})
    value = {
        "sub": {"Fn::Sub": "acs:oss:${ALIYUN::Region}:${ALIYUN::AccountId}:${Bucket}/${!Literal}"},
        "sub_names": {"Fn::Sub": ["${Name}-${Role.Arn}", {"Name": {"Ref": "Bucket"}}]},
        "join": {"Fn::Join": ["/", ["a", {"Ref": "Bucket"}, {"Ref": "Role"}]]},
        "gone": {"Ref": "ALIYUN::NoValue"},
        "list": ["x", {"Ref": "ALIYUN::NoValue"}],
    }
    assert resolver.resolve(value, "P") == {
        "sub": "acs:oss:cn-hangzhou:1234:media/${Literal}",
        "sub_names": "media-acs:ram::1234:role/r",
        "join": "a/media/id-of-Role",
        "list": ["x"],
    }


def test_an_unsupported_function_or_unknown_name_is_refused_with_where_it_is(tmp_path: Path) -> None:
    template = _template(tmp_path, {"Resources": {"X": {"Type": "T"}}})
    resolver = _resolver(template)
    with pytest.raises(RosError, match=r"P.a: Fn::Select is not supported by the local ROS"):
        resolver.resolve({"a": {"Fn::Select": [0, ["x"]]}}, "P")
    with pytest.raises(RosError, match=r"P.b: Ref 'Nope' names no parameter, resource or pseudo parameter"):
        resolver.resolve({"b": {"Ref": "Nope"}}, "P")


def test_immflow_template_yml_orders_functions_after_roles_and_triggers_after_functions() -> None:
    template = RosTemplate.load(ROOT / "template.yml", {"CodeBucket": "code"})
    order = template.creation_order()
    assert order.index("OnUploadRole") < order.index("OnUpload") < order.index("OnUploadTriggerUploadsVideos")
    assert order.index("ImmServiceRole") < order.index("ImmProject")
    assert order.index("LedgerInstance") < order.index("LedgerRunsTable") < order.index("OnTaskDone")
