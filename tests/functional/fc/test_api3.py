"""The FC 3.0 API through ``alibabacloud-fc20230330``, and FC 2.0's ListFunctions/GetFunction through fc2."""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import replace
from typing import Any

import fc2
import pytest
from alibabacloud_fc20230330 import models
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException
from darabonba.runtime import ExtendsParameters, RuntimeOptions

from localcloud.core.http import ServiceServer
from localcloud.fc import FcService
from tests.support.fc import FcCloud, probe_function

MNS_DESTINATION = "acs:mns:cn-hangzhou:123:/queues/failures/messages"
TIMER: dict[str, Any] = {
    "triggerName": "nightly",
    "triggerType": "timer",
    "triggerConfig": {"cronExpression": "CRON_TZ=Asia/Shanghai 0 0 3 * * *", "enable": True, "payload": "x"},
}


def fc3_client(cloud: FcCloud, secret: str | None = None) -> Client:
    return Client(
        open_api_models.Config(
            access_key_id=cloud.account.access_key_id,
            access_key_secret=secret or cloud.account.access_key_secret,
            endpoint=cloud.fc_url.removeprefix("http://"),
            protocol="http",
            region_id="cn-hangzhou",
        )
    )


def with_headers(**headers: str) -> RuntimeOptions:
    """Runtime options that make the SDK sign and send ``headers`` over its own."""
    return RuntimeOptions(extends_parameters=ExtendsParameters(headers=headers))


@pytest.fixture
def deployed(fc_cloud: FcCloud) -> FcCloud:
    fc_cloud.fc.deploy(
        fc_cloud.write_s_yaml(
            probe_function("alpha", triggers=[TIMER])
            + probe_function(
                "beta",
                asyncInvokeConfig={
                    "maxAsyncRetryAttempts": 1,
                    "destinationConfig": {"onFailure": {"destination": MNS_DESTINATION}},
                },
            )
            + probe_function("gamma")
        )
    )
    return fc_cloud


def client_error(call: object) -> ClientException:
    assert callable(call)
    with pytest.raises(ClientException) as caught:
        call()
    return caught.value


def test_list_functions_pages_and_filters(deployed: FcCloud) -> None:
    client = fc3_client(deployed)
    listed = client.list_functions(models.ListFunctionsRequest()).body
    assert [f.function_name for f in listed.functions] == ["alpha", "beta", "gamma"]
    assert listed.next_token is None
    names, token = [], None
    while True:
        page = client.list_functions(models.ListFunctionsRequest(limit=2, next_token=token)).body
        names += [f.function_name for f in page.functions]
        token = page.next_token
        if not token:
            break
    assert names == ["alpha", "beta", "gamma"]
    prefixed = client.list_functions(models.ListFunctionsRequest(prefix="b")).body
    assert [f.function_name for f in prefixed.functions] == ["beta"]
    error = client_error(lambda: client.list_functions(models.ListFunctionsRequest(limit=1000)))
    assert (error.code, error.status_code) == ("InvalidArgument", 400)


def test_get_function_describes_the_deployed_function(deployed: FcCloud) -> None:
    client = fc3_client(deployed)
    function = client.get_function("alpha", models.GetFunctionRequest(qualifier="LATEST")).body
    assert function.function_name == "alpha"
    assert function.runtime == "python3.10"
    assert function.handler == "index.handler"
    assert function.timeout == 10
    assert function.memory_size == 512
    assert function.function_arn == f"acs:fc:cn-hangzhou:{deployed.account.account_id}:functions/alpha"
    assert function.environment_variables["RECORD_DIR"] == str(deployed.records)
    assert function.state == "Active"
    assert function.created_time.endswith("Z")

    error = client_error(lambda: client.get_function("nope", models.GetFunctionRequest()))
    assert (error.code, error.status_code) == ("FunctionNotFound", 404)
    assert error.request_id not in ("", "None")
    error = client_error(lambda: client.get_function("alpha", models.GetFunctionRequest(qualifier="prod")))
    assert error.code == "AliasNotFound"


def test_invoke_sync_returns_the_handlers_bytes(deployed: FcCloud) -> None:
    client = fc3_client(deployed)
    response = client.invoke_function(
        "alpha", models.InvokeFunctionRequest(body=b'{"hello": 1}', qualifier="LATEST")
    )
    assert response.status_code == 200
    record = json.loads(response.body.read())
    assert record["event"] == '{"hello": 1}'
    assert record["function"]["name"] == "alpha"
    assert response.headers["x-fc-request-id"] == record["request_id"]
    assert "x-fc-error-type" not in response.headers


def test_invoke_sync_function_error_is_200_with_the_error_type(deployed: FcCloud) -> None:
    response = fc3_client(deployed).invoke_function(
        "alpha", models.InvokeFunctionRequest(body=b'{"fail": "boom"}')
    )
    assert response.status_code == 200
    assert response.headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert "boom" in json.loads(response.body.read())["errorMessage"]


def test_invoke_async_is_accepted_then_runs(deployed: FcCloud) -> None:
    response = fc3_client(deployed).invoke_function_with_options(
        "gamma",
        models.InvokeFunctionRequest(body=b"later"),
        models.InvokeFunctionHeaders(x_fc_invocation_type="Async"),
        RuntimeOptions(),
    )
    assert response.status_code == 202
    request_id = response.headers["x-fc-request-id"]
    [record] = deployed.wait_for_records(1, lambda r: r["request_id"] == request_id)
    assert record["event"] == "later"


def test_invoke_unknown_function_carries_its_code(deployed: FcCloud) -> None:
    client = fc3_client(deployed)
    error = client_error(lambda: client.invoke_function("nope", models.InvokeFunctionRequest(body=b"")))
    assert (error.code, error.status_code) == ("FunctionNotFound", 404)


def test_list_and_get_triggers(deployed: FcCloud) -> None:
    client = fc3_client(deployed)
    triggers = client.list_triggers("alpha", models.ListTriggersRequest()).body.triggers
    assert [t.trigger_name for t in triggers] == ["nightly"]
    trigger = client.get_trigger("alpha", "nightly").body
    assert trigger.trigger_type == "timer"
    assert json.loads(trigger.trigger_config)["cronExpression"] == TIMER["triggerConfig"]["cronExpression"]
    assert client.list_triggers("gamma", models.ListTriggersRequest()).body.triggers == []
    error = client_error(lambda: client.get_trigger("alpha", "missing"))
    assert (error.code, error.status_code) == ("TriggerNotFound", 404)


def test_get_and_put_async_invoke_config(deployed: FcCloud) -> None:
    client = fc3_client(deployed)
    config = client.get_async_invoke_config("beta", models.GetAsyncInvokeConfigRequest()).body
    assert config.max_async_retry_attempts == 1
    assert config.destination_config.on_failure.destination == MNS_DESTINATION
    error = client_error(
        lambda: client.get_async_invoke_config("gamma", models.GetAsyncInvokeConfigRequest())
    )
    assert (error.code, error.status_code) == ("AsyncConfigNotExists", 404)

    put = models.PutAsyncInvokeConfigRequest(
        body=models.PutAsyncInvokeConfigInput(max_async_retry_attempts=0, max_async_event_age_in_seconds=60)
    )
    stored = client.put_async_invoke_config("gamma", put).body
    assert (stored.max_async_retry_attempts, stored.max_async_event_age_in_seconds) == (0, 60)
    again = client.get_async_invoke_config("gamma", models.GetAsyncInvokeConfigRequest()).body
    assert (again.max_async_retry_attempts, again.max_async_event_age_in_seconds) == (0, 60)
    assert deployed.fc.function("gamma").spec.async_config.max_retry_attempts == 0

    # No retry now: one failing async invocation runs exactly once.
    response = client.invoke_function_with_options(
        "gamma",
        models.InvokeFunctionRequest(body=b'{"fail": "once"}'),
        models.InvokeFunctionHeaders(x_fc_invocation_type="Async"),
        RuntimeOptions(),
    )
    finished = deployed.wait_for_state(response.headers["x-fc-request-id"], ("failed",))
    assert finished["attempts"] == 1

    bad = models.PutAsyncInvokeConfigRequest(
        body=models.PutAsyncInvokeConfigInput(max_async_retry_attempts=99)
    )
    error = client_error(lambda: client.put_async_invoke_config("gamma", bad))
    assert (error.code, error.status_code) == ("InvalidArgument", 400)


def test_unserved_actions_answer_not_implemented(deployed: FcCloud) -> None:
    client = fc3_client(deployed)
    with pytest.raises(ServerException) as caught:
        client.list_layers(models.ListLayersRequest())
    assert (caught.value.code, caught.value.status_code) == ("NotImplemented", 501)
    assert "ListLayers" in caught.value.message


def test_signatures_are_checked(deployed: FcCloud) -> None:
    error = client_error(
        lambda: fc3_client(deployed, secret="wrong").list_functions(models.ListFunctionsRequest())
    )
    assert (error.code, error.status_code) == ("SignatureNotMatch", 403)


def test_a_stale_request_is_refused(deployed: FcCloud) -> None:
    client = fc3_client(deployed)
    stale = with_headers(**{"x-acs-date": "2020-01-01T00:00:00Z"})
    error = client_error(lambda: client.list_functions_with_options(models.ListFunctionsRequest(), {}, stale))
    assert (error.code, error.status_code) == ("RequestTimeTooSkewed", 403)


def test_a_replayed_nonce_is_refused(deployed: FcCloud) -> None:
    client = fc3_client(deployed)
    fixed = with_headers(**{"x-acs-signature-nonce": f"nonce-{time.time()}"})
    client.list_functions_with_options(models.ListFunctionsRequest(), {}, fixed)
    error = client_error(lambda: client.list_functions_with_options(models.ListFunctionsRequest(), {}, fixed))
    assert (error.code, error.status_code) == ("SignatureNonceUsed", 400)


def test_a_replayed_nonce_stays_refused_after_a_restart(deployed: FcCloud) -> None:
    """Nonces are on disk (DIR/fc/nonces.sqlite3), not in the process: a restarted FC still refuses
    a request replayed within its 15 minutes."""
    fixed = with_headers(**{"x-acs-signature-nonce": f"nonce-{time.time()}"})
    fc3_client(deployed).list_functions_with_options(models.ListFunctionsRequest(), {}, fixed)
    restarted = FcService(deployed.state_dir, deployed.account)
    server = ServiceServer(restarted)
    restarted.start(server.url)
    server.start()
    try:
        client = fc3_client(replace(deployed, fc=restarted, fc_url=server.url))
        error = client_error(
            lambda: client.list_functions_with_options(models.ListFunctionsRequest(), {}, fixed)
        )
        assert (error.code, error.status_code) == ("SignatureNonceUsed", 400)
        other = with_headers(**{"x-acs-signature-nonce": f"other-{time.time()}"})
        assert client.list_functions_with_options(models.ListFunctionsRequest(), {}, other).body.functions
    finally:
        server.stop()
        restarted.close()


def test_fc2_lists_and_gets_the_fc3_functions_under_any_service_name(deployed: FcCloud) -> None:
    client = deployed.client()
    listed = client.list_functions("any-service", limit=2).data
    assert [f["functionName"] for f in listed["functions"]] == ["alpha", "beta"]
    rest = client.list_functions("any-service", nextToken=listed["nextToken"]).data
    assert [f["functionName"] for f in rest["functions"]] == ["gamma"]
    assert [f["functionName"] for f in client.list_functions("x", prefix="g").data["functions"]] == ["gamma"]
    function = client.get_function("other-service", "beta").data
    assert (function["functionName"], function["runtime"], function["timeout"]) == ("beta", "python3.10", 10)
    with pytest.raises(fc2.FcError) as caught:
        client.get_function("s", "nope")
    assert caught.value.status_code == 404
    assert "FunctionNotFound" in str(caught.value)


def test_fc2_refuses_a_stale_date(deployed: FcCloud) -> None:
    stale = email.utils.formatdate(time.time() - 16 * 60, usegmt=True)
    with pytest.raises(fc2.FcError) as caught:
        deployed.client().invoke_function("s", "alpha", b"", headers={"date": stale})
    assert caught.value.status_code == 403
    assert "RequestTimeTooSkewed" in str(caught.value)
    fresh = email.utils.formatdate(time.time() - 10 * 60, usegmt=True)
    assert deployed.client().invoke_function("s", "alpha", b"", headers={"date": fresh}).data


def test_a_redeploy_replaces_a_put_async_config(deployed: FcCloud) -> None:
    client = fc3_client(deployed)
    put = models.PutAsyncInvokeConfigRequest(
        body=models.PutAsyncInvokeConfigInput(max_async_retry_attempts=5)
    )
    client.put_async_invoke_config("alpha", put)
    assert (
        client.get_async_invoke_config(
            "alpha", models.GetAsyncInvokeConfigRequest()
        ).body.max_async_retry_attempts
        == 5
    )
    deployed.fc.deploy(deployed.write_s_yaml(probe_function("alpha"), name="again.yaml"))
    error = client_error(
        lambda: client.get_async_invoke_config("alpha", models.GetAsyncInvokeConfigRequest())
    )
    assert error.code == "AsyncConfigNotExists"
