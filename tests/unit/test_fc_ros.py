"""localcloud/fc/ros.py: ALIYUN::FC3::* properties into FunctionSpec, and what it refuses (no network: ZipFile code)."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from localcloud.core.account import Account
from localcloud.fc.names import InvalidName
from localcloud.fc.ros import RosFunctionError, function_spec

ACCOUNT = Account.new()


def _zip(files: dict[str, str]) -> str:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(data.getvalue()).decode()


def _entry(**function: Any) -> dict[str, Any]:
    props = {
        "FunctionName": "immflow-on-upload",
        "Handler": "index.handler",
        "Runtime": "python3.10",
        "Code": {"ZipFile": _zip({"index.py": "def handler(event, context):\n    return 'ok'\n"})},
        "Timeout": 60,
        "EnvironmentVariables": {"IMMFLOW_PROJECT": "immflow"},
        "LogConfig": {"Project": "p", "Logstore": "l"},
        **function,
    }
    return {
        "function": props,
        "triggers": [
            {
                "FunctionName": "immflow-on-upload",
                "TriggerName": "uploads-videos",
                "TriggerType": "oss",
                "SourceArn": "acs:oss:cn-hangzhou:1:immflow-media",
                "TriggerConfig": {
                    "events": ["oss:ObjectCreated:PutObject"],
                    "filter": {"key": {"prefix": "u/"}},
                },
            }
        ],
        "async_invoke_config": {
            "FunctionName": "immflow-on-upload",
            "MaxAsyncRetryAttempts": 0,
            "DestinationConfig": {"OnFailure": {"Destination": "acs:mns:cn-hangzhou:1:/queues/q/messages"}},
        },
    }


def test_a_function_with_its_trigger_and_async_config(tmp_path: Path) -> None:
    spec = function_spec(_entry(), "cn-hangzhou", ACCOUNT, "", tmp_path)
    assert (spec.name, spec.runtime, spec.handler, spec.timeout) == (
        "immflow-on-upload",
        "python3.10",
        "index.handler",
        60,
    )
    assert (Path(spec.code_dir) / "index.py").is_file()
    assert Path(spec.code_dir).is_relative_to(tmp_path)
    assert spec.environment == {"IMMFLOW_PROJECT": "immflow"}
    [trigger] = spec.triggers
    assert (trigger.name, trigger.type, trigger.arn_tail()) == ("uploads-videos", "oss", "immflow-media")
    assert spec.async_config.max_retry_attempts == 0
    assert spec.async_config.on_failure == "acs:mns:cn-hangzhou:1:/queues/q/messages"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"FunctionName": "../../escape"}, "FunctionName: function name '../../escape' is invalid"),
        ({"Runtime": "nodejs18"}, "Runtime: 'nodejs18': the local FC runs"),
        ({"Code": {"SourceCode": "print(1)"}}, "does not run SourceCode"),
        ({"Code": {"ZipFile": "not base64!"}}, "Code.ZipFile: not base64"),
        ({"Code": {"ZipFile": _zip({"../outside.py": "x = 1"})}}, "points outside the code folder"),
        ({"Code": {"OssBucketName": "code", "OssObjectName": "f.zip"}}, "this local FC has no local OSS"),
        ({"Timeout": "60"}, "Timeout: must be an integer"),
    ],
)
def test_what_the_local_fc_refuses_names_the_property(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    with pytest.raises((RosFunctionError, InvalidName), match=message):
        function_spec(_entry(**change), "cn-hangzhou", ACCOUNT, "", tmp_path)
    assert not (tmp_path.parent / "outside.py").exists()


def test_a_trigger_type_the_local_fc_lacks_is_refused(tmp_path: Path) -> None:
    entry = _entry()
    entry["triggers"][0]["TriggerType"] = "http"
    with pytest.raises(RosFunctionError, match="'http' triggers are not implemented locally"):
        function_spec(entry, "cn-hangzhou", ACCOUNT, "", tmp_path)
