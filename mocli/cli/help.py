"""How ``--help`` reads: options in sections (the option table's panels, in order), the
positional inputs as ``PATH...`` and each command's examples printed as written."""

from __future__ import annotations

from typer.core import TyperArgument, TyperCommand, TyperGroup

from ..options import PANELS


def _usage_pieces(command, ctx) -> list[str]:
    pieces = [command.options_metavar] if command.get_params(ctx) and command.options_metavar else []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            name = (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")
            pieces.append(name if param.required else f"[{name}]")
    return pieces


def _record(param, ctx) -> tuple[str, str] | None:
    """The (name, help) line of one parameter; an argument is named by its metavar alone
    (Typer would add its Python type)."""
    if isinstance(param, TyperArgument):
        if param.hidden:
            return None
        return (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else ""), param.help or ""
    return param.get_help_record(ctx)


def _format_sections(command, ctx, formatter) -> None:
    sections: dict[str, list[tuple[str, str]]] = {}
    for param in command.get_params(ctx):
        record = _record(param, ctx)
        if record is not None:
            sections.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(record)
    order = [p for p in PANELS if p in sections] + [p for p in sections if p not in PANELS]
    for name in order:
        with formatter.section(name):
            formatter.write_dl(sections[name])


def _format_examples(command, formatter) -> None:
    """The epilog is a list of examples: ``# what it does`` lines and commands, kept as
    written (Click would rewrap them into one paragraph)."""
    if command.epilog:
        with formatter.section("Examples"):
            for line in command.epilog.strip("\n").splitlines():
                formatter.write(f"{'':>{formatter.current_indent}}{line}\n" if line else "\n")


class Command(TyperCommand):
    def collect_usage_pieces(self, ctx) -> list[str]:
        return _usage_pieces(self, ctx)

    def format_options(self, ctx, formatter) -> None:
        _format_sections(self, ctx, formatter)

    def format_epilog(self, ctx, formatter) -> None:
        _format_examples(self, formatter)


class Group(TyperGroup):
    def format_options(self, ctx, formatter) -> None:
        _format_sections(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx, formatter) -> None:
        """Each command with its whole one-line summary, wrapped rather than cut short."""
        rows = [(name, (command.help or "").strip().split("\n\n")[0].replace("\n", " "))
                for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def format_epilog(self, ctx, formatter) -> None:
        _format_examples(self, formatter)
