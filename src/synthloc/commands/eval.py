"""synthloc eval: not available yet in this build."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # arguments arrive with the capability


def run(args: argparse.Namespace) -> int:
    del args
    print("synthloc eval: not available yet in this build", file=sys.stderr)
    return 2
