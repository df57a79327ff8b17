"""One module per CLI verb: ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse

SET_HELP = "override a config value by dotted path (repeatable)"


def add_set_option(parser: argparse.ArgumentParser, help: str = SET_HELP) -> None:
    """The repeatable ``--set KEY=VALUE`` option (into ``args.overrides``) of the verbs that
    take config overrides."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )
