"""AsyncDistributedCheckpointIO: DCP's save in a background thread, with our guarantees."""

from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from builtin_plugins.checkpoint_io import async_io
from builtin_plugins.checkpoint_io.distributed_io import DistributedCheckpointIO
from builtin_plugins.checkpoint_io.torch_io import (
    checked_path,
    is_local,
)
from plugin_registry.kinds.checkpoint_io import CheckpointError, PathLike


class _Stager:
    """The copy a save writes: :func:`~builtin_plugins.checkpoint_io.async_io.snapshot`.

    The copy is made before ``save_checkpoint`` returns (the caller may then change
    its tensors), into the buffers of the previous save: free again, since a save
    waits for the one before it. DCP's own stager took 55-130 ms for the 50 MB
    shards of a rank where this takes a memory copy's time.
    """

    def __init__(self) -> None:
        self._buffers: async_io.Staging | None = None

    def stage(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        frozen, self._buffers = async_io.snapshot(state_dict, self._buffers)
        staged: dict[str, Any] = frozen
        return staged

    def close(self) -> None:
        self._buffers = None


_ONE_PROCESS_NOTICE = "torch.distributed is disabled, unavailable or uninitialized"


def _state_dicts_of_stateful(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """``checkpoint`` with each top-level ``Stateful`` (a model, an optimizer wrapper)
    replaced by its ``state_dict()``, as DCP's save does: taken now, before the copy,
    so the background write never reads live tensors."""
    from torch.distributed.checkpoint.stateful import Stateful

    return {k: v.state_dict() if isinstance(v, Stateful) else v for k, v in checkpoint.items()}


class AsyncDistributedCheckpointIO(DistributedCheckpointIO):
    """Sharded checkpoints saved in the background: the ``distributed`` IO's save, in a thread.

    * ``save_checkpoint`` (collective, like the synchronous plugin) returns once
      this rank's shards are staged: copied into CPU buffers kept from the
      previous save, so the training loop may change its tensors at once. It
      needs no collective of its own (the first save makes the upload group). A
      background thread writes the files with DCP; the coordinator then commits the
      marker, so a checkpoint is visible only once every rank's shards are on disk.
    * **Bounded and ordered**: one save is written at a time (two in flight would
      interleave their collectives); a save waits for the one before it.
    * **Errors are raised**, as :class:`CheckpointError`, by the next
      ``save_checkpoint`` (on every rank alike), ``wait``, ``load_checkpoint``,
      ``remove_checkpoint`` or ``teardown``; a failure nobody was told of is
      written to stderr at exit and the exit status becomes 1.
    * **Nothing is lost at exit**: the writing thread is not a daemon and the
      commit runs in it, so a save asked for by a script's last line is
      committed before the interpreter exits. Call :meth:`wait` or
      :meth:`teardown` before ``torch.distributed.destroy_process_group()``:
      the write needs the group.

    The background writes coordinate on a gloo group of their own, made at the
    first save, so they never interleave with the training loop's collectives.
    """

    def __init__(
        self,
        weights_only: bool = True,
        thread_count: int = 1,
        durable: bool = True,
        process_group: Any | None = None,
    ) -> None:
        super().__init__(weights_only, thread_count, durable, process_group)
        self._lock = threading.Lock()
        self._done: Future[None] | None = None
        self._errors: list[tuple[str, BaseException]] = []
        self._stager: Any | None = None
        self._upload_group: Any | None = None
        self._upload_group_of: Any | None = None
        self._executor: ThreadPoolExecutor | None = None
        async_io._live.add(self)
        async_io._install_exit_guards()

    # -- the exit guards of async_io call these ----------------------------------------

    def _drain(self) -> None:
        done = self._done
        if done is not None:
            done.result()  # never raises: failures are recorded in _errors

    def _after_fork(self) -> None:
        # The pending upload is the parent's (and its ranks'): never waited for here.
        self._lock = threading.Lock()
        self._done = None
        self._errors = []
        self._executor = None  # its thread is the parent's

    def _unreported(self) -> list[tuple[str, BaseException]]:
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    def _failure(self) -> str | None:
        """The message of the earliest unreported failure (clearing the list), or None."""
        errors = self._unreported()
        if not errors:
            return None
        path, first = errors[0]
        more = f" (and {len(errors) - 1} more failed saves)" if len(errors) > 1 else ""
        detail = first.args[0] if isinstance(first, CheckpointError) and first.args else first
        return f"a background save to {path!r} failed: {detail}{more}"

    def _raise_errors(self) -> None:
        errors = self._unreported()
        if errors:
            with self._lock:
                self._errors = errors
            message = self._failure()
            raise CheckpointError(message or "", errors[0][0]) from errors[0][1]

    # -- saving ----------------------------------------------------------------------------

    def _group_for_uploads(self, group: Any | None) -> Any | None:
        import torch.distributed as dist

        if group is None:
            return None
        if self._upload_group is None or self._upload_group_of is not group:
            ranks = dist.get_process_group_ranks(group)
            self._upload_group = dist.new_group(ranks=ranks, backend="gloo")
            self._upload_group_of = group
        return self._upload_group

    def _staging(self) -> Any:
        if self._stager is None:
            self._stager = _Stager()
        return self._stager

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None
    ) -> None:
        """Stage this rank's shards and start writing them; see the class for the rules."""
        import torch.distributed as dist

        group = self._group()
        self._drain()
        # The last save ended alike on every rank (DCP's collectives and the commit's
        # broadcast carry a failure to all of them), so every rank raises the same
        # failure here without a collective of its own, and the loop stays in step.
        failure = self._failure()
        if failure is not None:
            raise CheckpointError(failure, checked_path(path))
        with self._names_agreed_afresh_after_a_failure(group):
            path, options, shape, fs, root = self._prepare(checkpoint, path, storage_options)
            if is_local(fs) and os.path.isfile(root):
                raise CheckpointError(
                    f"cannot save checkpoint to {path!r}: it is a file, and a distributed "
                    "checkpoint is a directory; the file is untouched",
                    path,
                )
            uploads = self._group_for_uploads(group)
            if group is None:
                # DCP's save warns, from the writing thread, that it assumes one process:
                # that is what was asked for. A filter there would not reach that thread.
                warnings.filterwarnings("ignore", message=_ONE_PROCESS_NOTICE, category=UserWarning)
            try:
                staged = self._staging().stage(_state_dicts_of_stateful(checkpoint))
            except Exception as exc:
                raise CheckpointError(self._save_failure(path, exc), path) from exc
        done: Future[None] = Future()

        def write() -> None:
            try:
                if uploads is not None:
                    # Every rank has its copy before any rank starts writing: planning
                    # and serializing on a rank done early would slow the copy of a
                    # rank still making it (ranks share cores), and hold its caller.
                    dist.barrier(group=uploads)
                self._save(staged, path, options, uploads, shape, fs, root)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller later
                self._names.pop(self._group_key(uploads), None)
                with self._lock:
                    self._errors.append((path, exc))
            finally:
                done.set_result(None)

        self._done = done
        self._writer_thread().submit(write)

    def _writer_thread(self) -> ThreadPoolExecutor:
        """The one thread that writes this IO's saves, kept between them: starting a
        thread per save held the caller ~1.5 ms while it started. Its thread is joined
        at interpreter exit once its queue is done, so a save asked for by a script's
        last line is committed before the interpreter exits."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="AsyncDistributedCheckpointIO"
            )
        return self._executor

    def wait(self) -> None:
        """Block until the save in flight is committed; raise the first failure."""
        self._drain()
        self._raise_errors()

    def load_checkpoint(
        self,
        path: PathLike,
        map_location: Any = "cpu",
        weights_only: bool | None = None,
        state: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self.wait()
        return super().load_checkpoint(path, map_location, weights_only, state)

    def remove_checkpoint(self, path: PathLike) -> None:
        self.wait()
        super().remove_checkpoint(path)

    def teardown(self) -> None:
        """Finish the save in flight, release the staging buffers, raise any failure."""
        self._drain()
        if self._stager is not None:
            self._stager.close()
            self._stager = None
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        super().teardown()
        self._raise_errors()
