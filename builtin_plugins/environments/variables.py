"""Reading a launcher's variables, with errors that say which variable and who sets it."""

from __future__ import annotations

import os

from plugin_registry.kinds.cluster_environment import ClusterEnvironmentError


def get(name: str, launcher: str) -> str:
    """The value of ``name``; an error naming the launcher that should have set it."""
    value = os.environ.get(name)
    if value is None:
        raise ClusterEnvironmentError(f"{name} is not set; {launcher}")
    return value


def get_int(name: str, launcher: str, default: int | None = None) -> int:
    """``name`` as an integer (``default`` when unset and a default is given)."""
    value = os.environ.get(name)
    if value is None:
        if default is not None:
            return default
        raise ClusterEnvironmentError(f"{name} is not set; {launcher}")
    try:
        return int(value.strip())
    except ValueError:
        raise ClusterEnvironmentError(f"{name}={value!r} is not an integer; {launcher}") from None


def port_from_job_id(job_id: str, variable: str, launcher: str) -> int:
    """``MASTER_PORT``, else 15000 plus the last four digits of the job id.

    Every process of the job computes the same port without talking to the others.
    """
    if "MASTER_PORT" in os.environ:
        return get_int("MASTER_PORT", "set it to a free port, or unset it")
    digits = job_id[-4:]
    if not digits.isdigit():
        raise ClusterEnvironmentError(
            f"{variable}={job_id!r} does not end in digits; set MASTER_PORT instead ({launcher})"
        )
    return int(digits) + 15000
