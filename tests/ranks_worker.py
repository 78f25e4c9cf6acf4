"""One rank of a 2-process gloo job that resolves its plugins and compares them.

``python tests/ranks_worker.py RANK OUT [BITSANDBYTES_VERSION]``: with a version,
this rank sees that version of bitsandbytes (its metadata first on sys.path),
as a node with another install would.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def shadow_bitsandbytes(version: str) -> None:
    root = Path(tempfile.mkdtemp())
    meta = root / f"bitsandbytes-{version}.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: bitsandbytes\nVersion: {version}\n"
    )
    sys.path.insert(0, str(root))


def main() -> None:
    rank, out = int(sys.argv[1]), Path(sys.argv[2])
    if len(sys.argv) > 3:
        shadow_bitsandbytes(sys.argv[3])
    import torch.distributed as dist

    from plugin_registry.resolver import LockMismatchError, resolve_on_all_ranks
    from plugin_registry.resolver.preferences import Preferences

    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        res = resolve_on_all_ranks(plugins=["bitsandbytes-nf4"], preferences=Preferences())
        result = {"names": res.names()}
    except LockMismatchError as exc:
        result = {"error": str(exc)}
    finally:
        dist.destroy_process_group()
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
