"""Hook implementations declaring the built-in plugins.

Imported on a cache miss by every listing, so it imports nothing but the core's
records: no torch, no plugin module. Each target names the module of one plugin.
"""

from __future__ import annotations

from plugin_registry import PluginInfo, hookimpl

_XLA_HINT = (
    "pip install 'plugin-registry[xla]' in an environment with the torch that torch_xla "
    "was built for (see docs/checkpoint-io.md)"
)


@hookimpl
def plugin_registry_precision_plugins() -> list[PluginInfo]:
    return []


@hookimpl
def plugin_registry_checkpoint_io_plugins() -> list[PluginInfo]:
    return [
        PluginInfo(
            name="torch",
            kind="checkpoint_io",
            target="builtin_plugins.checkpoint_io.torch_io:TorchCheckpointIO",
            summary="torch.save/torch.load; atomic, durable saves; weights_only loads.",
            requires=("torch>=2.4",),
            accelerators=("cpu", "cuda", "mps"),
        ),
        PluginInfo(
            name="async-{checkpoint_io}",
            kind="checkpoint_io",
            target="builtin_plugins.checkpoint_io.async_io:AsyncCheckpointIO",
            name_parameters={"checkpoint_io": ("torch", "xla")},
            aliases=("async",),
            parameters={"max_pending": 2},
            summary="Saves in a background thread: snapshots, ordered, bounded, errors raised.",
            requires=("torch>=2.4",),
            accelerators=("cpu", "cuda", "mps", "xla"),
        ),
        PluginInfo(
            name="xla",
            kind="checkpoint_io",
            target="builtin_plugins.checkpoint_io.xla_io:XLACheckpointIO",
            summary="XLA tensors saved on the CPU by the global main process only.",
            requires=("torch_xla>=2.4",),
            accelerators=("xla",),
            install_hint=_XLA_HINT,
        ),
    ]


@hookimpl
def plugin_registry_cluster_environment_plugins() -> list[PluginInfo]:
    return []
