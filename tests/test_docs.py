"""The README stays true: every setting is documented, and so is every CLI command."""

from __future__ import annotations

from pathlib import Path

from kangqiao.cli import app
from kangqiao.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    missing = [f"KANGQIAO_{name.upper()}" for name in Settings.model_fields
               if f"`KANGQIAO_{name.upper()}`" not in README]
    assert not missing, f"document these settings in README.md: {missing}"


def test_every_setting_has_help() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_every_command_is_in_the_readme() -> None:
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in
             app.registered_commands] + [g.name or "" for g in app.registered_groups]
    missing = [n.rstrip("_") for n in names if f"kangqiao {n.rstrip('_')}" not in README]
    assert not missing, f"document these commands in README.md: {missing}"
