"""One rank of a 2-process gloo job that resolves its plugins and compares them.

``python tests/workers/ranks_worker.py RANK OUT [BITSANDBYTES_VERSION]``: with a version,
this rank sees that version of bitsandbytes (its metadata first on sys.path),
as a node with another install would. ``WORLD`` (default 2) is the number of
ranks; the rank named by ``DIE_RANK`` ends (status 7) before it resolves.
"""

from __future__ import annotations

import json
import os
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

    from plugin_registry.resolver import ResolutionError, resolve_on_all_ranks
    from plugin_registry.resolver.preferences import Preferences

    world = int(os.environ.get("WORLD", "2"))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    die = os.environ.get("DIE_RANK")
    if die is not None:
        # The survivors start the call together: on a loaded machine one of them must not
        # still be on its way when the other names the ranks that never arrived.
        survivors = dist.new_group([r for r in range(world) if str(r) != die])
        if str(rank) == die:
            os._exit(7)
        dist.barrier(group=survivors)
    plugins = ["bitsandbytes-nf4"] if os.environ.get("DIE_RANK") is None else ["torch"]
    try:
        res = resolve_on_all_ranks(plugins=plugins, preferences=Preferences())
        result = {"names": res.names()}
    except ResolutionError as exc:
        result = {"error": str(exc)}
    finally:
        if os.environ.get("DIE_RANK") is None:  # with a rank gone, teardown would wait
            dist.destroy_process_group()
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
