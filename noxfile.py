"""Team sessions: tests, lint, types, docs, bench. ``nox -l`` lists them."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["lint", "types", "tests"]
nox.options.default_venv_backend = "venv"

# The CPU wheel lies on the team's machines; an unpinned torch pulls a CUDA build.
TORCH = "torch==2.13.0"
DEEPSPEED = "deepspeed==0.19.8"  # the version .ci/setup installs


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
    """Speed targets as ratios in one run; fails, after every benchmark ran and the plots
    are drawn, when a target was missed (naming which). ``nox -s bench -- listing checkpoint``
    runs only the benchmarks named."""
    session.install(TORCH)
    # As .ci/setup installs it: built against the installed torch, no ops compiled now.
    session.install("--no-build-isolation", DEEPSPEED, env={"DS_BUILD_OPS": "0"})
    install(session, "test,bench,bitsandbytes")
    checked = ["precision", "checkpoint", "distributed_checkpoint", "resolve", "listing"]
    wanted = set(session.posargs) or {"deepspeed", "bitsandbytes", *checked}
    # What the installs above wrote is still going to disk: it would be timed in the first
    # save (a write-back, a discard of deleted files) instead of being the machine's.
    session.run("sync", external=True)
    missed = []
    for name in ["deepspeed", "bitsandbytes", *checked]:
        if name not in wanted:
            continue
        args = ["--check"] if name in checked else []
        if name != "deepspeed":
            args += ["--json", f"benchmarks/results/{name}.json"]
        try:
            session.run(
                "python", f"benchmarks/bench_{name}.py", *args, env={"DS_ACCELERATOR": "cpu"}
            )
        except nox.command.CommandFailed:
            missed.append(name)
    # The plots in docs/benchmarks.md, from this run's figures.
    session.run("python", "benchmarks/plots.py")
    if missed:
        session.error(f"targets missed: {', '.join(missed)}")


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
def fuzz(session: nox.Session) -> None:
    """Every file format the project reads, mutated: 3,000 inputs each (CI runs 25)."""
    install(session, "test,safetensors")
    session.env["PLUGIN_REGISTRY_FUZZ_EXAMPLES"] = session.posargs[0] if session.posargs else "3000"
    session.run("python", "-m", "pytest", "tests/test_fuzz_formats.py", "-p", "no:cacheprovider")


@nox.session
def stateful(session: nox.Session) -> None:
    """The registry state machine at length: 500 sequences, shrunk on failure (CI runs 8)."""
    install(session, "test")
    session.env["PLUGIN_REGISTRY_STATEFUL_EXAMPLES"] = (
        session.posargs[0] if session.posargs else "500"
    )
    session.run("python", "-m", "pytest", "tests/test_registry_state.py", "-p", "no:cacheprovider")


#: What the sdist must carry besides the packages (the template's README points at docs/).
SDIST_TREES = ("docs", "tests", "examples", "benchmarks", "plugin_registry", "builtin_plugins")
SDIST_FILES = ("CHANGELOG.md", "LICENSE", "README.md", "pyproject.toml", "noxfile.py")


def _tracked_files() -> set[str] | None:
    """The files git tracks, or None outside a git checkout (an unpacked sdist)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {f for f in out.split("\0") if f and Path(f).is_file()}


def _check_sdist(session: nox.Session, sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = {m.name.partition("/")[2] for m in tar.getmembers() if m.isfile()}
    tracked = _tracked_files()
    if tracked is None:
        session.warn("not a git checkout: the sdist is checked for its top-level entries only")
        wanted = set(SDIST_FILES)
    else:
        wanted = {f for f in tracked if f.split("/")[0] in SDIST_TREES or f in SDIST_FILES}
    missing = sorted(wanted - names)
    if missing:
        session.error(f"{sdist.name} lacks {len(missing)} file(s): {', '.join(missing[:20])}")
    junk = sorted(n for n in names if "__pycache__" in n or ".egg-info/" in n.partition("/")[2])
    if junk:
        session.error(f"{sdist.name} carries build output: {', '.join(junk[:20])}")
    session.log(f"{sdist.name}: {len(names)} files, every tracked doc, test and example")


def _check_wheel(session: nox.Session, wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    needed = {
        "plugin_registry/py.typed",
        "builtin_plugins/py.typed",
        "plugin_registry/scaffold/template/ci.sh",
        "plugin_registry/scaffold/template/.github/workflows/ci.yml",
        "plugin_registry/scaffold/template/pyproject.toml.tmpl",
    }
    missing = sorted(needed - names)
    if missing:
        session.error(f"{wheel.name} lacks {', '.join(missing)}")
    if any(n.startswith(("tests/", "docs/", "examples/")) for n in names):
        session.error(f"{wheel.name} carries tests, docs or examples: they belong to the sdist")
    session.log(f"{wheel.name}: {len(names)} files")


@nox.session
def release(session: nox.Session) -> None:
    """The release artefacts, checked as a user meets them.

    Builds the sdist and the wheel (the wheel from the sdist, as ``build`` does),
    checks their metadata (``twine check --strict``) and contents, installs the wheel
    with only its ``[test]`` extra into a clean venv, runs ``plugin-registry list``
    there, and runs the fast tests from the unpacked sdist (its packages removed, so
    the installed wheel is what is tested).
    """
    session.install("build>=1", "twine>=5")
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    leftovers = [p for p in (Path("build"), Path("plugin_registry.egg-info")) if not p.exists()]
    session.run("python", "-m", "build", "--outdir", str(dist), ".")
    for path in leftovers:  # an egg-info left here would be a second copy on sys.path
        shutil.rmtree(path, ignore_errors=True)
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    session.run("python", "-m", "twine", "check", "--strict", str(sdist), str(wheel))
    _check_sdist(session, sdist)
    _check_wheel(session, wheel)

    venv = tmp / "clean-venv"
    shutil.rmtree(venv, ignore_errors=True)
    session.run("python", "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    pip = (python, "-m", "pip", "install", "-q")
    session.run(*pip, TORCH, external=True)
    session.run(*pip, f"{wheel}[test]", external=True)
    session.run(str(venv / "bin" / "plugin-registry"), "list", external=True)

    source = tmp / "sdist"
    shutil.rmtree(source, ignore_errors=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(source, filter="data")
    (root,) = source.iterdir()
    # The packages and their metadata (build output) go: the wheel is what is tested.
    for built in ("plugin_registry", "builtin_plugins", "plugin_registry.egg-info"):
        shutil.rmtree(root / built)
    session.chdir(root)
    where = session.run(
        python, "-c", "import plugin_registry; print(plugin_registry.__file__)",
        external=True, silent=True,
    )  # fmt: skip
    if str(venv) not in str(where):
        session.error(f"the tests would not import the installed wheel: {where}")
    session.run(python, "-m", "pytest", "-m", "not slow", "-p", "no:cacheprovider",
                *session.posargs, external=True)  # fmt: skip


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
