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
            name="acme-bf16",
            kind="precision",
            target="acme_plugins.precision:BF16Autocast",
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
    # One record serves three names: acme-compressed-gzip, -bz2 and -lzma.
    # Loading "acme-compressed-lzma" calls CompressedCheckpointIO(codec="lzma").
    return [
        PluginInfo(
            name="acme-compressed-{codec}",
            kind="checkpoint_io",
            target="acme_plugins.compressed_io:CompressedCheckpointIO",
            name_parameters={"codec": ("gzip", "bz2", "lzma")},
            aliases=("acme-compressed",),
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
            name="acme-scheduler",
            kind="cluster_environment",
            target="acme_plugins.environment:SchedulerEnvironment",
            aliases=("acme",),
            summary="Processes started by the ACME scheduler (ACME_* variables).",
            # Launchers run on any accelerator.
            accelerators=("any",),
            priority=5,
        )
    ]
