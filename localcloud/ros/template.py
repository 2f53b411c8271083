"""Reading a ROS template: parameters, the order resources are created in, and intrinsic functions.

What is resolved, as ROS does (docs/deploy.md, "ROS on the local cloud"): ``Parameters`` (a given
value, else ``Default``; ``Number`` parameters become numbers), the pseudo parameters
``ALIYUN::Region``, ``ALIYUN::AccountId``, ``ALIYUN::StackName``, ``ALIYUN::StackId`` and
``ALIYUN::NoValue`` (drops the property it is given to), ``Ref`` (a parameter, or a resource's
physical id), ``Fn::GetAtt``, ``Fn::Sub`` (``${Name}``, ``${Resource.Attribute}``, ``${!Literal}``
and the ``[text, {name: value}]`` form) and ``Fn::Join``. Any other ``Fn::`` is refused with an error
naming it and where it is. Resources are created after everything they reference or list in
``DependsOn``; a cycle is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PSEUDO_PARAMETERS = ("ALIYUN::Region", "ALIYUN::AccountId", "ALIYUN::StackName", "ALIYUN::StackId")
NO_VALUE = "ALIYUN::NoValue"
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class RosError(ValueError):
    """A template the local ROS cannot apply; the message names the file, the resource and the property."""


@dataclass(frozen=True)
class RosTemplate:
    path: Path
    parameters: dict[str, Any]
    resources: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path, given: dict[str, str]) -> RosTemplate:
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise RosError(f"{path}: cannot be read as YAML: {error}") from error
        if not isinstance(document, dict) or "ROSTemplateFormatVersion" not in document:
            raise RosError(f"{path}: not a ROS template (no ROSTemplateFormatVersion)")
        if document.get("Transform"):
            raise RosError(f"{path}: Transform {document['Transform']!r} templates are not supported locally")
        declared = document.get("Parameters") or {}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise RosError(f"{path}: no parameter {unknown[0]!r} is declared (it has {', '.join(declared)})")
        parameters = {}
        for name, spec in declared.items():
            if name in given:
                value: Any = given[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise RosError(
                    f"{path}: parameter {name} has no Default: give it, e.g. --parameter {name}=VALUE"
                )
            if spec.get("Type") == "Number":
                try:
                    value = float(value) if "." in str(value) else int(value)
                except ValueError as error:
                    raise RosError(f"{path}: parameter {name} is a Number, got {value!r}") from error
            allowed = spec.get("AllowedValues")
            if allowed and value not in allowed:
                raise RosError(f"{path}: parameter {name}: {value!r} is not one of {allowed}")
            parameters[name] = value
        resources = document.get("Resources")
        if not isinstance(resources, dict) or not resources:
            raise RosError(f"{path}: Resources must be a non-empty mapping")
        return cls(path, parameters, resources)

    def creation_order(self) -> list[str]:
        """Logical ids, each after every resource it references or depends on (declaration order otherwise)."""
        needs = {name: self._references(name) for name in self.resources}
        ordered: list[str] = []
        placed: set[str] = set()
        while len(ordered) < len(self.resources):
            ready = [n for n in self.resources if n not in placed and needs[n] <= placed]
            if not ready:
                stuck = sorted(set(self.resources) - placed)
                raise RosError(f"{self.path}: resources {', '.join(stuck)} depend on each other in a cycle")
            ordered.extend(ready)
            placed.update(ready)
        return ordered

    def _references(self, name: str) -> set[str]:
        resource = self.resources[name]
        depends = resource.get("DependsOn") or []
        found = set([depends] if isinstance(depends, str) else depends)
        for target in found:
            if target not in self.resources:
                raise RosError(f"{self.path}: Resources.{name}.DependsOn: no resource {target!r}")

        def walk(value: Any) -> None:
            if isinstance(value, list):
                for item in value:
                    walk(item)
            elif isinstance(value, dict):
                if set(value) == {"Ref"} and value["Ref"] in self.resources:
                    found.add(value["Ref"])
                elif set(value) == {"Fn::GetAtt"} and isinstance(value["Fn::GetAtt"], list):
                    found.add(str(value["Fn::GetAtt"][0]))
                elif set(value) == {"Fn::Sub"}:
                    text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
                    for variable in _SUB_VARIABLE.findall(str(text)):
                        head = variable.split(".", 1)[0]
                        if head in self.resources:
                            found.add(head)
                for item in value.values():
                    walk(item)

        walk(resource.get("Properties") or {})
        return found


_Attributes = Callable[[str, str, str], Any]


class Resolver:
    """Evaluates intrinsic functions; ``physical_id(resource)`` and ``attribute(resource, name, where)``
    answer for resources created so far."""

    def __init__(
        self,
        template: RosTemplate,
        pseudo: dict[str, str],
        physical_id: Callable[[str, str], str],
        attribute: _Attributes,
    ) -> None:
        self.template = template
        self.pseudo = pseudo
        self.physical_id = physical_id
        self.attribute = attribute

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not _DROP]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(str(argument), where)
            if key.startswith("Fn::"):
                return self._function(key, argument, where)
        resolved = {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _DROP}

    def _ref(self, name: str, where: str) -> Any:
        if name == NO_VALUE:
            return _DROP
        if name in self.template.parameters:
            return self.template.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.template.resources:
            return self.physical_id(name, where)
        raise RosError(
            f"{self.template.path}: {where}: Ref {name!r} names no parameter, resource or pseudo parameter"
        )

    def _function(self, name: str, argument: Any, where: str) -> Any:
        if name == "Fn::GetAtt":
            if not (isinstance(argument, list) and len(argument) == 2):
                raise RosError(f"{self.template.path}: {where}: Fn::GetAtt takes [resource, attribute]")
            return self.attribute(str(argument[0]), str(argument[1]), where)
        if name == "Fn::Join":
            if not (isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], list)):
                raise RosError(f"{self.template.path}: {where}: Fn::Join takes [delimiter, [values]]")
            values = self.resolve(argument[1], f"{where}.Fn::Join")
            return str(argument[0]).join(str(v) for v in values)
        if name == "Fn::Sub":
            return self._sub(argument, where)
        raise RosError(
            f"{self.template.path}: {where}: {name} is not supported by the local ROS "
            "(it resolves Ref, Fn::GetAtt, Fn::Sub and Fn::Join)"
        )

    def _sub(self, argument: Any, where: str) -> str:
        if isinstance(argument, str):
            text, names = argument, {}
        elif isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
            text, names = str(argument[0]), self.resolve(argument[1], f"{where}.Fn::Sub")
        else:
            raise RosError(
                f"{self.template.path}: {where}: Fn::Sub takes a string or [string, {{name: value}}]"
            )

        def value(match: re.Match[str]) -> str:
            variable = match.group(1)
            if variable.startswith("!"):
                return "${" + variable[1:] + "}"
            if variable in names:
                return str(names[variable])
            head, _, attribute = variable.partition(".")
            if attribute and head in self.template.resources:
                return str(self.attribute(head, attribute, where))
            return str(self._ref(variable, where))

        return _SUB_VARIABLE.sub(value, text)


class _Drop:
    """What ``Ref: ALIYUN::NoValue`` resolves to: the property is left out."""


_DROP = _Drop()
