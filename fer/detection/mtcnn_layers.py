"""MTCNN's three networks as layers, the one description of them that scripts/detectors/convert.py
builds the shipped ONNX graphs from and fer/detection/mtcnn_torch.py runs in torch on a GPU. Kept in a
module of its own so that neither imports the other or the detector."""

# Each network as layers: (kind, parameter prefix, options), built into ONNX graphs by
# scripts/detectors/convert.py and run in torch by fer/detection/mtcnn_torch.py. "flatten" lays the (N, C, H, W) map out
# as the Caffe models' dense layers expect: width-major, then height, then channels.
LAYERS = {
    "pnet": [
        ("conv", "conv1"),
        ("prelu", "prelu1"),
        ("pool", (2, 2)),
        ("conv", "conv2"),
        ("prelu", "prelu2"),
        ("conv", "conv3"),
        ("prelu", "prelu3"),
    ],
    "rnet": [
        ("conv", "conv1"),
        ("prelu", "prelu1"),
        ("pool", (3, 2)),
        ("conv", "conv2"),
        ("prelu", "prelu2"),
        ("pool", (3, 2)),
        ("conv", "conv3"),
        ("prelu", "prelu3"),
        ("flatten", None),
        ("dense", "dense4"),
        ("prelu", "prelu4"),
    ],
    "onet": [
        ("conv", "conv1"),
        ("prelu", "prelu1"),
        ("pool", (3, 2)),
        ("conv", "conv2"),
        ("prelu", "prelu2"),
        ("pool", (3, 2)),
        ("conv", "conv3"),
        ("prelu", "prelu3"),
        ("pool", (2, 2)),
        ("conv", "conv4"),
        ("prelu", "prelu4"),
        ("flatten", None),
        ("dense", "dense5"),
        ("prelu", "prelu5"),
    ],
}
# Each network's heads, in the order the networks give them: (output name, layer, softmax over classes?)
HEADS = {
    "pnet": [("regression", "conv4_2", False), ("face", "conv4_1", True)],
    "rnet": [("regression", "dense5_2", False), ("face", "dense5_1", True)],
    "onet": [("regression", "dense6_2", False), ("keypoints", "dense6_3", False), ("face", "dense6_1", True)],
}
