"""Response bodies of the API, with the examples shown in the OpenAPI docs at /docs."""

from pydantic import BaseModel, Field

from fer.card import InputSpec, Metrics, ModelCard, TtaMode
from fer.labels import EMOTIONS

EXAMPLE_SCORES = dict(zip(EMOTIONS, [0.02, 0.0, 0.01, 0.93, 0.01, 0.01, 0.02]))


class Face(BaseModel):
    box: list[int] = Field(min_length=4, max_length=4, description="x, y, width, height in image pixels")
    emotion: str = Field(description="the most probable emotion", examples=["happy"])
    score: float = Field(description="its probability", examples=[0.93])
    scores: dict[str, float] = Field(description="probability of each of the 7 emotions")
    detected: bool = Field(
        True,
        description="false: the detector found no face, and the whole image, shaped as a face crop (near square, "
        "at most 512 px), was classified as one",
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "box": [84, 40, 120, 120],
                    "emotion": "happy",
                    "score": 0.93,
                    "scores": EXAMPLE_SCORES,
                    "detected": True,
                }
            ]
        }
    }


class ImageSize(BaseModel):
    width: int
    height: int


class ImageResult(BaseModel):
    faces: list[Face] = Field(description="largest face first; empty when none is found")
    dropped_faces: int = Field(0, description="faces found beyond the server's limit (the smallest), not classified")
    image: ImageSize = Field(description="size after EXIF orientation")


class PredictResponse(ImageResult):
    model: str = Field(
        description="name and weights hash of the model that answered", examples=["fer-v3@6018090377ac+int8"]
    )
    elapsed_ms: float = Field(description="time the server spent on the request")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["unsupported_format"])
    message: str = Field(examples=["GIF images are not accepted; send JPEG, PNG, WEBP or BMP"])


class ErrorBody(BaseModel):
    error: ErrorDetail


class BatchItem(BaseModel):
    """One image of a batch: its result, or its error when that image alone was bad."""

    faces: list[Face] | None = None
    dropped_faces: int | None = None
    image: ImageSize | None = None
    error: ErrorDetail | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem] = Field(description="one per uploaded image, in upload order")
    model: str
    elapsed_ms: float


class ServedModel(BaseModel):
    """The model this server runs: where and how, with its card (fer.card.ModelCard) in full."""

    id: str = Field(examples=["fer-v3@6018090377ac+int8"])
    name: str
    arch: str = Field(examples=["vgg_slim"])
    labels: list[str] = Field(examples=[list(EMOTIONS)])
    input: InputSpec | None = Field(description="shape, color and normalization the model expects")
    parameters: int | None = None
    flops_per_face: int | None = None
    metrics: Metrics = Field(description="validation accuracy and macro F1 per TTA mode, of the engine that runs")
    default_tta: TtaMode
    device: str = Field(description="where this server runs the model", examples=["cuda", "cpu"])
    precision: str = Field(examples=["float16", "float32", "int8"])
    backend: str = Field(
        description="the engine running the model", examples=["onnxruntime-int8", "onnxruntime", "torch"]
    )
    engine_reason: str = Field(
        description="why this engine runs here",
        examples=["int8 is within 0.5% of float32 on validation and its 7-bit weights cannot saturate on any CPU"],
    )
    cpu: str = Field(description="the server's CPU and its instruction sets (fer.cpu)", examples=["AMD EPYC (AVX2)"])
    detector: str = Field(description="the face detector (FER_DETECTOR)", examples=["mtcnn", "haar", "blazeface"])
    version: str = Field(description="version of the fer package serving it")
    exported: str | None = None
    card: ModelCard = Field(description="the weights' model card, as fer export wrote it (or as a .pt gives it)")


class Status(BaseModel):
    status: str = Field(examples=["ok"])
