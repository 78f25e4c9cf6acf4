"""The distributions installed on ``sys.path``, from their metadata directories.

The one dist-info scanner: discovery (which packages declare our entry points),
the requirement checks (which versions are installed) and the doctor (which
distribution is installed twice) all read this. Each ``sys.path`` directory is
listed once for ``*.dist-info`` / ``*.egg-info`` entries; name and version come
from the entry's name (``name-version.dist-info``, what every installer writes)
or, failing that, from its METADATA / PKG-INFO headers. Nothing is imported,
and importlib-metadata's private attributes are never read.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Iterator

from plugin_registry.names import normalize_distribution, split_metadata_dir

_SUFFIXES = (".dist-info", ".egg-info")


@dataclasses.dataclass(frozen=True)
class InstalledDistribution:
    """One metadata directory on the path."""

    #: PEP 503 normalised name.
    name: str
    version: str
    metadata_dir: str
    #: The ``sys.path`` entry it was found in.
    path_entry: str


def installed(paths: Iterable[str] | None = None) -> Iterator[InstalledDistribution]:
    """Every distribution on ``paths`` (``sys.path``), in path order, duplicates included."""
    for entry in sys.path if paths is None else paths:
        directory = entry or os.getcwd()
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(_SUFFIXES))
        except OSError:
            continue  # a zip file, a missing directory: no metadata directories in it
        for name in names:
            path = os.path.join(directory, name)
            dist, version = name_and_version(path)
            if dist:
                yield InstalledDistribution(normalize_distribution(dist), version, path, entry)


def first_of_each(paths: Iterable[str] | None = None) -> Iterator[InstalledDistribution]:
    """The distribution an import would use: the first of each name on the path."""
    seen: set[str] = set()
    for dist in installed(paths):
        if dist.name not in seen:
            seen.add(dist.name)
            yield dist


def name_and_version(path: str) -> tuple[str, str]:
    """``(name, version)`` of a metadata directory; ``("", "")`` when unreadable."""
    from_name = split_metadata_dir(path)
    if from_name is not None:
        return from_name
    dist = os.path.basename(path).rsplit(".", 1)[0]
    metadata = path
    if os.path.isdir(path):
        metadata = os.path.join(path, "METADATA" if path.endswith(".dist-info") else "PKG-INFO")
    name = version = ""
    try:
        with open(metadata, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("Name:"):
                    name = line.partition(":")[2].strip()
                elif line.startswith("Version:"):
                    version = line.partition(":")[2].strip()
                elif not line.strip():
                    break
    except OSError:
        return "", ""
    return name or dist, version
