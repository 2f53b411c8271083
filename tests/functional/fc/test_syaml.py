"""s.yaml (fc3) reading: variables, defaults, and clear refusals."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from localcloud.core.account import Account
from localcloud.fc.schedule import Schedule, ScheduleError
from localcloud.fc.syaml import SYamlError, load

ACCOUNT = Account("1234567890123456", "cn-hangzhou", "LTAIkey", "secret")


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "code").mkdir(exist_ok=True)
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


FULL = """
edition: 3.0.0
name: app
vars:
  region: ${env('REGION', 'cn-shanghai')}
  bucket: media-in
  limits: {timeout: 30}
  topic: ${env('TOPIC')}
resources:
  on-upload:
    component: fc3
    props:
      region: ${vars.region}
      functionName: on-upload
      runtime: python3.12
      handler: index.handler
      code: ./code
      timeout: ${vars.limits.timeout}
      role: acs:ram::${config('AccountID')}:role/aliyunfcdefaultrole
      environmentVariables:
        BUCKET: ${vars.bucket}
        MIXED: ${vars.bucket}/${vars.limits.timeout}
        CODE: ${path('./code')}
      instanceLifecycleConfig:
        initializer: {handler: index.init, timeout: 7}
      asyncInvokeConfig:
        maxAsyncRetryAttempts: 1
        destinationConfig:
          onFailure: {destination: "acs:mns:${vars.region}:${config('AccountID')}:/queues/dlq/messages"}
      triggers:
        - triggerName: up
          triggerType: oss
          sourceArn: acs:oss:${vars.region}:${config('AccountID')}:${vars.bucket}
          triggerConfig:
            events: [oss:ObjectCreated:*]
            filter: {key: {prefix: in/, suffix: ''}}
        - triggerName: done
          triggerType: mns_topic
          sourceArn: acs:mns:${vars.region}:${config('AccountID')}:/topics/${vars.topic}
          triggerConfig: {notifyContentFormat: JSON, notifyStrategy: EXPONENTIAL_DECAY_RETRY}
"""


def test_variables_resolve_with_their_types(tmp_path: Path) -> None:
    (spec,) = load(_write(tmp_path, FULL), ACCOUNT, environ={"TOPIC": "imm-done"})

    assert spec.region == "cn-shanghai" and spec.timeout == 30 and spec.memory_size == 512
    assert spec.environment == {"BUCKET": "media-in", "MIXED": "media-in/30", "CODE": str(tmp_path / "code")}
    assert spec.code_dir == str(tmp_path / "code") and spec.runtime == "python3.12"
    assert (spec.initializer, spec.initializer_timeout) == ("index.init", 7)
    assert spec.async_config.max_retry_attempts == 1 and spec.async_config.max_event_age_seconds == 18000
    assert spec.async_config.on_failure == "acs:mns:cn-shanghai:1234567890123456:/queues/dlq/messages"
    oss, mns = spec.triggers
    assert oss.source_arn == "acs:oss:cn-shanghai:1234567890123456:media-in" and oss.arn_tail() == "media-in"
    assert mns.arn_tail() == "/topics/imm-done" and mns.config["notifyContentFormat"] == "JSON"


def test_env_value_wins_over_the_default(tmp_path: Path) -> None:
    (spec,) = load(_write(tmp_path, FULL), ACCOUNT, environ={"TOPIC": "t", "REGION": "cn-beijing"})

    assert spec.region == "cn-beijing"


def test_missing_env_without_default_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SYamlError, match=r"vars\.topic.*environment variable TOPIC is not set"):
        load(_write(tmp_path, FULL), ACCOUNT, environ={})


@pytest.mark.parametrize(
    ("replacement", "message"),
    [
        ("${resources.other.output.arn}", r"\$\{resources.other.output.arn\} is not supported"),
        ("${this.name}", r"\$\{this.name\} is not supported"),
        ("${vars.nope}", "no such entry in the vars: block"),
        ("${env(TOPIC)}", "arguments must be quoted strings"),
    ],
)
def test_unsupported_expressions_are_refused_with_the_field(
    tmp_path: Path, replacement: str, message: str
) -> None:
    text = FULL.replace("BUCKET: ${vars.bucket}", f"BUCKET: {replacement}")

    with pytest.raises(
        SYamlError, match=r"resources\.on-upload\.props\.environmentVariables\.BUCKET: .*" + message
    ):
        load(_write(tmp_path, text), ACCOUNT, environ={"TOPIC": "t"})


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("edition: 3.0.0", "edition: 1.0.0", "edition: must be 3.0.0"),
        ("component: fc3", "component: fc", "'fc' is not supported locally"),
        ("runtime: python3.12", "runtime: nodejs18", "runs python3, python3.9, python3.10, python3.12 only"),
        ("code: ./code", "code: ./missing", "code: folder .* does not exist"),
        ("      functionName: on-upload\n", "", "functionName: is required"),
        ("notifyContentFormat: JSON", "notifyContentFormat: XML", "must be STREAM or JSON"),
    ],
)
def test_what_cannot_run_locally_is_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(SYamlError, match=message):
        load(_write(tmp_path, FULL.replace(old, new)), ACCOUNT, environ={"TOPIC": "t"})


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_cron_schedules() -> None:
    every_five = Schedule.parse("0 0/5 * * * *")
    assert every_five.next_after(_utc("2026-01-01T10:02:30"), 0) == _utc("2026-01-01T10:05:00")
    daily = Schedule.parse("0 30 4 * * MON-FRI")  # 2026-01-03 is a Saturday
    assert daily.next_after(_utc("2026-01-02T05:00:00"), 0) == _utc("2026-01-05T04:30:00")
    shanghai = Schedule.parse("CRON_TZ=Asia/Shanghai 0 0 8 * * *")
    assert shanghai.next_after(_utc("2026-01-01T01:00:00"), 0) == _utc("2026-01-02T00:00:00")
    every = Schedule.parse("@every 1h30m")
    assert every.next_after(100.0, 100.0) == 100.0 + 5400


@pytest.mark.parametrize("expression", ["* * * * *", "@every", "@every 5x", "61 * * * * *", "0 0 0 * FOO *"])
def test_bad_schedules_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(expression)
