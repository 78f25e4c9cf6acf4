"""``resolve_on_all_ranks()`` in one process of a job, under whatever launcher started it.

    python tests/workers/agree_worker.py OUT_DIR

The group is formed from the detected environment's answers (gloo); the
resolution asks for ``bitsandbytes-nf4``, whose record requires bitsandbytes.
Writes OUT_DIR/agree-<rank>.json: ``{"rank", "host", "node_rank", "names" | "error"}``.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def main() -> None:
    import torch.distributed as dist

    import plugin_registry as pr
    from plugin_registry.resolver import ResolutionError, resolve_on_all_ranks
    from plugin_registry.resolver.preferences import Preferences
    from tests.workers.launcher_worker import form_group

    out = sys.argv[1]
    env = pr.load(f"cluster_environment/{pr.detect_environment().name}")
    form_group(env)
    result: dict[str, object] = {
        "rank": env.global_rank(),
        "host": socket.gethostname(),
        "node_rank": env.node_rank(),
    }
    try:
        res = resolve_on_all_ranks(plugins=["bitsandbytes-nf4"], preferences=Preferences())
        result["names"] = res.names()
    except ResolutionError as exc:
        result["error"] = str(exc)
    finally:
        dist.destroy_process_group()
    with open(os.path.join(out, f"agree-{result['rank']}.json"), "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
