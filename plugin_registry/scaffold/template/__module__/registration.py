"""Declares the plugins. Imports nothing but plugin_registry's records.

Listing imports this module (once; the result is cached), so it stays light:
the plugin classes live in their own modules, named by ``target`` strings.
"""

from __future__ import annotations

from plugin_registry import PluginInfo, hookimpl


@hookimpl
def plugin_registry_precision_plugins() -> list[PluginInfo]:
    return [
        PluginInfo(
            name="$prefix-bf16",
            kind="precision",
            target="$module.precision:BF16Autocast",
            summary="bfloat16 autocast around the forward pass, float32 weights.",
            provides=("bf16-mixed",),
            accelerators=("cpu", "cuda"),
            # Below the built-in bf16-mixed: chosen by name, or by raising its priority.
            priority=-1,
        )
    ]


@hookimpl
def plugin_registry_checkpoint_io_plugins() -> list[PluginInfo]:
    return [
        PluginInfo(
            name="$prefix-io",
            kind="checkpoint_io",
            target="$module.checkpoint_io:AtomicTorchIO",
            summary="Atomic torch.save (temp file, fsync, rename); weights_only loads.",
            accelerators=("cpu", "cuda"),
            priority=-1,
        )
    ]


@hookimpl
def plugin_registry_cluster_environment_plugins() -> list[PluginInfo]:
    return [
        PluginInfo(
            name="$prefix-env",
            kind="cluster_environment",
            target="$module.environment:Environment",
            summary="Ranks from ${PREFIX}_RANK, ${PREFIX}_WORLD_SIZE, ${PREFIX}_LOCAL_RANK.",
            accelerators=("any",),
            priority=5,
        )
    ]
