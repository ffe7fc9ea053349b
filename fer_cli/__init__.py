"""The `fer` command line: the one layer that sits on top of the library (`fer`), the trainer
(`training`) and the server (`api`); none of them imports it.

Parsing imports nothing heavy (see fer.options), so `fer --help` and flag mistakes answer at once;
each command imports what it needs when it runs (fer_cli.commands).
"""
