"""The synthetic scene-text engine (SynthText reimplemented): backgrounds in, Samples out.

Typical use::

    from synthloc.synth import SynthConfig, SceneRenderer, default_background
    renderer = SceneRenderer(SynthConfig())
    sample = renderer.render(default_background(rng, 512), rng)
"""

from synthloc.synth.backgrounds import (
    Background,
    BackgroundError,
    iter_dset_h5,
    list_backgrounds,
    load_background,
)
from synthloc.synth.config import SynthConfig
from synthloc.synth.engine import SceneRenderer, render_scene
from synthloc.synth.procedural import default_background

__all__ = [
    "Background",
    "BackgroundError",
    "SceneRenderer",
    "SynthConfig",
    "default_background",
    "iter_dset_h5",
    "list_backgrounds",
    "load_background",
    "render_scene",
]
