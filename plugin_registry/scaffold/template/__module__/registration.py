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
            # The precision= value it implements: resolve(precision="bf16-mixed") considers it.
            provides=("bf16-mixed",),
            accelerators=("cpu", "cuda"),
            requires=("torch>=2.4",),
            # Below the built-in bf16-mixed: chosen by name, or by raising its priority.
            priority=-1,
        )
    ]


@hookimpl
def plugin_registry_checkpoint_io_plugins() -> list[PluginInfo]:
    # One record serves three names: $prefix-compressed-gzip, -bz2 and -lzma.
    # Loading "$prefix-compressed-lzma" calls CompressedCheckpointIO(codec="lzma").
    return [
        PluginInfo(
            name="$prefix-compressed-{codec}",
            kind="checkpoint_io",
            target="$module.compressed_io:CompressedCheckpointIO",
            name_parameters={"codec": ("gzip", "bz2", "lzma")},
            aliases=("$prefix-compressed",),
            parameters={"codec": "gzip", "level": 6},
            requires=("torch>=2.4",),
            summary="torch.save through a stdlib compressor; atomic, weights_only loads.",
            accelerators=("cpu", "cuda"),
            priority=-1,
        )
    ]


@hookimpl
def plugin_registry_cluster_environment_plugins() -> list[PluginInfo]:
    return [
        PluginInfo(
            name="$prefix-scheduler",
            kind="cluster_environment",
            target="$module.environment:SchedulerEnvironment",
            aliases=("$prefix",),
            summary="Processes started by the ${PREFIX} scheduler (${PREFIX}_* variables).",
            # Launchers run on any accelerator.
            accelerators=("any",),
            priority=5,
        )
    ]
