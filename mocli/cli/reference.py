"""The command-line reference page (docs/cli.md), generated from the commands' own help so
that the two cannot disagree: ``python -m mocli.cli.reference > docs/cli.md``."""

from __future__ import annotations

import sys

import typer

from .commands import app

WIDTH = 100


def _context(command, name: str, parent=None):
    return command.make_context(name, [], parent=parent, resilient_parsing=True, max_content_width=WIDTH,
                                terminal_width=WIDTH)


def reference_markdown() -> str:
    root = typer.main.get_command(app)
    top = _context(root, "mocli")
    parts = [
        "# Command-line reference",
        "",
        "Generated from the commands' own `--help` by `python -m mocli.cli.reference`; a test",
        "fails when this page and the code disagree. The contract the commands keep is",
        "`../shared/spec/CLI.md`; docs/inputs.md explains inputs, batches and failures.",
        "",
        "```text",
        root.get_help(top).rstrip(),
        "```",
    ]
    for name in root.list_commands(top):
        command = root.get_command(top, name)
        parts += ["", f"## `mocli {name}`", "", "```text", command.get_help(_context(command, name, top)).rstrip(), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
