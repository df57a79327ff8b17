"""A dataset folder on the local disk or on any fsspec filesystem (``s3://``, ``gs://``, ...).

:class:`Store` is the one place that knows the difference. Local folders (plain paths and
``file://`` URLs) write through a temporary file and ``os.replace``: a reader sees the old file
or the whole new one. Other filesystems write each file with one ``pipe_file`` call: object
stores (S3, GCS, Azure) make an object visible only once its upload is complete, so readers
never see a part; there is no rename, and a crash leaves at worst nothing. ``memory://`` is
per process (useful in tests, not with worker processes).

fsspec is optional (``pip install 'synthloc[cluster]'``); plain paths never import it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import IO, Any

from synthloc.atomic import write_bytes_atomic

CLUSTER_EXTRA = "pip install 'synthloc[cluster]'"
CLIENT_HINT = f"{CLUSTER_EXTRA} (or the fsspec backend of the protocol, e.g. s3fs, gcsfs)"


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names an fsspec filesystem (``protocol://...``)."""
    return "://" in str(location)


class StoreError(OSError):
    """A location cannot be opened (missing optional dependency, unknown protocol)."""


def _filesystem(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError as exc:
        raise StoreError(f"{url}: URLs need fsspec; install it with {CLIENT_HINT}") from exc
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise StoreError(f"{url}: cannot open this filesystem ({exc})") from exc
    return fs, str(root).rstrip("/")


class Store:
    """A folder by path or URL. Picklable (workers on other machines reopen the same place).

    ``local`` is the folder as a :class:`Path` when it is on this machine's disk, else None.
    Names passed to the methods are relative, with ``/`` separators.
    """

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.location = str(location)
        self.local: Path | None = None
        self._fs: Any = None
        self._root = ""
        if is_url(location):
            fs, root = _filesystem(str(location))
            if "file" in _protocols(fs):
                self.local = Path(root)
            else:
                self._fs, self._root = fs, root
        else:
            self.local = Path(location)

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    def path(self, name: str = "") -> str:
        """``name`` as the user would write it (for messages and manifests)."""
        if self.local is not None:
            return str(self.local / name) if name else str(self.local)
        protocol = _protocols(self._fs)[0]
        full = f"{self._root}/{name}" if name else self._root
        return f"{protocol}://{full.lstrip('/')}" if protocol != "memory" else f"memory://{full}"

    def _full(self, name: str) -> str:
        return f"{self._root}/{name}" if name else self._root

    # ------------------------------------------------------------------ queries

    def is_dir(self, name: str = "") -> bool:
        if self.local is not None:
            return (self.local / name).is_dir()
        return bool(self._fs.isdir(self._full(name)))

    def exists(self, name: str) -> bool:
        if self.local is not None:
            return (self.local / name).exists()
        return bool(self._fs.exists(self._full(name)))

    def size(self, name: str) -> int | None:
        """Size in bytes, or None when the file does not exist."""
        if self.local is not None:
            try:
                return (self.local / name).stat().st_size
            except FileNotFoundError:
                return None
        try:
            return int(self._fs.size(self._full(name)))
        except FileNotFoundError:
            return None

    def list(self, folder: str = "", suffix: str = "") -> list[str]:
        """Names (relative to the store) of the files directly in ``folder``, sorted."""
        prefix = f"{folder}/" if folder else ""
        if self.local is not None:
            base = self.local / folder
            if not base.is_dir():
                return []
            return sorted(
                prefix + p.name for p in base.iterdir() if p.is_file() and p.name.endswith(suffix)
            )
        try:
            entries = self._fs.ls(self._full(folder), detail=True)
        except FileNotFoundError:
            return []
        names = [
            prefix + str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
            for e in entries
            if e.get("type") == "file"
        ]
        return sorted(n for n in names if n.endswith(suffix))

    # ------------------------------------------------------------------ reading

    def open(self, name: str) -> IO[bytes]:
        """A binary file object for reading (seekable)."""
        if self.local is not None:
            return open(self.local / name, "rb")
        return self._fs.open(self._full(name), "rb")  # type: ignore[no-any-return]

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as handle:
            return handle.read()

    # ------------------------------------------------------------------ writing

    def makedirs(self, name: str = "") -> None:
        if self.local is not None:
            (self.local / name).mkdir(parents=True, exist_ok=True)
        else:
            self._fs.makedirs(self._full(name), exist_ok=True)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a whole file atomically (see the module docstring for what that means where)."""
        if self.local is not None:
            write_bytes_atomic(self.local / name, data)
            return
        parent = self._full(name).rsplit("/", 1)[0]
        self._fs.makedirs(parent, exist_ok=True)
        self._fs.pipe_file(self._full(name), data)

    def remove(self, name: str) -> None:
        if self.local is not None:
            (self.local / name).unlink(missing_ok=True)
        elif self._fs.exists(self._full(name)):
            self._fs.rm_file(self._full(name))

    def remove_tree(self, name: str) -> None:
        if self.local is not None:
            shutil.rmtree(self.local / name, ignore_errors=True)
        elif self._fs.exists(self._full(name)):
            self._fs.rm(self._full(name), recursive=True)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
