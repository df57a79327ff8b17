"""Suite-wide settings: ONNX copies that ``Detector.load`` caches go to a folder of this test
session, not to the user's ~/.cache (subprocesses inherit it through the environment)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from synthloc.detect.onnx_cache import CACHE_ENV


@pytest.fixture(autouse=True, scope="session")
def _session_onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("synthloc-cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous
