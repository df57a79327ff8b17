"""Word detection with a trained FCRN: multi-scale inference -> decode -> rotated NMS.

The pipeline for one image (as in the paper, which runs the FCRN at several scales and merges):

1. For every scale, resize the image keeping its aspect ratio (``resized_size``) and zero-pad
   the right and bottom to a multiple of the model's stride (the same padding the model applies
   inside ``forward``, done here so images of one size batch together and the ONNX session
   always sees stride multiples).
2. Run the network (PyTorch or onnxruntime) -> prediction map ``[7, Hc, Wc]`` per image.
3. Decode cells whose confidence reaches ``threshold`` into quads
   (``synthloc.model.decode_predictions``), drop those whose short side is under ``min_size``
   pixels of the resized image, and map the rest back to original-image pixels by the exact
   per-axis resize factors.
4. Merge the detections of all scales and suppress duplicates with rotated NMS
   (``synthloc.nms.rotated_nms``).

Scales (``scales=`` everywhere): each value is either a **long side in pixels** (values above
``8``, e.g. ``1024`` resizes a 1280x720 photo to 1024x576) or a **factor** of the original size
(values up to ``8``, e.g. ``1.0`` keeps the size, ``0.5`` halves it).  The default is one scale,
long side 1024; a multi-scale setting such as ``(512, 1024, 1536)`` finds both small and large
words at about three times the cost.

Coordinates follow ``synthloc.geometry``: pixels of the original image, x right, y down, pixel
corners at integers, quads clockwise from the top-left.  Images are RGB ``uint8 [H, W, 3]``;

5. When a verifier is present (``Detector.load(..., verifier=...)``, or the one shipped beside
   the default model), the NMS survivors go through it: rejected candidates are dropped,
   refined quads replace the first stage's and scores combine both stages (``verifier``).

Modules: ``images`` (decode files, list folders, scale arithmetic), ``backends`` (PyTorch and
onnxruntime runners), ``detector`` (the :class:`Detector`), ``verifier`` (the second stage),
``outputs`` (result files), ``shipped`` (the models shipped in the package, by name).
This package re-exports their public names.
"""

from __future__ import annotations

from pathlib import Path

from synthloc.detect.detector import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MIN_SIZE,
    DEFAULT_NMS_IOU,
    DEFAULT_SCALES,
    DEFAULT_THRESHOLD,
    PRESETS,
    Detection,
    Detector,
    ImageResult,
)
from synthloc.detect.images import (
    IMAGE_EXTENSIONS,
    MAX_SCALE_FACTOR,
    FolderListing,
    ImageInput,
    ImageReadError,
    _as_image,
    list_images,
    load_image,
    resized_size,
    scan_images,
    validate_scales,
)
from synthloc.detect.outputs import (
    draw_detections,
    is_own_output,
    output_paths,
    settings_match,
    submission_quads,
    write_outputs,
)
from synthloc.detect.shipped import (
    DEFAULT_MODEL,
    SHIPPED_MODELS,
    NoDefaultModelError,
    ShippedModel,
    models_help,
    resolve_model,
    shipped_files,
)
from synthloc.detect.verifier import (
    DEFAULT_VERIFY_THRESHOLD,
    VerifierStage,
    default_verifier_path,
    load_verifier_stage,
)


def default_model_path() -> Path:
    """The default model's weights shipped inside the package; raises if this build has none."""
    return shipped_files(DEFAULT_MODEL)[0]


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MIN_SIZE",
    "DEFAULT_MODEL",
    "DEFAULT_NMS_IOU",
    "DEFAULT_SCALES",
    "DEFAULT_THRESHOLD",
    "DEFAULT_VERIFY_THRESHOLD",
    "IMAGE_EXTENSIONS",
    "MAX_SCALE_FACTOR",
    "PRESETS",
    "SHIPPED_MODELS",
    "Detection",
    "Detector",
    "FolderListing",
    "ImageInput",
    "ImageReadError",
    "ImageResult",
    "NoDefaultModelError",
    "ShippedModel",
    "VerifierStage",
    "_as_image",
    "default_model_path",
    "default_verifier_path",
    "draw_detections",
    "is_own_output",
    "list_images",
    "load_image",
    "load_verifier_stage",
    "models_help",
    "output_paths",
    "resized_size",
    "resolve_model",
    "scan_images",
    "settings_match",
    "shipped_files",
    "submission_quads",
    "validate_scales",
    "write_outputs",
]
