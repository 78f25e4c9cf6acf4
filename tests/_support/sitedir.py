"""Plugin distributions written straight into a directory on ``sys.path``.

A dist-info and the package's modules, as an installer leaves them, without pip:
the in-process trust tests install, upgrade and remove packages in milliseconds.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import textwrap
import uuid
from pathlib import Path

from plugin_registry.kinds.cluster_environment import ClusterEnvironment


class SiteDir:
    """A directory on ``sys.path`` holding distributions written by the tests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def install(
        self,
        dist: str,
        modules: dict[str, str],
        entry_point: str | None = None,
        version: str = "1.0",
    ) -> Path:
        """Write ``modules`` (``name.py`` -> source) and a dist-info naming ``entry_point``."""
        self.remove(dist)
        for name, source in modules.items():
            file = self.path / name
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(textwrap.dedent(source))
        norm = dist.replace("-", "_")
        info = self.path / f"{norm}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        if entry_point is not None:
            (info / "entry_points.txt").write_text(f"[plugin_registry]\nplugins = {entry_point}\n")
        for module in list(sys.modules):
            if any(module.split(".")[0] == Path(n).parts[0].removesuffix(".py") for n in modules):
                del sys.modules[module]
        importlib.invalidate_caches()
        return info

    def remove(self, dist: str) -> None:
        norm = dist.replace("-", "_")
        for info in self.path.glob(f"{norm}-*.dist-info"):
            shutil.rmtree(info)
        importlib.invalidate_caches()


def registration(kind: str, *records: str, preamble: str = "") -> str:
    """A registration module whose hook for ``kind`` returns ``records`` (source text)."""
    body = ", ".join(records)
    return (
        "from plugin_registry import PluginInfo, hookimpl\n"
        + textwrap.dedent(preamble)
        + f"\n@hookimpl\ndef plugin_registry_{kind}_plugins():\n    return [{body}]\n"
    )


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def env_class_module() -> str:
    """Source of a module with ``Env``, a minimal cluster environment (indented; dedent it)."""
    from tests._support.packages import _ENV_CLASS

    return _ENV_CLASS.format(cls="Env")


class StubEnvironment(ClusterEnvironment):
    """A minimal cluster environment for plugins registered in-process by the tests."""

    creates_processes_externally = True
    main_address = "127.0.0.1"
    main_port = 29500

    @staticmethod
    def detect() -> bool:
        return False

    def world_size(self) -> int:
        return 1

    def set_world_size(self, size: int) -> None:
        pass

    def global_rank(self) -> int:
        return 0

    def set_global_rank(self, rank: int) -> None:
        pass

    def local_rank(self) -> int:
        return 0

    def node_rank(self) -> int:
        return 0


def install_env_package(
    site: SiteDir, dist: str, name: str, *, preamble: str = "", extra: str = ""
) -> str:
    """A package registering one cluster environment ``name``; returns its module name."""
    mod = unique(dist.replace("-", "_"))
    record = f'PluginInfo(name="{name}", kind="cluster_environment", target="{mod}.env:Env"{extra})'
    site.install(
        dist,
        {
            f"{mod}/__init__.py": "",
            f"{mod}/env.py": env_class_module(),
            f"{mod}/registration.py": registration(
                "cluster_environment", record, preamble=preamble
            ),
        },
        f"{mod}.registration",
    )
    return mod
