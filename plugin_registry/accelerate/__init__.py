"""Run registry plugins inside Hugging Face Accelerate.

``Accelerator`` from here is Accelerate's, taking registry plugin names, records and
instances, and ``precision="auto"`` (the resolver's choice for this hardware)::

    from plugin_registry.accelerate import Accelerator

    accelerator = Accelerator(plugins=["bitsandbytes-nf4", "slurm", "torch"])
    model, optimizer = accelerator.prepare(model, optimizer)

Everything else is Accelerate's own: its arguments (``mixed_precision="bf16"``
still works), ``prepare``, ``backward``, ``accumulate``, ``save_state``. Needs the
``[accelerate]`` extra.
"""

from __future__ import annotations

try:
    import accelerate  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "plugin_registry.accelerate needs Accelerate: pip install 'plugin-registry[accelerate]'"
    ) from exc

from plugin_registry.accelerate.accelerator import Accelerator

__all__ = ["Accelerator"]
