"""Reading a launcher's variables, with errors that say which variable and who sets it.

A variable is text the launcher wrote, or anyone who can set the environment.
Numbers are plain ASCII digits (``int()`` would also take ``"١٢"``, ``"1_0"`` or
5000 digits), at most nine of them, inside the range their meaning allows:
ranks from 0, sizes from 1, ports 1-65535. Files a variable names are read
through :func:`plugin_registry.files.read_text` (a regular file, at most
:data:`MAX_FILE_BYTES`, UTF-8). Every error names the variable.
"""

from __future__ import annotations

import os

from plugin_registry.files import UnreadableFileError, read_text
from plugin_registry.kinds.cluster_environment import ClusterEnvironmentError

#: A host file (PE_HOSTFILE, LSB_DJOB_RANKFILE) larger than this is refused.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_PORT = 65535

#: Variables that count processes, slots or nodes: at least 1.
_SIZES = frozenset(
    {
        "WORLD_SIZE",
        "LOCAL_WORLD_SIZE",
        "SLURM_NTASKS",
        "SLURM_NNODES",
        "SLURM_NTASKS_PER_NODE",
        "JSM_NAMESPACE_SIZE",
        "NSLOTS",
        "NHOSTS",
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "PMI_SIZE",
        "PMIX_SIZE",
    }
)


def _range(name: str) -> tuple[int, int]:
    if "PORT" in name:
        return 1, MAX_PORT
    if name in _SIZES or name.endswith("_SIZE"):
        return 1, 10**9 - 1
    return 0, 10**9 - 1


def parse_count(text: str, digits: int = 9) -> int | None:
    """``text`` as a non-negative ASCII integer of at most ``digits`` digits, else None."""
    value = text.strip()
    if not value.isascii() or not value.isdigit() or len(value) > digits:
        return None
    return int(value)


def get(name: str, launcher: str) -> str:
    """The value of ``name``; an error naming the launcher that should have set it."""
    value = os.environ.get(name)
    if value is None:
        raise ClusterEnvironmentError(f"{name} is not set; {launcher}", reason="missing-variable")
    return value


def get_int(
    name: str,
    launcher: str,
    default: int | None = None,
    missing: str = "missing-variable",
) -> int:
    """``name`` as an integer in its range (``default`` when unset and a default is given).

    An unset variable raises a ClusterEnvironmentError with reason ``missing``:
    ``"missing-variable"`` (a KeyError, where Lightning reads ``os.environ[name]``), or
    ``"invalid-variable"`` (a ValueError) for the launchers whose Lightning class
    checks and raises ValueError itself (LSF).
    """
    value = os.environ.get(name)
    if value is None:
        if default is not None:
            return default
        raise ClusterEnvironmentError(f"{name} is not set; {launcher}", reason=missing)
    number = parse_count(value)
    low, high = _range(name)
    if number is None:
        raise ClusterEnvironmentError(
            f"{name}={value[:40]!r} is not an integer; {launcher}", reason="invalid-variable"
        )
    if not low <= number <= high:
        raise ClusterEnvironmentError(
            f"{name}={number} is out of range: it must be between {low} and {high}; {launcher}",
            reason="invalid-variable",
        )
    return number


def port_from_job_id(job_id: str, variable: str, launcher: str) -> int:
    """``MASTER_PORT``, else 15000 plus the last four digits of the job id.

    Every process of the job computes the same port without talking to the others.
    """
    if "MASTER_PORT" in os.environ:
        return get_int("MASTER_PORT", "set it to a free port, or unset it")
    digits = job_id[-4:]
    if parse_count(digits) is None or len(digits.strip()) != len(digits):
        raise ClusterEnvironmentError(
            f"{variable}={job_id[-40:]!r} does not end in digits; set MASTER_PORT instead "
            f"({launcher})",
            reason="invalid-variable",
        )
    return int(digits) + 15000


def read_host_file(variable: str, launcher: str, what: str = "") -> list[str]:
    """The non-empty lines of the file that ``variable`` names, bounded and checked."""
    path = get(variable, launcher)
    if not path.strip():
        raise ClusterEnvironmentError(f"{variable} is empty; {launcher}", reason="invalid-variable")
    try:
        text = read_text(path, max_bytes=MAX_FILE_BYTES)
    except FileNotFoundError:
        raise ClusterEnvironmentError(
            f"cannot read {what + ' ' if what else ''}{variable}={path!r}: the file does not "
            f"exist; {launcher}",
            reason="missing-file",
        ) from None
    except UnreadableFileError as exc:
        raise ClusterEnvironmentError(
            f"cannot read {what + ' ' if what else ''}{variable}={path!r}: "
            f"{exc.strerror or exc}; {launcher}",
            reason="invalid-variable",
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip()]
