"""`python -m fer_cli ...` is the `fer` command."""

import sys

from fer_cli.main import main

sys.exit(main())
