"""The live demo behind `fer webcam` and scripts/webcam_demo.py: per-frame classification (in this
process or through a running server), face tracking with smoothing, the window and the demo loop.
Frame sources and drawing are general library code (fer.video, fer.drawing), shared with
`fer predict`. Nothing here opens a camera or a window at import time."""
