"""Hook implementations declaring the built-in plugins.

Imported on a cache miss by every listing, so it imports nothing but the core's
records: no torch, no plugin module. Each target names the module of one plugin.
"""

from __future__ import annotations

from typing import Any

from plugin_registry import Kind, PluginInfo, hookimpl
from plugin_registry.kinds.checkpoint_io import SHARDED_CHECKPOINT

_XLA_HINT = (
    "pip install 'plugin-registry[xla]' into a virtual environment whose torch is the one "
    "torch_xla was built for (torch_xla 2.9 needs torch 2.9)"
)


_TE_HINT = (
    "pip install 'plugin-registry[transformer-engine]' on a machine with CUDA (Transformer "
    "Engine cannot be imported without cudart and cuDNN)"
)


def _builtin(
    kind: Kind, name: str, module: str, cls: str, summary: str, **fields: Any
) -> PluginInfo:
    """A record whose target is ``builtin_plugins.<package of kind>.<module>:<cls>``."""
    package = {"precision": "precision", "cluster_environment": "environments"}[kind]
    return PluginInfo(
        name=name,
        kind=kind,
        target=f"builtin_plugins.{package}.{module}:{cls}",
        summary=summary,
        accelerators=fields.pop("accelerators", ("cpu", "cuda", "mps")),
        **fields,
    )


def _precision(name: str, module: str, cls: str, summary: str, **fields: Any) -> PluginInfo:
    return _builtin("precision", name, module, cls, summary, **fields)


@hookimpl
def plugin_registry_precision_plugins() -> list[PluginInfo]:
    return [
        PluginInfo(
            name="32-true",
            kind="precision",
            target="plugin_registry.kinds.precision:Precision",
            summary="Full precision: float32 everywhere; changes nothing.",
            aliases=("32",),
            accelerators=("cpu", "cuda", "mps", "xla"),
        ),
        _precision(
            "64-true",
            "double",
            "DoublePrecision",
            "float64 parameters, activations and gradients.",
            aliases=("64",),
            accelerators=("cpu", "cuda"),
        ),
        _precision(
            "16-true",
            "half",
            "HalfPrecision",
            "The whole model in float16 (no float32 copy).",
            parameters={"precision": "16-true"},
        ),
        _precision(
            "bf16-true",
            "half",
            "HalfPrecision",
            "The whole model in bfloat16 (no float32 copy).",
            parameters={"precision": "bf16-true"},
        ),
        _precision(
            "16-mixed",
            "mixed",
            "MixedPrecision",
            "float32 weights, float16 autocast, GradScaler loss scaling.",
            parameters={"precision": "16-mixed"},
            aliases=("16",),
        ),
        _precision(
            "bf16-mixed",
            "mixed",
            "MixedPrecision",
            "float32 weights, bfloat16 autocast.",
            parameters={"precision": "bf16-mixed"},
            aliases=("bf16",),
        ),
        _precision(
            "bitsandbytes-{mode}",
            "bitsandbytes",
            "BitsandbytesPrecision",
            "Linear layers quantized by bitsandbytes: nf4/fp4 (4-bit, -dq), int8; CPU and CUDA.",
            name_parameters={"mode": ("nf4", "nf4-dq", "fp4", "fp4-dq", "int8", "int8-training")},
            requires=("bitsandbytes>=0.45",),
            install_hint="pip install 'plugin-registry[bitsandbytes]'",
            shardable=False,
        ),
        _precision(
            "xla-{precision}",
            "xla",
            "XLAPrecision",
            "Training through torch_xla (TPU, or PJRT on the CPU) in 32, 16 or bf16 bits.",
            name_parameters={"precision": ("32-true", "16-true", "bf16-true")},
            aliases=("xla",),
            provides=("{precision}",),
            strategies=("xla",),
            requires=("torch_xla>=2.4",),
            accelerators=("xla",),
            install_hint=_XLA_HINT,
        ),
        _precision(
            "deepspeed-{precision}",
            "deepspeed",
            "DeepSpeedPrecision",
            "DeepSpeed engines: fp16/bf16 config section, engine backward and step.",
            name_parameters={
                "precision": ("32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed")
            },
            aliases=("deepspeed",),
            provides=("{precision}",),
            strategies=("deepspeed",),
            requires=("deepspeed>=0.16",),
            accelerators=("cpu", "cuda"),
            install_hint="DS_BUILD_OPS=0 pip install --no-build-isolation 'deepspeed>=0.16' "
            "(after torch)",
        ),
        _precision(
            "transformer-engine",
            "transformer_engine",
            "TransformerEnginePrecision",
            "fp8 matmuls via NVIDIA Transformer Engine, bfloat16 weights (CUDA, compute 8.9+).",
            parameters={"weights_dtype": "bfloat16"},
            requires=("transformer_engine>=1.11",),
            accelerators=("cuda",),
            constraints={"compute_capability": ">=8.9"},
            install_hint=_TE_HINT,
        ),
        _precision(
            "transformer-engine-float16",
            "transformer_engine",
            "TransformerEnginePrecision",
            "fp8 matmuls via NVIDIA Transformer Engine, float16 weights (CUDA, compute 8.9+).",
            parameters={"weights_dtype": "float16"},
            requires=("transformer_engine>=1.11",),
            accelerators=("cuda",),
            constraints={"compute_capability": ">=8.9"},
            install_hint=_TE_HINT,
        ),
        _precision(
            "fsdp-{precision}",
            "fsdp",
            "FSDPPrecision",
            "FSDP's mixed-precision policy and contexts; sharded GradScaler for 16-mixed.",
            name_parameters={
                "precision": ("32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed")
            },
            aliases=("fsdp",),
            provides=("{precision}",),
            strategies=("fsdp",),
            accelerators=("cpu", "cuda"),
        ),
    ]


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
            name="safetensors",
            kind="checkpoint_io",
            target="builtin_plugins.checkpoint_io.safetensors_io:SafetensorsCheckpointIO",
            summary="Tensor-only checkpoints in safetensors: atomic saves, mapped loads, no code.",
            requires=("safetensors>=0.4",),
            accelerators=("cpu", "cuda", "mps"),
            install_hint="pip install 'plugin-registry[safetensors]'",
            # Holds tensors only (no epoch counters, optimizer hyperparameters): chosen
            # only when named.
            priority=-20,
        ),
        PluginInfo(
            name="distributed",
            kind="checkpoint_io",
            target="builtin_plugins.checkpoint_io.distributed_io:DistributedCheckpointIO",
            aliases=("dcp",),
            summary="Sharded: every rank writes its shards (torch DCP), loads reshard; committed "
            "atomically; fsspec URLs.",
            requires=("torch>=2.4",),
            accelerators=("cpu", "cuda", "mps"),
            # What the resolver looks for when the strategy shards parameters.
            provides=(SHARDED_CHECKPOINT,),
        ),
        PluginInfo(
            name="async-distributed",
            kind="checkpoint_io",
            target="builtin_plugins.checkpoint_io.async_distributed_io:AsyncDistributedCheckpointIO",
            aliases=("async-dcp",),
            summary="The sharded checkpoint IO with DCP's async_save: staged on the caller, "
            "written in the background.",
            requires=("torch>=2.4",),
            accelerators=("cpu", "cuda", "mps"),
            provides=(SHARDED_CHECKPOINT,),
            priority=-10,
        ),
        PluginInfo(
            name="async-torch",
            kind="checkpoint_io",
            target="builtin_plugins.checkpoint_io.async_io:AsyncCheckpointIO",
            aliases=("async",),
            parameters={"checkpoint_io": "torch", "max_pending": 2},
            summary="Saves in a background thread: snapshots, ordered, bounded, errors raised.",
            requires=("torch>=2.4",),
            accelerators=("cpu", "cuda", "mps"),
            # Opt-in: chosen only when named, never over the synchronous default.
            priority=-10,
        ),
        PluginInfo(
            name="async-xla",
            kind="checkpoint_io",
            target="builtin_plugins.checkpoint_io.async_io:AsyncCheckpointIO",
            parameters={"checkpoint_io": "xla", "max_pending": 2},
            summary="The async saver around the XLA checkpoint IO.",
            requires=("torch_xla>=2.4",),
            accelerators=("xla",),
            install_hint=_XLA_HINT,
            priority=-10,
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


def _environment(name: str, module: str, cls: str, summary: str, **fields: Any) -> PluginInfo:
    # A launcher starts processes whatever accelerator they then use.
    fields.setdefault("accelerators", ("any",))
    return _builtin("cluster_environment", name, module, cls, summary, **fields)


@hookimpl
def plugin_registry_cluster_environment_plugins() -> list[PluginInfo]:
    # ``priority`` is the detection order (plugin_registry.resolver.detection): the highest
    # priority whose detect() is true wins. torchrun inside a SLURM allocation is
    # torchelastic, as in Lightning; the default comes last.
    return [
        _environment(
            "ray",
            "ray_train",
            "RayEnvironment",
            "Workers of a Ray Train TorchTrainer (ranks from ray.train.get_context()).",
            aliases=("ray-train",),
            requires=("ray>=2.9",),
            install_hint="pip install 'plugin-registry[ray]'",
            # Above torchrun's and the schedulers': Ray sets RANK/LOCAL_RANK and keeps a
            # SLURM allocation's variables in its workers, but Ray decides the ranks.
            priority=60,
        ),
        _environment(
            "torchelastic",
            "torchelastic",
            "TorchElasticEnvironment",
            "Workers started by torchrun (RANK, WORLD_SIZE, LOCAL_RANK, GROUP_RANK).",
            aliases=("torchrun",),
            priority=50,
        ),
        _environment(
            "slurm",
            "slurm",
            "SLURMEnvironment",
            "Tasks started by srun (SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST, ...).",
            priority=40,
        ),
        _environment(
            "lsf",
            "lsf",
            "LSFEnvironment",
            "Tasks started by jsrun under LSF (JSM_NAMESPACE_*, LSB_DJOB_RANKFILE).",
            priority=30,
        ),
        _environment(
            "sge",
            "sge",
            "SGEEnvironment",
            "Grid Engine parallel jobs, qsub -pe (JOB_ID, NSLOTS, PE_HOSTFILE).",
            aliases=("gridengine", "grid-engine"),
            priority=25,
        ),
        _environment(
            "mpi",
            "mpi",
            "MPIEnvironment",
            "Ranks started by mpirun: mpi4py, or OMPI_COMM_WORLD_* / PMI_* without it.",
            priority=20,
        ),
        _environment(
            "xla",
            "xla",
            "XLAEnvironment",
            "Ranks from the torch_xla runtime (TPU pods, PJRT).",
            requires=("torch_xla>=2.4",),
            accelerators=("xla",),
            priority=10,
            install_hint=_XLA_HINT,
        ),
        _environment(
            "kubeflow",
            "kubeflow",
            "KubeflowEnvironment",
            "One process per pod of a Kubeflow PyTorchJob; never auto-detected: name it.",
            priority=-50,
        ),
        _environment(
            "lightning",
            "lightning",
            "LightningEnvironment",
            "The default: processes the trainer spawns, or LOCAL_RANK/MASTER_* set by hand.",
            aliases=("default",),
            priority=-100,
        ),
    ]
