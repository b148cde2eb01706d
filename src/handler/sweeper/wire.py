"""botocore plumbing: the JSON protocol's requests and responses, as botocore makes them, faster.

botocore turns a JSON response into Python by walking the output shape for every value: a
method looked up by name per value, a tagged-union check per structure. A DescribeImages page
of 1,000 image details is some 10,000 such steps, and at registry scale (200,000 image details
in a run) that walk was a tenth of the sweep's CPU (bench.registry_bench). Here each output
shape is compiled once into nested functions that do only what the walk would do for it:

- a structure: each member whose wire value is not null, under its serialized name, converted;
- a list: each item converted (null items kept as None, as botocore keeps them);
- a map: keys and values converted;
- a timestamp: the parser's timestamp parser; a blob: the parser's blob parser;
- anything else: the value as decoded from JSON.

A shape the compiler does not fully know (a document type, a tagged union, a recursive shape,
an event stream) is left to botocore's own walk, whole. Errors are parsed by botocore as before.

Requests are the same story the other way round: botocore's serializer walks the input shape
for every parameter, some 250 us for the 100 image ids of a BatchGetImage, BatchDeleteImage or
DescribeImages call, thousands of calls a run. `CompiledJSONSerializer` compiles each input
shape made only of structures, lists, maps and JSON scalars (a member under its serialized
name, an unknown member a KeyError as in botocore); a shape with a timestamp, a blob, a float
or a document is serialized by botocore as before.

And the User-Agent header, which botocore assembles twice per request, is kept per set of
features (`remembered_user_agent`).

`tests/unit/test_wire.py` checks, for every output and input shape of the services the sweeper
calls over the JSON protocol, on generated responses and parameters, that both give the same,
and that the remembered header is the one botocore builds.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from typing import Any

from botocore.context import get_context
from botocore.parsers import JSONParser, ResponseParser, ResponseParserFactory
from botocore.serialize import JSONSerializer
from botocore.useragent import UserAgentString

__all__ = [
    "CompiledJSONParser",
    "CompiledJSONSerializer",
    "NotCompiled",
    "ParserFactory",
    "compile_input_shape",
    "compile_shape",
    "compiled_serializer",
    "remembered_user_agent",
]

Convert = Callable[[Any], Any]


class NotCompiled(Exception):
    """The shape needs botocore's own walk."""


def compile_shape(shape: Any, timestamp: Convert, blob: Convert) -> Convert | None:
    """A function that parses a decoded JSON value of `shape` (None: no conversion needed).

    Raises `NotCompiled` for a shape this module leaves to botocore.
    """
    converter: Convert | None = _compile(shape, timestamp, blob, frozenset())
    return converter


def _compile(shape: Any, timestamp: Convert, blob: Convert, within: frozenset[str]) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if shape.name in within or shape.is_document_type or shape.is_tagged_union:
            raise NotCompiled(shape.name)
        inner = within | {shape.name}
        members = tuple(
            (name, member.serialization.get("name", name), _compile(member, timestamp, blob, inner))
            for name, member in shape.members.items()
        )
        return _structure(members)
    if kind == "list":
        return _list(_compile(shape.member, timestamp, blob, within))
    if kind == "map":
        return _map(
            _compile(shape.key, timestamp, blob, within),
            _compile(shape.value, timestamp, blob, within),
        )
    if kind == "timestamp":
        return timestamp
    if kind == "blob":
        return blob
    return None


def _structure(members: tuple[tuple[str, str, Convert | None], ...]) -> Convert:
    def structure(value: Any) -> Any:
        if value is None:
            return None
        parsed = {}
        get = value.get
        for name, key, convert in members:
            raw = get(key)
            if raw is not None:
                parsed[name] = raw if convert is None else convert(raw)
        return parsed

    return structure


def _list(convert: Convert | None) -> Convert:
    if convert is None:
        return list
    return lambda node: [None if item is None else convert(item) for item in node]


def _map(key: Convert | None, value: Convert | None) -> Convert:
    def convert(node: Any) -> Any:
        return {
            (k if key is None else key(k)): (v if value is None else value(v))
            for k, v in node.items()
        }

    return convert


_compiled: dict[tuple[Any, ...], tuple[Any, Convert | None, bool]] = {}
_compiled_lock = threading.Lock()


def _cached(
    way: str, shape: Any, compile: Callable[[], Convert | None], *leaves: Any
) -> tuple[bool, Any]:
    """(compiled?, converter) for `shape` one `way` ("parse", "serialize"): `compile()` once per
    shape (and leaf parsers), a NotCompiled remembered as well."""
    key = (way, id(shape), *leaves)
    found = _compiled.get(key)
    if found is not None and found[0] is shape:  # the shape itself is kept: its id is not reused
        return found[2], found[1]
    try:
        converter, ok = compile(), True
    except NotCompiled:
        converter, ok = None, False
    with _compiled_lock:
        _compiled[key] = (shape, converter, ok)
    return ok, converter


def _converter(shape: Any, timestamp: Convert, blob: Convert) -> tuple[bool, Convert | None]:
    """(compiled?, converter) parsing `shape`, compiled once per shape and pair of leaf parsers."""
    return _cached("parse", shape, lambda: compile_shape(shape, timestamp, blob), timestamp, blob)


class CompiledJSONParser(JSONParser):
    """botocore's JSON protocol parser, with the body walked by compiled shapes."""

    # botocore's own attributes and methods (not in its type stubs).
    _timestamp_parser: Convert
    _blob_parser: Convert
    _parse_body_as_json: Callable[[bytes], Any]

    def __init__(self, timestamp_parser: Convert | None = None, blob_parser: Convert | None = None):
        # botocore's default blob parser is a bound method, a new one per parser (and a parser
        # is made per response): the same decoding as a plain function keeps the cache warm.
        super().__init__(timestamp_parser, blob_parser or base64.b64decode)

    def _handle_json_body(self, raw_body: bytes, shape: Any) -> Any:
        ok, convert = _converter(shape, self._timestamp_parser, self._blob_parser)
        if not ok:
            return super()._handle_json_body(raw_body, shape)  # type: ignore[misc]
        parsed = self._parse_body_as_json(raw_body)
        return parsed if convert is None else convert(parsed)


class ParserFactory(ResponseParserFactory):
    """botocore's parser factory, giving `CompiledJSONParser` for the JSON protocol."""

    _defaults: dict[str, Any]  # botocore's own (not in its type stubs)

    def create_parser(self, protocol_name: str) -> ResponseParser:
        if protocol_name == "json":
            return CompiledJSONParser(**self._defaults)
        parser: ResponseParser = super().create_parser(protocol_name)
        return parser


# --- requests --------------------------------------------------------------------------------

# Shapes whose JSON value is the Python value itself when botocore serializes it.
_PLAIN_INPUT = frozenset({"string", "character", "integer", "long", "boolean"})


def compile_input_shape(shape: Any) -> Convert | None:
    """A function that serializes parameters of `shape` as botocore's JSON serializer does
    (None: the value is its own serialization). Raises `NotCompiled` for anything else."""
    converter: Convert | None = _compile_input(shape, frozenset())
    return converter


def _compile_input(shape: Any, within: frozenset[str]) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if shape.name in within or shape.is_document_type or shape.is_tagged_union:
            raise NotCompiled(shape.name)
        inner = within | {shape.name}
        members = {
            name: (member.serialization.get("name", name), _compile_input(member, inner))
            for name, member in shape.members.items()
        }
        return _input_structure(members)
    if kind == "list":
        return _list_items(_compile_input(shape.member, within))
    if kind == "map":
        value = _compile_input(shape.value, within)
        if value is None:
            return dict
        return lambda node: {k: value(v) for k, v in node.items()}
    if kind in _PLAIN_INPUT:
        return None
    raise NotCompiled(f"{shape.name} ({kind})")


def _input_structure(members: dict[str, tuple[str, Convert | None]]) -> Convert:
    def structure(value: Any) -> Any:
        serialized = {}
        for name, raw in value.items():
            key, convert = members[name]  # KeyError on an unknown member, as botocore's
            serialized[key] = raw if convert is None else convert(raw)
        return serialized

    return structure


def _list_items(convert: Convert | None) -> Convert:
    if convert is None:
        return list
    return lambda node: [convert(item) for item in node]


class CompiledJSONSerializer(JSONSerializer):
    """botocore's JSON protocol serializer, with the parameters walked by compiled shapes."""

    def _serialize(self, serialized: Any, value: Any, shape: Any, key: Any = None) -> None:
        if key is None:  # the whole input (botocore recurses with a key)
            ok, convert = _cached("serialize", shape, lambda: compile_input_shape(shape))
            if ok:
                serialized.update(value if convert is None else convert(value))
                return
        super()._serialize(serialized, value, shape, key)  # type: ignore[misc]


def compiled_serializer(client: Any) -> None:
    """Give `client` the compiled serializer, if it has botocore's plain JSON one.

    botocore keeps a client's serializer in a private attribute; a client whose serializer is
    anything else (a validating one, another protocol, another botocore) keeps its own.
    """
    current: Any = getattr(client, "_serializer", None)
    if type(current) is JSONSerializer:
        precision = current._timestamp_precision  # type: ignore[attr-defined]
        client._serializer = CompiledJSONSerializer(precision)


# --- the User-Agent header -------------------------------------------------------------------


def remembered_user_agent(client: Any) -> None:
    """Build `client`'s User-Agent header once per set of request features, not per request.

    botocore assembles the header from its components twice for every request (when the
    request is made, and again once it is created, to add the features the request used: a
    paginator, the retry mode), some 100 us each time. What it assembles depends, besides the
    client's fixed settings, only on the features of the request and of the client (both sets
    grow as botocore goes), so the string is kept per union of the two. A
    client whose header botocore builds some other way keeps its own.
    """
    creator: Any = getattr(client, "_user_agent_creator", None)
    if type(creator) is not UserAgentString:
        return
    state: Any = creator  # botocore's own attributes (not in its type stubs)
    build = creator.to_string
    built: dict[frozenset[str], str] = {}

    def to_string() -> str:
        # The features of the request and of the client (botocore adds to both as it goes).
        context = get_context()
        features = frozenset(state._client_features or ()).union(
            context.features if context is not None else ()
        )
        header = built.get(features)
        if header is None:
            header = built[features] = build()
        return header

    # The instance attribute takes the method's place, also for the handler botocore
    # registered as a bound method of this same object.
    state.to_string = to_string
