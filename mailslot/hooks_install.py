"""Installing the git hook trampolines into a mailroom (``core.hooksPath``)."""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from mailslot import vcs
from mailslot.mailroom import Mailroom

HOOKS = ("post-commit", "post-merge", "post-rewrite", "post-checkout")


def mailslot_bin() -> str:
    """The absolute path of the running ``mailslot`` script (hooks must not depend on PATH)."""
    script = Path(sys.argv[0])
    if script.name == "mailslot" and script.exists():
        return str(script.resolve())
    found = shutil.which("mailslot")
    return str(Path(found).resolve()) if found else str(Path(sys.executable).with_name("mailslot"))


def install(room: Mailroom) -> Path:
    """Copy the trampolines to ``.git/mailslot/hooks``, point ``core.hooksPath`` there and record
    the ``mailslot`` executable in ``mailslot.bin``. Idempotent; replaces other hooks of this clone."""
    target = room.state_dir / "hooks"
    target.mkdir(parents=True, exist_ok=True)
    source = resources.files("mailslot").joinpath("hooks")
    for name in HOOKS:
        path = target / name
        path.write_bytes(source.joinpath(name).read_bytes())
        path.chmod(0o755)
    vcs.git(room, "config", "core.hooksPath", str(target))
    vcs.git(room, "config", "core.splitIndex", "true")  # as `init` sets it: clones need it too
    vcs.git(room, "config", "mailslot.bin", mailslot_bin())
    return target


def uninstall(room: Mailroom) -> None:
    """Unset ``core.hooksPath`` if it points at mailslot's hooks, and remove them."""
    current = vcs.git(room, "config", "--get", "core.hooksPath", check=False).strip()
    if current == str(room.state_dir / "hooks"):
        vcs.git(room, "config", "--unset", "core.hooksPath")
    shutil.rmtree(room.state_dir / "hooks", ignore_errors=True)


def installed(room: Mailroom) -> bool:
    return (room.state_dir / "hooks" / "post-commit").exists()
