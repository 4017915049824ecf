"""What a new user reads first: every option of every command says what it does, and shared options agree."""

from __future__ import annotations

import click
import pytest

from nerwheel.cli import cli


def _commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    out: list[tuple[str, click.Command]] = []

    def walk(cmd: click.Command, path: str) -> None:
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), f"{path} {name}")

    walk(cli, "nerwheel")
    return out


COMMANDS = _commands()


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_option_has_help(path: str, cmd: click.Command) -> None:
    bare = [o.opts[-1] for o in cmd.params if isinstance(o, click.Option) and not (o.help or "").strip()]
    assert not bare, f"{path}: options without help text: {bare}"


def test_every_format_option_offers_the_formats_data_reads() -> None:
    def choices(path: str, name: str = "fmt") -> list[str]:
        cmd = dict(COMMANDS)[path]
        (opt,) = [p for p in cmd.params if p.name == name]
        assert isinstance(opt.type, click.Choice), f"{path} {opt.opts}: free text instead of the format names"
        return list(opt.type.choices)

    reference = choices("nerwheel data validate")
    assert reference == ["conll", "labelstudio", "mgeo", "sft", "spans", "text"]
    for path in ("nerwheel annotate", "nerwheel data stats"):
        assert choices(path) == reference, path
    # commands that take --task also offer the classifier's message formats
    with_messages = sorted({*reference, "json", "jsonl", "csv", "tsv", "text"})
    for path in ("nerwheel evaluate", "nerwheel predict"):
        assert choices(path) == with_messages, path
