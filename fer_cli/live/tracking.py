"""Face tracking across frames by box overlap, with each track's probabilities smoothed by an
exponential moving average, so that labels do not flicker from one frame to the next."""

from dataclasses import dataclass

import numpy as np

from fer.detection.base import box_iou
from fer.detection.framing import Box


@dataclass
class TrackedFace:
    track_id: int
    box: Box
    probabilities: np.ndarray  # (7,) this frame's, as the model gave them
    smoothed: np.ndarray  # (7,) averaged over the track's past frames


@dataclass
class _Track:
    track_id: int
    box: Box
    smoothed: np.ndarray
    missed: int = 0


class FaceTracker:
    """`smooth` is the weight of the past: smoothed = smooth * previous + (1 - smooth) * new.
    0 turns smoothing off. A face matches the previous frame's face whose box overlaps it most (IoU at
    least `min_iou`); a track survives `max_missed` frames without a match (a blink of the detector)."""

    def __init__(self, smooth: float = 0.6, min_iou: float = 0.3, max_missed: int = 5):
        if not 0 <= smooth < 1:
            raise ValueError("smooth must be in [0, 1)")
        self.smooth, self.min_iou, self.max_missed = smooth, min_iou, max_missed
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update(self, boxes: list[Box], probabilities: np.ndarray) -> list[TrackedFace]:
        pairs = sorted(
            (
                (box_iou(box, track.box), face, slot)
                for face, box in enumerate(boxes)
                for slot, track in enumerate(self._tracks)
            ),
            reverse=True,
        )
        match: dict[int, int] = {}  # face index -> track slot, greedy by overlap
        used = set()
        for iou, face, slot in pairs:
            if iou < self.min_iou:
                break
            if face not in match and slot not in used:
                match[face] = slot
                used.add(slot)

        results = []
        for face, box in enumerate(boxes):
            new = np.asarray(probabilities[face], dtype=np.float64)
            if face in match:
                track = self._tracks[match[face]]
                track.smoothed = self.smooth * track.smoothed + (1 - self.smooth) * new
                track.box, track.missed = box, 0
            else:
                track = _Track(self._next_id, box, new.copy())
                self._next_id += 1
                self._tracks.append(track)
                used.add(len(self._tracks) - 1)
            results.append(TrackedFace(track.track_id, box, new, track.smoothed.copy()))

        for slot, track in enumerate(self._tracks):
            if slot not in used:
                track.missed += 1
        self._tracks = [track for track in self._tracks if track.missed <= self.max_missed]
        return results
