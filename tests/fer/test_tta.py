"""TTA semantics, checked with a stub model whose logits are known functions of the pixels.

The stub reads seven pixels of the face's left half as its seven logits, so a face and its mirror image
give different logits, and any view that is not the one the mode promises gives wrong numbers.
"""

import pytest
import torch
import torch.nn.functional as F

from fer.tta import TTA_MODES, predict_probabilities, tta_views

LOGIT_PIXELS = [(5, 3), (10, 8), (15, 12), (20, 2), (25, 17), (30, 6), (40, 20)]  # (row, column), left half


class PixelLogits(torch.nn.Module):
    """(B, 1, 48, 48) -> (B, 7): logit k is pixel LOGIT_PIXELS[k] divided by 40."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[:, 0, row, column] for row, column in LOGIT_PIXELS], 1) / 40.0


def faces(batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 1, 48, 48, generator=torch.Generator().manual_seed(seed)) * 255


def softmax(model, x):
    return model(x).softmax(-1)


def test_none_is_the_softmax_of_the_face():
    x, model = faces(), PixelLogits()
    assert torch.allclose(predict_probabilities(model, x, "none"), softmax(model, x))


def test_flip_is_the_mean_of_the_two_softmaxes_not_the_softmax_of_the_mean_logits():
    x, model = faces(), PixelLogits()
    expected = (softmax(model, x) + softmax(model, x.flip(-1))) / 2
    averaged_logits = ((model(x) + model(x.flip(-1))) / 2).softmax(-1)
    assert not torch.allclose(expected, averaged_logits, atol=1e-3)  # the stub tells the two apart
    assert torch.allclose(predict_probabilities(model, x, "flip"), expected, atol=1e-6)


def test_tencrop_views_are_the_five_crops_then_their_mirrors():
    x = faces()
    views = tta_views(x, "tencrop")  # (10, B, 1, 48, 48)
    assert views.shape == (10, 3, 1, 48, 48)
    crop = 44  # 44 of 48 pixels: the up-to-10% zoom seen in training
    far = 48 - crop
    windows = [  # torchvision's five_crop order: top-left, top-right, bottom-left, bottom-right, centre
        x[..., :crop, :crop],
        x[..., :crop, far:],
        x[..., far:, :crop],
        x[..., far:, far:],
        x[..., far // 2 : far // 2 + crop, far // 2 : far // 2 + crop],
    ]
    for i, window in enumerate(windows):
        scaled = F.interpolate(window, size=(48, 48), mode="bilinear", align_corners=False)
        assert torch.allclose(views[i], scaled, atol=1e-4), f"view {i} is not crop {i}"
        assert torch.equal(views[5 + i], views[i].flip(-1)), f"view {5 + i} is not the mirror of view {i}"


def test_tencrop_is_the_mean_of_the_ten_softmaxes():
    x, model = faces(), PixelLogits()
    views = tta_views(x, "tencrop")
    expected = torch.stack([softmax(model, view) for view in views]).mean(0)
    assert torch.allclose(predict_probabilities(model, x, "tencrop"), expected, atol=1e-6)


def test_each_face_gets_its_own_answer_in_a_batch():
    x, model = faces(5), PixelLogits()
    for mode in TTA_MODES:
        together = predict_probabilities(model, x, mode)
        alone = torch.cat([predict_probabilities(model, x[i : i + 1], mode) for i in range(5)])
        assert torch.allclose(together, alone, atol=1e-6), mode


def test_flip_of_a_mirror_symmetric_face_changes_nothing():
    half = faces(1)[..., :24]
    symmetric = torch.cat([half, half.flip(-1)], -1)
    model = PixelLogits()
    assert torch.allclose(predict_probabilities(model, symmetric, "flip"), softmax(model, symmetric), atol=1e-6)


@pytest.mark.parametrize("mode", ["fivecrop", "zoom", "", "FLIP"])  # names on either side of the real ones
def test_unknown_mode_is_refused(mode):
    with pytest.raises(ValueError, match="unknown TTA mode"):
        tta_views(faces(), mode)
    with pytest.raises(ValueError, match="unknown TTA mode"):
        predict_probabilities(PixelLogits(), faces(), mode)
