"""Declares ACME's plugins. Imports nothing but plugin_registry's records.

Listing imports this module on a cache miss, so it must stay light: the
plugin classes live in their own modules, named by ``target`` strings.
"""

from __future__ import annotations

from plugin_registry import PluginInfo, hookimpl


@hookimpl
def plugin_registry_cluster_environment_plugins() -> list[PluginInfo]:
    return [
        PluginInfo(
            name="acme-scheduler",
            kind="cluster_environment",
            target="acme_plugins.environment:AcmeEnvironment",
            aliases=("acme",),
            summary="Processes started by the ACME scheduler (ACME_* variables).",
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
            requires=("torch>=2.9",),
            summary="torch.save through a stdlib compressor; atomic, weights_only loads.",
        )
    ]
