"""argparse as every fer command line uses it: the trainers (`python -m training.train`, `python -m
training.distill`), `fer` and scripts/webcam_demo.py. It lives here, not in the library (fer/ holds
no command-line code) nor in fer_cli (which the trainers must not import, tests/test_layers.py): the
trainers are the lowest command lines, and fer_cli stands on them. Only argparse is imported."""

import argparse
from typing import NoReturn


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line, like every other user error, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
