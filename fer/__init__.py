"""fer: facial expression recognition for the 7 FER2013 emotions.

>>> import fer
>>> fer.EMOTIONS
('angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral')
>>> predictor = fer.Predictor.load()
>>> predictor.predict_image("photo.jpg")
"""

from fer.labels import EMOTIONS, NUM_CLASSES

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "NUM_CLASSES", "Predictor", "FaceResult", "__version__"]


def __getattr__(name: str):
    # Predictor pulls in torch and OpenCV; `import fer` for the labels alone stays light.
    if name in ("Predictor", "FaceResult"):
        from fer import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'fer' has no attribute {name!r}")
