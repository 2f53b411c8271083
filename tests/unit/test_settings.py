"""Settings from the environment, credentials from either FC context shape, the invocation's time budget."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from immflow.errors import ImmflowError
from immflow.fc import SAFETY_MARGIN_SECONDS, Credentials, Invocation, credentials_for
from immflow.ossuri import OssUri
from immflow.settings import SettingsError, settings_from_env

REQUIRED = {"IMMFLOW_PROJECT": "proj", "IMMFLOW_TOPIC": "topic"}


def test_missing_variables_are_named() -> None:
    with pytest.raises(SettingsError, match="IMMFLOW_PROJECT, IMMFLOW_TOPIC"):
        settings_from_env({})
    with pytest.raises(SettingsError, match="missing environment variable IMMFLOW_TOPIC:"):
        settings_from_env({"IMMFLOW_PROJECT": "p"})


def test_defaults_follow_the_region(tmp_path: Path) -> None:
    settings = settings_from_env({**REQUIRED, "FC_REGION": "cn-beijing"}, code_dir=tmp_path)
    assert settings.region == "cn-beijing"
    assert settings.imm_endpoint == "imm.cn-beijing.aliyuncs.com"
    assert settings.oss_endpoint == "https://oss-cn-beijing-internal.aliyuncs.com"
    assert settings.ledger_url == "tablestore://immflow"
    assert settings.pipeline_path == tmp_path / "pipeline.yaml"
    assert settings.reconcile_after_seconds == 900
    assert settings.manifest_for(OssUri("media-in", "a/b.mp4"), "r1") == OssUri(
        "media-in", "immflow/manifests/r1.json"
    )
    assert settings_from_env({**REQUIRED, "ALIBABA_CLOUD_REGION_ID": "cn-shanghai"}).region == "cn-shanghai"
    assert settings_from_env(REQUIRED).region == "cn-hangzhou"


def test_a_function_on_fc_refuses_a_sqlite_ledger_unless_the_local_fc_shares_its_disk() -> None:
    on_fc = {
        **REQUIRED,
        "FC_INSTANCE_ID": "c-1",
        "IMMFLOW_LEDGER_URL": "sqlite:////tmp/immflow-ledger.sqlite",
    }
    with pytest.raises(SettingsError, match=r"own disk.*Set IMMFLOW_LEDGER_URL=tablestore://<instance>"):
        settings_from_env(on_fc)
    with pytest.raises(SettingsError, match=r"IMMFLOW_LEDGER_URL='sqlite\+pysqlite:///l\.db'"):
        settings_from_env({**on_fc, "IMMFLOW_LEDGER_URL": "sqlite+pysqlite:///l.db"})
    shared = settings_from_env({**on_fc, "IMMFLOW_LEDGER_SHARED_DISK": "1"})
    assert shared.ledger_url == "sqlite:////tmp/immflow-ledger.sqlite"
    assert settings_from_env({**REQUIRED, "FC_INSTANCE_ID": "c-1"}).ledger_url == "tablestore://immflow"
    postgres = "postgresql+psycopg://immflow@db.internal/immflow"
    assert settings_from_env({**on_fc, "IMMFLOW_LEDGER_URL": postgres}).ledger_url == postgres
    # Off FC (the CLI, tests), a SQLite ledger is one machine's and fine.
    assert (
        settings_from_env({**REQUIRED, "IMMFLOW_LEDGER_URL": "sqlite:///l.db"}).ledger_url == "sqlite:///l.db"
    )


def test_explicit_values_win(tmp_path: Path) -> None:
    settings = settings_from_env(
        {
            **REQUIRED,
            "FC_FUNC_CODE_PATH": "/code/",
            "IMMFLOW_PIPELINE": "conf/pipeline.yaml",
            "IMMFLOW_REGION": "cn-shenzhen",
            "IMMFLOW_IMM_ENDPOINT": "127.0.0.1:9412",
            "IMMFLOW_OSS_ENDPOINT": "http://127.0.0.1:9410",
            "IMMFLOW_MANIFEST_URI": "oss://reports/runs",
            "IMMFLOW_RECONCILE_AFTER_SECONDS": "60",
        },
        code_dir=tmp_path,
    )
    assert settings.pipeline_path == Path("/code/conf/pipeline.yaml")
    assert (settings.region, settings.imm_endpoint, settings.oss_endpoint) == (
        "cn-shenzhen",
        "127.0.0.1:9412",
        "http://127.0.0.1:9410",
    )
    assert settings.manifest_for(OssUri("media-in", "a.mp4"), "r1") == OssUri("reports", "runs/r1.json")
    assert settings.reconcile_after_seconds == 60
    assert settings_from_env({**REQUIRED, "IMMFLOW_PIPELINE": "/etc/p.yaml"}).pipeline_path == Path(
        "/etc/p.yaml"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IMMFLOW_RECONCILE_AFTER_SECONDS", "soon"),
        ("IMMFLOW_MANIFEST_URI", "https://bucket/x"),
        ("IMMFLOW_PROJECT", "9 bad"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"environment variable {variable}="):
        settings_from_env({**REQUIRED, variable: value})


def test_credentials_come_from_the_python310_context_first() -> None:
    context = SimpleNamespace(
        credentials=SimpleNamespace(access_key_id="STS.id", access_key_secret="s", security_token="tok")
    )
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "env-id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret"}
    assert credentials_for(context, env) == Credentials("STS.id", "s", "tok")
    # python3.12: no credentials attribute; the environment has them.
    assert credentials_for(SimpleNamespace(request_id="r"), env) == Credentials("env-id", "env-secret", None)
    with pytest.raises(ImmflowError, match="ALIBABA_CLOUD_ACCESS_KEY_ID"):
        credentials_for(SimpleNamespace(), {})
    assert "s'" not in repr(Credentials("id", "s", "tok"))


def test_the_time_budget_counts_from_the_invocations_start() -> None:
    now = [100.0]
    context = SimpleNamespace(request_id="r-1", function=SimpleNamespace(name="fn", timeout=30))
    invocation = Invocation.from_context(context, clock=lambda: now[0])
    assert (invocation.request_id, invocation.function_name) == ("r-1", "fn")
    assert invocation.remaining_seconds() == 30 - SAFETY_MARGIN_SECONDS
    now[0] += 20
    assert invocation.remaining_seconds() == 10 - SAFETY_MARGIN_SECONDS
    now[0] += 20
    assert invocation.remaining_seconds() == 0
