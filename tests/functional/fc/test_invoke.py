"""The FC 2.0 invoke API through fc2: sync, async, signatures, function errors, timeouts, context."""

from __future__ import annotations

import json

import fc2
import pytest

from tests.support.fc import FcCloud, probe_function


@pytest.fixture
def deployed(fc_cloud: FcCloud) -> FcCloud:
    fc_cloud.fc.deploy(
        fc_cloud.write_s_yaml(
            probe_function("probe310", memorySize=256, timeout=2)
            + probe_function(
                "probe312",
                runtime="python3.12",
                instanceLifecycleConfig={"initializer": {"handler": "index.initializer", "timeout": 5}},
            )
        )
    )
    return fc_cloud


def test_sync_invoke_returns_the_handler_result_with_fc_context_and_environment(deployed: FcCloud) -> None:
    response = deployed.client().invoke_function("any-service", "probe310", payload=b'{"hello": 1}')

    record = json.loads(response.data)
    assert record["event"] == '{"hello": 1}' and record["event_type"] == "bytes"
    assert response.headers["X-Fc-Request-Id"] == record["request_id"]
    assert record["function"] == {"name": "probe310", "handler": "index.handler", "memory": 256, "timeout": 2}
    assert record["region"] == "cn-hangzhou" and record["account_id"] == deployed.account.account_id
    env = record["env"]
    assert env["FC_FUNCTION_NAME"] == "probe310" and env["FC_RUNTIME"] == "python3.10"
    assert env["FC_FUNC_CODE_PATH"] == record["cwd"] and env["FC_TIMEOUT"] == "2"
    assert env["FC_FUNCTION_MEMORY_SIZE"] == "256" and env["FC_ACCOUNT_ID"] == deployed.account.account_id
    assert env["ALIBABA_CLOUD_ACCESS_KEY_ID"] == deployed.account.access_key_id
    assert env["IMMFLOW_OSS_ENDPOINT"] == deployed.oss_url  # the local override
    assert env["FC_INSTANCE_ID"]


def test_context_shapes_differ_by_runtime(deployed: FcCloud) -> None:
    client = deployed.client()
    py310 = json.loads(client.invoke_function("s", "probe310", payload=b"{}").data)
    py312 = json.loads(client.invoke_function("s", "probe312", payload=b"{}").data)

    assert py310["has_credentials"] and py310["credentials_key"] == deployed.account.access_key_id
    assert not py312["has_credentials"]
    assert py312["env"]["ALIBABA_CLOUD_ACCESS_KEY_ID"] == deployed.account.access_key_id


def test_initializer_runs_once_per_instance(deployed: FcCloud) -> None:
    client = deployed.client()
    first = json.loads(client.invoke_function("s", "probe312", payload=b"{}").data)
    second = json.loads(client.invoke_function("s", "probe312", payload=b"{}").data)

    assert first["pid"] == second["pid"]  # the warm instance is reused
    assert first["initialized"] == second["initialized"] == 1


def test_function_error_is_200_with_the_error_type_header(deployed: FcCloud) -> None:
    with pytest.raises(fc2.FcError) as raised:
        deployed.client().invoke_function("s", "probe310", payload=b'{"fail": "broken on purpose"}')

    assert raised.value.status_code == 200
    body = json.loads(raised.value.message)
    assert body["errorMessage"] == "broken on purpose" and body["errorType"] == "RuntimeError"
    assert any("index.py" in frame[0] for frame in body["stackTrace"])


def test_timeout_kills_the_instance_and_the_next_call_gets_a_fresh_one(deployed: FcCloud) -> None:
    client = deployed.client()
    before = json.loads(client.invoke_function("s", "probe310", payload=b"{}").data)
    with pytest.raises(fc2.FcError) as raised:
        client.invoke_function("s", "probe310", payload=b'{"sleep": 30}')
    after = json.loads(client.invoke_function("s", "probe310", payload=b"{}").data)

    body = json.loads(raised.value.message)
    assert body["errorType"] == "FunctionTimeoutError" and "2 seconds" in body["errorMessage"]
    assert before["pid"] != after["pid"]


def test_a_crashing_function_is_reported_not_fatal(deployed: FcCloud) -> None:
    with pytest.raises(fc2.FcError) as raised:
        deployed.client().invoke_function("s", "probe310", payload=b'{"exit": 3}')

    assert "exited unexpectedly" in json.loads(raised.value.message)["errorMessage"]
    assert json.loads(deployed.client().invoke_function("s", "probe310", payload=b"{}").data)["event"] == "{}"


def test_bad_signature_and_unknown_key_are_refused(deployed: FcCloud) -> None:
    with pytest.raises(fc2.FcError) as wrong_secret:
        deployed.client(secret="not-the-secret").invoke_function("s", "probe310", payload=b"{}")
    with pytest.raises(fc2.FcError) as wrong_key:
        deployed.client(key_id="LTAIunknown").invoke_function("s", "probe310", payload=b"{}")

    assert (wrong_secret.value.status_code, wrong_secret.value.err_code) == (403, "SignatureNotMatch")
    assert (wrong_key.value.status_code, wrong_key.value.err_code) == (403, "InvalidAccessKeyID")
    assert deployed.records_where() == []


def test_unknown_function_is_a_json_404(deployed: FcCloud) -> None:
    with pytest.raises(fc2.FcError) as raised:
        deployed.client().invoke_function("s", "missing", payload=b"{}")

    assert (raised.value.status_code, raised.value.err_code) == (404, "FunctionNotFound")


def test_async_invoke_is_accepted_with_202_and_runs(deployed: FcCloud) -> None:
    response = deployed.client().invoke_function(
        "s", "probe310", payload=b'{"async": true}', headers={"x-fc-invocation-type": "Async"}
    )

    assert response.data == b""
    request_id = response.headers["X-Fc-Request-Id"]
    assert deployed.wait_for_state(request_id, ("succeeded",))["attempts"] == 1
    (record,) = deployed.wait_for_records(1)
    assert record["request_id"] == request_id and record["event"] == '{"async": true}'


def test_a_burst_waits_briefly_for_a_warm_instance_before_starting_another(deployed: FcCloud) -> None:
    """Scaling out (localcloud.fc.instances): short events share warm instances; long ones scale out."""
    from concurrent.futures import ThreadPoolExecutor

    client = deployed.client()
    client.invoke_function("s", "probe310", payload=b"{}")  # one warm instance

    def pids(payload: bytes, count: int) -> set[int]:
        with ThreadPoolExecutor(count) as pool:
            calls = [
                pool.submit(client.invoke_function, "s", "probe310", payload=payload) for _ in range(count)
            ]
            return {json.loads(call.result().data)["pid"] for call in calls}

    assert len(pids(b"{}", 3)) == 1  # each waited for the warm instance: no cold start
    assert len(pids(b'{"sleep": 1.2}', 3)) == 3  # a second wait would outlast a cold start: scaled out
