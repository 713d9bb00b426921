"""buildah with its storage in the cache, not in /var/lib/containers: reused across builds."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Buildah:
    root: Path
    driver: str

    @classmethod
    def in_cache(cls, cache: Path) -> Buildah:
        """overlay when the kernel lets us mount it, else vfs (a full copy per layer)."""
        for driver in ("overlay", "vfs"):
            candidate = cls(root=cache / f"storage-{driver}", driver=driver)
            probe = subprocess.run(candidate.command("images"), capture_output=True, text=True)
            if probe.returncode == 0:
                return candidate
            print(f"[image] storage driver {driver} unusable: {probe.stderr.strip()}", flush=True)
        raise RuntimeError("buildah has no usable storage driver")

    def command(self, *args: str) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.root / "root"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            self.driver,
            *args,
        ]

    def run(self, *args: str) -> None:
        subprocess.run(self.command(*args), check=True)

    def out(self, *args: str) -> str:
        return subprocess.run(
            self.command(*args), check=True, capture_output=True, text=True
        ).stdout.strip()

    def has_image(self, name: str) -> bool:
        probe = subprocess.run(
            self.command("inspect", "--type", "image", name), capture_output=True, text=True
        )
        return probe.returncode == 0

    def unmount_all(self) -> None:
        """Overlay mounts of working containers; the build leaves none, an interrupt may."""
        subprocess.run(self.command("umount", "--all"), capture_output=True, check=False)
