"""The manifests a client reads: each BatchGetImage call's digests, as the client sends them.

    reads = ManifestReads(registry.client)
    run(...)
    assert len(reads.calls) == 2 and sorted(reads.digests) == sorted(expected)

Registered on botocore's `before-parameter-build` event of the client itself, so only that
client's calls are seen, whatever the harness answers or injects afterwards.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ManifestReads"]


class ManifestReads:
    """The digests each BatchGetImage call of a client asked for, in order."""

    def __init__(self, client: Any) -> None:
        self.calls: list[list[str]] = []
        client.meta.events.register("before-parameter-build.ecr.BatchGetImage", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append([image_id["imageDigest"] for image_id in params["imageIds"]])

    @property
    def digests(self) -> list[str]:
        """Every digest read, in the order read, once per read."""
        return [digest for call in self.calls for digest in call]
