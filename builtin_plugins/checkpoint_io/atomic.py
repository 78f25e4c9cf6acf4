"""Crash-safe replacement of a checkpoint file.

The writer is the core's one atomic writer (:mod:`plugin_registry._files`), the
same that writes lock files and the record cache: temporary file made with
``O_EXCL``, fsync, rename, fsync of the directory. A reader, or a process started
after a crash at any instant, finds either the old file or the new one,
complete. A temporary left by a writer that was killed is removed by the next
save to the same path.
"""

from __future__ import annotations

from plugin_registry._files import _HOST, atomic_write, fsync_directory, stale_temporaries

__all__ = ["_HOST", "atomic_write", "fsync_directory", "stale_temporaries"]
