"""torchrun, without torchrun's tracebacks: `python -m training.launch` takes exactly torchrun's
arguments and runs torchrun's own code (torch.distributed.run), so everything it does (rendezvous,
restarts, elastic membership) is unchanged.

What changes is how it ends. The trainer already ends every stop in one line: Ctrl+C or SIGTERM says
what last.pt holds and how to resume; a bad setting, an unwritable folder or a foreign checkpoint is an
`error:` line and exit status 2. Under plain torchrun that line is followed by the launcher's own
report: a 20-frame traceback of SignalException after a signal, a ChildFailedError table after a
worker's error. Here the launcher ends quietly instead, with the exit status the workers had (128 +
the signal for a signal, the failed worker's status otherwise).
"""

import sys

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main as torchrun


def main(argv: list[str] | None = None) -> int:
    try:
        torchrun(argv)
    except SignalException as stop:
        return 128 + int(stop.sigval)
    except ChildFailedError as failed:
        rank, failure = failed.get_first_failure()
        print(f"launch: worker {rank} exited with status {failure.exitcode} (its message is above)", file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
