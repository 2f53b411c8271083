"""The local cloud's admin routes, attacked as a local process or a web page would (issue: security).

A whole local cloud runs on free ports; each attack is made with plain HTTP, the way a script on
the same machine or a browser would send it, and must be refused before anything is touched.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from localcloud.core.admin import TOKEN_HEADER, admin_headers
from localcloud.launcher import LocalCloud
from tests.support.cloud import start_local_cloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with start_local_cloud(tmp_path_factory.mktemp("state") / "cloud") as started:
        yield started


@pytest.fixture(scope="module")
def endpoints(cloud: LocalCloud) -> dict[str, str]:
    data: dict[str, str] = json.loads((cloud.state_dir / "endpoints.json").read_text())
    return data


def _s_yaml(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "index.py").write_text("import os\ndef handler(event, context):\n    return 'ran'\n")
    path = tmp_path / "s.yaml"
    path.write_text(
        "edition: 3.0.0\nname: x\naccess: default\nresources:\n  pwned:\n    component: fc3\n    props:\n"
        "      region: cn-hangzhou\n      functionName: pwned\n      runtime: python3.10\n"
        f"      handler: index.handler\n      code: {tmp_path / 'code'}\n      memorySize: 128\n"
        "      timeout: 10\n"
    )
    return path


ADMIN_ROUTES = [
    ("fc", "POST", "/_localcloud/deploy"),
    ("fc", "GET", "/_localcloud/functions"),
    ("fc", "GET", "/_localcloud/invocations?payload=1"),
    ("fc", "POST", "/_localcloud/mns/immflow-on-task-done/on-task-done"),
    ("oss", "PUT", "/_localcloud/triggers/evil"),
    ("oss", "GET", "/_localcloud/triggers"),
    ("ots", "PUT", "/_localcloud/instances/evil"),
    ("ots", "GET", "/_localcloud/instances"),
]


@pytest.mark.parametrize(("service", "method", "path"), ADMIN_ROUTES)
def test_admin_route_without_token_is_refused(
    endpoints: dict[str, str], service: str, method: str, path: str
) -> None:
    response = requests.request(method, endpoints[service] + path, json={}, timeout=10)
    assert response.status_code == 401
    assert TOKEN_HEADER in response.text


@pytest.mark.parametrize(("service", "method", "path"), ADMIN_ROUTES)
def test_admin_route_with_a_wrong_token_is_refused(
    endpoints: dict[str, str], service: str, method: str, path: str
) -> None:
    response = requests.request(
        method, endpoints[service] + path, json={}, headers=admin_headers("guess"), timeout=10
    )
    assert response.status_code == 403


def test_unsigned_deploy_runs_nothing(cloud: LocalCloud, endpoints: dict[str, str], tmp_path: Path) -> None:
    response = requests.post(
        endpoints["fc"] + "/_localcloud/deploy", json={"s_yaml": str(_s_yaml(tmp_path))}, timeout=30
    )
    assert response.status_code == 401
    listed = requests.get(
        endpoints["fc"] + "/_localcloud/functions",
        headers=admin_headers(endpoints["admin_token"]),
        timeout=10,
    ).json()["functions"]
    assert "pwned" not in [f["name"] for f in listed]


def test_a_web_page_cannot_post_a_form_even_with_the_token(endpoints: dict[str, str], tmp_path: Path) -> None:
    """A form POST needs no CORS preflight, but the browser adds Origin: refused whatever else it carries."""
    response = requests.post(
        endpoints["fc"] + "/_localcloud/deploy",
        data={"s_yaml": str(_s_yaml(tmp_path))},
        headers={"Origin": "http://evil.example", **admin_headers(endpoints["admin_token"])},
        timeout=10,
    )
    assert response.status_code == 403
    assert "Origin" in response.json()["ErrorMessage"]


def test_dns_rebinding_host_is_refused(endpoints: dict[str, str]) -> None:
    response = requests.get(
        endpoints["oss"] + "/_localcloud/triggers",
        headers={"Host": "rebind.evil.example:9410", **admin_headers(endpoints["admin_token"])},
        timeout=10,
    )
    assert response.status_code == 403
    assert "loopback" in response.json()["Message"]


def test_the_token_opens_the_admin_routes(endpoints: dict[str, str]) -> None:
    headers = admin_headers(endpoints["admin_token"])
    assert requests.get(endpoints["oss"] + "/_localcloud/triggers", headers=headers, timeout=10).ok
    localhost = endpoints["fc"].replace("127.0.0.1", "localhost")
    assert requests.get(localhost + "/_localcloud/functions", headers=headers, timeout=10).ok


def test_key_pair_and_token_files_are_readable_by_their_owner_only(cloud: LocalCloud) -> None:
    assert stat.S_IMODE(cloud.state_dir.stat().st_mode) == 0o700
    for name in ("endpoints.json", "account.json", "admin-token"):
        assert stat.S_IMODE((cloud.state_dir / name).stat().st_mode) == 0o600, name
