import pytest
import torch

from fer.models import ARCHITECTURES, build_model, describe_model, training_input_size


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_forward_and_backward(name):
    model = build_model(name).to(memory_format=torch.channels_last)
    pixels = torch.rand(4, 1, 48, 48) * 255
    logits = model(pixels)
    assert logits.shape == (4, 7)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 6])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["vgg_slim", "resnet_slim"])
def test_bf16_autocast_on_cpu(name):
    model = build_model(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.rand(2, 1, 48, 48) * 255)
    assert logits.dtype == torch.bfloat16
    logits.float().sum().backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())


def test_models_normalize_raw_pixels_inside():
    model = build_model("vgg_slim")
    normalized = model.normalize(torch.full((1, 1, 48, 48), 0.5136 * 255))
    assert abs(float(normalized.mean())) < 1e-3


def test_describe_model_counts_parameters_and_flops():
    summary = describe_model("vgg_slim")
    assert summary.parameters == sum(p.numel() for p in build_model("vgg_slim").parameters())
    # first conv alone: 48*48 outputs x 32 channels x 9 taps x 2 FLOPs
    assert summary.flops_per_face > 48 * 48 * 32 * 9 * 2
    assert describe_model("vgg").flops_per_face > 3 * summary.flops_per_face


def test_unknown_architecture_names_the_choices():
    with pytest.raises(ValueError, match="choose from vgg, vgg_slim, vgg40, vgg_slim40, resnet18, resnet_slim"):
        build_model("alexnet")


@pytest.mark.parametrize("name", ["vgg40", "vgg_slim40"])
def test_a_crop_trained_model_classifies_the_centre_of_a_whole_face(name):
    # Trained on 40x40 windows, it is given 48x48 faces everywhere else (predictor, TTA, ONNX).
    assert training_input_size(name) == 40
    model = build_model(name).eval()
    faces = torch.rand(3, 1, 48, 48) * 255
    with torch.no_grad():
        whole, centre = model(faces), model(faces[..., 4:44, 4:44].contiguous())
        border_changed = faces.clone()
        border_changed[..., :4, :] = 0
        border_changed[..., :, 44:] = 255
    assert torch.equal(whole, centre)
    assert torch.equal(model(border_changed), whole)  # nothing outside the centre counts
    assert describe_model(name).flops_per_face < 0.75 * describe_model(name.removesuffix("40")).flops_per_face


def test_every_other_architecture_trains_on_whole_faces():
    whole_face = ("vgg", "vgg_slim", "resnet18", "resnet_slim")
    assert {name: training_input_size(name) for name in whole_face} == dict.fromkeys(whole_face, 48)
