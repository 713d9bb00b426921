"""Debian packages the image build needs, installed when their command is missing."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping


def ensure(commands: Mapping[str, str]) -> None:
    """Install the package of each missing command (command -> package); one apt-get update."""
    missing = sorted({pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None})
    if not missing:
        return
    print(f"[image] apt-get install {' '.join(missing)}", flush=True)
    subprocess.run(["apt-get", "update", "-q"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True)
