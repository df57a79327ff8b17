"""The manifest of a synthesis run: what was asked (identity), what was made, what failed.

``manifest.json`` is written once, atomically, when a run ends (see
:mod:`synthloc.data.shards` for its keys). While a run is going, ``progress/`` holds the
resume log: ``run.json`` (the identity) and one ``shard-NNNNNN.json`` per shard written, with
its counts and the size and SHA-256 of its file. A rerun skips a shard only if its record is
there and its file still has that size and checksum (the sink's ``verify``); a truncated or
overwritten shard is rendered again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from synthloc.data.store import Store
from synthloc.synth.errors import SynthError, printable
from synthloc.synth.sourcing import BackgroundSource

PROGRESS_DIR = "progress"
RUN_RECORD = f"{PROGRESS_DIR}/run.json"
MAX_RECORDED_ERRORS = 5


def sample_name(seed: int, index: int) -> str:
    """Name of sample ``index`` of ``seed``: ``"<seed>_<index, 8 digits>"``."""
    return f"{seed}_{index:08d}"


@dataclass
class ShardStats:
    """Counts for one shard (stored in ``progress/`` and in the manifest)."""

    index: int
    first_sample: int
    samples: int
    file: str | None = None
    words: int = 0
    empty_images: int = 0
    failed_backgrounds: int = 0
    fallback_backgrounds: int = 0
    render_errors: int = 0
    bad_backgrounds: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    with_depth: int = 0
    with_seg: int = 0
    failed_maps: int = 0
    bad_maps: dict[str, str] = field(default_factory=dict)
    bytes: int | None = None  # size of ``file`` (None: several files, e.g. icdar)
    sha256: str | None = None  # of ``file``

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardStats:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class ShardFailure:
    """A shard that could not be made after ``attempts`` tries (in the manifest's failures)."""

    index: int
    file: str | None
    first_sample: int
    samples: int
    attempts: int
    error: str


@dataclass
class SynthReport:
    """Outcome of :func:`synthesize`. Counts cover the whole dataset (this run + resumed).

    failures: shards that could not be made (their samples are missing; a rerun retries them).
    """

    out: str
    format: str
    count: int
    rendered: int  # samples rendered by this call
    resumed: int  # samples found complete from an earlier run
    failed_backgrounds: int  # background loads that failed (each skipped with a warning)
    bad_backgrounds: dict[str, str]  # distinct unusable background files -> error
    fallback_backgrounds: int  # samples that fell back to the default after repeated failures
    empty_images: int  # samples where no text fitted
    words: int
    render_errors: int
    seconds: float
    with_depth: int = 0  # samples whose background had a depth map
    with_seg: int = 0  # ... a segmentation map
    failed_maps: int = 0  # depth/seg maps that could not be read (photo used without them)
    bad_maps: dict[str, str] = field(default_factory=dict)  # "depth:<background>" -> error
    failures: list[ShardFailure] = field(default_factory=list)

    @property
    def missing(self) -> int:
        """Samples of the failed shards."""
        return sum(f.samples for f in self.failures)

    @property
    def written(self) -> int:
        return self.rendered + self.resumed

    @property
    def images_per_second(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: written, failed backgrounds, empty images, words, images/s."""
        text = (
            f"written {self.written} ({self.rendered} rendered, {self.resumed} resumed), "
            f"failed backgrounds {self.failed_backgrounds} "
            f"({len(self.bad_backgrounds)} files), empty images {self.empty_images}, "
            f"words {self.words}, {self.images_per_second:.2f} images/s"
        )
        if self.with_depth or self.with_seg:
            text += f", with depth {self.with_depth}, with seg {self.with_seg}"
        if self.failed_maps:
            text += f", failed maps {self.failed_maps} ({len(self.bad_maps)} files)"
        if self.render_errors:
            text += f", render errors {self.render_errors}"
        if self.failures:
            text += f", failed shards {len(self.failures)} ({self.missing} images missing)"
        return text


def shard_layout(count: int, shard_size: int) -> list[tuple[int, int]]:
    """(first sample, number of samples) of every shard."""
    return [(first, min(shard_size, count - first)) for first in range(0, count, shard_size)]


def _list_sha256(lines: Sequence[str]) -> str:
    # surrogateescape: file names that are not UTF-8 hash by their bytes on disk.
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def background_identity(source: BackgroundSource | None) -> dict[str, Any]:
    """What the manifest records of the backgrounds (a plain folder keeps the pre-maps form)."""
    if source is None:
        return {"folder": None, "files": 0, "list_sha256": None}
    where = "folder" if source.kind == "folder" else "dset_h5"
    identity: dict[str, Any] = {
        where: printable(str(source.path)),
        "files": len(source.names),
        "list_sha256": _list_sha256(source.names),
    }
    for kind, folder, maps in (
        ("depth", source.depth_dir, source.depth),
        ("seg", source.seg_dir, source.seg),
    ):
        if folder is not None:
            pairs = [
                f"{name}\t{m.relative_to(folder).as_posix()}"
                for name, m in zip(source.names, maps)
                if m is not None
            ]
            identity[kind] = {
                "folder": printable(str(folder)),
                "files": len(pairs),
                "list_sha256": _list_sha256(pairs),
            }
    return identity


def background_signature(identity: dict[str, Any]) -> tuple[Any, ...]:
    """The parts of a background identity that decide the output (not where folders are)."""
    maps = [identity.get(kind) or {} for kind in ("depth", "seg")]
    return (
        "dset_h5" in identity,
        identity.get("files"),
        identity.get("list_sha256"),
        *((m.get("files"), m.get("list_sha256")) for m in maps),
    )


def _describe_backgrounds(identity: dict[str, Any]) -> str:
    text = f"{identity.get('files')} files from {identity.get('folder', identity.get('dset_h5'))}"
    for kind in ("depth", "seg"):
        maps = identity.get(kind)
        if maps:
            text += f" with {maps.get('files')} {kind} maps from {maps.get('folder')}"
    return text


# Settings that decide the bytes of the output; a resumed run must match all of them.
_IDENTITY_KEYS = ("seed", "count", "format", "image_format", "shard_size", "config")


def _config_fields_differing(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """SynthConfig fields whose values differ. A field the old manifest lacks (added to
    SynthConfig after the folder was written) counts only when it is not at its default:
    new parts are added switched off, so their defaults render what the old version did,
    except those in ``CHANGED_BY_NEW_DEFAULT`` when the old run had their switch on."""
    # late: config does not need the manifest
    from synthloc.synth.config import CHANGED_BY_NEW_DEFAULT, SynthConfig

    defaults = dataclasses.asdict(SynthConfig())

    def renders_as_before(k: str) -> bool:
        switch = CHANGED_BY_NEW_DEFAULT.get(k)
        return k in defaults and new.get(k) == defaults[k] and not (switch and old.get(switch))

    return sorted(
        k
        for k in set(old) | set(new)
        if old.get(k) != new.get(k) and not (k not in old and renders_as_before(k))
    )


def check_identity(manifest_path: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    problems = [
        f"{key}: existing {old.get(key)!r}, requested {new[key]!r}"
        for key in _IDENTITY_KEYS
        if old.get(key) != new[key]
    ]
    if old.get("config") != new["config"] and isinstance(old.get("config"), dict):
        diff = _config_fields_differing(old["config"], new["config"])
        problems = [p for p in problems if not p.startswith("config:")]
        if diff:
            problems.append(f"config fields differ: {', '.join(diff)}")
    old_bg, new_bg = old.get("backgrounds") or {}, new["backgrounds"]
    if background_signature(old_bg) != background_signature(new_bg):
        problems.append(
            f"backgrounds: existing {_describe_backgrounds(old_bg)}, "
            f"requested {_describe_backgrounds(new_bg)}"
        )
    if problems:
        raise SynthError(
            f"{manifest_path}: this folder holds a different run ({'; '.join(problems)}); "
            "re-run with the same settings to resume, or choose another --out"
        )


def totals(shards: list[ShardStats]) -> dict[str, Any]:
    bad: dict[str, str] = {}
    bad_maps: dict[str, str] = {}
    for s in shards:
        bad.update(s.bad_backgrounds)
        bad_maps.update(s.bad_maps)
    return {
        "written": sum(s.samples for s in shards),
        "failed_backgrounds": sum(s.failed_backgrounds for s in shards),
        "fallback_backgrounds": sum(s.fallback_backgrounds for s in shards),
        "empty_images": sum(s.empty_images for s in shards),
        "words": sum(s.words for s in shards),
        "render_errors": sum(s.render_errors for s in shards),
        "bad_backgrounds": dict(sorted(bad.items())),
        "with_depth": sum(s.with_depth for s in shards),
        "with_seg": sum(s.with_seg for s in shards),
        "failed_maps": sum(s.failed_maps for s in shards),
        "bad_maps": dict(sorted(bad_maps.items())),
    }


def progress_name(shard: int) -> str:
    return f"{PROGRESS_DIR}/shard-{shard:06d}.json"


def write_json(store: Store, name: str, data: Any) -> None:
    """Indented UTF-8 JSON, written atomically."""
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    store.write_bytes(name, text.encode("utf-8"))


def read_progress(store: Store) -> tuple[dict[str, Any] | None, dict[int, ShardStats]]:
    """The run identity (``progress/run.json``, None if absent) and the shard records.

    An unreadable record is skipped (its shard is redone); the warnings name each file.
    """
    import logging

    log = logging.getLogger(__name__)
    identity = None
    if store.exists(RUN_RECORD):
        try:
            identity = json.loads(store.read_bytes(RUN_RECORD).decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise SynthError(f"{store.path(RUN_RECORD)}: unreadable run record ({exc})") from exc
    records: dict[int, ShardStats] = {}
    for name in store.list(PROGRESS_DIR, suffix=".json"):
        if not name.rsplit("/", 1)[-1].startswith("shard-"):
            continue
        try:
            stats = ShardStats.from_dict(json.loads(store.read_bytes(name).decode("utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            log.warning(
                "%s: unreadable progress record, shard will be redone (%s)", store.path(name), exc
            )
            continue
        records[stats.index] = stats
    return identity, records


def build_manifest(
    identity: dict[str, Any],
    shards: Sequence[ShardStats],
    failures: Sequence[ShardFailure],
    schema_version: int,
    version: str,
) -> dict[str, Any]:
    """The final manifest: identity, ``complete``, counts, shards and failures."""
    return {
        "schema_version": schema_version,
        "synthloc_version": version,
        **identity,
        "complete": not failures and sum(s.samples for s in shards) == identity["count"],
        "counts": totals(list(shards)),
        "shards": [dataclasses.asdict(s) for s in shards],
        "failures": [dataclasses.asdict(f) for f in failures],
    }
