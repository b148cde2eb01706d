"""S3 objects: the text of a pin list, whatever its format.

An object whose text is neither UTF-8 nor UTF-16 with a byte order mark fails closed: bytes read as
something they are not could hide a digest."""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..model import HeldTag, Pin, digests_in
from .core import PinSourceError, error, held_in

ACTIONS = ("s3:GetObject",)
MAX_OBJECT_BYTES = 16 * 1024 * 1024  # a pin list larger than this is a mistake, not a pin list


def decode_text(data: bytes, source: str) -> str:
    """The text of a pin list: UTF-8 (with or without a byte order mark) or UTF-16 with one
    (what Windows PowerShell writes by default). Anything else raises PinSourceError naming
    `source`: bytes decoded as what they are not could hide a digest."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise PinSourceError(source, "UTF-32 text: save the pin list as UTF-8 (or UTF-16)")
    if data.startswith(codecs.BOM_UTF8):
        encoding, body = "UTF-8", data[len(codecs.BOM_UTF8) :]
    elif data.startswith(codecs.BOM_UTF16_LE):
        encoding, body = "UTF-16-LE", data[len(codecs.BOM_UTF16_LE) :]
    elif data.startswith(codecs.BOM_UTF16_BE):
        encoding, body = "UTF-16-BE", data[len(codecs.BOM_UTF16_BE) :]
    else:
        encoding, body = "UTF-8", data
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise PinSourceError(
            source,
            f"not {encoding} text (byte {exc.start} of the body): a pin list is UTF-8, or "
            "UTF-16 with a byte order mark",
        ) from None
    if "\x00" in text:
        # Valid UTF-8, but no text: UTF-16 without its byte order mark, most likely, where
        # every other byte is a NUL and no digest can be found.
        raise PinSourceError(
            source,
            f"NUL characters in {encoding} text (UTF-16 without a byte order mark?): a pin list "
            "is UTF-8, or UTF-16 with a byte order mark",
        )
    return text


class ObjectPins:
    """The text of S3 objects, whatever its format (YAML, JSON, .env, a plain list), decoded as
    `decode_text` says. An object that names no digest (nor an ECR image by tag) at all is an
    error, naming it. ECR image references by tag are held tags (`held`)."""

    name = "s3"

    def __init__(self, client: Any, uris: Sequence[str]) -> None:
        self._client = client
        self.uris = tuple(uris)
        self.held: list[HeldTag] = []

    def read(self) -> list[Pin]:
        pins: list[Pin] = []
        held: list[HeldTag] = []
        for uri in self.uris:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            try:
                response = self._client.get_object(Bucket=bucket, Key=key)
                size = int(response.get("ContentLength") or 0)
                if size > MAX_OBJECT_BYTES:
                    response["Body"].close()
                    raise PinSourceError(
                        uri, f"{size} bytes, more than the {MAX_OBJECT_BYTES} a pin list may have"
                    )
                data = response["Body"].read()
            except (ClientError, BotoCoreError) as exc:
                raise error(uri, "GetObject", exc) from exc
            text = decode_text(data, uri)
            found = digests_in(text)
            tags = held_in(text, uri)
            if not found and not tags:
                raise PinSourceError(uri, f"no sha256 digest in the object ({len(data)} bytes)")
            pins.extend(Pin(d, uri) for d in found)
            held.extend(tags)
        self.held = held
        return pins
