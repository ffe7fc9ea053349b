"""Drawing on BGR frames: each face's box, its top emotion with confidence and a bar chart of the 7
probabilities beside it; the FPS, the device and a help line in the corners."""

import cv2
import numpy as np

from fer.detection.framing import Box
from fer.labels import EMOTIONS

# BGR; the same hues as the browser page.
EMOTION_COLORS = {
    "angry": (40, 39, 214),
    "disgust": (75, 86, 140),
    "fear": (189, 103, 148),
    "happy": (44, 160, 44),
    "sad": (180, 119, 31),
    "surprise": (14, 127, 255),
    "neutral": (127, 127, 127),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(
    image: np.ndarray,
    text: str,
    origin: tuple[int, int],
    scale: float,
    color: tuple[int, int, int],
    background: tuple[int, int, int] | None = None,
) -> None:
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, 1)
    x, y = origin
    if background is not None:
        cv2.rectangle(image, (x - 2, y - height - 4), (x + width + 2, y + baseline), background, cv2.FILLED)
    cv2.putText(image, text, (x, y), FONT, scale, color, 1, cv2.LINE_AA)


def draw_face(image: np.ndarray, box: Box, probabilities: np.ndarray) -> None:
    """Box, 'happy 93%' above it, and 7 bars beside it (right of the face, or left at the edge)."""
    x, y, w, h = box
    best = int(np.argmax(probabilities))
    emotion = EMOTIONS[best]
    color = EMOTION_COLORS[emotion]
    thickness = max(2, round(min(image.shape[:2]) / 300))
    cv2.rectangle(image, (x, y), (x + w, y + h), color, thickness)
    scale = max(0.45, min(1.0, w / 220))
    label_y = y - 6 if y > 24 else y + h + 20
    _text(image, f"{emotion} {probabilities[best]:.0%}", (x, label_y), scale, (255, 255, 255), color)

    row, bar_max, name_width = 12, 60, 58
    chart_width = name_width + bar_max + 4
    left = x + w + 8 if x + w + 8 + chart_width <= image.shape[1] else max(0, x - chart_width - 8)
    top = max(0, min(y, image.shape[0] - row * len(EMOTIONS)))
    overlay = image.copy()
    cv2.rectangle(overlay, (left, top), (left + chart_width, top + row * len(EMOTIONS) + 2), (0, 0, 0), cv2.FILLED)
    cv2.addWeighted(overlay, 0.45, image, 0.55, 0, dst=image)  # translucent backing for legibility
    for i, (name, p) in enumerate(zip(EMOTIONS, probabilities)):
        baseline = top + (i + 1) * row
        cv2.putText(image, name, (left + 2, baseline - 2), FONT, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
        bar = int(round(float(p) * bar_max))
        bar_color = EMOTION_COLORS[name] if i == best else (200, 200, 200)
        cv2.rectangle(
            image,
            (left + name_width, baseline - row + 3),
            (left + name_width + bar, baseline - 1),
            bar_color,
            cv2.FILLED,
        )


def draw_status(image: np.ndarray, fps: float, device: str, help_line: str | None) -> None:
    """FPS and device top-left; the key help bottom-left."""
    _text(image, f"{fps:.1f} FPS  {device}", (8, 20), 0.55, (255, 255, 255), (0, 0, 0))
    if help_line:
        _text(image, help_line, (8, image.shape[0] - 8), 0.45, (255, 255, 255), (0, 0, 0))
