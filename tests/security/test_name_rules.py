"""Names are names: queue, topic, subscription and project names (and an office SourceType, which
names a scratch file) that try to be paths are refused with the service's own error before any
state is touched (issue 10 point 2).

The MNS requests are sent with http.client, which sends a path exactly as given (no dot-segment
clean-up), and signed with the MNS SDK's own signing code, so only the name is wrong.
"""

from __future__ import annotations

import http.client
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import mns.mns_http
import mns.mns_request
import pytest
from alibabacloud_imm20200930 import models
from alibabacloud_tea_openapi.exceptions import ClientException
from mns.queue import QueueMeta
from mns.topic import TopicMeta

from localcloud.launcher import LocalCloud
from tests.support.clients import imm_client, mns_account

NS = "{http://mns.aliyuncs.com/doc/v1/}"
#: (what the name tries, the name as it goes into the URL path)
TRAVERSALS = [
    ("dot-dot", ".."),
    ("dot-dot-escaped", "%2E%2E"),
    ("absolute", "%2Fetc%2Fpasswd"),
    ("climbing", "..%2F..%2F..%2Fpwned"),
    ("nul", "a%00b"),
]


def _pwned(local: LocalCloud) -> list[Path]:
    """Files or folders named like the attacks' targets, anywhere under pytest's base folder or /tmp."""
    roots = [local.state_dir.parents[1], Path("/tmp")]
    return [
        Path(folder) / name
        for root in roots
        for folder, folders, files in os.walk(root)
        for name in folders + files
        if name.startswith("pwned")
    ]


def _mns(local: LocalCloud, method: str, path: str, body: bytes = b"") -> tuple[int, str]:
    request = mns.mns_http.RequestInternal(method, path, data=body)
    mns_account(local).mns_client.build_header(mns.mns_request.RequestBase(), request)
    connection = http.client.HTTPConnection(urlsplit(local.endpoints["mns"]).netloc, timeout=10)
    try:
        connection.request(method, path, body, request.header)
        response = connection.getresponse()
        status, answer = response.status, response.read()
    finally:
        connection.close()
    return status, ET.fromstring(answer).findtext(f"{NS}Code") or ""


@pytest.mark.parametrize(("what", "name"), TRAVERSALS, ids=[t[0] for t in TRAVERSALS])
def test_mns_refuses_path_like_names(local: LocalCloud, what: str, name: str) -> None:
    mns_account(local).get_topic("named-topic").create(TopicMeta())
    subscription = b'<Subscription xmlns="http://mns.aliyuncs.com/doc/v1/"><Endpoint>http://127.0.0.1:1/x</Endpoint></Subscription>'  # fmt: skip
    for method, path, body, code in [
        ("PUT", f"/queues/{name}", b"", "InvalidQueueName"),
        ("GET", f"/queues/{name}", b"", "InvalidQueueName"),
        ("DELETE", f"/queues/{name}", b"", "InvalidQueueName"),
        (
            "POST",
            f"/queues/{name}/messages",
            b"<Message><MessageBody>x</MessageBody></Message>",
            "InvalidQueueName",
        ),
        ("PUT", f"/topics/{name}", b"", "InvalidTopicName"),
        ("GET", f"/topics/{name}", b"", "InvalidTopicName"),
        ("PUT", f"/topics/named-topic/subscriptions/{name}", subscription, "InvalidSubscriptionName"),
        ("GET", f"/topics/named-topic/subscriptions/{name}", b"", "InvalidSubscriptionName"),
    ]:
        assert _mns(local, method, path, body) == (400, code), (method, path)
    created = {q.rsplit("/", 1)[-1] for q in mns_account(local).list_queue()[0]}
    assert not {n for n in created if not n.replace("-", "").isalnum()}
    assert _pwned(local) == []


def test_mns_refuses_over_long_names(local: LocalCloud) -> None:
    mns_account(local).get_topic("long-names").create(TopicMeta())
    assert _mns(local, "PUT", "/queues/" + "q" * 121) == (400, "QueueNameLengthError")
    assert _mns(local, "PUT", "/topics/" + "t" * 256) == (400, "TopicNameLengthError")
    subscription = b'<Subscription xmlns="http://mns.aliyuncs.com/doc/v1/"><Endpoint>http://127.0.0.1:1/x</Endpoint></Subscription>'  # fmt: skip
    assert _mns(local, "PUT", "/topics/long-names/subscriptions/" + "s" * 256, subscription) == (400, "SubscriptionNameLengthError")  # fmt: skip
    mns_account(local).get_queue("q" * 120).create(QueueMeta())  # the longest name is fine


def test_an_encoded_slash_does_not_reroute_an_mns_request(local: LocalCloud) -> None:
    """``/topics/t%2Fsubscriptions%2Fs`` is a topic named ``t/subscriptions/s``, not a subscription."""
    mns_account(local).get_topic("t").create(TopicMeta())
    assert _mns(local, "GET", "/topics/t%2Fsubscriptions%2Fs") == (400, "InvalidTopicName")


def test_mns_refuses_a_queue_endpoint_naming_a_path(local: LocalCloud) -> None:
    account = local.account
    endpoint = f"acs:mns:{account.region}:{account.account_id}:queues/../../etc"
    subscription = f'<Subscription xmlns="http://mns.aliyuncs.com/doc/v1/"><Endpoint>{endpoint}</Endpoint></Subscription>'  # fmt: skip
    mns_account(local).get_topic("queue-endpoint").create(TopicMeta())
    status, code = _mns(local, "PUT", "/topics/queue-endpoint/subscriptions/s1", subscription.encode())
    assert (status, code) == (400, "InvalidQueueName")


# IMM -------------------------------------------------------------------------------------------------

PROJECT_NAMES = {
    "dot-dot": "..",
    "absolute": "/etc/passwd",
    "climbing": "../../../pwned",
    "nul": "a\x00b",
    "newline": "project\n",
    "over-long": "p" * 129,
}


@pytest.mark.parametrize("name", PROJECT_NAMES.values(), ids=PROJECT_NAMES.keys())
def test_imm_refuses_path_like_project_names(local: LocalCloud, name: str) -> None:
    client = imm_client(local)
    calls: list[Callable[[], object]] = [
        lambda: client.create_project(models.CreateProjectRequest(project_name=name)),
        lambda: client.get_project(models.GetProjectRequest(project_name=name)),
        lambda: client.delete_project(models.DeleteProjectRequest(project_name=name)),
        lambda: client.list_tasks(models.ListTasksRequest(project_name=name)),
    ]
    for call in calls:
        with pytest.raises(ClientException) as info:
            call()
        assert (info.value.status_code, info.value.code) == (400, "InvalidArgument")
        assert "ProjectName" in info.value.message
    names = [p.project_name for p in client.list_projects(models.ListProjectsRequest()).body.projects]
    assert name not in names


def test_imm_accepts_the_longest_project_name(local: LocalCloud) -> None:
    imm_client(local).create_project(models.CreateProjectRequest(project_name="_" + "p" * 127))


def test_imm_refuses_an_office_source_type_that_names_a_path(local: LocalCloud) -> None:
    """SourceType becomes the name of the downloaded file: only the documented extensions pass."""
    client = imm_client(local)
    client.create_project(models.CreateProjectRequest(project_name="source-types"))
    for source_type in ("../../../../../../tmp/pwned", "docx/../../x", "docx\x00"):
        request = models.CreateOfficeConversionTaskRequest(
            project_name="source-types",
            source_uri="oss://bucket/in/report.docx",
            source_type=source_type,
            target_type="pdf",
            target_uri="oss://bucket/out/report.pdf",
        )
        with pytest.raises(ClientException) as info:
            client.create_office_conversion_task(request)
        assert info.value.code == "InvalidArgument" and "SourceType" in info.value.message
    tasks = client.list_tasks(models.ListTasksRequest(project_name="source-types")).body.tasks
    assert tasks == []
    assert _pwned(local) == []
