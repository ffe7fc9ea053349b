"""argparse as every fer command line uses it: `fer`, scripts/webcam_demo.py and the trainers
(`python -m training.train`, `python -m training.distill`)."""

import argparse
from typing import NoReturn


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line, like every other user error, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
