"""AsyncDistributedCheckpointIO: DCP's asynchronous save, with our guarantees."""

from __future__ import annotations

import os
import threading
import uuid
import warnings
from concurrent.futures import Future
from typing import Any

from builtin_plugins.checkpoint_io import async_io
from builtin_plugins.checkpoint_io.distributed_io import (
    DATA_PREFIX,
    DistributedCheckpointIO,
    discard,
    marker_shape,
    single_process_quiet,
)
from builtin_plugins.checkpoint_io.torch_io import (
    checked_path,
    filesystem,
    is_local,
    refuse_bucket,
)
from plugin_registry.kinds.checkpoint_io import CheckpointError, PathLike


class _Stager:
    """DCP's ``AsyncStager`` over :func:`~builtin_plugins.checkpoint_io.async_io.snapshot`.

    The copy is made before ``save_checkpoint`` returns (the caller may then change
    its tensors), into the buffers of the previous save: free again, since a save
    waits for the one before it. DCP's own stager took 55-130 ms for the 50 MB
    shards of a rank where this takes a memory copy's time.
    """

    should_synchronize_after_execute = False

    def __init__(self) -> None:
        self._buffers: async_io.Staging | None = None

    def stage(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        frozen, self._buffers = async_io.snapshot(state_dict, self._buffers)
        staged: dict[str, Any] = frozen
        return staged

    def synchronize_staging(self) -> None:
        pass

    def close(self) -> None:
        self._buffers = None


_ONE_PROCESS_NOTICE = "torch.distributed is disabled, unavailable or uninitialized"


class AsyncDistributedCheckpointIO(DistributedCheckpointIO):
    """Sharded checkpoints saved in the background with ``torch.distributed.checkpoint.async_save``.

    * ``save_checkpoint`` (collective, like the synchronous plugin) returns once
      DCP has staged this rank's shards: copied into CPU buffers kept from the
      previous save, so the training loop may change its tensors at once. A
      background thread writes the files; the coordinator then commits the
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
        from torch.distributed.checkpoint.state_dict_saver import async_save

        path = checked_path(path)
        options = dict(storage_options or {})
        group = self._group()
        self._drain()
        # Every rank raises the same earlier failure, so the loop stays in step; the
        # same broadcast names the new data directory.
        proposal = (self._failure(), f"{DATA_PREFIX}{uuid.uuid4().hex[:16]}")
        failure, name = self._from_coordinator(group, proposal)
        self._unreported()
        if failure is not None:
            raise CheckpointError(failure, path)
        shape = marker_shape(checkpoint)
        fs, root = filesystem(path, options)
        refuse_bucket(fs, root, path, "saved")
        if is_local(fs) and os.path.isfile(root):
            raise CheckpointError(
                f"cannot save checkpoint to {path!r}: it is a file, and a distributed "
                "checkpoint is a directory; the file is untouched",
                path,
            )
        uploads = self._group_for_uploads(group)
        # Until it is committed or discarded, the last save's tidying leaves this data alone.
        self._writing_data(name)
        if group is None:
            # DCP's save warns, from the writing thread, that it assumes one process:
            # that is what was asked for. A filter there would not reach that thread.
            warnings.filterwarnings("ignore", message=_ONE_PROCESS_NOTICE, category=UserWarning)
        done: Future[None] = Future()
        try:
            with single_process_quiet(group):
                response = async_save(
                    checkpoint,
                    storage_writer=self._writer(fs, f"{root}/{name}", options),
                    process_group=uploads,
                    async_stager=self._staging(),
                    no_dist=group is None,
                )
        except Exception as exc:
            self._written(name)
            raise CheckpointError(self._save_failure(path, exc), path) from exc
        # Staged synchronously, DCP answers with the upload's future itself.
        upload = response if isinstance(response, Future) else response.upload_completion
        coordinator = self._is_coordinator(group)

        def finish(upload: Future[Any]) -> None:
            try:
                error = upload.exception()
                if error is not None:
                    if coordinator:
                        discard(fs, root, f"{root}/{name}")
                    failure = CheckpointError(self._save_failure(path, error), path)
                    failure.__cause__ = error
                    raise failure
                if coordinator:
                    message = self._commit(fs, root, name, shape, group, path)
                    if message is not None:
                        raise CheckpointError(message, path)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller later
                with self._lock:
                    self._errors.append((path, exc))
            finally:
                self._written(name)
                done.set_result(None)

        self._done = done
        upload.add_done_callback(finish)

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
        super().teardown()
        self._raise_errors()
