"""Subcommands beyond run/stage/config/sql. Each module defines:

    NAME = "report"
    HELP = "one line for `webscale-rl --help`"
    DESCRIPTION = "what it does"; EXAMPLE = "webscale-rl report --run abc"
    def add_arguments(parser): ...
    def run(args, cfg) -> int: ...

and is listed in COMMANDS so the CLI picks it up.
"""

COMMANDS: list[str] = ["audit", "maintain", "export", "report", "serve"]
