"""The FCRN loss: masked squared error with a curriculum on negative cells.

Terms, for predictions and targets ``[N, 7, Hc, Wc]`` (channel order of ``targets.py``):

* ``pose``: squared error of the six pose channels (x, y, w, h, cos, sin), summed over
  channels, on **positive cells only**, divided by ``max(1, P)`` where ``P`` is the number of
  positive cells in the batch.  (Pose is meaningless where there is no word.)
* ``conf_pos``: confidence error on positive cells (target 1), divided by ``max(1, P)``.
* ``conf_neg``: confidence error on negative cells (target 0; neither positive nor ignored,
  optionally a random sample of them), divided by ``max(1, Q)``, ``Q`` the number of negative
  cells counted in the batch.
* ``total = pose_weight * pose + conf_weight * (conf_pos + neg_weight * conf_neg)``.

Each term is a mean over the cells it covers, so the loss does not grow with image size or
batch size and is O(1) at initialisation; the ~97% of cells that are negative enter as one
averaged term, and ``neg_weight = min(1, neg_start * neg_factor ** (step / neg_period))`` (the
curriculum; 1 when disabled) lets positives dominate early training.

Ignored cells and cells not selected by loss sampling are excluded by indexing, so they
receive exactly zero gradient; pose channels of negative cells likewise.

Confidence losses: ``"mse"`` (the paper: ``c`` regressed directly), ``"bce"`` and ``"focal"``
(``c`` is a logit: use a model built with ``confidence="logit"``).

Options for dense maps (``fcrn-dense``, where every cell of a word's core is positive):

* ``ohem_ratio`` (online hard-negative mining): ``conf_neg`` averages only the
  ``ohem_ratio * max(P, ohem_min)`` negative cells with the highest loss in the batch, instead
  of all of them, so that thousands of easy background cells do not drown the text;
* ``pose_loss="iou"``: the pose term becomes EAST's ``-log IoU`` of the boxes given by the
  four side distances (channels 0-3, log cells, ``dense_targets.py``) plus
  ``angle_weight`` times the squared error of (cos, sin); ``"smooth_l1"`` is a Huber loss on
  the six pose channels; ``"mse"`` the paper's squared error;
* ``dice_weight``: adds ``dice_weight * dice`` to the total, the Dice loss of the confidence
  map (sigmoid of ``c``; logit models only) against the positive mask over non-ignored cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

CONF_LOSSES = ("mse", "bce", "focal")
POSE_LOSSES = ("mse", "smooth_l1", "iou")


def negative_weight(
    step: int, start: float = 0.01, factor: float = 1.05, period: float = 100
) -> float:
    """Curriculum weight of negative cells: ``min(1, start * factor ** (step / period))``."""
    return min(1.0, start * factor ** (step / period))


@dataclass
class LossConfig:
    """Options of :class:`FCRNLoss`.

    neg_start, neg_factor, neg_period: the curriculum ``negative_weight`` (used when
        ``curriculum`` is True; otherwise negatives always weigh 1).
    neg_sample_fraction: if set, only this fraction (ceil, per image) of each image's negative
        cells, drawn at random with the generator passed to the loss, enters ``conf_neg``.
    conf_loss: "mse" | "bce" | "focal" for both confidence terms.
    focal_gamma: focusing exponent of the focal loss.
    pose_weight, conf_weight: multipliers in ``total``.
    pose_loss: "mse" | "smooth_l1" | "iou" (dense side distances; see the module docstring).
    angle_weight: weight of the (cos, sin) error inside the "iou" pose term.
    ohem_ratio, ohem_min: hard-negative mining (None: every negative cell counts).
    dice_weight: weight of the Dice term on the confidence map (0: off).
    """

    neg_start: float = 0.01
    neg_factor: float = 1.05
    neg_period: float = 100
    curriculum: bool = True
    neg_sample_fraction: float | None = None
    conf_loss: str = "mse"
    focal_gamma: float = 2.0
    pose_weight: float = 1.0
    conf_weight: float = 1.0
    pose_loss: str = "mse"
    angle_weight: float = 1.0
    ohem_ratio: float | None = None
    ohem_min: int = 64
    dice_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.conf_loss not in CONF_LOSSES:
            raise ValueError(f"unknown conf_loss {self.conf_loss!r}; expected one of {CONF_LOSSES}")
        if self.neg_sample_fraction is not None and not 0.0 < self.neg_sample_fraction <= 1.0:
            raise ValueError(
                f"neg_sample_fraction must be in (0, 1], got {self.neg_sample_fraction}"
            )
        if self.neg_period <= 0 or self.neg_start <= 0 or self.neg_factor <= 0:
            raise ValueError("neg_start, neg_factor and neg_period must be positive")
        if self.pose_loss not in POSE_LOSSES:
            raise ValueError(f"unknown pose_loss {self.pose_loss!r}; expected one of {POSE_LOSSES}")
        if self.ohem_ratio is not None and not self.ohem_ratio > 0:
            raise ValueError(f"ohem_ratio must be positive, got {self.ohem_ratio}")
        if self.ohem_min < 1:
            raise ValueError(f"ohem_min must be at least 1, got {self.ohem_min}")
        if not self.dice_weight >= 0 or not self.angle_weight >= 0:
            raise ValueError("dice_weight and angle_weight must be non-negative")
        if self.dice_weight > 0 and self.conf_loss == "mse":
            raise ValueError("dice_weight needs a logit confidence (conf_loss bce or focal)")


def _sample_negatives(
    negative: torch.Tensor, fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """Keep ``ceil(fraction * n_i)`` random cells of each image's negative mask ``[N, Hc, Wc]``."""
    n = negative.shape[0]
    flat = negative.reshape(n, -1)  # [N, Hc*Wc]
    noise = torch.rand(flat.shape, generator=generator, device=generator.device)
    noise = noise.to(flat.device).masked_fill(~flat, 2.0)  # non-negatives sort last
    rank = noise.argsort(dim=1).argsort(dim=1)  # rank of each cell's noise within its image
    keep_count = torch.ceil(flat.sum(dim=1, keepdim=True) * fraction)
    return (flat & (rank < keep_count)).reshape(negative.shape)


def side_iou_loss(pred_sides: torch.Tensor, target_sides: torch.Tensor) -> torch.Tensor:
    """``-log IoU`` per cell of boxes given as log side distances ``[K, 4]`` from one point.

    Both boxes share the cell centre and (approximately) the angle, so their intersection is
    ``(min left + min right) x (min top + min bottom)`` (EAST's RBOX loss).
    """
    pred = torch.exp(pred_sides.clamp(max=10.0))
    target = torch.exp(target_sides)
    pred_area = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    target_area = (target[:, 0] + target[:, 2]) * (target[:, 1] + target[:, 3])
    low = torch.minimum(pred, target)
    inter = (low[:, 0] + low[:, 2]) * (low[:, 1] + low[:, 3])
    union = pred_area + target_area - inter
    return -torch.log((inter + 1e-6) / (union + 1e-6))


class FCRNLoss(nn.Module):
    """Masked curriculum loss; see the module docstring for every term's definition."""

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()

    def neg_weight(self, step: int) -> float:
        """The negative-cell weight at ``step`` (1 when the curriculum is off)."""
        c = self.config
        if not c.curriculum:
            return 1.0
        return negative_weight(step, c.neg_start, c.neg_factor, c.neg_period)

    def _confidence(self, logits: torch.Tensor, target_value: float) -> torch.Tensor:
        """Per-cell confidence loss of predictions ``[K]`` against a constant target."""
        kind = self.config.conf_loss
        if kind == "mse":
            return (logits - target_value) ** 2
        target = torch.full_like(logits, target_value)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        if kind == "bce":
            return bce
        # Focal: (1 - p_t)^gamma * BCE, with p_t the probability given to the true class.
        p_true = torch.exp(-bce)
        return (1.0 - p_true) ** self.config.focal_gamma * bce

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        positive: torch.Tensor,
        ignore: torch.Tensor,
        step: int,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor | float]:
        """Loss terms for pred/target float ``[N, 7, Hc, Wc]``, masks bool ``[N, Hc, Wc]``.

        ``generator`` is required when ``neg_sample_fraction`` is set (sampling is random).
        Returns tensors ``total``, ``pose``, ``conf_pos``, ``conf_neg`` (scalars) and the float
        ``neg_weight`` used.
        """
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 7:
            raise ValueError(
                f"pred and target must both be [N, 7, Hc, Wc]; got {tuple(pred.shape)} "
                f"and {tuple(target.shape)}"
            )
        mask_shape = (pred.shape[0], *pred.shape[2:])
        if tuple(positive.shape) != mask_shape or tuple(ignore.shape) != mask_shape:
            raise ValueError(
                f"positive and ignore must be {mask_shape}; got {tuple(positive.shape)} "
                f"and {tuple(ignore.shape)}"
            )
        positive = positive.bool()
        ignore = ignore.bool()
        positive_kept = positive & ~ignore
        negative = ~positive & ~ignore
        if self.config.neg_sample_fraction is not None:
            if generator is None:
                raise ValueError("neg_sample_fraction is set: pass a torch.Generator to the loss")
            negative = _sample_negatives(negative, self.config.neg_sample_fraction, generator)

        # [N, 7, Hc, Wc] -> [N, Hc, Wc, 7] so boolean masks pick whole cells: [K, 7].
        pred_cells = pred.permute(0, 2, 3, 1)
        target_cells = target.permute(0, 2, 3, 1)
        pos_pred = pred_cells[positive_kept]
        pos_target = target_cells[positive_kept]
        neg_conf = pred_cells[negative][:, 6]

        c = self.config
        num_pos = max(1, pos_pred.shape[0])
        pose = self._pose(pos_pred, pos_target).sum() / num_pos
        conf_pos = self._confidence(pos_pred[:, 6], 1.0).sum() / num_pos
        neg_losses = self._confidence(neg_conf, 0.0)
        if c.ohem_ratio is not None:
            keep = min(
                len(neg_losses), math.ceil(c.ohem_ratio * max(pos_pred.shape[0], c.ohem_min))
            )
            neg_losses = torch.topk(neg_losses, keep, sorted=False).values
        conf_neg = neg_losses.sum() / max(1, neg_losses.shape[0])
        weight = self.neg_weight(step)
        total = c.pose_weight * pose + c.conf_weight * (conf_pos + weight * conf_neg)
        terms: dict[str, torch.Tensor | float] = {
            "pose": pose,
            "conf_pos": conf_pos,
            "conf_neg": conf_neg,
            "neg_weight": weight,
        }
        if c.dice_weight > 0:
            dice = self._dice(pred[:, 6], positive_kept, ~ignore)
            total = total + c.dice_weight * dice
            terms["dice"] = dice
        terms["total"] = total
        return terms

    def _pose(self, pos_pred: torch.Tensor, pos_target: torch.Tensor) -> torch.Tensor:
        """Per-cell pose loss ``[K]`` of positive cells ``[K, 7]``."""
        kind = self.config.pose_loss
        if kind == "mse":
            return ((pos_pred[:, :6] - pos_target[:, :6]) ** 2).sum(dim=1)
        if kind == "smooth_l1":
            return F.smooth_l1_loss(pos_pred[:, :6], pos_target[:, :6], reduction="none").sum(dim=1)
        angle = ((pos_pred[:, 4:6] - pos_target[:, 4:6]) ** 2).sum(dim=1)
        return side_iou_loss(pos_pred[:, :4], pos_target[:, :4]) + self.config.angle_weight * angle

    @staticmethod
    def _dice(logits: torch.Tensor, positive: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
        """Dice loss of ``sigmoid(logits)`` ``[N, Hc, Wc]`` vs ``positive`` where ``counted``."""
        weight = counted.to(logits.dtype)
        prob = torch.sigmoid(logits) * weight
        truth = positive.to(logits.dtype) * weight
        inter = (prob * truth).sum()
        return 1.0 - (2.0 * inter + 1.0) / (prob.sum() + truth.sum() + 1.0)
