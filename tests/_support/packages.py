"""Third-party plugin packages the tests install: good, conflicting and broken.

Each entry is ``dist -> (version, files, entry_points.txt)``. Every fault that
must not break listing (issue 3, point 7) has a package of its own.
"""

from __future__ import annotations

from pathlib import Path

from tests._support.support import write_wheel

_ENV_CLASS = """
    import os
    from plugin_registry.kinds.cluster_environment import ClusterEnvironment

    class {cls}(ClusterEnvironment):
        creates_processes_externally = True
        main_address = "127.0.0.1"
        main_port = 29500
        @staticmethod
        def detect():
            return False
        def world_size(self):
            return 1
        def set_world_size(self, size):
            pass
        def global_rank(self):
            return 0
        def set_global_rank(self, rank):
            pass
        def local_rank(self):
            return 0
        def node_rank(self):
            return 0
"""


def _ep(module: str, name: str = "plugins") -> str:
    return f"[plugin_registry]\n{name} = {module}\n"


PACKAGES: dict[str, tuple[str, dict[str, str], str]] = {
    # Registers a name the example package registers too.
    "acme-conflict": (
        "1.0",
        {
            "acme_conflict/__init__.py": "",
            "acme_conflict/env.py": _ENV_CLASS.format(cls="OtherEnvironment"),
            "acme_conflict/registration.py": """
                from plugin_registry import PluginInfo, hookimpl

                @hookimpl
                def plugin_registry_cluster_environment_plugins():
                    return [PluginInfo(name="acme-scheduler", kind="cluster_environment",
                                       target="acme_conflict.env:OtherEnvironment")]
            """,
        },
        _ep("acme_conflict.registration"),
    ),
    # One name in two kinds.
    "multi-kind": (
        "1.0",
        {
            "multi_kind/__init__.py": "",
            "multi_kind/env.py": _ENV_CLASS.format(cls="DualEnvironment"),
            "multi_kind/io.py": """
                import torch
                from plugin_registry.kinds.checkpoint_io import CheckpointIO

                class DualIO(CheckpointIO):
                    def save_checkpoint(self, checkpoint, path, storage_options=None):
                        torch.save(checkpoint, path)
                    def load_checkpoint(self, path, map_location=None, weights_only=None):
                        return torch.load(path, map_location=map_location, weights_only=True)
                    def remove_checkpoint(self, path):
                        import os
                        os.remove(path)
            """,
            "multi_kind/registration.py": """
                from plugin_registry import PluginInfo, hookimpl

                @hookimpl
                def plugin_registry_cluster_environment_plugins():
                    return [PluginInfo(name="dual", kind="cluster_environment",
                                       target="multi_kind.env:DualEnvironment")]

                @hookimpl
                def plugin_registry_checkpoint_io_plugins():
                    return [PluginInfo(name="dual", kind="checkpoint_io",
                                       target="multi_kind.io:DualIO")]
            """,
        },
        _ep("multi_kind.registration"),
    ),
    # Installed but its requirements are not: listed as unavailable.
    "needs-missing": (
        "1.0",
        {
            "needs_missing/__init__.py": "",
            "needs_missing/registration.py": """
                from plugin_registry import PluginInfo, hookimpl

                @hookimpl
                def plugin_registry_checkpoint_io_plugins():
                    return [
                        PluginInfo(name="needs-missing-lib", kind="checkpoint_io",
                                   target="needs_missing.io:IO",
                                   requires=("definitely-not-installed-lib>=1.0",)),
                        PluginInfo(name="needs-newer-torch", kind="checkpoint_io",
                                   target="needs_missing.io:IO", requires=("torch>=99",),
                                   install_hint="pip install 'needs-missing[future]'"),
                    ]
            """,
        },
        _ep("needs_missing.registration"),
    ),
    "broken-import": (
        "1.0",
        {
            "broken_import/__init__.py": "",
            "broken_import/registration.py": "raise RuntimeError('boom at import')\n",
        },
        _ep("broken_import.registration", "broken-import"),
    ),
    "broken-missing-dep": (
        "1.0",
        {
            "broken_missing_dep/__init__.py": "",
            "broken_missing_dep/registration.py": "import not_a_real_module_xyz\n",
        },
        _ep("broken_missing_dep.registration"),
    ),
    "broken-sysexit": (
        "1.0",
        {
            "broken_sysexit/__init__.py": "",
            "broken_sysexit/registration.py": "import sys\nsys.exit(3)\n",
        },
        _ep("broken_sysexit.registration"),
    ),
    # One hook raises; the package's other hook still contributes.
    "broken-hook-raises": (
        "1.0",
        {
            "broken_hook_raises/__init__.py": "",
            "broken_hook_raises/env.py": _ENV_CLASS.format(cls="SurvivorEnvironment"),
            "broken_hook_raises/registration.py": """
                from plugin_registry import PluginInfo, hookimpl

                @hookimpl
                def plugin_registry_precision_plugins():
                    raise ValueError("hook exploded")

                @hookimpl
                def plugin_registry_cluster_environment_plugins():
                    return [PluginInfo(name="survivor-env", kind="cluster_environment",
                                       target="broken_hook_raises.env:SurvivorEnvironment")]
            """,
        },
        _ep("broken_hook_raises.registration"),
    ),
    "broken-wrong-type": (
        "1.0",
        {
            "broken_wrong_type/__init__.py": "",
            "broken_wrong_type/registration.py": """
                from plugin_registry import hookimpl

                @hookimpl
                def plugin_registry_precision_plugins():
                    return {"name": "not-a-list"}

                @hookimpl
                def plugin_registry_checkpoint_io_plugins():
                    return ["a string, not a record"]
            """,
        },
        _ep("broken_wrong_type.registration"),
    ),
    # Invalid records next to a valid one.
    "broken-record": (
        "1.0",
        {
            "broken_record/__init__.py": "",
            "broken_record/env.py": _ENV_CLASS.format(cls="RecordSurvivor"),
            "broken_record/registration.py": """
                from plugin_registry import PluginInfo, hookimpl

                @hookimpl
                def plugin_registry_cluster_environment_plugins():
                    return [
                        PluginInfo(name="bad-target", kind="cluster_environment",
                                   target="no-colon-here"),
                        PluginInfo(name="Bad Name!", kind="cluster_environment",
                                   target="broken_record.env:RecordSurvivor"),
                        PluginInfo(name="wrong-kind", kind="precision",
                                   target="broken_record.env:RecordSurvivor"),
                        PluginInfo(name="record-survivor", kind="cluster_environment",
                                   target="broken_record.env:RecordSurvivor"),
                    ]
            """,
        },
        _ep("broken_record.registration"),
    ),
    "broken-duplicate": (
        "1.0",
        {
            "broken_duplicate/__init__.py": "",
            "broken_duplicate/env.py": _ENV_CLASS.format(cls="Twice"),
            "broken_duplicate/registration.py": """
                from plugin_registry import PluginInfo, hookimpl

                @hookimpl
                def plugin_registry_cluster_environment_plugins():
                    return [
                        PluginInfo(name="twice", kind="cluster_environment",
                                   target="broken_duplicate.env:Twice"),
                        PluginInfo(name="twice", kind="cluster_environment",
                                   target="broken_duplicate.env:Twice", aliases=("other",)),
                    ]
            """,
        },
        _ep("broken_duplicate.registration"),
    ),
    # A malformed entry-point value, and one naming a module that does not exist.
    "broken-entry-point": (
        "1.0",
        {"broken_entry_point/__init__.py": ""},
        "[plugin_registry]\nmalformed = this is not : a valid :: reference!\n"
        "missing-module = nonexistent_module_xyz.registration\n",
    ),
    # A valid record whose target cannot be imported.
    "broken-target": (
        "1.0",
        {
            "broken_target/__init__.py": "",
            "broken_target/registration.py": """
                from plugin_registry import PluginInfo, hookimpl

                @hookimpl
                def plugin_registry_cluster_environment_plugins():
                    return [PluginInfo(name="ghost", kind="cluster_environment",
                                       target="broken_target.gone:Ghost")]
            """,
        },
        _ep("broken_target.registration"),
    ),
    # Works, but drags torch into every listing.
    "heavy-registration": (
        "1.0",
        {
            "heavy_registration/__init__.py": "",
            "heavy_registration/env.py": _ENV_CLASS.format(cls="Heavy"),
            "heavy_registration/registration.py": """
                import torch  # the fault: listing now pays for torch
                from plugin_registry import PluginInfo, hookimpl

                @hookimpl
                def plugin_registry_cluster_environment_plugins():
                    return [PluginInfo(name="heavy", kind="cluster_environment",
                                       target="heavy_registration.env:Heavy")]
            """,
        },
        _ep("heavy_registration.registration"),
    ),
    # An accelerator package: reports its devices through the detection hook
    # (from its "runtime", here the variables SIM_NPU_DEVICES / SIM_NPU_GENERATION)
    # and brings a precision plugin for them.
    "sim-npu": (
        "1.0",
        {
            "sim_npu/__init__.py": "",
            "sim_npu/precision.py": """
                from plugin_registry.kinds.precision import Precision

                class NPUPrecision(Precision):
                    pass
            """,
            "sim_npu/registration.py": """
                import os
                from plugin_registry import PluginInfo, hookimpl

                @hookimpl
                def plugin_registry_detect_hardware():
                    from plugin_registry.machine import Device

                    count = int(os.environ.get("SIM_NPU_DEVICES", "0"))
                    generation = os.environ.get("SIM_NPU_GENERATION", "3")
                    return [Device("npu", i, "SimNPU", ("float32", "bfloat16"),
                                   {"generation": generation}) for i in range(count)]

                @hookimpl
                def plugin_registry_precision_plugins():
                    return [PluginInfo(name="npu-bf16", kind="precision",
                                       target="sim_npu.precision:NPUPrecision",
                                       provides=("bf16-mixed",), accelerators=("npu",),
                                       constraints={"generation": ">=3"})]

                @hookimpl
                def plugin_registry_checkpoint_io_plugins():
                    return [PluginInfo(name="npu-io", kind="checkpoint_io",
                                       target="sim_npu.precision:NPUPrecision",
                                       accelerators=("npu",))]
            """,
        },
        _ep("sim_npu.registration"),
    ),
    # A vendor's fp8 plugin that should win over the built-in Transformer Engine
    # plugin on the hardware it targets (compute capability 9.0+).
    "vendor-fp8": (
        "2.0",
        {
            "vendor_fp8/__init__.py": "",
            "vendor_fp8/fp8.py": """
                from plugin_registry.kinds.precision import Precision

                class VendorFP8(Precision):
                    pass
            """,
            "vendor_fp8/registration.py": """
                from plugin_registry import PluginInfo, hookimpl

                @hookimpl
                def plugin_registry_precision_plugins():
                    return [PluginInfo(name="vendor-fp8", kind="precision",
                                       target="vendor_fp8.fp8:VendorFP8",
                                       provides=("transformer-engine",),
                                       accelerators=("cuda",),
                                       constraints={"compute_capability": ">=9.0"},
                                       priority=10)]
            """,
        },
        _ep("vendor_fp8.registration"),
    ),
    # Its detection hook fails (a driver that is not loaded); resolving still works.
    "flaky-detect": (
        "1.0",
        {
            "flaky_detect/__init__.py": "",
            "flaky_detect/registration.py": """
                from plugin_registry import hookimpl

                @hookimpl
                def plugin_registry_detect_hardware():
                    raise RuntimeError("driver not loaded")
            """,
        },
        _ep("flaky_detect.registration"),
    ),
}

ACCELERATOR = ("sim-npu", "vendor-fp8", "flaky-detect")
GOOD = ("acme-conflict", "multi-kind", "needs-missing")
BROKEN = tuple(name for name in PACKAGES if name.startswith(("broken-", "heavy-")))


def build(dest: Path, name: str, version: str | None = None, **overrides: str) -> Path:
    """The wheel of test package ``name`` (optionally another version or files)."""
    default_version, files, entry_points = PACKAGES[name]
    return write_wheel(dest, name, version or default_version, {**files, **overrides}, entry_points)
