"""Hardware records and the (hardware, settings) -> resolution table of test_resolver."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from plugin_registry.resolver.hardware import Device, Hardware

ALL_LIBRARIES = {
    "torch": "2.13.0",
    "bitsandbytes": "0.50.2",
    "deepspeed": "0.19.8",
    "torch-xla": "2.9.0",
    "transformer-engine": "2.8.0",
}

GPUS = {
    "h100": ("NVIDIA H100 80GB HBM3", "9.0", "79.1"),
    "l4": ("NVIDIA L4", "8.9", "22.0"),
    "a100": ("NVIDIA A100-SXM4-40GB", "8.0", "39.4"),
    "t4": ("Tesla T4", "7.5", "14.7"),
}


def machine(
    cuda: int = 0,
    gpu: str = "h100",
    mps: bool = False,
    xla: int = 0,
    missing: tuple[str, ...] = (),
    cores: int = 16,
) -> Hardware:
    """A hardware record as detection would write it on such a machine."""
    devices: list[Device] = []
    name, cc, mem = GPUS[gpu]
    for index in range(cuda):
        dtypes = ["float64", "float32", "float16"] + (["bfloat16"] if float(cc) >= 8.0 else [])
        props = {"compute_capability": cc, "memory_gib": mem}
        devices.append(Device("cuda", index, name, tuple(dtypes), props))
    if mps:
        devices.append(Device("mps", 0, "Apple MPS", ("float32", "float16", "bfloat16")))
    for index in range(xla):
        devices.append(Device("xla", index, "TPU", ("float32", "bfloat16", "float16")))
    libraries: dict[str, str | None] = {
        k: (None if k in missing else v) for k, v in ALL_LIBRARIES.items()
    }
    return Hardware(
        cpu_cores=cores,
        devices=tuple(devices),
        cpu_capability="AVX512",
        torch="2.13.0",
        libraries=libraries,
        platform="linux-x86_64",
        sources=("table",),
    )


SLURM_ENV = {
    "SLURM_NTASKS": "2",
    "SLURM_JOB_NAME": "train",
    "SLURM_JOB_ID": "1234",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "node[1-2]",
}
TORCHRUN_ENV = {
    "TORCHELASTIC_RUN_ID": "abc",
    "RANK": "0",
    "WORLD_SIZE": "2",
    "LOCAL_RANK": "0",
    "GROUP_RANK": "0",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29500",
}
SGE_ENV = {"JOB_ID": "7", "PE_HOSTFILE": "/tmp/pe_hostfile", "NSLOTS": "2"}
LSF_ENV = {
    "LSB_JOBID": "9",
    "LSB_DJOB_RANKFILE": "/tmp/rankfile",
    "JSM_NAMESPACE_LOCAL_RANK": "0",
    "JSM_NAMESPACE_SIZE": "2",
}
MPI_ENV = {
    "OMPI_COMM_WORLD_SIZE": "2",
    "OMPI_COMM_WORLD_RANK": "0",
    "OMPI_COMM_WORLD_LOCAL_RANK": "0",
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One row: expected plugin names, or an error whose message holds ``error``."""

    id: str
    hardware: Hardware
    settings: Mapping[str, Any]
    precision: str = ""
    checkpoint_io: str = "torch"
    environment: str = "lightning"
    error: str = ""
    environ: Mapping[str, str] = dataclasses.field(default_factory=dict)
    strategy: str = ""
    note: str = ""


CPU = machine()
H100x8 = machine(cuda=8)
H100x2 = machine(cuda=2)

CASES = [
    # -- precision settings, Lightning spellings ------------------------------------
    Case("cpu-default", CPU, {}, "32-true", strategy="single_device"),
    Case("cpu-int-32", CPU, {"precision": 32}, "32-true", note="historical spelling"),
    Case("cpu-str-32", CPU, {"precision": "32"}, "32-true"),
    Case("cpu-int-64", CPU, {"precision": 64}, "64-true"),
    Case("cpu-int-16", CPU, {"precision": 16}, "bf16-mixed", note="as Lightning does"),
    Case("cpu-str-bf16", CPU, {"precision": "bf16"}, "bf16-mixed"),
    Case("cpu-16-true", CPU, {"precision": "16-true"}, "16-true"),
    Case("cpu-bf16-true", CPU, {"precision": "bf16-true"}, "bf16-true"),
    Case("cpu-16-mixed", CPU, {"precision": "16-mixed"}, "bf16-mixed", note="bf16-mixed"),
    Case("cpu-named-16-mixed", CPU, {"plugins": ["16-mixed"]}, "16-mixed"),
    Case("h100-16-mixed", H100x8, {"precision": "16-mixed"}, "16-mixed", strategy="ddp"),
    Case(
        "h100-bf16-one",
        H100x8,
        {"precision": "bf16-mixed", "devices": 1},
        "bf16-mixed",
        strategy="single_device",
    ),
    Case(
        "t4-bf16-mixed",
        machine(cuda=1, gpu="t4"),
        {"precision": "bf16-mixed"},
        error="bf16-mixed needs bfloat16, which CUDA device 0 (Tesla T4, compute capability "
        "7.5) does not support",
    ),
    Case("t4-16-mixed", machine(cuda=1, gpu="t4"), {"precision": "16-mixed"}, "16-mixed"),
    Case("h100-64-true", H100x2, {"precision": "64-true"}, "64-true"),
    # -- transformer engine -----------------------------------------------------------
    Case("h100-te", H100x8, {"precision": "transformer-engine"}, "transformer-engine"),
    Case(
        "h100-te-fp16",
        H100x8,
        {"precision": "transformer-engine-float16"},
        "transformer-engine-float16",
    ),
    Case(
        "l4-te",
        machine(cuda=1, gpu="l4"),
        {"precision": "transformer-engine"},
        "transformer-engine",
    ),
    Case(
        "a100-te",
        machine(cuda=4, gpu="a100"),
        {"precision": "transformer-engine"},
        error="requires compute_capability >=8.9, found 8.0 on CUDA device 0",
    ),
    Case(
        "cpu-te",
        CPU,
        {"precision": "transformer-engine"},
        error="needs CUDA with compute_capability >=8.9, found CPU",
    ),
    Case(
        "h100-te-missing",
        machine(cuda=1, missing=("transformer-engine",)),
        {"precision": "transformer-engine"},
        error="missing: transformer_engine\nTo install what is missing: pip install "
        "'plugin-registry[transformer-engine]'",
    ),
    # -- MPS ----------------------------------------------------------------------------
    Case("mps-auto-bf16", machine(mps=True), {"precision": "bf16-mixed"}, "bf16-mixed"),
    Case("mps-64", machine(mps=True), {"precision": "64-true"}, error="needs CPU/CUDA, found MPS"),
    Case("gpu-means-mps", machine(mps=True), {"accelerator": "gpu"}, "32-true"),
    # -- XLA ----------------------------------------------------------------------------
    Case(
        "xla-default",
        machine(xla=4),
        {"plugins": ["cluster_environment/xla"]},
        "xla-32-true",
        "xla",
        "xla",
        strategy="xla",
    ),
    Case(
        "xla-one-bf16",
        machine(xla=1),
        {"precision": "bf16-true", "plugins": ["cluster_environment/xla"]},
        "xla-bf16-true",
        "xla",
        "xla",
        strategy="single_xla",
    ),
    Case(
        "xla-bf16-mixed",
        machine(xla=4),
        {"precision": "bf16-mixed"},
        error="What would work here with strategy 'xla': precision='32-true', '16-true', "
        "'bf16-true'",
    ),
    Case(
        "tpu-fsdp",
        machine(xla=4),
        {"accelerator": "tpu", "strategy": "fsdp", "plugins": ["cluster_environment/xla"]},
        "xla-32-true",
        "xla",
        "xla",
        strategy="xla_fsdp",
        note="xla_fsdp",
    ),
    Case("xla-ddp", machine(xla=4), {"strategy": "ddp"}, error="does not run on XLA devices"),
    Case("cpu-xla-strategy", CPU, {"strategy": "xla"}, error="needs accelerator='xla'"),
    Case(
        "xla-slurm-env",
        machine(xla=4),
        {"plugins": ["slurm"]},
        error="takes its ranks from the XLA runtime",
    ),
    Case("cuda-xla-io", H100x2, {"plugins": ["checkpoint_io/xla"]}, error="needs XLA, found CUDA"),
    # -- strategies and their precision plugins ---------------------------------------------
    Case(
        "cpu-fsdp-bf16",
        CPU,
        {"precision": "bf16-mixed", "strategy": "fsdp", "devices": 2},
        "fsdp-bf16-mixed",
        checkpoint_io="distributed",
    ),
    Case(
        "h100-fsdp-16",
        H100x8,
        {"precision": "16-mixed", "strategy": "fsdp"},
        "fsdp-16-mixed",
        checkpoint_io="distributed",
    ),
    Case(
        "cpu-fsdp-default",
        CPU,
        {"strategy": "fsdp_cpu_offload"},
        "fsdp-32-true",
        checkpoint_io="distributed",
    ),
    # A named checkpoint IO wins over the sharded one the strategy would get.
    Case(
        "cpu-fsdp-named-torch",
        CPU,
        {"strategy": "fsdp", "plugins": ["torch"]},
        "fsdp-32-true",
        checkpoint_io="torch",
    ),
    Case(
        "cpu-fsdp-64",
        CPU,
        {"precision": "64-true", "strategy": "fsdp"},
        error="strategy 'fsdp' needs FSDPPrecision",
    ),
    Case(
        "cpu-deepspeed-bf16",
        CPU,
        {"precision": "bf16-mixed", "strategy": "deepspeed"},
        "deepspeed-bf16-mixed",
    ),
    Case(
        "cpu-deepspeed-3",
        CPU,
        {"strategy": "deepspeed_stage_3"},
        "deepspeed-32-true",
        checkpoint_io="distributed",
    ),
    Case(
        "cpu-deepspeed-missing",
        machine(missing=("deepspeed",)),
        {"strategy": "deepspeed"},
        error="missing: deepspeed",
    ),
    Case(
        "cuda-named-bf16-fsdp",
        H100x2,
        {"plugins": ["bf16-mixed"], "strategy": "fsdp"},
        error="strategy 'fsdp' needs FSDPPrecision (fsdp-bf16-mixed)",
    ),
    Case(
        "mp-16-mixed",
        H100x2,
        {"precision": "16-mixed", "strategy": "model_parallel"},
        error="strategy 'model_parallel' supports precision",
    ),
    Case(
        "cpu-dp",
        CPU,
        {"strategy": "dp", "devices": 2},
        "32-true",
        strategy="ddp",
        note="'dp' is not supported on CPUs",
    ),
    Case("cpu-two-nodes", CPU, {"num_nodes": 2}, "32-true", strategy="ddp"),
    # -- bitsandbytes: explicit names, sharding -------------------------------------------
    Case("cpu-bnb-nf4", CPU, {"plugins": ["bitsandbytes-nf4"]}, "bitsandbytes-nf4"),
    Case("cpu-precision-names-bnb", CPU, {"precision": "bitsandbytes-int8"}, "bitsandbytes-int8"),
    Case(
        "cuda-bnb-ddp",
        H100x2,
        {"plugins": ["bitsandbytes-fp4-dq"], "strategy": "ddp"},
        "bitsandbytes-fp4-dq",
    ),
    Case(
        "bnb-fsdp",
        H100x2,
        {"plugins": ["bitsandbytes-nf4"], "strategy": "fsdp"},
        error="quantized weights cannot be sharded, and strategy 'fsdp' shards parameters",
    ),
    Case(
        "bnb-zero3",
        CPU,
        {"plugins": ["bitsandbytes-nf4"], "strategy": "deepspeed_stage_3"},
        error="cannot be sharded",
    ),
    Case(
        "bnb-missing",
        machine(missing=("bitsandbytes",)),
        {"plugins": ["bitsandbytes-nf4"]},
        error="bitsandbytes is not installed (to fix: pip install 'plugin-registry[bitsandbytes]')",
    ),
    # -- explicit plugins: conflicts ----------------------------------------------------------
    Case(
        "two-precisions",
        CPU,
        {"plugins": ["bitsandbytes-fp4", "bf16-mixed"]},
        error="names two precision plugins, 'bitsandbytes-fp4' and 'bf16-mixed'",
    ),
    Case(
        "precision-and-plugin",
        CPU,
        {"precision": "bf16-mixed", "plugins": ["16-true"]},
        error="received both precision='bf16-mixed' and the precision plugin '16-true'",
    ),
    Case(
        "two-checkpoint-io",
        CPU,
        {"plugins": ["torch", "async"]},
        error="names two checkpoint_io plugins, 'torch' and 'async'",
    ),
    Case("named-async", CPU, {"plugins": ["async"]}, "32-true", "async-torch"),
    Case("named-unknown", CPU, {"plugins": ["slrum"]}, error="Did you mean 'slurm'"),
    # -- cluster environments -------------------------------------------------------------
    Case("named-slurm", CPU, {"plugins": ["slurm"]}, "32-true", environment="slurm"),
    Case("slurm-detected", CPU, {}, "32-true", environment="slurm", environ=SLURM_ENV),
    Case(
        "torchrun-in-slurm",
        CPU,
        {},
        "32-true",
        environment="torchelastic",
        environ={**SLURM_ENV, **TORCHRUN_ENV},
    ),
    Case("sge-detected", CPU, {}, "32-true", environment="sge", environ=SGE_ENV),
    Case("lsf-detected", CPU, {}, "32-true", environment="lsf", environ=LSF_ENV),
    Case("mpi-detected", CPU, {}, "32-true", environment="mpi", environ=MPI_ENV),
    Case("named-kubeflow", CPU, {"plugins": ["kubeflow"]}, "32-true", environment="kubeflow"),
    # -- accelerator and devices --------------------------------------------------------------
    Case("cuda-on-cpu", CPU, {"accelerator": "cuda"}, error="no CUDA device was found"),
    Case("gpu-on-cpu", CPU, {"accelerator": "gpu"}, error="has no CUDA or MPS device"),
    Case("too-many-gpus", H100x2, {"devices": 4}, error="only 2 CUDA device(s) found"),
    Case("missing-index", H100x2, {"devices": [0, 3]}, error="no CUDA device with index 3"),
    Case("cuda-indices", H100x8, {"devices": "0,1"}, "32-true", strategy="ddp"),
    Case("cpu-all-devices", CPU, {"devices": -1}, error="give a number of processes"),
    Case("zero-devices", CPU, {"devices": 0}, error="ask for at least one device"),
    Case("typo-precision", CPU, {"precision": "bf16-mixd"}, error="Did you mean 'bf16-mixed'"),
    Case("typo-strategy", CPU, {"strategy": "fdsp"}, error="Did you mean 'fsdp'"),
    Case("typo-accelerator", CPU, {"accelerator": "cdua"}, error="Did you mean 'cuda'"),
]
