"""Team sessions: tests, lint, types, docs, bench. ``nox -l`` lists them."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "types", "tests"]
nox.options.default_venv_backend = "venv"

# The CPU wheel lies on the team's machines; an unpinned torch pulls a CUDA build.
TORCH = "torch==2.13.0"


def install(session: nox.Session, extras: str) -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite (real venvs, real packages, subprocesses)."""
    install(session, "test,bitsandbytes,safetensors")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def fast(session: nox.Session) -> None:
    """The inner loop: everything but the slow tests (venvs, launchers, long training); < 2 min."""
    install(session, "test,bitsandbytes,safetensors")
    session.run("python", "-m", "pytest", "-m", "not slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict on the core and the built-ins."""
    install(session, "lint")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Speed targets as ratios in one run; fails when a target is missed."""
    install(session, "test,bench,bitsandbytes")
    session.run("python", "benchmarks/bench_deepspeed.py", env={"DS_ACCELERATOR": "cpu"})
    session.run(
        "python",
        "benchmarks/bench_bitsandbytes.py",
        "--json",
        "benchmarks/results/bitsandbytes.json",
    )
    session.run(
        "python",
        "benchmarks/bench_precision.py",
        "--check",
        "--json",
        "benchmarks/results/precision.json",
    )
    session.run(
        "python",
        "benchmarks/bench_checkpoint.py",
        "--check",
        "--json",
        "benchmarks/results/checkpoint.json",
    )
    session.run(
        "python",
        "benchmarks/bench_distributed_checkpoint.py",
        "--check",
        "--json",
        "benchmarks/results/distributed_checkpoint.json",
    )
    session.run(
        "python",
        "benchmarks/bench_resolve.py",
        "--check",
        "--json",
        "benchmarks/results/resolve.json",
    )
    session.run(
        "python",
        "benchmarks/bench_listing.py",
        "--check",
        "--json",
        "benchmarks/results/listing.json",
        *session.posargs,
    )
    # The plots in docs/benchmarks.md, from this run's figures.
    session.run("python", "benchmarks/plots.py")


DOCS_BUILD = ("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, warnings as errors (API pages import the package)."""
    install(session, "docs,lightning")
    session.run(*DOCS_BUILD)


@nox.session
def faults(session: nox.Session) -> None:
    """The crash tests at length: 500 SIGKILLs during saves (CI runs 20)."""
    install(session, "test")
    session.env["CHECKPOINT_KILL_ROUNDS"] = "500"
    session.run("python", "-m", "pytest", "tests/test_checkpoint_io.py", "-k", "sigkill", "-s")


@nox.session
def stateful(session: nox.Session) -> None:
    """The registry state machine at length: 500 sequences, shrunk on failure (CI runs 8)."""
    install(session, "test")
    session.env["PLUGIN_REGISTRY_STATEFUL_EXAMPLES"] = (
        session.posargs[0] if session.posargs else "500"
    )
    session.run("python", "-m", "pytest", "tests/test_registry_state.py", "-p", "no:cacheprovider")


@nox.session
def xla(session: nox.Session) -> None:
    """The XLA plugins on a real torch_xla runtime (PJRT on the CPU), beside torch 2.9.

    torch_xla runs only with the torch it was built for, so this session has its
    own environment (about 4 GB of downloads): it also shows that the core and the
    torch-native plugins work on the oldest torch we support.
    """
    session.install("torch==2.9.0", "torch_xla==2.9.0")
    # Lightning too: its XLA strategy takes our adapter, and the checkpoint tests compare
    # with Lightning's IO (it takes the torch already installed).
    session.install("-e", ".", "pytest>=8", "hypothesis>=6.100", "lightning>=2.5,<2.7")
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/test_xla.py",
        "tests/test_checkpoint_io.py",
        "tests/test_registry.py",
        "tests/test_names.py",
        "tests/test_records.py",
        env={"PJRT_DEVICE": "CPU"},
    )
