"""TTA semantics, checked with a stub model whose logits are known functions of the pixels.

The stub reads seven pixels of the face's left half as its seven logits, so a face and its mirror image
give different logits, and any view that is not the one the mode promises gives wrong numbers. The
ten-crop views are checked against torchvision's five_crop and PyTorch's bilinear interpolation, which
the shipped models were validated with before fer.tta moved to NumPy.
"""

import numpy as np
import pytest

from fer.tta import TTA_MODES, TTA_VIEWS, bilinear_matrix, predict_probabilities, tta_views

LOGIT_PIXELS = [(5, 3), (10, 8), (15, 12), (20, 2), (25, 17), (30, 6), (40, 20)]  # (row, column), left half


def pixel_logits(x: np.ndarray) -> np.ndarray:
    """(B, 1, 48, 48) -> (B, 7): logit k is pixel LOGIT_PIXELS[k] divided by 40."""
    return np.stack([x[:, 0, row, column] for row, column in LOGIT_PIXELS], 1) / 40.0


def faces(batch: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, 1, 48, 48), dtype=np.float32) * 255


def softmax(x):
    logits = pixel_logits(x)
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def test_none_is_the_softmax_of_the_face():
    x = faces()
    np.testing.assert_allclose(predict_probabilities(pixel_logits, x, "none"), softmax(x), atol=1e-6)


def test_flip_is_the_mean_of_the_two_softmaxes_not_the_softmax_of_the_mean_logits():
    x = faces()
    expected = (softmax(x) + softmax(x[..., ::-1])) / 2
    mean_logits = (pixel_logits(x) + pixel_logits(x[..., ::-1])) / 2
    averaged_logits = np.exp(mean_logits) / np.exp(mean_logits).sum(-1, keepdims=True)
    assert not np.allclose(expected, averaged_logits, atol=1e-3)  # the stub tells the two apart
    np.testing.assert_allclose(predict_probabilities(pixel_logits, x, "flip"), expected, atol=1e-6)


def test_tencrop_views_are_torchvisions_five_crops_scaled_by_pytorch_then_their_mirrors():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    from torchvision.transforms.v2 import functional as TF

    x = faces()
    views = tta_views(x, "tencrop")  # (10, B, 1, 48, 48)
    assert views.shape == (10, 3, 1, 48, 48) and views.flags.c_contiguous
    crops = TF.five_crop(torch.from_numpy(x), 44)  # 44 of 48 pixels: the up-to-10% zoom seen in training
    for i, crop in enumerate(crops):
        scaled = F.interpolate(crop, size=(48, 48), mode="bilinear", align_corners=False).numpy()
        np.testing.assert_allclose(views[i], scaled, atol=2e-3, err_msg=f"view {i} is not crop {i}")  # of 255
        assert np.array_equal(views[5 + i], views[i][..., ::-1]), f"view {5 + i} is not the mirror of view {i}"


def test_bilinear_matrix_keeps_constant_images_and_rows_sum_to_one():
    matrix = bilinear_matrix(44, 48)
    np.testing.assert_allclose(matrix.sum(1), 1.0, atol=1e-6)
    flat = np.full((1, 1, 48, 48), 77.0, dtype=np.float32)
    np.testing.assert_allclose(tta_views(flat, "tencrop"), 77.0, atol=1e-4)


def test_tencrop_is_the_mean_of_the_ten_softmaxes():
    x = faces()
    views = tta_views(x, "tencrop")
    expected = np.stack([softmax(view) for view in views]).mean(0)
    np.testing.assert_allclose(predict_probabilities(pixel_logits, x, "tencrop"), expected, atol=1e-6)


def test_each_face_gets_its_own_answer_in_a_batch():
    x = faces(5)
    for mode in TTA_MODES:
        together = predict_probabilities(pixel_logits, x, mode)
        alone = np.concatenate([predict_probabilities(pixel_logits, x[i : i + 1], mode) for i in range(5)])
        np.testing.assert_allclose(together, alone, atol=1e-6, err_msg=mode)


def test_flip_of_a_mirror_symmetric_face_changes_nothing():
    half = faces(1)[..., :24]
    symmetric = np.concatenate([half, half[..., ::-1]], -1)
    np.testing.assert_allclose(predict_probabilities(pixel_logits, symmetric, "flip"), softmax(symmetric), atol=1e-6)


def test_probabilities_are_float32_rows_that_sum_to_one():
    for mode in TTA_MODES:
        probabilities = predict_probabilities(pixel_logits, faces(4).astype(np.uint8), mode)
        assert probabilities.dtype == np.float32 and probabilities.shape == (4, 7)
        np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("mode", ["fivecrop", "zoom", "", "FLIP"])  # names on either side of the real ones
def test_unknown_mode_is_refused(mode):
    with pytest.raises(ValueError, match="unknown TTA mode"):
        tta_views(faces(), mode)
    with pytest.raises(ValueError, match="unknown TTA mode"):
        predict_probabilities(pixel_logits, faces(), mode)


@pytest.mark.parametrize("mode", TTA_MODES)
def test_logits_too_large_for_exp_still_give_probabilities(mode):
    # A confident float32 model can give logits of 100 or more: exp(100) overflows float32 unless
    # the softmax subtracts each row's largest logit first.
    def confident(views: np.ndarray) -> np.ndarray:
        logits = np.zeros((len(views), 7), np.float32)
        logits[:, 3], logits[:, 0] = 120.0, 120.0 - np.log(3.0)  # happy three times as likely as angry
        return logits

    probabilities = predict_probabilities(confident, faces(2), mode)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities[:, [3, 0]], [[0.75, 0.25]] * 2, atol=1e-5)


@pytest.mark.parametrize("mode", TTA_MODES)
def test_tta_views_counts_the_views_each_mode_gives(mode):
    assert tta_views(faces(2), mode).shape == (TTA_VIEWS[mode], 2, 1, 48, 48)


def test_a_window_models_tencrop_puts_each_of_the_five_40_pixel_crops_where_it_looks():
    # A model trained on 40-pixel windows classifies the centre 40x40 of what it is given (4 pixels in):
    # its ten views must show it torchvision's five_crop(face, 40), then their mirrors, unscaled.
    x = faces()
    views = tta_views(x, "tencrop", window=40)
    assert views.shape == (10, 3, 1, 48, 48) and views.flags.c_contiguous
    five_crops = [x[..., :40, :40], x[..., :40, 8:], x[..., 8:, :40], x[..., 8:, 8:], x[..., 4:44, 4:44]]
    for i, crop in enumerate(five_crops):
        assert np.array_equal(views[i][..., 4:44, 4:44], crop), f"view {i} does not show crop {i}"
        assert np.array_equal(views[5 + i][..., 4:44, 4:44], crop[..., ::-1]), f"view {5 + i} is not its mirror"


@pytest.mark.parametrize("mode", ["none", "flip"])
def test_a_window_changes_only_ten_crop(mode):
    x = faces()
    assert np.array_equal(tta_views(x, mode, window=40), tta_views(x, mode))


def test_a_window_models_tencrop_is_the_mean_of_its_ten_softmaxes():
    def centre_window_logits(views: np.ndarray) -> np.ndarray:  # sees only the centre 40x40
        return pixel_logits(np.pad(views[..., 4:44, 4:44], ((0, 0), (0, 0), (4, 4), (4, 4))))

    x = faces()
    crops = [x[..., :40, :40], x[..., :40, 8:], x[..., 8:, :40], x[..., 8:, 8:], x[..., 4:44, 4:44]]
    padded = [np.pad(c, ((0, 0), (0, 0), (4, 4), (4, 4))) for c in crops]
    expected = np.mean([softmax(p) for p in padded] + [softmax(p[..., ::-1]) for p in padded], axis=0)
    actual = predict_probabilities(centre_window_logits, x, "tencrop", window=40)
    np.testing.assert_allclose(actual, expected, atol=1e-6)
