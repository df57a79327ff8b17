"""The error of a synthesis run that cannot start or continue."""

from __future__ import annotations


class SynthError(RuntimeError):
    """The run cannot start or continue (bad arguments, bad folder, manifest mismatch)."""


class OutputError(SynthError):
    """The output cannot be written at all (disk full, read-only): retrying would not help,
    so executors stop the whole run with it instead of retrying the shard."""


def printable(text: str) -> str:
    """``text`` with undecodable file-name bytes as ``\\xNN`` escapes (safe for JSON / UTF-8).

    Paths listed from the disk keep bytes that are not UTF-8 as lone surrogates; those can be
    used to open the file but not written to a UTF-8 manifest or log.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
