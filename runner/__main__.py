"""python -m runner: the same as the keystone-upgrade command."""

from runner.cli import run

run()
