"""The CLI and its messages as a user meets them: widths, answers, one line per mistake."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

import plugin_registry as pr
from plugin_registry import cli
from plugin_registry.errors import ConfigurationError, PluginNotFoundError
from plugin_registry.resolver import resolve
from plugin_registry.resolver.preferences import Preferences
from tests._support.errors import raises
from tests._support.resolver_cases import CPU
from tests._support.sitedir import SiteDir, env_class_module, registration, unique
from tests._support.support import missing_library

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def in_pty(columns: int, *args: str, raw: bool = False, **extra_env: str) -> str:
    """``python -m plugin_registry ARGS`` on a real pseudo-terminal ``columns`` wide
    (``raw``: escape sequences kept)."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    env.update(extra_env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin_registry", "--no-cache", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        close_fds=True,
    )
    os.close(child)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(main)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    text = b"".join(chunks).decode()
    return (text if raw else ANSI.sub("", text)).replace("\r\n", "\n")


def _colours(text: str) -> list[str]:
    """The colour parameters of the SGR sequences in ``text`` (bold, italic are no colour)."""
    return [
        p
        for params in re.findall(r"\x1b\[([0-9;]*)m", text)
        for p in params.split(";")
        if p.isdigit() and (30 <= int(p) <= 49 or 90 <= int(p) <= 107)
    ]


def test_no_color_is_honoured_on_a_terminal() -> None:
    """no-color.org: NO_COLOR (non-empty) turns colour off; an empty one does not."""
    assert _colours(in_pty(100, "list", raw=True))
    assert _colours(in_pty(100, "list", raw=True, NO_COLOR="1")) == []
    assert _colours(in_pty(100, "list", raw=True, NO_COLOR=""))


def piped(columns: str | None, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    proc = subprocess.run(
        [sys.executable, "-m", "plugin_registry", "--no-cache", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _widest(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


def _names_intact(text: str) -> None:
    """Every plugin's name appears whole on one line (never broken mid-word)."""
    for record in pr.list_plugins():
        assert re.search(rf"(^|\s){re.escape(record.name)}(\s|$)", text, re.M), record.name


@pytest.mark.parametrize("columns", [80, 200])
def test_list_fits_a_terminal_and_never_breaks_a_name(columns: int) -> None:
    out = in_pty(columns, "list")
    assert _widest(out) <= columns
    _names_intact(out)
    # Install hints left the rows: a footnote number after the name, the footnote under
    # the table; a plugin whose requirements are met has no mark at all.
    assert re.search(r"^transformer-engine \[\d\] ", out, re.M)
    assert not re.search(r"\bmet\b", out)
    footnote = r"^\[\d\] unavailable: transformer_engine is not installed\. To fix: pip install"
    assert re.search(footnote, out, re.M)
    assert "mode: nf4," in out  # the choices of a parametrised name, in its summary
    if columns == 200:
        assert "mode: nf4, nf4-dq, fp4, fp4-dq, int8, int8-training" in out
        assert _widest(out) > 120  # the width is used, not a fixed 80


def test_piped_output_follows_columns_else_80() -> None:
    assert _widest(piped(None, "list")) <= 80
    wide = piped("200", "list")
    assert 120 < _widest(wide) <= 200
    _names_intact(wide)
    assert _widest(piped("not-a-number", "list")) <= 80


@pytest.mark.parametrize("columns", [80, 200])
def test_resolve_explanation_fits(columns: int) -> None:
    out = in_pty(columns, "resolve", "--precision", "bf16-mixed")
    assert _widest(out) <= columns
    for name in ("bf16-mixed", "fsdp-bf16-mixed", "torch", "async-torch", "torchelastic"):
        assert re.search(rf"\s{re.escape(name)}\s", out), name
    assert "never detected" in out
    if columns == 200:  # the reasons on one line each
        assert "never detected automatically: name it (plugins=['kubeflow'])" in out
        assert "asked first (priority -100)" not in out
        assert re.search(r"detected \(priority -?\d+\); the (one|\d+) ranked above it", out)
        assert "the 1 ranked" not in out


def test_16_mixed_on_the_cpu_is_one_note(capfd: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--no-cache", "resolve", "--precision", "16-mixed"])
    out, err = capfd.readouterr()
    assert code == 0
    assert out.count("float16 autocast is not supported there") == 1
    assert "Warning" not in err and "warnings.warn" not in err and ".py:" not in err


@pytest.mark.needs("bitsandbytes")
def test_show_reads_as_an_answer(capfd: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--no-cache", "show", "bitsandbytes-nf4"]) == 0
    out = capfd.readouterr().out
    assert out.startswith("bitsandbytes-nf4: a precision plugin from plugin-registry")
    assert 'pr.load("bitsandbytes-nf4")' in out
    assert "plugin-registry resolve --precision bitsandbytes-nf4" in out
    assert 'Trainer(plugins=["bitsandbytes-nf4"])' in out
    assert 'mode = "nf4"  (fixed by the name)' in out
    assert "its requirements are met" in out
    assert "null" not in out and "[]" not in out and "{}" not in out  # no dump of empty fields
    assert cli.main(["--no-cache", "show", "fsdp-bf16-mixed"]) == 0
    assert 'Trainer(strategy="fsdp", plugins=["fsdp-bf16-mixed"])' in capfd.readouterr().out
    assert cli.main(["--no-cache", "show", "xla", "--kind", "checkpoint_io"]) == 0
    out = capfd.readouterr().out
    assert "unavailable: torch_xla is not installed" in out
    assert "to fix: pip install 'plugin-registry[xla]'" in out
    assert "docs/" not in out  # a pip user has no repository paths
    assert 'pr.load("checkpoint_io/xla")' in out


def test_show_wraps_to_the_width(capfd: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--no-cache", "show", "bitsandbytes-nf4"]) == 0
    out = capfd.readouterr().out
    assert _widest(out) <= 80


@pytest.mark.parametrize(
    ("asked", "meant"),
    [
        ("nf4", "'bitsandbytes-nf4' or 'bitsandbytes-nf4-dq'"),
        ("int8", "'bitsandbytes-int8'"),
        ("fp8", "'transformer-engine'"),
        ("slurn", "'slurm'"),
    ],
)
def test_suggestions_by_part_substring_spelling_and_summary(asked: str, meant: str) -> None:
    with pytest.raises(pr.PluginNotFoundError, match=f"Did you mean {meant}"):
        pr.get(asked)


def test_setting_errors_read_as_sentences() -> None:
    kw = {"hardware": CPU, "preferences": Preferences()}
    with raises(ConfigurationError, "setting") as info:
        resolve(precision="fp8", **kw)
    text = str(info.value)
    assert "named so. Did you mean 'transformer-engine'" in text
    with raises(ConfigurationError, "setting") as info:
        resolve(precision="zzzz", **kw)
    assert "named so. Accepted:" in str(info.value)
    with raises(ConfigurationError, "setting", match=r"registers\. Accepted: auto"):
        resolve(strategy="horovod", **kw)
    with pytest.raises(pr.PluginRegistryError, match=r"accelerator='tpu' but no TPU \(XLA\)"):
        resolve(accelerator="tpu", **kw)


def test_ambiguous_name_on_the_cli_names_the_flag(capfd: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--no-cache", "show", "xla"]) == 2
    err = capfd.readouterr().err
    assert "(or add --kind KIND)" in err and "kind=..." not in err
    with raises(PluginNotFoundError, "ambiguous", match=r"pass kind=\.\.\."):
        pr.get("xla")


def test_install_hints_name_no_repository_path() -> None:
    for record in pr.list_plugins():
        assert "docs/" not in record.install_hint, record.name
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert "example.invalid" not in pyproject


@pytest.mark.parametrize(
    ("name", "override", "instead"),
    [
        pytest.param(
            "bitsandbytes-nf4",
            {"mode": "int8"},
            "bitsandbytes-int8",
            marks=pytest.mark.needs("bitsandbytes"),
        ),
        ("bf16-mixed", {"precision": "16-mixed"}, "16-mixed"),
        ("fsdp-bf16-mixed", {"precision": "32-true"}, "fsdp-32-true"),
    ],
)
def test_an_override_may_not_contradict_the_name(
    name: str, override: dict[str, str], instead: str
) -> None:
    with raises(ConfigurationError, "parameter", match=f"load {instead!r} instead") as info:
        pr.load(name, **override)
    assert isinstance(info.value, ValueError)
    key, value = next(iter(override.items()))
    assert f"{key}={value!r} contradicts the name {name!r}" in str(info.value)
    # Repeating what the name says, or overriding what it does not fix, is fine.
    pr.load(name, **{key: pr.default_registry().find(name).parameters.get(key) or name})


def test_unavailable_names_what_was_asked() -> None:
    with pytest.raises(
        pr.PluginUnavailableError, match=r"plugin 'xla-bf16-true' \('xla-\{precision\}'\) from"
    ):
        pr.load("xla-bf16-true")
    with pytest.raises(
        pr.PluginUnavailableError, match=r"plugin 'precision/xla' \('xla-\{precision\}'\)"
    ):
        pr.load("precision/xla")  # an alias: what was asked, then the record


def test_a_misspelt_target_says_what_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    site = SiteDir(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site.path))
    mod = unique("typo_plugins")
    records = [
        f'PluginInfo(name="{name}", kind="cluster_environment", target="{mod}.{target}")'
        for name, target in [
            ("typo-module", "enviroment:Env"),
            ("typo-class", "environment:Evn"),
            ("typo-dep", "needs:Env"),
        ]
    ]
    site.install(
        "typo-plugins",
        {
            f"{mod}/__init__.py": "",
            f"{mod}/environment.py": env_class_module(),
            f"{mod}/needs.py": "import surely_not_an_installed_module_xyz\n",
            f"{mod}/registration.py": registration("cluster_environment", *records),
        },
        f"{mod}.registration",
    )
    registry = pr.Registry(cache=False)
    with pytest.raises(pr.PluginLoadError) as info:
        registry.load("typo-module")
    text = str(info.value)
    assert f"module '{mod}.enviroment' does not exist. Did you mean 'environment'?" in text
    assert "doctor" not in text
    with pytest.raises(pr.PluginLoadError, match=r"has no attribute 'Evn'\. Did you mean 'Env'\?"):
        registry.load("typo-class")
    with pytest.raises(
        pr.PluginLoadError, match="it imports 'surely_not_an_installed_module_xyz', which is not"
    ):
        registry.load("typo-dep")
    # The doctor says the same, with the fix in its own place.
    assert cli.main(["--no-cache", "doctor"]) == 1
    out = capfd.readouterr().out
    flat = " ".join(out.split())
    assert "Did you mean 'environment'?" in flat and "run 'plugin-registry doctor'" not in flat
    after = out[out.index("Errors (3)") :]
    ends = [after.index(t) for t in ("Warnings (", "Notes (") if t in after]  # next section
    errors = after[: min(ends, default=len(after))]
    assert errors.count("    fix: ") == 3  # each problem with its own fix
    assert "fix: correct it in typo-plugins registration" in " ".join(errors.split())
    assert re.search(
        r"^3 errors, \d+ warnings?, \d+ notes?; exit 1: something is broken", out, re.M
    )


def test_doctor_says_each_note_with_its_fix(capfd: pytest.CaptureFixture[str]) -> None:
    """A built-in whose optional library is absent is a note (a fresh install's normal
    state), each with the command that installs it."""
    assert cli.main(["--no-cache", "doctor"]) == 0
    out = capfd.readouterr().out
    assert "Errors" not in out and "No problems found" not in out
    notes = out[out.index("Notes (") :]
    n = int(re.search(r"Notes \((\d+)\)", out)[1])  # type: ignore[index]
    assert notes.count("\n    fix: ") == n
    assert notes.count("    fix: pip install 'plugin-registry[xla]'") == 4
    assert "torch_xla is not installed" not in out[: out.index("Notes (")]  # not a warning
    assert re.search(rf"^0 errors, \d+ warnings?, {n} notes?; exit 0: nothing is broken", out, re.M)
    # Wrapped at 80, except a word (a path) longer than a line.
    assert all(len(line) <= 80 or " " not in line.strip() for line in out.splitlines())


def test_plugins_say_what_they_are() -> None:
    if missing_library("bitsandbytes") is None:
        assert repr(pr.load("bitsandbytes-nf4")).startswith("BitsandbytesPrecision(mode='nf4'")
    assert repr(pr.load("fsdp-16-mixed")).startswith("FSDPPrecision(precision='16-mixed'")
    assert repr(pr.load("bf16-mixed")) == "MixedPrecision(precision='bf16-mixed', device='cpu')"
    assert repr(pr.load("torch")) == "TorchCheckpointIO(weights_only=True)"
    assert repr(pr.load("async", max_pending=4)) == (
        "AsyncCheckpointIO(checkpoint_io=TorchCheckpointIO(weights_only=True), max_pending=4)"
    )


def test_planning_elsewhere_names_libraries_the_record_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """docs/hardware/h100x8.json lists the built-ins' libraries: a third-party plugin's
    library is 'not in the hardware record', and --libraries here takes this machine's."""
    site = SiteDir(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site.path))
    mod = unique("planned_plugins")
    record = (
        f'PluginInfo(name="planned-bf16", kind="precision", target="{mod}.p:P", '
        'requires=("pluggy>=1",), accelerators=("cpu", "cuda"), provides=("bf16-mixed",))'
    )
    site.install(
        "planned-plugins",
        {
            f"{mod}/__init__.py": "",
            f"{mod}/p.py": "from plugin_registry.kinds.precision import Precision as P\n",
            f"{mod}/registration.py": registration("precision", record),
        },
        f"{mod}.registration",
    )
    h100 = str(Path(__file__).resolve().parents[1] / "docs" / "hardware" / "h100x8.json")
    monkeypatch.setenv("COLUMNS", "250")  # the explanation's reasons on one line each
    base = ["--no-cache", "resolve", "--hardware", h100]
    args = [*base, "--plugin", "planned-bf16"]
    assert cli.main(args) == 2
    err = capfd.readouterr().err
    assert "pluggy is not installed" not in err
    assert "pluggy is not in the hardware record (resolve --libraries here judges" in err
    assert cli.main([*base, "--precision", "bf16-mixed"]) == 0
    out = capfd.readouterr().out
    assert re.search(r"planned-bf16 .* rejected .* pluggy is not in the hardware record", out)
    assert cli.main([*args, "--libraries", "here"]) == 0, capfd.readouterr().err
    out = capfd.readouterr().out
    assert "planned-bf16" in out and "8 x CUDA" in out
    assert cli.main(["--no-cache", "resolve", "--libraries", "here"]) == 2
    assert "--libraries here goes with --hardware FILE" in capfd.readouterr().err


def test_torchs_numpy_notice_stays_out_of_resolve() -> None:
    """torch's CPU wheel does not pull numpy; without it `import torch` warns on every start.
    (numpy hidden here by a None in sys.modules: the same warning, no second venv.)"""
    hide = "import sys; sys.modules['numpy'] = None; "
    proc = subprocess.run(
        [sys.executable, "-c", hide + "import torch"], capture_output=True, text=True
    )
    assert "Failed to initialize NumPy" in proc.stderr  # the noise is real here
    code = hide + "from plugin_registry import cli; raise SystemExit(cli.main(['resolve']))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "Resolution for" in proc.stdout


def test_a_single_device_plugin_is_declared_with_its_strategy_family() -> None:
    from plugin_registry.kinds.precision import Precision
    from tests._support.resolver_cases import H100x2

    class Solo(Precision):
        precision = "solo"

    registry = pr.Registry(cache=False)
    registry.register(
        Solo, name="solo", kind="precision", strategies=("single",), accelerators=("cpu", "cuda")
    )
    kw = {"hardware": H100x2, "registry": registry, "preferences": Preferences()}
    with pytest.raises(
        pr.PluginRegistryError, match="made for strategy single; this job uses 'ddp'"
    ):
        resolve(plugins=["solo"], **kw)
    assert resolve(plugins=["solo"], devices=1, **kw).precision.name == "solo"


def test_a_missing_library_is_judged_without_packaging() -> None:
    """Most of resolve()'s time once went to packaging's parsers: a library that is not
    installed needs no specifier parsed, and a malformed one is still found out."""
    code = (
        "import sys\n"
        "from plugin_registry.requirements import check\n"
        "u = check(('surely-not-installed-lib>=1.0', 'also-missing'))\n"
        "assert u.short == ('missing: surely-not-installed-lib', 'missing: also-missing'), u\n"
        "assert 'packaging.specifiers' not in sys.modules\n"
        "assert check(('bad req ][',)).short == ('malformed requirement',)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
