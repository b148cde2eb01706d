"""The store's objects in a local directory (the command's default, and the demo's)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..ports import StoreError
from .objects import ObjectStore


class DirectoryObjects:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StoreError(f"key outside the store: {key!r}")
        return path

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"read {key}: {exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside, then renamed: a reader never sees half an object.
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except OSError as exc:
            raise StoreError(f"write {key}: {exc}") from exc

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        try:
            return sorted(
                path.relative_to(self.root).as_posix()
                for path in base.rglob("*")
                if path.is_file() and not path.name.startswith(".partial-")
            )
        except OSError as exc:
            raise StoreError(f"list {prefix}: {exc}") from exc


class DirectoryStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        super().__init__(DirectoryObjects(root))
        self.root = root
