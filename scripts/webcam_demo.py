"""Live emotion overlay from a camera, a video file or a stream; the same as `fer webcam`.

    python scripts/webcam_demo.py [--source 0|video.mp4|rtsp://...] [--api URL] [--headless] [--output out.mp4]

See `python scripts/webcam_demo.py --help` and docs/webcam.md.
"""

import sys

from fer_cli.main import webcam_demo_main

if __name__ == "__main__":
    sys.exit(webcam_demo_main())
