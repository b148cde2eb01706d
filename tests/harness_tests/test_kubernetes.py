"""harness.kubernetes, the API server stand-in the EKS pin source reads: what it answers, and
what it records of each request."""

from __future__ import annotations

import json

import pytest
import urllib3

from harness.kubernetes import KubernetesApi, pod


def _get(
    api: KubernetesApi, target: str, headers: dict[str, str] | None = None
) -> urllib3.BaseHTTPResponse:
    """GET `target` (path and query, as sent) over TLS verified against the test CA."""
    http = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_cert_data=api.ca_pem.decode())
    try:
        return http.request("GET", api.endpoint + target, headers=headers, retries=False)
    finally:
        http.clear()


def test_a_list_is_answered_in_pages_with_continue_tokens() -> None:
    with KubernetesApi(page=1) as api:
        api.add("pods", pod("a", ["repo:1"]), pod("b", ["repo:2"]))
        first = json.loads(_get(api, "/api/v1/pods?limit=500").data)
        token = first["metadata"]["continue"]
        second = json.loads(_get(api, f"/api/v1/pods?limit=500&continue={token}").data)
    assert [item["metadata"]["name"] for item in first["items"] + second["items"]] == ["a", "b"]
    assert second["metadata"] == {}
    assert [(r.path, r.query) for r in api.requests] == [
        ("/api/v1/pods", {"limit": "500"}),
        ("/api/v1/pods", {"limit": "500", "continue": token}),
    ]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"<html><body>Sign in</body></html>"),  # a proxy's page where a list was expected
        (502, b"\xff\xfe not UTF-8 \x80"),
        (403, "é".encode() * 400),
    ],
    ids=["an-html-page", "bytes-that-are-not-utf-8", "a-long-refusal"],
)
def test_a_configured_body_is_answered_as_it_is_with_its_status(status: int, body: bytes) -> None:
    with KubernetesApi(status=status, body=body) as api:
        api.add("pods", pod("web", ["repo:1"]))
        answer = _get(api, "/api/v1/pods?limit=500")
    assert (answer.status, answer.data) == (status, body)
    assert answer.headers["Content-Length"] == str(len(body))


def test_a_path_it_does_not_serve_is_not_found_and_recorded_as_it_was_sent() -> None:
    # The standard library's handler reduces `//api/v1/pods` to `/api/v1/pods`; the API server
    # does not serve `//api/v1/pods`.
    with KubernetesApi() as api:
        api.add("pods", pod("web", ["repo:1"]))
        doubled = _get(api, "//api/v1/pods?limit=500")
        unknown = _get(api, "/api/v1/secrets")
        served = _get(api, "/api/v1/pods")
    assert (doubled.status, unknown.status, served.status) == (404, 404, 200)
    assert json.loads(doubled.data)["reason"] == "NotFound"
    assert [r.path for r in api.requests] == ["//api/v1/pods", "/api/v1/secrets", "/api/v1/pods"]
    assert api.requests[0].query == {"limit": "500"}


def test_a_configured_body_is_answered_with_the_headers_given() -> None:
    moved = {"Location": "/api/v1/pods?limit=1"}
    with KubernetesApi(status=301, body=b"", headers=moved) as api:
        answer = _get(api, "/api/v1/pods?limit=500")
    assert (answer.status, answer.headers["Location"]) == (301, "/api/v1/pods?limit=1")
    assert len(api.requests) == 1  # retries=False: the redirect is not followed


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        (None, 200),
        ("application/json", 200),
        ("APPLICATION/JSON", 200),  # media types ignore case
        ("application/vnd.kubernetes.protobuf, application/json;q=0.9", 200),
        ("*/*", 200),
        ("application/yaml", 406),
        ("text/html", 406),
    ],
)
def test_json_is_answered_when_accepted_and_406_when_not(accept: str | None, status: int) -> None:
    with KubernetesApi() as api:
        headers = {} if accept is None else {"Accept": accept}
        answer = _get(api, "/api/v1/pods", headers)
    assert answer.status == status
    assert json.loads(answer.data)["kind"] == ("List" if status == 200 else "Status")
