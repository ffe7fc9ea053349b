"""Live emotion recognition on video: frame sources, face tracking with smoothing, the overlay, and the
demo loop behind `fer webcam` and scripts/webcam_demo.py. Nothing here opens a camera or a window at
import time."""
