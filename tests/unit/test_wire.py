"""The compiled JSON parser and serializer give what botocore's own give, for every shape.

Generated wire bodies (nulls, missing members, empty lists, timestamps as epoch numbers and as
strings, base64 blobs, maps) for every output shape of every JSON-protocol service the sweeper
calls are parsed by both; the results must be equal.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.model import OperationModel
from botocore.parsers import JSONParser
from botocore.serialize import JSONSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from sweeper.registry import _timestamp, client_config, make_client
from sweeper.wire import (
    CompiledJSONParser,
    CompiledJSONSerializer,
    NotCompiled,
    ParserFactory,
    compile_input_shape,
    compile_shape,
    remembered_user_agent,
)

SERVICES = ("ecr", "ecs", "ssm")  # the JSON-protocol services: the registry, two pin sources
USED = ("DescribeRepositories", "DescribeImages", "BatchGetImage", "BatchDeleteImage")
_session = botocore.session.get_session()


def _operations(service: str) -> list[OperationModel]:
    model = _session.get_service_model(service)
    assert model.metadata["protocol"] == "json"
    return [model.operation_model(name) for name in model.operation_names]


@dataclass(frozen=True)
class _Form:
    """How values of a shape look on one side of botocore."""

    serialized_names: bool  # members under their serialized names (the wire), or as boto3 names
    nulls: bool  # a member or a list item may be null (services send them; callers do not)
    timestamp: st.SearchStrategy[Any]
    blob: st.SearchStrategy[Any]


# What a service could send (JSON as botocore reads it) ...
WIRE = _Form(
    serialized_names=True,
    nulls=True,
    timestamp=st.integers(0, 2**31)
    | st.floats(0, 2e9, allow_nan=False)
    | st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.250+02:00"]),
    blob=st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode()),
)
# ... and what a caller could pass (as boto3 takes parameters, unvalidated).
PARAMETERS = _Form(
    serialized_names=False,
    nulls=False,
    timestamp=st.datetimes(timezones=st.just(UTC)) | st.integers(0, 2**31),
    blob=st.binary(max_size=8),
)


def _values(shape: Any, form: _Form, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of `shape` in `form`, as botocore's model reads it."""
    if depth > 6:
        return st.none()

    def inner(of: Any) -> st.SearchStrategy[Any]:
        values = _values(of, form, depth + 1)
        return st.none() | values if form.nulls else values

    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3))
        members = {
            (m.serialization.get("name", name) if form.serialized_names else name): inner(m)
            for name, m in shape.members.items()
        }
        if shape.is_tagged_union:  # exactly one member set
            one = (lambda v: v is not None) if form.nulls else (lambda v: True)
            return st.sampled_from(sorted(members)).flatmap(
                lambda key: members[key].filter(one).map(lambda v: {key: v})
            )
        return st.fixed_dictionaries({}, optional=members)
    if kind == "list":
        return st.lists(inner(shape.member), max_size=3)
    if kind == "map":
        values = _values(shape.value, form, depth + 1)
        return st.dictionaries(st.text(max_size=4), values, max_size=3)
    if kind == "timestamp":
        return form.timestamp
    if kind == "blob":
        return form.blob
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "long"):
        return st.integers(-(2**40), 2**40)
    if kind in ("float", "double"):
        return st.floats(allow_nan=False, allow_infinity=False)
    return st.text(max_size=6)


def _response(body: Any) -> dict[str, Any]:
    return {
        "status_code": 200,
        "headers": {"x-amzn-requestid": "r-1"},
        "body": json.dumps(body).encode(),
        "context": {"operation_name": "x"},
    }


@pytest.mark.parametrize("service", SERVICES)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_compiled_and_botocore_parsers_agree_on_every_output_shape(
    service: str, data: st.DataObject
) -> None:
    shape: Any = _draw_operation(data, service, "output_shape").output_shape
    body = data.draw(_values(shape, WIRE), label="body")
    expected = JSONParser(timestamp_parser=_timestamp).parse(_response(body), shape)
    got = CompiledJSONParser(timestamp_parser=_timestamp).parse(_response(body), shape)
    assert got == expected


@pytest.mark.parametrize("service", SERVICES)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_compiled_and_botocore_serializers_make_the_same_request(
    service: str, data: st.DataObject
) -> None:
    operation = _draw_operation(data, service, "input_shape")
    params = data.draw(_values(operation.input_shape, PARAMETERS), label="parameters")
    # Parameters botocore cannot serialize (a null structure, deep down) must fail alike.
    expected = _outcome(JSONSerializer().serialize_to_request, params, operation)
    got = _outcome(CompiledJSONSerializer().serialize_to_request, params, operation)
    assert got == expected


def _draw_operation(data: st.DataObject, service: str, shape: str) -> OperationModel:
    """Any operation of `service` that has a `shape` ("input_shape" or "output_shape")."""
    candidates = [o for o in _operations(service) if getattr(o, shape) is not None]
    return data.draw(st.sampled_from(candidates), label="operation")


def _outcome(function: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "made", function(*args)
    except Exception as exc:
        return "raised", type(exc)


@pytest.mark.parametrize("service", SERVICES)
def test_every_output_shape_compiles_or_is_left_to_botocore_as_a_whole(service: str) -> None:
    for operation in _operations(service):
        if operation.output_shape is None:
            continue
        output: Any = operation.output_shape
        try:
            compile_shape(output, _timestamp, base64.b64decode)
        except NotCompiled:
            continue
    ecr = _session.get_service_model("ecr")
    for name in USED:  # the calls a sweep makes by the thousand all take the compiled path
        output = ecr.operation_model(name).output_shape
        assert compile_shape(output, _timestamp, base64.b64decode)
        compile_input_shape(ecr.operation_model(name).input_shape)  # raises if not compiled


def test_the_sweepers_client_parses_json_with_compiled_shapes() -> None:
    client = make_client("eu-west-1")
    factory = client._endpoint._response_parser_factory  # type: ignore[attr-defined]
    assert isinstance(factory, ParserFactory)
    assert isinstance(factory.create_parser("json"), CompiledJSONParser)
    assert not isinstance(factory.create_parser("rest-json"), CompiledJSONParser)
    assert isinstance(client._serializer, CompiledJSONSerializer)  # type: ignore[attr-defined]


def _headers_sent(client: Any) -> list[str]:
    """The User-Agent of each request `client` sends (answered here, empty, without a network)."""
    sent: list[str] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        sent.append(request.headers["User-Agent"])
        body = b'{"imageDetails": [], "repositories": []}'
        response = AWSResponse(request.url, 200, {"x-amzn-requestid": "r"}, None)  # type: ignore[arg-type]
        response._content = body  # type: ignore[attr-defined]
        return response

    client.meta.events.register("before-send.ecr", answer)
    client.describe_images(repositoryName="web")
    for _ in client.get_paginator("describe_images").paginate(repositoryName="web"):
        pass
    client.describe_repositories()
    return sent


def test_the_remembered_user_agent_is_the_header_botocore_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # A session each: the first request of each resolves its credentials (a feature of its own).
    plain = boto3.session.Session(region_name="eu-west-1").client("ecr", config=client_config())
    remembered = boto3.session.Session(region_name="eu-west-1").client(
        "ecr", config=client_config()
    )
    remembered_user_agent(remembered)
    expected = _headers_sent(plain)
    assert len(set(expected)) > 1  # the paginated calls carry a feature the others do not
    assert _headers_sent(remembered) == expected
