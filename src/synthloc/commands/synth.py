"""Render synthetic scene-text images with exact word and character ground truth.

Sample i of seed S is the same whatever --workers is. Re-running the same command in the same
--out resumes: complete shards are kept, the rest is rendered; a folder holding a run with other
settings is refused. Formats:

  shards        shard-NNNNNN.tar (per sample <key>.jpg|png + <key>.json) and manifest.json
  icdar         images/<name>.jpg and gt/gt_<name>.txt (ICDAR 2015 word quads)
  synthtext-h5  SynthText.h5 in the original engine's results layout (wordBB, charBB, txt)

Without --backgrounds, procedural textured scenes are used (nothing to download).

Backgrounds: a folder of photos (searched recursively) or a SynthText dset.h5 file (groups
image/, depth/, seg/ keyed by image name; each worker opens it itself). Depth and segmentation
maps for a photo folder are paired by the photo's path relative to --backgrounds without its
extension: photos/street/a.jpg gets DEPTH/street/a.npy|.png|.tif|.tiff|.h5|.hdf5 and
SEG/street/a.npy|.png|.tif|.tiff (integer labels, 0 = no region). Photos without a map file
render without it; an unreadable map is counted and named, and its photo used without it. Map
folders may live inside the photo folder; their files are then not taken as photos. Depth
(larger = farther) puts text on fitted planes; a label map replaces the engine's own
over-segmentation.

Scaling out: --workers N uses N processes of this machine; --dask ADDRESS submits one task per
shard to a Dask cluster (--dask local:N starts a LocalCluster of N processes; needs
pip install 'synthloc[cluster]'). The output is the same bytes either way. --out may then be an
fsspec URL (s3://bucket/synth, gs://..., file:///shared/synth) that every worker can reach.
A shard whose task fails (its worker killed, out of memory) is tried --retries more times, then
named in manifest.json's failures and the exit status is 1; re-running the command retries it.
Ctrl-C stops cleanly (exit 130); re-running resumes.

examples:
  synthloc synth --backgrounds photos/ --count 1000 --out data/synth --seed 0 --workers 2 \\
      --preview 16
  synthloc synth --backgrounds photos/ --depth photos/depth/ --seg photos/seg/ --count 100 \\
      --out data/synth_depth
  synthloc synth --backgrounds dset.h5 --count 1000 --out data/synth_dset --workers 2
  synthloc synth --count 100000 --out s3://bucket/synth --dask tcp://scheduler:8786
  synthloc synth --backgrounds photos/ --count 1000 --out data/synth_paper --paper
  synthloc synth --backgrounds photos/ --count 1000 --out data/blurred --set camera=true
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthloc.commands import add_set_option

if TYPE_CHECKING:
    from synthloc.synth.config import SynthConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backgrounds",
        type=Path,
        default=None,
        metavar="DIR|H5",
        help="folder of background photos, searched recursively, or a SynthText dset.h5 file "
        "(default: procedural scenes)",
    )
    parser.add_argument(
        "--depth",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of depth maps paired with the photos by relative path without extension "
        "(.npy, .png, .tif, .tiff, .h5, .hdf5; larger = farther)",
    )
    parser.add_argument(
        "--seg",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of segmentation label maps paired like --depth (.npy, .png, .tif, .tiff; "
        "0 = no region)",
    )
    parser.add_argument("--count", type=int, required=True, help="number of images")
    parser.add_argument(
        "--out", required=True, metavar="DIR|URL", help="output folder or fsspec URL (shards)"
    )
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument(
        "--workers", type=int, default=1, help="rendering processes (default 1: in-process)"
    )
    parser.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS|local:N",
        help="render on a Dask cluster: a scheduler address, or local:N for a LocalCluster of "
        "N processes (instead of --workers)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="extra tries of a shard whose task failed or whose worker died (default 2)",
    )
    parser.add_argument(
        "--size", type=int, default=512, help="long side of the images in pixels (default 512)"
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=("shards", "icdar", "synthtext-h5"),
        default="shards",
        help="output layout (default shards)",
    )
    parser.add_argument(
        "--preview",
        type=int,
        default=0,
        metavar="K",
        help="also write preview/<name>.png with quads drawn for the first K images",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        metavar="PATH",
        help="UTF-8 text file, or a folder of *.txt files, to sample words from",
    )
    parser.add_argument(
        "--fonts",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra font folder (repeatable), used with the system fonts",
    )
    parser.add_argument(
        "--image-format",
        choices=("jpg", "png"),
        default="jpg",
        help="image encoding for shards and icdar: jpg (quality 95, default) or png (lossless)",
    )
    parser.add_argument(
        "--shard-size", type=int, default=100, help="samples per shard / resume unit (default 100)"
    )
    parser.add_argument(
        "--paper",
        action="store_true",
        help="the paper's engine: every part added for real photos (sign panels, learned "
        "colours, scene-text lexicon, camera degradations, negatives) off",
    )
    add_set_option(
        parser,
        help="set an engine option (a SynthConfig field, value parsed as YAML; repeatable), "
        "applied after --paper, e.g. --set camera=true --set p_sign=0.5",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def engine_config(args: argparse.Namespace) -> SynthConfig:
    """The engine's config from the flags: --size, --corpus, --fonts, --paper, then --set."""
    import dataclasses

    from synthloc.synth.config import PAPER_SETTINGS, SynthConfig
    from synthloc.train_config import apply_overrides

    values: dict[str, Any] = {
        "size": args.size,
        # Absolute paths: worker processes and resumed runs must find the same files.
        "corpus": str(args.corpus.resolve()) if args.corpus is not None else None,
        "font_dirs": [str(f.resolve()) for f in args.fonts],
    }
    if not args.overrides:
        return SynthConfig(paper=args.paper, **values)
    values = dataclasses.asdict(SynthConfig(**values))
    if args.paper:
        # paper=True would overwrite the --set options, so the preset is spelled out instead.
        values.update(PAPER_SETTINGS)
    names = set(values) - {"paper", "size"}
    for item in args.overrides:
        key = item.partition("=")[0].strip()
        if "=" in item and key not in names:
            raise ValueError(f"--set {item!r}: unknown engine option {key!r}")
    apply_overrides(values, args.overrides)  # YAML values, as `synthloc train --set`
    if values.get("sprite_dir"):
        values["sprite_dir"] = str(Path(values["sprite_dir"]).resolve())
    try:
        return SynthConfig(**values)
    except TypeError as exc:
        raise ValueError(f"--set: {exc}") from None


def run(args: argparse.Namespace) -> int:
    import logging

    from synthloc.synth.errors import OutputError, printable
    from synthloc.synth.runner import MAX_SIZE, SynthError, synthesize

    def fail(message: str, status: int = 2) -> int:
        print(f"synthloc synth: error: {printable(message)}", file=sys.stderr)
        return status

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if args.corpus is not None and not args.corpus.exists():
        return fail(f"{args.corpus}: corpus not found")
    for folder in args.fonts:
        if not folder.is_dir():
            return fail(f"{folder}: font folder not found")
    if not 64 <= args.size <= MAX_SIZE:
        return fail(f"--size {args.size} is out of range (64 .. {MAX_SIZE})")
    if args.retries < 0:
        return fail(f"--retries {args.retries} must be >= 0")
    if args.dask is not None and args.workers != 1:
        return fail("give either --workers or --dask (the cluster has its own workers)")
    try:
        config = engine_config(args)
    except ValueError as exc:
        return fail(str(exc))
    try:
        report = synthesize(
            out=args.out,
            count=args.count,
            seed=args.seed,
            backgrounds=args.backgrounds,
            workers=args.workers,
            fmt=args.fmt,
            preview=args.preview,
            config=config,
            shard_size=args.shard_size,
            progress=not args.no_progress,
            image_format=args.image_format,
            depth=args.depth,
            seg=args.seg,
            dask=args.dask,
            attempts=args.retries + 1,
        )
    except OutputError as exc:  # disk full, read-only: the run stopped
        return fail(str(exc), 1)
    except SynthError as exc:
        return fail(str(exc))
    except OSError as exc:  # a full disk, a read-only or vanished output folder
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(f"{where}{exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        print("synthloc synth: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(report.summary())
    if report.failures:
        first = report.failures[0]
        return fail(
            f"{len(report.failures)} shard(s) failed after {first.attempts} attempts "
            f"({report.missing} images missing; first: {first.file or first.index}: "
            f"{first.error}); see failures in manifest.json, re-run to retry them",
            1,
        )
    return 0
