"""A ConfigMap volume written the way the kubelet's atomic writer does, `items` and all."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath


class ConfigMapVolume:
    """`root/..data -> ..<stamp>/` holds the files; each top-level entry is `x -> ..data/x`.

    An update writes a new stamped folder, points `..data_tmp` at it, renames that over
    `..data` (the one atomic step), then fixes the top-level links and removes the old folder.
    With `items`, only the listed keys are projected, each at its path (nested folders
    included); a listed key the ConfigMap lacks is skipped, as for an `optional` volume.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._count = 0

    def write(self, data: dict[str, str], items: list[dict[str, str]] | None = None) -> None:
        payload = (
            {i["path"]: data[i["key"]] for i in items if i["key"] in data}
            if items is not None
            else dict(data)
        )
        self._count += 1
        stamp = f"..2026_12_05_08_00_{self._count:02d}.{os.getpid()}"
        folder = self.root / stamp
        for path, text in payload.items():
            target = folder / PurePosixPath(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        data_link = self.root / "..data"
        old = os.readlink(data_link) if data_link.is_symlink() else None
        os.symlink(stamp, self.root / "..data_tmp")
        os.replace(self.root / "..data_tmp", data_link)
        top = {PurePosixPath(p).parts[0] for p in payload}
        for name in top:
            if not (self.root / name).is_symlink():
                os.symlink(f"..data/{name}", self.root / name)
        for entry in self.root.iterdir():
            if entry.is_symlink() and entry.name != "..data" and entry.name not in top:
                entry.unlink()
        if old is not None:
            shutil.rmtree(self.root / old)


class ConfigMapMount:
    """A ConfigMap volume laid out as the kubelet does: `x -> ..data/x`, `..data -> ..<stamp>`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0

    def stage(self, files: dict[str, str]) -> str:
        """Steps 1-2 of an update: a new timestamped folder and a `..data_tmp` link to it."""
        self._count += 1
        stamp = f"..2026_11_30_12_00_{self._count:02d}.{os.getpid()}"
        folder = self.root / stamp
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
        os.symlink(stamp, self.root / "..data_tmp")
        return stamp

    def swap(self, files: dict[str, str]) -> None:
        """Step 3: rename `..data_tmp` over `..data`; then visible links, then the old folder."""
        data = self.root / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        os.replace(self.root / "..data_tmp", data)
        for name in files:
            if not (self.root / name).is_symlink():
                os.symlink(f"..data/{name}", self.root / name)
        for entry in self.root.iterdir():
            if entry.is_symlink() and entry.name != "..data" and entry.name not in files:
                entry.unlink()
        if old is not None:
            shutil.rmtree(self.root / old)

    def write(self, files: dict[str, str]) -> None:
        """One whole kubelet update."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.stage(files)
        self.swap(files)
