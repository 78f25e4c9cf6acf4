"""AsyncCheckpointIO: saves in a background thread, with snapshots and back-pressure."""

from __future__ import annotations

import atexit
import collections
import contextlib
import copy
import os
import signal
import sys
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Protocol

from plugin_registry.kinds.checkpoint_io import CheckpointError, CheckpointIO, PathLike

Staging = dict[tuple[Any, ...], Any]


def snapshot(obj: Any, reuse: Staging | None = None) -> tuple[Any, Staging]:
    """A copy the training loop cannot change, and the storages it was copied into.

    What the copy saves is what the original would: a plain tensor or
    ``nn.Parameter`` keeps its type, ``requires_grad``, shape, strides and offset,
    and tensors that share a storage (views, tied weights) share one copy of it,
    copied whole, as ``torch.save`` writes it. Storages are copied into the buffers
    of ``reuse`` where one of the same place, size and device exists, else into
    new ones: a copy into memory already touched costs a fraction of a fresh
    allocation. A DTensor's local shard is copied (not the global tensor). Tensor
    subclasses (with their attributes), quantized, sparse and other tensors are
    rebuilt from the reduction ``torch.save`` pickles, sharing storages with the
    rest of the copy.
    Containers are rebuilt; other objects are deep-copied where they can be.
    """
    import torch

    staged: Staging = {}
    # One memo for the whole copy, shared with copy.deepcopy: an object met twice
    # (a tied weight, a storage under two views) is copied once. deepcopy keys
    # storages by their ``_cdata`` in memo["torch"].
    memo: dict[Any, Any] = {}
    storages: dict[int, Any] = memo.setdefault("torch", {})

    def copy_storage(src: Any, key: tuple[Any, ...]) -> Any:
        if src._cdata in storages:
            return storages[src._cdata]
        buffer = reuse.get(key) if reuse else None
        if buffer is None or buffer.nbytes() != src.nbytes() or buffer.device != src.device:
            buffer = torch.UntypedStorage(src.nbytes(), device=src.device)  # type: ignore[no-untyped-call]
        buffer.copy_(src)
        staged[key] = storages[src._cdata] = buffer
        return buffer

    def reused_view(key: tuple[Any, ...], base: Any, mesh: Any, place: tuple[Any, ...]) -> Any:
        """The tensor made last time over the same ``base`` (a storage or a local shard,
        reused: the same object) in the same ``mesh`` at the same place, or None. Making
        one anew costs more than copying its bytes (a DTensor ~0.2 ms), and its bytes are
        already in ``base``."""
        old = reuse.get(_view_key(key)) if reuse else None
        if old is None or old[0] is not base or old[1] is not mesh or old[2] != place:
            return None
        return old[3]

    def copy_tensor(tensor: Any, key: tuple[Any, ...]) -> Any:
        if id(tensor) in memo:
            return memo[id(tensor)]
        local = getattr(tensor, "_local_tensor", None)
        if local is not None and hasattr(tensor, "device_mesh"):
            # A DTensor: copy this rank's shard only, and keep its place in the mesh.
            from torch.distributed.tensor import DTensor

            shard = copy_tensor(local, (*key, "<local>"))
            mesh = tensor.device_mesh
            layout = (tuple(tensor.placements), tensor.shape, tensor.stride())
            out = reused_view(key, shard, mesh, layout)
            if out is None:
                out = DTensor.from_local(
                    shard,
                    tensor.device_mesh,
                    tensor.placements,
                    run_check=False,
                    shape=tensor.shape,
                    stride=tensor.stride(),
                )
            staged[_view_key(key)] = (shard, mesh, layout, out)
            memo[id(tensor)] = out
            return out
        if _is_plain(tensor):
            if tensor.device.type in _STORAGE_DEVICES:
                storage = copy_storage(tensor.untyped_storage(), key)
                place = (tensor.dtype, tensor.storage_offset(), tensor.size(), tensor.stride())
                out = reused_view(key, storage, None, place)
                if out is None:
                    out = torch.empty(0, dtype=tensor.dtype, device=tensor.device)
                    out.set_(storage, tensor.storage_offset(), tensor.size(), tensor.stride())
                staged[_view_key(key)] = (storage, None, place, out)
            else:
                # XLA and other backends have no storage torch.UntypedStorage can
                # allocate ("Storage device not recognized: xla"): copy the tensor
                # as it is seen; such a device keeps no views to share.
                out = tensor.detach().clone()
            if type(tensor) is torch.nn.Parameter:
                out = torch.nn.Parameter(out, requires_grad=tensor.requires_grad)
            elif tensor.requires_grad:
                out.requires_grad_(True)  # torch.save keeps the flag, also of a non-leaf
        else:
            out = _reduce_copy(tensor, memo)
        memo[id(tensor)] = out
        return out

    def walk(value: Any, key: tuple[Any, ...]) -> Any:
        if isinstance(value, torch.Tensor):
            return copy_tensor(value, key)
        if isinstance(value, (str, bytes, int, float, bool, type(None))):
            return value
        if id(value) in memo:
            return memo[id(value)]
        out: Any
        if isinstance(value, dict):
            # copy.copy keeps the type and attributes (a state_dict's ``_metadata``).
            out = memo[id(value)] = copy.copy(value)
            for k, v in value.items():
                out[k] = walk(v, (*key, k))
        elif isinstance(value, Mapping):
            out = {k: walk(v, (*key, k)) for k, v in value.items()}
        elif isinstance(value, list):
            out = memo[id(value)] = []
            out.extend(walk(v, (*key, i)) for i, v in enumerate(value))
        elif isinstance(value, tuple):
            items = [walk(v, (*key, i)) for i, v in enumerate(value)]
            out = type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
        else:
            try:
                out = copy.deepcopy(value, memo)
            except Exception:  # noqa: BLE001 - an object that cannot be copied is saved as it is
                out = value
        memo[id(value)] = out
        return out

    return walk(obj, ()), staged


#: Ends the key of the tensor a snapshot made over a tensor's copied bytes.
_VIEW = object()


def _view_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*key, _VIEW)


# Devices whose storages ``torch.UntypedStorage(n, device=...)`` can allocate, so a
# view's whole storage is copied once and sharing survives.
_STORAGE_DEVICES = frozenset({"cpu", "cuda"})


def _is_plain(tensor: Any) -> bool:
    """A tensor whose whole saved form is its storage, place in it, type and grad flag."""
    import torch

    return (
        type(tensor) in (torch.Tensor, torch.nn.Parameter)
        and tensor.layout == torch.strided
        and not tensor.is_quantized
        and not tensor.is_meta
        and not tensor.is_conj()
        and not tensor.is_neg()
        # no attributes of its own (they are pickled as state)
        and not torch._utils._get_obj_state(tensor)  # type: ignore[no-untyped-call]
    )


def _reduce_copy(tensor: Any, memo: dict[Any, Any]) -> Any:
    """A copy of a subclass or other tensor made as unpickling would make it.

    ``torch.save`` pickles a tensor through ``__reduce_ex__``; rebuilding from the
    same reduction, its storages deep-copied through ``memo``, gives what a load of
    the wrapped IO's file would: the type, its attributes, quantizer, layout, flags.
    """
    import torch

    def copied(value: Any) -> Any:
        if isinstance(value, torch.storage.TypedStorage):
            # deepcopy() of a TypedStorage warns that it is old; _deepcopy is the same, quietly
            return value._deepcopy(memo)  # type: ignore[no-untyped-call]
        if type(value) is tuple:
            return tuple(copied(v) for v in value)
        return copy.deepcopy(value, memo)

    reduction = tensor.__reduce_ex__(2)
    if len(reduction) == 2:
        rebuild, args = reduction
        return rebuild(*copied(args))
    reconstruct = getattr(copy, "_reconstruct")  # noqa: B009 - what copy.deepcopy uses
    return reconstruct(tensor, memo, *reduction)


class AsyncCheckpointIO(CheckpointIO):
    """Wraps a CheckpointIO and runs its saves in a background thread.

    * ``save_checkpoint`` returns once it has taken a snapshot of the checkpoint
      (tensors copied), so the training loop may go on changing its tensors. The
      copies go into buffers kept from earlier saves, so from the second save on
      a snapshot costs a memory copy, not an allocation.
    * Saves complete in the order they were asked for.
    * At most ``max_pending`` saves are queued or running; one more waits for a
      slot (back-pressure), so memory holds at most that many snapshots (kept
      for reuse until :meth:`teardown`).
    * A failed save is raised, as a :class:`CheckpointError` with the original
      chained, by the next call and by :meth:`teardown` -- never swallowed.
    * ``load_checkpoint`` and ``remove_checkpoint`` wait for pending saves first.
    * :meth:`teardown` waits for every pending save and stops the thread, also
      after a failure.
    * Nothing is lost at exit: the saving thread is not a daemon, so the
      interpreter finishes pending saves before it exits, also when the script
      ends without :meth:`teardown` or with an exception. A failure nobody was
      told of is written to stderr at exit and the exit status becomes 1.
      SIGTERM (what SLURM and Kubernetes send before they stop a job) first
      finishes the pending saves, then runs the handler that was there before.

    ``checkpoint_io`` is the wrapped plugin, or the name of a registered
    checkpoint IO plugin (None, the default: ``"torch"``); it may itself be asynchronous, as
    Lightning allows: :meth:`wait` then also waits for its saves.
    """

    #: The plugin that writes each checkpoint.
    checkpoint_io: CheckpointIO
    #: Lightning's AsyncCheckpointIO attribute: whether the wrapped plugin is set. Here it
    #: always is (None means ``"torch"``), so Lightning never replaces it.
    _base_checkpoint_io_configured = True

    def __init__(
        self, checkpoint_io: CheckpointIO | str | None = None, max_pending: int = 2
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        if checkpoint_io is None:
            checkpoint_io = "torch"  # Lightning's None: the default IO
        if isinstance(checkpoint_io, str):
            import plugin_registry

            inner: CheckpointIO = plugin_registry.load(checkpoint_io, kind="checkpoint_io")
        else:
            inner = checkpoint_io
        self.checkpoint_io = inner
        self.max_pending = max_pending
        self._slots = threading.BoundedSemaphore(max_pending)
        # One re-entrant lock: the SIGTERM handler may run while the main thread holds it.
        self._cond = threading.Condition(threading.RLock())
        self._pending: collections.deque[tuple[Any, ...]] = collections.deque()
        self._busy = 0  # saves queued or running
        self._errors: list[tuple[str, BaseException]] = []
        self._thread: threading.Thread | None = None
        self._running = False
        self._pool: list[Staging] = []  # buffers of finished saves, for the next snapshots
        self._warm = False
        _live.add(self)
        _install_exit_guards()

    def _worker(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    # Decided under the lock that queues: a save queued after
                    # this point starts a new thread.
                    self._running = False
                    self._cond.notify_all()
                    return
                checkpoint, path, storage_options, staged = self._pending.popleft()
            try:
                self.checkpoint_io.save_checkpoint(checkpoint, path, storage_options)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller later
                with self._cond:
                    self._errors.append((str(path), exc))
            finally:
                checkpoint = None
                with self._cond:
                    self._pool.append(staged)
                    self._busy -= 1
                    self._cond.notify_all()
                staged = None
                self._slots.release()

    def _raise_errors(self) -> None:
        with self._cond:
            errors, self._errors = self._errors, []
        if errors:
            path, first = errors[0]
            more = f" (and {len(errors) - 1} more failed saves)" if len(errors) > 1 else ""
            raise CheckpointError(
                f"a background save to {path!r} failed: {type(first).__name__}: {first}{more}",
                path,
            ) from first

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None
    ) -> None:
        """Snapshot ``checkpoint`` and queue its save; blocks only while all slots are busy."""
        self._raise_errors()
        if not self._warm:
            _warm_up(path, storage_options)
            self._warm = True
        if _exiting:
            # From an exit handler that runs after ours: no thread can start now.
            self._drain()
            self.checkpoint_io.save_checkpoint(checkpoint, path, storage_options)
            return
        self._slots.acquire()  # before the snapshot: a waiting caller holds no copy
        try:
            with self._cond:
                reuse = self._pool.pop() if self._pool else None
            frozen, staged = snapshot(checkpoint, reuse)
        except BaseException:
            self._slots.release()
            raise
        with self._cond:
            self._pending.append((frozen, path, storage_options, staged))
            self._busy += 1
            if not self._running:
                # Not a daemon: the interpreter waits for it before exiting, so a
                # save queued by a script's last line is written, not cut off.
                self._thread = threading.Thread(target=self._worker, name="AsyncCheckpointIO")
                self._running = True
                self._thread.start()

    def pending(self) -> int:
        """How many saves are queued or running."""
        with self._cond:
            return self._busy

    def _drain(self) -> None:
        with self._cond:
            while self._busy:
                self._cond.wait()

    def _after_fork(self) -> None:
        # Locks a parent's thread held at the fork stay held here: new ones.
        self._slots = threading.BoundedSemaphore(self.max_pending)
        self._cond = threading.Condition(threading.RLock())
        self._pending.clear()
        self._busy = 0
        self._errors = []
        self._thread = None
        self._running = False
        self._pool = []

    def wait(self) -> None:
        """Block until every queued save has finished; raise the first failure."""
        self._drain()
        self._raise_errors()
        inner_wait = getattr(self.checkpoint_io, "wait", None)
        if callable(inner_wait):
            inner_wait()  # a wrapped asynchronous IO: its saves are ours too

    def load_checkpoint(
        self, path: PathLike, map_location: Any = "cpu", weights_only: bool | None = None
    ) -> dict[str, Any]:
        self.wait()
        return self.checkpoint_io.load_checkpoint(
            path, map_location=map_location, weights_only=weights_only
        )

    def remove_checkpoint(self, path: PathLike) -> None:
        self.wait()
        self.checkpoint_io.remove_checkpoint(path)

    def teardown(self) -> None:
        """Finish every pending save, stop the thread, then raise any failure."""
        self._drain()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            self._pool.clear()
        try:
            self._raise_errors()
        finally:
            self.checkpoint_io.teardown()

    def _unreported(self) -> list[tuple[str, BaseException]]:
        with self._cond:
            errors, self._errors = self._errors, []
        return errors


class Guarded(Protocol):
    """A plugin whose pending saves the exit and SIGTERM guards finish and report."""

    def _drain(self) -> None: ...

    def _unreported(self) -> list[tuple[str, BaseException]]: ...

    def _after_fork(self) -> None:
        """In a child process: forget the parent's saves (they are the parent's)."""


#: Every asynchronous checkpoint IO alive, for the exit and SIGTERM guards.
_live: weakref.WeakSet[Guarded] = weakref.WeakSet()
_atexit_installed = False
_sigterm_installed = False
_previous_sigterm: Any = None
#: Set when the exit guard runs: a save queued after that (by an exit handler that
#: was registered earlier, so runs later) is written at once, in the caller.
_exiting = False


def _install_exit_guards() -> None:
    """Report lost saves at exit (once per process); finish saves on SIGTERM (once,
    from the main thread: the first instance may have been made in another)."""
    global _atexit_installed, _sigterm_installed, _previous_sigterm
    if not _atexit_installed:
        _atexit_installed = True
        atexit.register(_at_exit)
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_installed = True
    try:
        _previous_sigterm = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or no SIGTERM here
        _previous_sigterm = None


def _after_fork_in_child() -> None:
    """The child of a fork owns none of its parent's pending saves: waiting for them
    (at exit, on SIGTERM) would wait forever, since their threads did not come along."""
    global _exiting
    _exiting = False
    for aio in list(_live):
        aio._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _flush_all() -> None:
    for aio in list(_live):
        aio._drain()


def _at_exit() -> None:
    # The interpreter has joined the saving threads by now; this catches saves
    # queued by other exit handlers and reports failures nobody was told of.
    global _exiting
    _exiting = True
    _flush_all()
    lost = [(aio, path, exc) for aio in list(_live) for path, exc in aio._unreported()]
    if not lost:
        return
    for aio, path, exc in lost:
        sys.stderr.write(
            f"{type(aio).__name__}: the background save to {path!r} failed and was never "
            f"reported: {type(exc).__name__}: {exc}\n"
        )
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)  # a lost checkpoint must not look like success to a job scheduler


def _on_sigterm(signum: int, frame: Any) -> None:
    _flush_all()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:  # the default action: die of SIGTERM, as the sender expects
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _warm_up(path: PathLike, storage_options: Any | None) -> None:
    """Run in the caller's thread what a first save imports: the path's filesystem
    (fsspec's chained URLs, s3fs for ``s3://``) and torch's serialization. A first
    import in the saving thread races the caller's imports, and CPython's deadlock
    avoidance then hands one of them a half-initialised module."""
    import io

    import torch

    from builtin_plugins.checkpoint_io.torch_io import filesystem

    torch.save({"warm": torch.zeros(1)}, io.BytesIO())
    # A bad path is the save's to report, in order, from the caller's next call.
    with contextlib.suppress(Exception):
        filesystem(path, storage_options if isinstance(storage_options, dict) else None)
