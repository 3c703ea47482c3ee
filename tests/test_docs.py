"""Every ``physadv …`` command shown in the README and docs/ names a real sub-command and only options
that command has, so the documentation cannot drift from the CLI unnoticed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer

from physadv.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _shown_commands(page: Path) -> list[str]:
    """``physadv …`` lines of the page's bash/console code blocks, continuation lines joined."""
    blocks = re.findall(r"```(?:bash|console|sh)\n(.*?)```", page.read_text(), re.S)
    commands = []
    for block in blocks:
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.split(" #")[0].strip().removeprefix("$ ")
            if line.startswith("physadv "):
                commands.append(line)
    return commands


def _check(root, command: str) -> str | None:
    words = shlex.split(command)[1:]
    node = root
    while hasattr(node, "commands") and words and words[0] in node.commands:
        node = node.commands[words.pop(0)]
    if hasattr(node, "commands"):
        return f"'{command}': no such sub-command ({', '.join(sorted(node.commands))})"
    options = {o for p in node.params for o in (*p.opts, *p.secondary_opts)}
    unknown = [w.split("=")[0] for w in words if w.startswith("--") and w.split("=")[0] not in options]
    return f"'{command}': unknown option(s) {', '.join(unknown)}" if unknown else None


def test_documented_commands_exist():
    root = typer.main.get_command(app)
    shown = [(page.name, c) for page in PAGES for c in _shown_commands(page)]
    assert len(shown) > 20  # the pages do show commands
    problems = [f"{name}: {p}" for name, c in shown if (p := _check(root, c))]
    assert not problems, "\n".join(problems)


def test_relative_links_resolve():
    """Every relative link and image of the README and docs/ points at a file that exists, from the
    page's own folder (a user trial found docs/world.md's picture pointing at docs/docs/scenes.png)."""
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor in the page
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "\n".join(broken)
