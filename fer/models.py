"""CNN architectures for (B, 1, 48, 48) faces, selectable by name.

    >>> model = build_model("vgg")            # Khaireddin & Chen 2021 style, 73.28% on FER2013
    >>> logits = model(pixels)                # pixels: (B, 1, 48, 48) float in 0..255

Every model starts with `Normalize`, so it takes raw 0..255 pixels: training, the predictor and the
exported ONNX graph all feed the same thing. `describe_model` gives parameters and FLOPs per face.
"""

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from fer.card import InputSpec, Normalization
from fer.labels import NUM_CLASSES
from fer.preprocess import INPUT_SIZE

# FER2013 Training split statistics (pixels / 255), measured over every pixel of the 28,709 training faces.
PIXEL_MEAN = 0.5136
PIXEL_STD = 0.3067


class Normalize(nn.Module):
    """0..255 pixels -> zero mean, unit variance. Constants are buffers so they travel with weights."""

    def __init__(self, mean: float = PIXEL_MEAN, std: float = PIXEL_STD):
        super().__init__()
        self.register_buffer("scale", torch.tensor(1.0 / (255.0 * std)))
        self.register_buffer("shift", torch.tensor(mean / std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale - self.shift


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class VGGNet(nn.Module):
    """Four stages of two 3x3 conv-BN-ReLU blocks and a 2x2 max-pool (48 -> 24 -> 12 -> 6 -> 3),
    then two dropout-regularized fully connected layers, as in Khaireddin & Chen (2021).

    `input_size` below 48 is Khaireddin & Chen's recipe: trained on random 40-pixel crops of the
    augmented face (40 -> 20 -> 10 -> 5 -> 2; 0.7x the FLOPs), it is given the centre crop of a 48x48
    face at test, so that the predictor, TTA and the exported graphs all keep feeding 48x48 faces."""

    def __init__(self, width: int = 64, hidden: int = 1024, dropout: float = 0.4, input_size: int = INPUT_SIZE):
        super().__init__()
        channels = [width, width * 2, width * 4, width * 8]
        stages, in_channels = [], 1
        for out_channels in channels:
            stages += [conv_bn_relu(in_channels, out_channels), conv_bn_relu(out_channels, out_channels)]
            stages.append(nn.MaxPool2d(2))
            in_channels = out_channels
        self.input_size = input_size
        self.normalize = Normalize()
        self.features = nn.Sequential(*stages)
        final = input_size // 16
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels[-1] * final * final, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > self.input_size:  # a whole face given to a crop-trained model: its centre
            x = center_crop(x, self.input_size)
        return self.classifier(self.features(self.normalize(x)))  # (B, 7)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, size, size), the centre (the top-left of two middles, as torchvision)."""
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top : top + size, left : left + size]


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with a projection shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-18 layout for 48x48 faces: a 3x3 stem without max-pool (ImageNet's 7x7 stride-2 stem
    would throw away most of a 48-pixel face), stages at 48, 24, 12, 6 pixels, global average pool."""

    def __init__(self, width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2), dropout: float = 0.2):
        super().__init__()
        self.normalize = Normalize()
        self.stem = conv_bn_relu(1, width)
        layers, in_channels = [], width
        for stage, count in enumerate(blocks):
            out_channels = width * 2**stage
            for block in range(count):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_channels, out_channels, stride))
                in_channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_channels, NUM_CLASSES)
        )
        for module in self.modules():
            if isinstance(module, BasicBlock):
                # Zero-init the last BN of each block: every block starts as the identity, which
                # makes the deep net train like a shallow one early on (Goyal et al. 2017).
                nn.init.zeros_(module.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(self.normalize(x))))  # (B, 7)


ARCHITECTURES: dict[str, partial[nn.Module]] = {
    "vgg": partial(VGGNet, width=64),
    "vgg_slim": partial(VGGNet, width=32, hidden=512),
    # Trained on random 40-pixel crops (training.augment), the published 73% VGG recipe's input.
    "vgg40": partial(VGGNet, width=64, input_size=40),
    "vgg_slim40": partial(VGGNet, width=32, hidden=512, input_size=40),
    "resnet18": partial(ResNet, width=64),
    "resnet_slim": partial(ResNet, width=32),
}


def training_input_size(name: str) -> int:
    """The side of the faces the named architecture trains on: 48, or its training crop's."""
    return ARCHITECTURES[name].keywords.get("input_size", INPUT_SIZE)


def input_spec(name: str) -> InputSpec:
    """What a model of the named architecture takes, as its card records it."""
    window = training_input_size(name)
    return InputSpec(
        shape=[1, INPUT_SIZE, INPUT_SIZE],
        color="grayscale",
        pixels="0..255 float; the model normalizes inside",
        normalization=Normalization(mean=PIXEL_MEAN, std=PIXEL_STD),
        window=window if window < INPUT_SIZE else None,
    )


def build_model(name: str) -> nn.Module:
    """A freshly initialized model of the named architecture (see `ARCHITECTURES`)."""
    try:
        return ARCHITECTURES[name]()
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose from {', '.join(ARCHITECTURES)}") from None


@dataclass(frozen=True)
class ModelSummary:
    name: str
    parameters: int
    flops_per_face: int  # multiply-adds count as 2 FLOPs, as torch's FlopCounterMode counts them


def describe_model(name: str) -> ModelSummary:
    """Parameter count and forward FLOPs for one 48x48 face, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(name).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE))
    parameters = sum(p.numel() for p in model.parameters())
    return ModelSummary(name, parameters, counter.get_total_flops())
