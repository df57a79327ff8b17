"""Tar shards of synthetic samples: writing, streaming, random access and the manifest.

Layout of a dataset folder::

    manifest.json          schema_version, seed, count, config, counts, shards (see below)
    shard-000000.tar       samples 0 .. shard_size-1
    shard-000001.tar       ...

Each shard is a plain (uncompressed) tar file, so it can be streamed front to back (e.g. by
webdataset-style loaders) or read at random by seeking to a member. Per sample it holds two
members that share a key (the sample index, zero-padded to 9 digits):

* ``<key>.jpg`` or ``<key>.png``: the RGB image. JPEG (quality 95, no chroma subsampling) is
  the default: about 4x smaller than PNG and visually lossless for text; PNG is exact.
* ``<key>.json``: ``name``, ``seed``, ``index``, ``width``, ``height``, ``words``,
  ``word_quads`` ([N][4][2]), ``char_quads`` ([M][4][2]), ``ignore`` ([N]) and whatever extra
  fields the writer was given (the runner adds ``background`` and ``failed_backgrounds``).

Quads are pixel coordinates of the stored image, clockwise from the top-left corner. Floats are
written with the shortest decimal that reads back to the same float32, so a round trip through
a shard is exact for the geometry (and for the pixels with PNG).

Tar headers carry no timestamps or owners (mtime 0, uid/gid 0), so the same samples always give
the same shard bytes.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from synthloc.atomic import write_bytes_atomic, write_text_atomic
from synthloc.data.sample import Sample
from synthloc.data.store import Store

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
IMAGE_FORMATS = ("jpg", "png")
JPEG_QUALITY = 95
PNG_COMPRESSION = 3  # zlib level: most of the size gain of 9 at a fraction of the time


class ShardError(ValueError):
    """A shard or manifest cannot be read; the message names the file and the problem."""


def shard_name(shard_index: int) -> str:
    """File name of shard ``shard_index`` (``shard-000000.tar``)."""
    return f"shard-{shard_index:06d}.tar"


def sample_key(index: int) -> str:
    """Tar member key of sample ``index`` (zero-padded so members sort in index order)."""
    return f"{index:09d}"


# --------------------------------------------------------------------------- encoding


def encode_image(image: np.ndarray, image_format: str = "jpg") -> bytes:
    """Encode an RGB uint8 [H, W, 3] image as JPEG (quality 95, 4:4:4) or PNG bytes."""
    import cv2

    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    if image_format == "jpg":
        params = [
            cv2.IMWRITE_JPEG_QUALITY,
            JPEG_QUALITY,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        ]
        ok, buf = cv2.imencode(".jpg", bgr, params)
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise ValueError(f"could not encode a {image.shape} image as {image_format}")
    return bytes(buf.tobytes())


def decode_image(data: bytes, where: str = "image") -> np.ndarray:
    """Decode JPEG/PNG bytes to RGB uint8 [H, W, 3]; ``where`` names the source in errors."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ShardError(f"{where}: not a decodable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _float32_list(values: np.ndarray) -> list[Any]:
    """Nested lists of the shortest decimals that read back to the same float32 values."""
    arr = np.asarray(values, dtype=np.float32)
    if arr.size == 0:
        return cast("list[Any]", np.zeros(arr.shape).tolist())
    short = np.array([float(str(v)) for v in arr.ravel()], dtype=np.float64).reshape(arr.shape)
    # Reading a decimal as a double and then rounding to float32 could, in principle, land on a
    # neighbour; fall back to the exact double expansion if it ever does.
    if not np.array_equal(short.astype(np.float32), arr, equal_nan=True):
        short = arr.astype(np.float64)
    return cast("list[Any]", short.tolist())


def sample_record(sample: Sample, **extra: Any) -> dict[str, Any]:
    """The JSON-serialisable ground truth of ``sample`` (everything but the pixels)."""
    height, width = sample.image.shape[:2]
    record: dict[str, Any] = {
        "name": sample.name,
        "width": int(width),
        "height": int(height),
        "words": list(sample.words),
        "word_quads": _float32_list(sample.word_quads),
        "char_quads": _float32_list(sample.char_quads),
        "ignore": [bool(v) for v in sample.ignore],
    }
    record.update(extra)
    return record


def sample_from_record(record: dict[str, Any], image: np.ndarray, where: str) -> Sample:
    """Rebuild a :class:`Sample` from a JSON record and its decoded image."""
    try:
        return Sample(
            image=image,
            word_quads=np.asarray(record["word_quads"], dtype=np.float32).reshape(-1, 4, 2),
            words=[str(w) for w in record["words"]],
            char_quads=np.asarray(record["char_quads"], dtype=np.float32).reshape(-1, 4, 2),
            ignore=np.asarray(record["ignore"], dtype=bool).reshape(-1),
            name=str(record["name"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ShardError(f"{where}: bad ground-truth record ({exc})") from exc


@dataclass
class EncodedSample:
    """A sample ready to go into a shard: member key, image bytes and JSON bytes."""

    key: str
    image_ext: str  # "jpg" or "png"
    image_bytes: bytes
    json_bytes: bytes


def encode_sample(
    sample: Sample, key: str, image_format: str = "jpg", **extra: Any
) -> EncodedSample:
    """Encode ``sample`` for :meth:`ShardWriter.add` (done in worker processes by the runner)."""
    record = sample_record(sample, **extra)
    json_bytes = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return EncodedSample(key, image_format, encode_image(sample.image, image_format), json_bytes)


# --------------------------------------------------------------------------- writing


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0  # reproducible bytes: no timestamps or owners
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class ShardWriter:
    """Write one tar shard atomically.

    Members are collected in memory (a shard is a few MB); :meth:`close` writes the whole tar
    to a temporary file in the same folder and renames it to ``path`` (``os.replace``, mode
    as a plain ``open`` would give it), so a reader never sees a partial shard. Leaving the
    ``with`` block with an exception writes nothing and leaves any previous ``path`` untouched;
    a failed write (e.g. a full disk) removes its temporary file before the error propagates.

    >>> with ShardWriter(folder / shard_name(0)) as writer:   # doctest: +SKIP
    ...     writer.write(sample, key=sample_key(0), image_format="png")
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._members: list[EncodedSample] = []
        self._closed = False

    @property
    def keys(self) -> list[str]:
        """Keys written so far, in order."""
        return [m.key for m in self._members]

    def add(self, encoded: EncodedSample) -> None:
        """Append an already-encoded sample (two members: image then JSON)."""
        if self._closed:
            raise ValueError(f"{self.path}: shard writer is closed")
        if "." in encoded.key or "/" in encoded.key:
            raise ValueError(f"sample key {encoded.key!r} must not contain '.' or '/'")
        self._members.append(encoded)

    def write(self, sample: Sample, key: str, image_format: str = "jpg", **extra: Any) -> None:
        """Encode and append ``sample`` under ``key``; ``extra`` goes into its JSON."""
        self.add(encode_sample(sample, key, image_format, **extra))

    def close(self) -> None:
        """Write the tar and move it into place."""
        if self._closed:
            return
        self._closed = True
        write_bytes_atomic(self.path, shard_bytes(self._members))

    def abort(self) -> None:
        """Discard what was added (``path`` is left as it was)."""
        self._closed = True
        self._members = []

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def shard_bytes(encoded: Sequence[EncodedSample]) -> bytes:
    """The bytes of a shard holding ``encoded`` in order (reproducible: no times, no owners)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for item in encoded:
            if "." in item.key or "/" in item.key:
                raise ValueError(f"sample key {item.key!r} must not contain '.' or '/'")
            for ext, data in ((item.image_ext, item.image_bytes), ("json", item.json_bytes)):
                tar.addfile(_tar_info(f"{item.key}.{ext}", len(data)), io.BytesIO(data))
    return buffer.getvalue()


def write_shard(path: str | os.PathLike[str], encoded: Sequence[EncodedSample]) -> None:
    """Write a whole shard of encoded samples atomically."""
    write_bytes_atomic(path, shard_bytes(encoded))


# --------------------------------------------------------------------------- manifest


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` via a temporary file and ``os.replace``."""
    write_text_atomic(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def write_manifest(folder: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` atomically; ``schema_version`` is filled in if missing."""
    data = {"schema_version": SCHEMA_VERSION, **manifest}
    write_json_atomic(Path(folder) / MANIFEST_NAME, data)


def read_manifest(folder: str | os.PathLike[str] | Store) -> dict[str, Any]:
    """Read and check ``<folder>/manifest.json`` (a path, a URL or a :class:`Store`).

    Keys: ``schema_version`` (int), ``seed``, ``count``, ``config`` (the SynthConfig as a dict),
    ``format``, ``counts`` (``written``, ``failed_backgrounds``, ``empty_images``, ``words``),
    ``shards`` (list of ``{"index", "file", "first_sample", "samples", "bytes", "sha256",
    ...}``), ``failures`` (shards that could not be made), ``complete``.
    Raises :class:`ShardError` naming the file if it is missing, not JSON, or of a newer
    schema than this code understands.
    """
    store = folder if isinstance(folder, Store) else Store(folder)
    path = store.path(MANIFEST_NAME)
    try:
        text = store.read_bytes(MANIFEST_NAME).decode("utf-8")
    except FileNotFoundError as exc:
        raise ShardError(f"{path}: no manifest (not a synthloc dataset folder?)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ShardError(f"{path}: unreadable manifest ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShardError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("schema_version"), int):
        raise ShardError(f"{path}: missing schema_version")
    if data["schema_version"] > SCHEMA_VERSION:
        raise ShardError(
            f"{path}: schema version {data['schema_version']} is newer than this synthloc "
            f"understands ({SCHEMA_VERSION}); upgrade synthloc"
        )
    return data


# --------------------------------------------------------------------------- reading


def _split_member(name: str) -> tuple[str, str]:
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")
    return key, ext.lower()


def iter_shard(path: str | os.PathLike[str]) -> Iterator[Sample]:
    """Stream the samples of one shard in stored order (one pass, no seeking).

    Raises :class:`ShardError` naming the shard for a truncated tar, a sample missing its image
    or JSON, or an undecodable member.
    """
    shard = Path(path)
    pending: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(shard, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, ext = _split_member(member.name)
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                parts = pending.setdefault(key, {})
                parts[ext] = handle.read()
                image_ext = next((e for e in IMAGE_FORMATS if e in parts), None)
                if "json" in parts and image_ext is not None:
                    del pending[key]
                    yield _decode_parts(parts["json"], parts[image_ext], f"{shard}:{key}")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ShardError(f"{shard}: unreadable or truncated shard ({exc})") from exc
    if pending:
        raise ShardError(f"{shard}: incomplete samples {sorted(pending)[:5]}")


def _decode_parts(json_bytes: bytes, image_bytes: bytes, where: str) -> Sample:
    try:
        record = json.loads(json_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"{where}: bad JSON ({exc})") from exc
    return sample_from_record(record, decode_image(image_bytes, where), where)


def read_shard_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The JSON records of one shard, in order, without decoding images."""
    shard = Path(path)
    records = []
    try:
        with tarfile.open(shard, mode="r") as tar:
            for member in tar.getmembers():
                if member.isfile() and _split_member(member.name)[1] == "json":
                    handle = tar.extractfile(member)
                    if handle is not None:
                        records.append(json.loads(handle.read().decode("utf-8")))
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ShardError(f"{shard}: unreadable or truncated shard ({exc})") from exc
    return records


@dataclass(frozen=True)
class _MemberSpan:
    offset: int  # byte offset of the member's data in the tar file
    size: int


def index_shard(
    path: str | os.PathLike[str], store: Store | None = None
) -> list[tuple[str, str, _MemberSpan, _MemberSpan]]:
    """Per sample: (key, image extension, image span, JSON span), in stored order.

    Only tar headers are read (the reader seeks over the data). With ``store``, ``path`` is a
    name inside it.
    """
    where = store.path(str(path)) if store is not None else str(path)
    by_key: dict[str, dict[str, _MemberSpan]] = {}
    order: list[str] = []
    try:
        with (
            store.open(str(path)) if store is not None else open(path, "rb") as handle,
            tarfile.open(fileobj=handle, mode="r") as tar,
        ):
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                key, ext = _split_member(member.name)
                if key not in by_key:
                    by_key[key] = {}
                    order.append(key)
                by_key[key][ext] = _MemberSpan(member.offset_data, member.size)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ShardError(f"{where}: unreadable or truncated shard ({exc})") from exc
    entries = []
    for key in order:
        parts = by_key[key]
        image_ext = next((e for e in IMAGE_FORMATS if e in parts), None)
        if image_ext is None or "json" not in parts:
            raise ShardError(f"{where}: sample {key} lacks its image or JSON member")
        entries.append((key, image_ext, parts[image_ext], parts["json"]))
    return entries


class ShardDataset:
    """Random access to the samples of a shard folder (``len``, ``dataset[i]``).

    folder: a path, or an fsspec URL (``s3://bucket/synth``, ``file:///data/synth``,
    ``memory://ds``; needs ``synthloc[cluster]``). The sample count per shard comes from the
    manifest (or, without one, from the tar headers); a shard's member offsets are indexed from
    its tar headers the first time one of its samples is asked for, and each access then reads
    just the two members' bytes. No file handle stays open, so the object can be pickled into
    DataLoader worker processes.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.store = Store(folder)
        self.folder = self.store.local if self.store.local is not None else str(folder)
        if not self.store.is_dir():
            raise ShardError(f"{self.store.path()}: not a folder")
        self.shard_files: list[str] = []
        counts: list[int] = []
        if self.store.exists(MANIFEST_NAME):
            manifest = read_manifest(self.store)
            where = self.store.path(MANIFEST_NAME)
            if manifest.get("format", "shards") != "shards":
                raise ShardError(f"{where}: format is {manifest['format']!r}, not shards")
            for entry in sorted(manifest.get("shards", []), key=lambda e: e["index"]):
                if not self.store.exists(entry["file"]):
                    raise ShardError(
                        f"{self.store.path(entry['file'])}: listed in the manifest but missing"
                    )
                self.shard_files.append(entry["file"])
                counts.append(int(entry["samples"]))
        else:
            self.shard_files = [n for n in self.store.list(suffix=".tar") if n.startswith("shard-")]
            counts = [len(index_shard(n, self.store)) for n in self.shard_files]
        if not self.shard_files:
            raise ShardError(f"{self.store.path()}: no shards")
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._index: dict[int, list[tuple[str, str, _MemberSpan, _MemberSpan]]] = {}

    @property
    def shard_paths(self) -> list[str]:
        """Each shard as a path or URL."""
        return [self.store.path(n) for n in self.shard_files]

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, i: int) -> tuple[int, int]:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"sample {i} out of range for {n} samples")
        shard = int(np.searchsorted(self._starts, i, side="right") - 1)
        return shard, i - int(self._starts[shard])

    def _read(self, shard: int, spans: Sequence[_MemberSpan]) -> list[bytes]:
        with self.store.open(self.shard_files[shard]) as handle:
            parts = []
            for span in spans:
                handle.seek(span.offset)
                parts.append(handle.read(span.size))
            return parts

    def record(self, i: int) -> dict[str, Any]:
        """The JSON record of sample ``i`` (ground truth and metadata, no image decoding)."""
        shard, within = self._locate(i)
        _key, _, _, json_span = self._entry(shard, within)
        (json_bytes,) = self._read(shard, [json_span])
        return json.loads(json_bytes.decode("utf-8"))  # type: ignore[no-any-return]

    def _entry(self, shard: int, within: int) -> tuple[str, str, _MemberSpan, _MemberSpan]:
        name = self.shard_files[shard]
        if shard not in self._index:
            self._index[shard] = index_shard(name, self.store)
        entries = self._index[shard]
        if within >= len(entries):
            raise ShardError(
                f"{self.store.path(name)}: holds {len(entries)} samples, the manifest says more"
            )
        return entries[within]

    def __getitem__(self, i: int) -> Sample:
        shard, within = self._locate(i)
        key, _, image_span, json_span = self._entry(shard, within)
        image_bytes, json_bytes = self._read(shard, [image_span, json_span])
        where = f"{self.store.path(self.shard_files[shard])}:{key}"
        return _decode_parts(json_bytes, image_bytes, where)
