"""The command line (search.cli.main): flags shared by commands, and the commands by role."""

from search.cli.main import main

__all__ = ["main"]
