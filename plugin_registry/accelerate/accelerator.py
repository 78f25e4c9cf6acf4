"""Accelerate's ``Accelerator``, taking registry plugin names, records and instances."""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator as _Accelerator
from accelerate.optimizer import AcceleratedOptimizer
from accelerate.state import PartialState
from accelerate.utils import DistributedType

from plugin_registry.accelerate import state as _state
from plugin_registry.accelerate.plugins import choose
from plugin_registry.accelerate.precision import ACCELERATE_WORDS, PluginOptimizer, wrap_forward
from plugin_registry.errors import CheckpointError, ClusterEnvironmentError

if TYPE_CHECKING:
    from plugin_registry.kinds.checkpoint_io import CheckpointIO
    from plugin_registry.kinds.cluster_environment import ClusterEnvironment
    from plugin_registry.kinds.precision import Precision
    from plugin_registry.registry import Registry
    from plugin_registry.resolver.resolution import Resolution

__all__ = ["Accelerator"]

_SIGNATURE = inspect.signature(_Accelerator.__init__)
#: Accelerate's engines that run their own precision and their own checkpoints.
_OWN_ENGINES = (
    DistributedType.DEEPSPEED,
    DistributedType.FSDP,
    DistributedType.MEGATRON_LM,
    DistributedType.XLA,
)


class Accelerator(_Accelerator):  # type: ignore[misc]
    """``accelerate.Accelerator`` whose ``plugins`` are registry plugins.

    ``plugins`` holds names (``"bitsandbytes-nf4"``, ``"slurm"``, ``"torch"``), records
    and instances, at most one of each kind. ``precision`` is a registry precision
    (``"bf16-mixed"``, a plugin's name) or ``"auto"``: the resolver's choice for this
    hardware (:attr:`resolution` says why). Every other argument is Accelerate's,
    ``mixed_precision="bf16"`` included, for a run without a registry precision.

    - A precision plugin converts the model in :meth:`prepare`, runs its forward
      where Accelerate autocasts, its backward in :meth:`backward` and the optimizer
      step (a 16-mixed plugin's scaler) in the prepared optimizer.
    - A cluster environment (named, or detected when a launcher started this
      process) gives the ranks, world size and main address Accelerate's
      distributed state is formed from: ``srun``, ``mpirun`` or ``qsub`` without
      ``accelerate launch``.
    - A checkpoint IO writes :meth:`save_state` (the whole state as one checkpoint,
      so a crash mid-save leaves the previous one) and :meth:`save`.
    """

    #: The resolver's decision behind ``precision=`` (None when plugins named it).
    resolution: Resolution | None
    precision_plugin: Precision | None
    checkpoint_io: CheckpointIO | None
    cluster_environment: ClusterEnvironment | None

    def __init__(
        self,
        *args: Any,
        plugins: Any = None,
        precision: Any = None,
        registry: Registry | None = None,
        **kwargs: Any,
    ) -> None:
        given = _SIGNATURE.bind_partial(None, *args, **kwargs).arguments
        given.pop("self", None)
        cpu = bool(given.get("cpu", False)) or _env_flag("ACCELERATE_USE_CPU")
        chosen = choose(
            plugins,
            precision,
            mixed_precision=given.get("mixed_precision"),
            accelerator="cpu" if cpu or not _has_accelerator() else "auto",
            registry=registry,
        )
        self.precision_plugin = chosen.precision
        self.checkpoint_io = chosen.checkpoint_io
        self.resolution = chosen.resolution
        self._records = chosen.records
        if chosen.precision is not None:
            given["mixed_precision"] = "no"  # the plugin casts; Accelerate must not too
        environment, exported = _form(chosen.cluster_environment, registry)
        self.cluster_environment = environment
        several = exported and environment is not None and environment.world_size() > 1
        if several and not _has_accelerator():
            # Accelerate forms a CPU group only when told it runs on the CPU
            # (`accelerate launch` sets this flag on a machine without GPUs).
            given["cpu"] = True
        super().__init__(**given)
        if exported and environment is not None:
            _agree(self, environment)
        if chosen.precision is not None and self.distributed_type in _OWN_ENGINES:
            raise ValueError(
                f"Accelerate's {self.distributed_type.value} runs its own precision, so a "
                f"registry precision plugin ({chosen.precision!r:.60}) cannot run under "
                "it: set mixed_precision= there, or train without that engine"
            )

    # -- precision ---------------------------------------------------------------

    @property
    def mixed_precision(self) -> str:
        """Accelerate's word for the precision in use (``"bf16"`` for a bf16-mixed plugin),
        so that code reading it (Transformers' Trainer) sees what runs."""
        if self.precision_plugin is not None:
            return ACCELERATE_WORDS.get(getattr(self.precision_plugin, "precision", ""), "no")
        return str(self.state.mixed_precision)

    def prepare_model(
        self,
        model: torch.nn.Module,
        device_placement: bool | None = None,
        evaluation_mode: bool = False,
    ) -> torch.nn.Module:
        """Accelerate's ``prepare_model``, after the precision plugin's ``convert_module``
        and with its forward context around ``forward``."""
        plugin = self.precision_plugin
        if plugin is not None and not getattr(model, "_is_accelerate_prepared", False):
            model = plugin.convert_module(model)
            wrap_forward(model, plugin)
        prepared: torch.nn.Module = super().prepare_model(
            model, device_placement=device_placement, evaluation_mode=evaluation_mode
        )
        return prepared

    def prepare_optimizer(self, optimizer: Any, device_placement: bool | None = None) -> Any:
        """Accelerate's ``AcceleratedOptimizer``, stepping through the precision plugin."""
        plugin = self.precision_plugin
        if plugin is None or getattr(optimizer, "_is_accelerate_prepared", False):
            return super().prepare_optimizer(optimizer, device_placement=device_placement)
        if device_placement is None:
            device_placement = self.device_placement
        prepared = PluginOptimizer(optimizer, plugin, device_placement=device_placement)
        self._optimizers.append(prepared)
        return prepared

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """The loss over the accumulation steps, backward through the precision plugin
        (which may scale it); Accelerate's own ``backward`` without one."""
        plugin = self.precision_plugin
        if plugin is None:
            return super().backward(loss, **kwargs)  # type: ignore[no-any-return]
        loss = loss / self.gradient_accumulation_steps
        model = self._models[0] if len(self._models) == 1 else None
        plugin.pre_backward(loss, model)
        plugin.backward(loss, model, **kwargs)
        plugin.post_backward(loss, model)
        return None

    def unscale_gradients(self, optimizer: Any = None) -> None:
        """Unscale through the precision plugin (before clipping); all prepared optimizers
        when ``optimizer`` is None."""
        plugin = self.precision_plugin
        if plugin is None:
            return super().unscale_gradients(optimizer)  # type: ignore[no-any-return]
        if optimizer is None:
            optimizers = list(self._optimizers)
        else:
            optimizers = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
        for opt in optimizers:
            while isinstance(opt, AcceleratedOptimizer):
                opt = opt.optimizer
            plugin.unscale_gradients(opt)
        return None

    @contextlib.contextmanager
    def autocast(self, autocast_handler: Any = None) -> Iterator[None]:
        """The precision plugin's forward context (Accelerate's autocast without one)."""
        if self.precision_plugin is None:
            with super().autocast(autocast_handler):
                yield
        else:
            with self.precision_plugin.forward_context():
                yield

    # -- checkpoints -------------------------------------------------------------

    def save(self, obj: Any, f: Any, safe_serialization: bool = False) -> None:
        """Write ``obj`` through the checkpoint IO (Accelerate's ``save`` without one, or for
        ``safe_serialization=True`` when the IO is no safetensors one): once, on the main
        process (each node's with ``save_on_each_node``)."""
        io = self.checkpoint_io
        if io is None or (safe_serialization and not _holds_safetensors(self)):
            return super().save(obj, f, safe_serialization=safe_serialization)  # type: ignore[no-any-return]
        if self._writes_here():
            io.save_checkpoint(obj, f)
        return None

    def save_state(
        self, output_dir: str | None = None, safe_serialization: bool = True, **kwargs: Any
    ) -> Any:
        """The whole state (models, optimizers, schedulers, the precision plugin's
        scaler, registered objects, step, every process's RNG) as one checkpoint written by
        the checkpoint IO, in its format (``safe_serialization`` is then the IO's to
        decide); without one, Accelerate's own ``save_state``."""
        io = self.checkpoint_io
        if io is None or self.distributed_type in _OWN_ENGINES:
            return super().save_state(output_dir, safe_serialization, **kwargs)
        output_dir = self._checkpoint_dir(output_dir)
        weights = [self.get_state_dict(m, unwrap=False) for m in self._models]
        # Accelerate's hooks may take weights out of the list to save them their way.
        for hook in self._save_model_state_pre_hook.values():
            hook(self._models, weights, output_dir)
        state = self._training_state(weights)
        path = os.path.join(output_dir, _state.STATE_FILE)
        if self._writes_here():
            io.save_checkpoint(_state.encode(state, path), path)
        self.wait_for_everyone()
        self.project_configuration.iteration += 1
        return output_dir

    def load_state(
        self, input_dir: str | None = None, load_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        """Restore what :meth:`save_state` wrote; a folder Accelerate's own ``save_state``
        wrote loads the way Accelerate loads it."""
        io = self.checkpoint_io
        if io is None or self.distributed_type in _OWN_ENGINES:
            return super().load_state(input_dir, load_kwargs, **kwargs)  # type: ignore[no-any-return]
        folder = self._latest_dir(input_dir)
        path = os.path.join(folder, _state.STATE_FILE)
        weights_only = (load_kwargs or {}).get("weights_only")
        try:
            # Asked of the IO first: an async IO finishes its pending saves before it reads.
            checkpoint = io.load_checkpoint(path, map_location="cpu", weights_only=weights_only)
        except FileNotFoundError:
            if any(name.endswith((".bin", ".safetensors", ".pkl")) for name in os.listdir(folder)):
                # Written by Accelerate's own save_state: loaded its way.
                return super().load_state(folder, load_kwargs, **kwargs)  # type: ignore[no-any-return]
            raise CheckpointError(
                f"no saved state in {folder!r}: neither {_state.STATE_FILE!r} (save_state with a "
                "checkpoint IO) nor Accelerate's own files are there",
                path,
                reason="not-found",
            ) from None
        # Accelerate's hooks take out of the list the models they load themselves.
        models = list(self._models)
        for hook in self._load_model_state_pre_hook.values():
            hook(models, folder)
        self._restore(_state.decode(checkpoint, path), models)
        return None

    def end_training(self) -> None:
        """Accelerate's ``end_training``, then the plugins' ``teardown``."""
        super().end_training()
        for plugin in (self.precision_plugin, self.checkpoint_io):
            if plugin is not None:
                plugin.teardown()

    # -- helpers -----------------------------------------------------------------

    def _writes_here(self) -> bool:
        if self.project_configuration.save_on_each_node:
            return bool(self.is_local_main_process)
        return bool(self.is_main_process)

    def _checkpoint_dir(self, output_dir: str | None) -> str:
        """Accelerate's choice of folder, automatic naming and ``total_limit`` included."""
        config = self.project_configuration
        if not config.automatic_checkpoint_naming:
            if output_dir is None:
                raise ValueError(
                    "save_state() needs output_dir without automatic checkpoint naming"
                )
            os.makedirs(output_dir, exist_ok=True)
            return os.fspath(output_dir)
        root = os.path.join(self.project_dir, "checkpoints")
        os.makedirs(root, exist_ok=True)
        folders = sorted(_numbered(root), key=lambda pair: pair[0])
        if config.total_limit is not None and self.is_main_process:
            for _, old in folders[: max(0, len(folders) + 1 - config.total_limit)]:
                shutil.rmtree(old, ignore_errors=True)
        output_dir = os.path.join(root, f"checkpoint_{self.save_iteration}")
        if os.path.exists(os.path.join(output_dir, _state.STATE_FILE)):
            raise ValueError(
                f"checkpoint folder {output_dir!r} ({self.save_iteration}) already holds a "
                "state; set accelerator.project_configuration.iteration past it"
            )
        self.wait_for_everyone()
        os.makedirs(output_dir, exist_ok=True)
        return output_dir

    def _latest_dir(self, input_dir: str | None) -> str:
        if input_dir is not None:
            folder = os.path.expanduser(os.fspath(input_dir))
            if not os.path.isdir(folder):
                raise CheckpointError(
                    f"no saved state at {folder!r}: the folder does not exist",
                    folder,
                    reason="not-found",
                )
            return folder
        if not self.project_configuration.automatic_checkpoint_naming:
            raise ValueError("load_state() needs input_dir without automatic checkpoint naming")
        root = os.path.join(self.project_dir, "checkpoints")
        folders = sorted(_numbered(root)) if os.path.isdir(root) else []
        if not folders:
            raise CheckpointError(f"no saved state under {root!r}", root, reason="not-found")
        return folders[-1][1]

    def _training_state(self, weights: list[Any]) -> dict[str, Any]:
        import random

        import numpy as np

        rng: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        every_rng: list[Any] = [rng]
        if self.num_processes > 1:
            every_rng = [None] * self.num_processes
            torch.distributed.all_gather_object(every_rng, rng)
        precision = self.precision_plugin.state_dict() if self.precision_plugin else {}
        return {
            "step": self.step,
            "models": dict(enumerate(weights)),
            "optimizers": {i: o.state_dict() for i, o in enumerate(self._optimizers)},
            "schedulers": {i: s.state_dict() for i, s in enumerate(self._schedulers)},
            "dataloaders": {
                i: d.state_dict()
                for i, d in enumerate(self._dataloaders)
                if getattr(d, "use_stateful_dataloader", False)
            },
            "custom": {i: o.state_dict() for i, o in enumerate(self._custom_objects)},
            "precision": precision,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": dict(enumerate(every_rng)),
        }

    def _restore(self, state: dict[str, Any], models: list[Any]) -> None:
        import random

        import numpy as np

        for kind, have in (
            ("models", models),
            ("optimizers", self._optimizers),
            ("schedulers", self._schedulers),
            ("custom", self._custom_objects),
        ):
            if len(state[kind]) != len(have):
                raise ValueError(
                    f"the saved state holds {len(state[kind])} {kind}, and this Accelerator "
                    f"prepared {len(have)}: prepare (or register) the same objects as when saving"
                )
        plugin = self.precision_plugin
        for i, model in enumerate(models):
            if plugin is not None:
                plugin.prepare_for_load(self.unwrap_model(model))
            model.load_state_dict(state["models"][i])
        for i, optimizer in enumerate(self._optimizers):
            optimizer.load_state_dict(state["optimizers"][i])
        for i, scheduler in enumerate(self._schedulers):
            scheduler.load_state_dict(state["schedulers"][i])
        for i, loader in enumerate(self._dataloaders):
            if i in state["dataloaders"]:
                loader.load_state_dict(state["dataloaders"][i])
        for i, obj in enumerate(self._custom_objects):
            obj.load_state_dict(state["custom"][i])
        if plugin is not None and state["precision"]:
            plugin.load_state_dict(state["precision"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        rng = state["rng"].get(self.process_index)
        if rng is not None:
            try:
                random.setstate(rng["python"])
                kind, keys, *rest = rng["numpy"]
                np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
                torch.set_rng_state(rng["torch"])
                if "cuda" in rng and torch.cuda.is_available():
                    torch.cuda.set_rng_state_all(rng["cuda"])
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise CheckpointError(
                    f"the random state of process {self.process_index} in the saved state "
                    f"cannot be restored: {type(exc).__name__}: {exc}"[:300],
                    reason="unreadable",
                ) from None
        self.step = state["step"]


def _numbered(root: str) -> list[tuple[int, str]]:
    out = []
    for name in os.listdir(root):
        found = re.search(r"(\d+)$", name)
        if found and os.path.isdir(os.path.join(root, name)):
            out.append((int(found.group(1)), os.path.join(root, name)))
    return out


def _holds_safetensors(accelerator: Accelerator) -> bool:
    record = accelerator._records.get("checkpoint_io")
    return record is not None and "safetensors" in record.name


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _has_accelerator() -> bool:
    accel = getattr(torch, "accelerator", None)
    if accel is not None and hasattr(accel, "is_available"):
        return bool(accel.is_available())
    return bool(torch.cuda.is_available())


def _form(
    environment: ClusterEnvironment | None, registry: Registry | None
) -> tuple[ClusterEnvironment | None, bool]:
    """The cluster environment, and whether its answers were exported for Accelerate.

    Named: always exported. Not named: the detected one, exported when a launcher
    started several processes. Once Accelerate's distributed state is formed (an
    earlier Accelerator), nothing is exported: the state is checked against it.
    """
    named = environment is not None
    if environment is None:
        from plugin_registry import load
        from plugin_registry.resolver.detection import detect_environment

        environment = load(detect_environment(registry))
    formed = bool(PartialState._shared_state)
    if formed:
        return environment, named
    if named or environment.world_size() > 1:
        environment.export_distributed_env()
        return environment, True
    return environment, False


def _agree(accelerator: Accelerator, environment: ClusterEnvironment) -> None:
    """Accelerate's state and the environment plugin say the same ranks."""
    ours = (environment.world_size(), environment.global_rank())
    theirs = (accelerator.num_processes, accelerator.process_index)
    if ours != theirs:
        raise ClusterEnvironmentError(
            f"Accelerate's distributed state has {theirs[0]} process(es), this one of rank "
            f"{theirs[1]}, and the {type(environment).__name__} says {ours[0]} and {ours[1]}: "
            "a distributed state formed before (an earlier Accelerator, or accelerate "
            "launch with other settings) disagrees with the launcher"
        )
