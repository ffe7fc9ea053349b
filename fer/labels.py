"""The 7 FER2013 emotions, defined once, in the order of the FER2013 CSV's `emotion` column.

Folder names map to these indices by name, never by sorted order: sorting the Kaggle folders gives
angry, disgust, fear, happy, neutral, sad, surprise, which would silently swap neutral, sad and
surprise against the CSV order.
"""

from collections.abc import Mapping, Sequence

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)


def emotion_index(name: str) -> int:
    """Index of an emotion name in `EMOTIONS`, case-insensitive: `emotion_index("Sad") == 4`."""
    key = name.strip().lower()
    try:
        return EMOTIONS.index(key)
    except ValueError:
        raise KeyError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}") from None


def emotion_shares(counts: Mapping[str, int]) -> str:
    """{'happy': 29, 'sad': 1} -> 'happy 97%, sad 3%' (EMOTIONS order, absent ones left out), or 'none'."""
    total = sum(counts.values())
    if not total:
        return "none"
    return ", ".join(f"{e} {counts[e] / total:.0%}" for e in EMOTIONS if counts.get(e))


def check_labels(labels: Sequence[str], source: str) -> None:
    """Raise ValueError unless `labels` (from a weights file or checkpoint) equal `EMOTIONS`."""
    if tuple(labels) != EMOTIONS:
        raise ValueError(f"{source} was trained for labels {list(labels)}, but fer uses {list(EMOTIONS)}")
