"""The loss of one training batch: cross-entropy on the labels (each mixed face's two labels weighted
as its pixels were), and, when distilling, the teachers' soft-target term beside it.

    loss = (1 - a) * [w * CE(y) + (1 - w) * CE(y')] + a * T^2 * KL(teacher_T || student_T)

w is the share of each face's own image (training.augment.mix_batch; 1 without mixing), y' its
partner's label, a the distillation weight and T its temperature (training.distill.distillation_loss);
the teacher's targets of a mixed face are mixed with the same w.
"""

import torch
import torch.nn.functional as F

from training.augment import MixedBatch
from training.distill import distillation_loss


def label_loss(logits: torch.Tensor, labels: torch.Tensor, mixed: MixedBatch, label_smoothing: float) -> torch.Tensor:
    """Mean cross-entropy of (B, 7) float logits against each face's label and its partner's, weighted
    by the mix."""
    # Unmixed, the weight is 1 and each face its own partner: the second term is exactly 0.
    own = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    partners = F.cross_entropy(logits, labels[mixed.partner], label_smoothing=label_smoothing)
    return mixed.weight * own + (1.0 - mixed.weight) * partners


def mixed_soft_targets(soft_targets: torch.Tensor, mixed: MixedBatch) -> torch.Tensor:
    """(B, 7) teachers' probabilities of the faces as they were mixed: a face that is w of its own image
    and 1 - w of its partner's gets w of its own target and 1 - w of the partner's."""
    return mixed.weight * soft_targets + (1.0 - mixed.weight) * soft_targets[mixed.partner]


def batch_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mixed: MixedBatch,
    label_smoothing: float,
    soft_targets: torch.Tensor | None,
    distill_weight: float,
    temperature: float,
) -> torch.Tensor:
    """The scalar training loss of (B, 7) float logits; see the module's formula. Without soft targets
    (None) the distillation weight and temperature play no part."""
    loss = label_loss(logits, labels, mixed, label_smoothing)
    if soft_targets is None:
        return loss
    soft_loss = distillation_loss(logits, mixed_soft_targets(soft_targets, mixed), temperature)
    return (1.0 - distill_weight) * loss + distill_weight * soft_loss
