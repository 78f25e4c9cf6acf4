"""A hostile or broken plugin package, a planted cache, a bad variable (issue 13).

Every test here failed on the main of the day the issue was filed. Packages are
written straight into a directory on ``sys.path`` (tests/_support/sitedir.py).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import plugin_registry as pr
from plugin_registry import _capture, cli, errors
from plugin_registry.cache import RecordCache
from plugin_registry.errors import ConfigurationError, PluginNotFoundError, PluginRegistryWarning
from plugin_registry.registry import Registry
from tests._support.errors import raises
from tests._support.sitedir import (
    SiteDir,
    StubEnvironment,
    env_class_module,
    install_env_package,
    registration,
    unique,
)
from tests._support.support import REPO


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SiteDir:
    d = SiteDir(tmp_path / "site")
    monkeypatch.syspath_prepend(str(d.path))
    return d


def builtin_names(registry: Registry) -> set[str]:
    return {r.name for r in registry.list_plugins() if r.distribution == "plugin-registry"}


# -- 1. cache poisoning ---------------------------------------------------------


def _poison(cache_file: Path, marker: Path) -> None:
    data = json.loads(cache_file.read_text())
    for result in data["results"].values():
        for record in result["records"]:
            if record["kind"] == "checkpoint_io" and record["name"] == "torch":
                record["target"] = "subprocess:run"
                record["parameters"] = {"args": ["touch", str(marker)]}
    cache_file.write_text(json.dumps(data))


def _warm_cache(cache_dir: Path) -> Path:
    Registry(cache_dir=cache_dir).list_plugins()
    (cache_file,) = cache_dir.glob("*.json")
    return cache_file


def test_cache_directory_and_file_are_created_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        cache_file = _warm_cache(tmp_path / "cache")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600


@pytest.mark.parametrize("where", ["group-writable-dir", "group-writable-file", "other-owner"])
def test_planted_cache_is_never_read(tmp_path: Path, where: str) -> None:
    cache_dir = tmp_path / "cache"
    cache_file = _warm_cache(cache_dir)
    marker = tmp_path / "pwned"
    _poison(cache_file, marker)
    if where == "group-writable-dir":
        cache_dir.chmod(0o775)
    elif where == "group-writable-file":
        cache_file.chmod(0o664)
    else:
        if os.geteuid() != 0:
            pytest.skip("chown to another user needs root")
        os.chown(cache_file, 65534, 65534)
    planted = cache_file.read_bytes()
    with pytest.warns(PluginRegistryWarning, match="not using the plugin record cache"):
        registry = Registry(cache_dir=cache_dir)
        io = registry.load("checkpoint_io/torch")
    assert type(io).__name__ == "TorchCheckpointIO"
    assert not marker.exists()
    assert registry.get("checkpoint_io/torch").target.startswith("builtin_plugins.")
    after = cache_file.read_bytes()
    # Never the poison carried over: left alone in a directory we may not trust,
    # or replaced by a clean file of our own where the directory is ours.
    assert after == planted or b"subprocess:run" not in after
    if after != planted:
        assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600


def test_record_from_the_cache_is_validated_like_a_fresh_one(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_file = _warm_cache(cache_dir)
    data = json.loads(cache_file.read_text())
    for result in data["results"].values():
        for record in result["records"]:
            if record["name"] == "torch" and record["kind"] == "checkpoint_io":
                record["target"] = "not a target"
                record["summary"] = 5
    cache_file.write_text(json.dumps(data))
    registry = Registry(cache_dir=cache_dir)
    record = registry.get("checkpoint_io/torch")
    assert record.target == "builtin_plugins.checkpoint_io.torch_io:TorchCheckpointIO"
    assert registry.stats.collected == 1, "the bad entry is collected afresh"


def _careful_edit(cache_file: Path, edit: Any) -> None:
    """Edit the cache as a careful program would: the same compact separators, the seal
    left in place and the mtime put back, so neither layout nor mtime gives it away."""
    info = cache_file.stat()
    data = json.loads(cache_file.read_text())
    edit(data)
    cache_file.write_text(json.dumps(data, separators=(",", ":")))
    os.utime(cache_file, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_cache_the_registry_wrote_is_sealed_and_gives_back_the_same_records(
    tmp_path: Path,
) -> None:
    cache_dir = tmp_path / "cache"
    fresh = Registry(cache_dir=cache_dir)
    records = fresh.list_plugins()
    cached = RecordCache(cache_dir, fresh.group).load()
    assert cached is not None and cached.sealed
    again = Registry(cache_dir=cache_dir)
    reused = again.list_plugins()
    assert again.stats.reused and not again.stats.collected and not again.stats.scanned
    assert reused == records
    assert [r.names() for r in reused] == [r.names() for r in records]
    assert [r.to_dict() for r in reused] == [r.to_dict() for r in records]
    torch_io = again.get("checkpoint_io/torch")
    assert type(torch_io.aliases) is tuple and type(torch_io.accelerators) is tuple
    with pytest.raises(TypeError):
        torch_io.parameters["planted"] = 1  # type: ignore[index]  # frozen, as a fresh one


@pytest.mark.parametrize("seal", ["kept", "removed"])
def test_cache_edited_with_its_layout_and_mtime_kept_is_validated_again(
    tmp_path: Path, seal: str
) -> None:
    cache_dir = tmp_path / "cache"
    cache_file = _warm_cache(cache_dir)

    def edit(data: dict[str, Any]) -> None:
        for result in data["results"].values():
            for record in result["records"]:
                if record["name"] == "torch" and record["kind"] == "checkpoint_io":
                    record["target"] = "not a target"
                    record["summary"] = 5
        if seal == "removed":
            del data["seal"]

    _careful_edit(cache_file, edit)
    cached = RecordCache(cache_dir, "plugin_registry").load()
    assert cached is not None and not cached.sealed
    registry = Registry(cache_dir=cache_dir)
    assert registry.get("checkpoint_io/torch").target.startswith("builtin_plugins.")
    assert registry.stats.collected == 1, "the edited entry is collected afresh"


@given(st.binary(min_size=2, max_size=300), st.integers(min_value=0), st.integers(1, 255))
def test_seal_matches_its_own_text_and_no_text_with_one_byte_changed(
    body: bytes, where: int, delta: int
) -> None:
    from plugin_registry.cache import _seal, _sealed

    text = "{" + body.decode("latin-1") + "}"
    sealed = _seal(text).encode("utf-8")
    assert _sealed(sealed)
    at = where % (len(sealed) - 1)  # any byte but the closing brace
    changed = bytearray(sealed)
    changed[at] = (changed[at] + delta) % 256
    assert not _sealed(bytes(changed)) or bytes(changed).rfind(b',"seal":') != sealed.rfind(
        b',"seal":'
    )


# -- 4. malformed cache files ---------------------------------------------------


def test_cache_file_of_another_key_is_a_miss(tmp_path: Path) -> None:
    """The file name is a hash of the key (interpreter, sys.path, finders), not a digest:
    the file holds its key, and a file under the right name with another key is not used."""
    cache_dir = tmp_path / "cache"
    cache_file = _warm_cache(cache_dir)
    data = json.loads(cache_file.read_text())
    warm = Registry(cache_dir=cache_dir)
    warm.list_plugins()
    assert not warm.stats.scanned and warm.stats.collected == 0, "the file is used as it is"
    data["key"] = data["key"].replace("plugin_registry", "another_group")
    cache_file.write_text(json.dumps(data))
    other = Registry(cache_dir=cache_dir)
    other.list_plugins()
    assert other.stats.scanned and other.stats.cache_written
    assert json.loads(cache_file.read_text())["key"] == RecordCache(cache_dir, other.group).key


def test_cache_reader_agrees_with_json_loads() -> None:
    """The warm path's reader (CPython's C scanner, no json import) returns what json.loads
    returns, and raises what it raises, for valid, damaged and odd inputs."""
    from plugin_registry.cache import _loads

    valid = json.dumps({"a": [1, 2.5, None, True, "é\u2028", {"b": -0.0}], "c": 10**30})
    inputs = [
        valid.encode(),
        f"  {valid}\n".encode(),  # surrounding space: json.loads's whitespace rule
        valid.encode("utf-16"),  # json.loads detects the encoding
        valid.encode()[:-1],  # cut
        valid.encode() + b" x",  # extra data
        b"NaN",
        b"[1e999]",
        b'"\x01"',  # a raw control character
        b"\xff\xfe\x00",
        b"",
        b"[" * 100_000 + b"]" * 100_000,
    ]
    for raw in inputs:
        expected: object
        try:
            expected = ("value", json.loads(raw))
        except (ValueError, RecursionError) as exc:
            expected = ("error", type(exc), str(exc))
        try:
            got: object = ("value", _loads(raw))
        except (ValueError, RecursionError) as exc:
            got = ("error", type(exc), str(exc))
        assert repr(got) == repr(expected), raw[:40]


def _deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize(
    "content",
    [
        {"paths": "x", "entry_points": [], "results": {}},
        {"paths": [], "entry_points": [[1, 2, 3, 4, 5]], "results": {}},
        {},
        {"paths": [], "entry_points": [], "results": {"a": None}},
        "WRONG-TYPES",
        "DEEP",
    ],
)
def test_malformed_cache_is_a_miss(tmp_path: Path, content: object) -> None:
    cache_dir = tmp_path / "cache"
    cache_file = _warm_cache(cache_dir)
    if content == "DEEP":
        cache_file.write_text(_deep(100_000))
    elif content == "WRONG-TYPES":
        data = json.loads(cache_file.read_text())
        data["paths"] = [[p[0], "mtime", 3, "yes", []] for p in data["paths"]]
        for result in data["results"].values():
            result["records"] = [{"name": 1}]
            result["deps"] = ["a"]
        cache_file.write_text(json.dumps(data))
    else:
        # A cache that matches this interpreter and sys.path (its format and key are the
        # file's own), but not the schema.
        own = json.loads(cache_file.read_text())
        assert isinstance(content, dict)
        cache_file.write_text(json.dumps({"format": own["format"], "key": own["key"], **content}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginRegistryWarning)
        registry = Registry(cache_dir=cache_dir)
        assert {"torch", "slurm", "bf16-mixed"} <= builtin_names(registry)
    assert registry.stats.scanned or registry.stats.collected


def _list_in_subprocess(cache_dir: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import plugin_registry as pr, warnings; warnings.simplefilter('ignore');"
        "print(len(pr.list_plugins()))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PLUGIN_REGISTRY_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_cache_path_that_is_not_a_regular_file_is_a_miss(tmp_path: Path, kind: str) -> None:
    cache_dir = tmp_path / "cache"
    proc = _list_in_subprocess(cache_dir)
    assert proc.returncode == 0, proc.stderr
    (cache_file,) = cache_dir.glob("*.json")
    cache_file.unlink()
    if kind == "fifo":
        os.mkfifo(cache_file)
    elif kind == "dev-zero":
        cache_file.symlink_to("/dev/zero")
    else:
        cache_file.mkdir()
    proc = _list_in_subprocess(cache_dir)  # a hang or a MemoryError fails here
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 20


# -- 5. output of plugin code -----------------------------------------------------


def test_printing_registration_module_does_not_corrupt_json(
    site: SiteDir, capfd: pytest.CaptureFixture[str]
) -> None:
    mod = install_env_package(
        site,
        "noisy-plugins",
        "noisy-env",
        preamble="""
            import os, sys
            print("hello from import")
            sys.stderr.write("err from import\\n")
            os.write(1, b"raw bytes on fd 1\\n")
        """,
    )

    def forget() -> None:  # each command imports the module afresh, as a new process would
        for name in [m for m in sys.modules if m.startswith(mod)]:
            del sys.modules[name]

    registry = Registry(cache=False)
    registry.list_plugins()
    (text,) = registry.output().values()
    assert "hello from import" in text and "raw bytes on fd 1" in text
    assert "err from import" in text
    assert capfd.readouterr() == ("", ""), "nothing reaches the host's stdout or stderr"
    for command in (["list", "--json"], ["show", "noisy-env", "--json"], ["doctor", "--json"]):
        forget()
        code = cli.main(["--no-cache", *command])
        out, err = capfd.readouterr()
        assert code in (0, 1), err
        data = json.loads(out)  # raises if anything else was printed
        assert (
            "hello from import" not in out.replace("writes to stdout/stderr when imported", "")
            or command[0] == "doctor"
        )
    assert any("hello from import" in f["message"] for f in data["findings"])


# -- 6. control characters ------------------------------------------------------


def test_escape_sequences_in_plugin_text_never_reach_the_terminal(
    site: SiteDir, capfd: pytest.CaptureFixture[str]
) -> None:
    install_env_package(
        site,
        "ansi-plugins",
        "ansi-env",
        extra=r', summary="nice\x1b]0;pwned\x07\x1b[2J plugin"',
    )
    install_env_package(
        site, "ansi-broken", "x", preamble=r'raise ImportError("bad\x1b[2Jthing\x9b31m")'
    )
    with pytest.warns(pr.PluginWarning) as caught:
        Registry(cache=False).list_plugins()
    assert caught and all("\x1b" not in str(w.message) for w in caught)
    for command in (["list"], ["show", "ansi-env"], ["doctor"]):
        cli.main(["--no-cache", *command])
        out, err = capfd.readouterr()
        assert "\x1b" not in out + err and "\x07" not in out + err and "\x9b" not in out + err
    cli.main(["--no-cache", "list"])
    out = capfd.readouterr().out
    assert "\\x1b" in out and "bad\\x1b[2Jthing" in out.replace("\n", "").replace("│", "")


def test_printable_escapes_exactly_the_unsafe_characters() -> None:
    """Every C0 control but newline, DEL, every C1 control, the line and paragraph
    separators and the bidi controls become their escape; nothing else changes. A str
    subclass's own methods are not trusted to do it."""
    import re

    from plugin_registry._text import printable

    unsafe = re.compile(
        "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
    )
    for code in range(0x3000):
        char = chr(code)
        expected = (
            (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") if unsafe.match(char) else char
        )
        assert printable(char) == expected, hex(code)

    class Sneaky(str):
        def translate(self, table: Any) -> str:
            return str(self)

        def __str__(self) -> str:
            return "\x1b[2J"

    assert printable(Sneaky("a\x1b")) == "a\\x1b"
    assert printable(5) == "5"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("evil\x1bname", "control"),
        ("evil\nname", "control"),
        (" padded", "control"),
        ("evil\u2028x", "control"),
        ("a" * 101, "at most 100"),
    ],
)
def test_names_with_control_characters_or_too_long_are_refused(
    site: SiteDir, name: str, words: str
) -> None:
    install_env_package(site, "bad-names", name.encode("unicode_escape").decode())
    registry = Registry(cache=False)
    with pytest.warns(pr.PluginWarning):
        problems = [p for p in registry.problems() if p.distribution == "bad-names"]
    assert len(problems) == 1 and words in problems[0].reason
    assert not [r for r in registry.list_plugins() if r.distribution == "bad-names"]


def test_long_summary_is_refused(site: SiteDir) -> None:
    install_env_package(site, "long-summary", "long-env", extra=', summary="x" * 5000')
    with pytest.warns(pr.PluginWarning, match="summary is 5000 characters"):
        Registry(cache=False).list_plugins()


# -- 7. records and imports that crashed or hung the core -------------------------

_CRASHERS = {
    "deep-params": (
        "",
        """
        p = {}
        cur = p
        for _ in range(100_000):
            cur["k"] = {}
            cur = cur["k"]
        """,
        ", parameters=p",
        "nested deeper",
    ),
    "big-int": ("", "", ", parameters={'n': 10**5000}", "64-bit"),
    "evil-kind": (
        "",
        """
        class Kind(str):
            def __eq__(self, other):
                raise RuntimeError("gotcha")
            __ne__ = __eq__
            __hash__ = str.__hash__
        """,
        "",
        "unknown kind",
    ),
    "base-exc": ("class Boom(BaseException):\n    pass\nraise Boom('boom')\n", "", "", "Boom"),
    "sys-exit": ("raise SystemExit(3)\n", "", "", "SystemExit"),
    "fake-ctrl-c": ("raise KeyboardInterrupt\n", "", "", "KeyboardInterrupt"),
    "name-explosion": (
        "",
        "np = {f'f{i}': [f'c{j}' for j in range(12)] for i in range(7)}\n",
        "",
        "more than 1024 names",
    ),
}


@pytest.mark.parametrize("case", sorted(_CRASHERS))
def test_hostile_records_and_imports_become_problems(site: SiteDir, case: str) -> None:
    raise_at_import, preamble, extra, words = _CRASHERS[case]
    mod = unique("crash")
    exploding = "n-" + "-".join("{f" + str(i) + "}" for i in range(7))
    name = exploding if case == "name-explosion" else "crash"
    kind_expr = 'Kind("cluster_environment")' if case == "evil-kind" else '"cluster_environment"'
    np_arg = ", name_parameters=np" if case == "name-explosion" else ""
    body = (
        "from plugin_registry import PluginInfo, hookimpl\n"
        + raise_at_import
        + textwrap.dedent(preamble)
        + "\n@hookimpl\ndef plugin_registry_cluster_environment_plugins():\n"
        + f"    return [PluginInfo(name={name!r}, kind={kind_expr}, target='{mod}.env:Env'"
        + f"{np_arg}{extra})]\n"
    )
    site.install(
        f"crash-{case}",
        {f"{mod}/__init__.py": "", f"{mod}/env.py": env_class_module(), f"{mod}/reg.py": body},
        f"{mod}.reg",
    )
    started = time.perf_counter()
    registry = Registry(cache=False)
    with pytest.warns(pr.PluginWarning):
        problems = [p for p in registry.problems() if p.distribution == f"crash-{case}"]
    assert time.perf_counter() - started < 30
    assert problems and words in problems[0].reason, [p.reason for p in problems]
    assert {"torch", "slurm"} <= builtin_names(registry)


def test_endless_generator_from_a_hook_is_cut_off(site: SiteDir) -> None:
    mod = unique("endless")
    body = (
        "import itertools\nfrom plugin_registry import PluginInfo, hookimpl\n"
        "@hookimpl\ndef plugin_registry_cluster_environment_plugins():\n"
        f"    return (PluginInfo(name=f'e{{i}}', kind='cluster_environment', "
        f"target='{mod}.env:Env') for i in itertools.count())\n"
    )
    site.install(
        "endless",
        {f"{mod}/__init__.py": "", f"{mod}/env.py": env_class_module(), f"{mod}/reg.py": body},
        f"{mod}.reg",
    )
    registry = Registry(cache=False)
    with pytest.warns(pr.PluginWarning, match="more than 1000 records"):
        records = [r for r in registry.list_plugins() if r.distribution == "endless"]
    assert len(records) == 1000


def test_hanging_registration_module_is_named_on_stderr(
    site: SiteDir, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_capture, "SLOW_SECONDS", 0.3)
    install_env_package(site, "sleepy-plugins", "sleepy", preamble="import time; time.sleep(1.5)")
    Registry(cache=False).list_plugins()
    err = capfd.readouterr().err
    assert "sleepy-plugins" in err and "PLUGIN_REGISTRY_BLOCK='sleepy-plugins:*'" in err


def test_slow_warnings_share_one_thread_and_only_blocks_still_running_speak(
    capfd: pytest.CaptureFixture[str],
) -> None:
    import time

    with _capture.slow_warning("ALPHA", 5):
        pass
    with _capture.slow_warning("BRAVO", 0.2):
        with _capture.slow_warning("CHARLIE", 5):
            pass
        time.sleep(0.8)
    with _capture.slow_warning("DELTA", 0.1):
        time.sleep(0.6)
    names = [t.name for t in threading.enumerate()]
    assert names.count("plugin-registry-slow-warning") == 1
    if hasattr(os, "fork"):  # a child has the warnings too (the parent's thread is not there)
        pid = os.fork()
        if pid == 0:
            with _capture.slow_warning("ECHO", 0.1):
                time.sleep(0.6)
            os._exit(0)
        os.waitpid(pid, 0)
    err = capfd.readouterr().err
    assert "BRAVO" in err and "DELTA" in err, err
    assert "ALPHA" not in err and "CHARLIE" not in err, err
    assert ("ECHO" in err) is hasattr(os, "fork"), err


def test_real_ctrl_c_goes_through(site: SiteDir) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        # Started as a background job: SIGINT is ignored, and no Ctrl-C can arrive.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    mod = unique("slow")
    site.install(
        "ctrl-c",
        {f"{mod}.py": "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n"},
        mod,
    )
    with pytest.raises(KeyboardInterrupt):
        Registry(cache=False).list_plugins()


@pytest.mark.parametrize("disposition", ["SIG_IGN", "SIG_DFL"])
def test_a_self_raised_interrupt_is_isolated_where_ctrl_c_cannot_raise(
    site: SiteDir, disposition: str
) -> None:
    """A background job ignores SIGINT (and a daemon may leave it to the system): Ctrl-C
    raises nothing there, so a KeyboardInterrupt is the package's own, and a Problem."""
    install_env_package(site, "fake-interrupt", unique("fake"), preamble="raise KeyboardInterrupt")
    previous = signal.signal(signal.SIGINT, getattr(signal, disposition))
    try:
        with pytest.warns(pr.PluginWarning):
            problems = Registry(cache=False).problems()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert any(
        p.distribution == "fake-interrupt" and "KeyboardInterrupt" in p.detail for p in problems
    )


# -- 8. switches ------------------------------------------------------------------


def test_a_registry_without_a_policy_applies_the_default_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no policy argument or variable a registry builds no Control until asked
    (a warm listing does not import control.py); it lists, finds and pins as the
    default policy does, and a policy variable, even beside the cache's, applies."""
    from plugin_registry.control import Control

    for key in [k for k in os.environ if k.startswith("PLUGIN_REGISTRY_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PLUGIN_REGISTRY_NO_CACHE", "1")
    lazy, explicit = Registry(), Registry(block=[])
    assert lazy.list_plugins() == explicit.list_plugins() and lazy.list_plugins()
    assert lazy.get("checkpoint_io/torch") == explicit.get("checkpoint_io/torch")
    assert lazy.control == Control() == explicit.control
    monkeypatch.setenv("PLUGIN_REGISTRY_BLOCK", "torch")
    blocked = Registry()
    assert [p.text for p in blocked.control.block] == ["torch"]
    assert "torch" not in {r.name for r in blocked.list_plugins("checkpoint_io")}


@pytest.mark.parametrize("value", ["y", "t", "enable", "enabled", "ON", " yes "])
def test_disable_autoload_accepts_every_true_spelling(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PLUGIN_REGISTRY_DISABLE_AUTOLOAD", value)
    assert Registry().control.autoload is False


@pytest.mark.parametrize(
    "variable", ["PLUGIN_REGISTRY_DISABLE_AUTOLOAD", "PLUGIN_REGISTRY_NO_CACHE"]
)
@pytest.mark.parametrize("value", ["2", "maybe", "yess"])
def test_unreadable_switch_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with raises(ConfigurationError, "environment", match=variable):
        Registry()


@pytest.mark.parametrize(
    ("variable", "value", "subject"),
    [
        ("PLUGIN_REGISTRY_ALLOW", ",", "environment"),
        ("PLUGIN_REGISTRY_BLOCK", " , ,", "environment"),
        ("PLUGIN_REGISTRY_PIN", "=x", "name"),
        ("PLUGIN_REGISTRY_PIN", "torch=", "name"),
        ("PLUGIN_REGISTRY_PIN", "precision/=x", "name"),
    ],
)
def test_lists_that_name_nothing_are_errors(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, subject: str
) -> None:
    monkeypatch.setenv(variable, value)
    pattern = variable.removeprefix("PLUGIN_REGISTRY_") + "|pin"
    with raises(ConfigurationError, subject, match=pattern):
        Registry()


def test_cli_reports_a_bad_switch_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLUGIN_REGISTRY_DISABLE_AUTOLOAD", "maybe")
    assert cli.main(["list"]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "PLUGIN_REGISTRY_DISABLE_AUTOLOAD='maybe'" in err


# -- 9. blocked plugins -----------------------------------------------------------


def test_doctor_does_not_import_targets_of_blocked_names(site: SiteDir, tmp_path: Path) -> None:
    from plugin_registry.cli import doctor

    marker = tmp_path / "imported"
    mod = install_env_package(site, "marked-plugins", "marked")
    env_file = site.path / mod / "env.py"
    env_file.write_text(f"open({str(marker)!r}, 'w').close()\n" + env_file.read_text())
    report = doctor.run(Registry(cache=False, block=["marked"]))
    assert not marker.exists()
    assert any(
        f.subject.endswith(":marked") and "not checked" in f.message for f in report.findings
    )


def test_show_a_plugin_of_a_blocked_distribution_says_blocked(
    site: SiteDir, tmp_path: Path
) -> None:
    install_env_package(site, "walled-plugins", "walled")
    cache_dir = tmp_path / "cache"
    Registry(cache_dir=cache_dir).list_plugins()  # the cache knows its records now
    for registry in (
        Registry(cache_dir=cache_dir, block=["walled-plugins:*"]),
        Registry(cache=False, block=["walled-plugins:*"]),
        Registry(cache=False, autoload=False),
    ):
        with raises(PluginNotFoundError, "blocked", match="walled-plugins") as info:
            registry.get("walled")
        assert "to load it" in str(info.value)
        assert isinstance(info.value, PluginNotFoundError)


# -- 10, 11. registry state -------------------------------------------------------


def test_refresh_rediscovers_everything(site: SiteDir) -> None:
    registry = Registry(cache=False)
    before = len(registry.list_plugins())
    registry.refresh()
    assert len(registry.list_plugins()) == before
    assert registry.problems() == []
    install_env_package(site, "late-plugins", "late")
    registry.refresh()
    assert len(registry.list_plugins()) == before + 1
    assert registry.get("late").distribution == "late-plugins"


class _A:
    pass


def test_register_and_unregister_are_exact_inverses(site: SiteDir) -> None:
    mod = unique("mymod")
    site.install(
        "mymod-holder",
        {f"{mod}.py": textwrap.dedent(env_class_module()) + "\nclass B(Env):\n    pass\n"},
    )
    registry = Registry(cache=False)

    class A(StubEnvironment):
        pass

    registry.register(A, name="mine", kind="cluster_environment")
    assert type(registry.load("mine")) is A
    registry.unregister("mine", "cluster_environment")
    with pytest.raises(PluginNotFoundError):
        registry.get("mine")
    registry.register(pr.PluginInfo(name="mine", kind="cluster_environment", target=f"{mod}:B"))
    assert type(registry.load("mine")).__name__ == "B"
    registry.unregister("mine", "cluster_environment")
    with pytest.raises(PluginNotFoundError, match="no in-process"):
        registry.unregister("mine", "cluster_environment")
    registry.register(A, name="slurm", kind="cluster_environment", override=True)
    assert type(registry.load("slurm")) is A
    registry.unregister("slurm", "cluster_environment")
    assert type(registry.load("slurm")).__name__ == "SLURMEnvironment"


# -- 12. pins keep their kind -----------------------------------------------------


def test_pin_of_a_precision_name_leaves_the_checkpoint_io_of_that_name(site: SiteDir) -> None:
    from plugin_registry.resolver import resolve

    registry = Registry(cache=False, pins={"precision/torch": "some-vendor"})
    resolution = resolve(precision="32-true", registry=registry, hardware=None)
    chosen = {c.kind: c.name for c in resolution.choices}
    assert chosen["checkpoint_io"] == "torch"


# -- 13. broken packages ----------------------------------------------------------


def test_name_of_a_broken_package_is_a_broken_plugin_error_with_its_cause(
    site: SiteDir, tmp_path: Path
) -> None:
    install_env_package(site, "wrecked-plugins", "wrecked", preamble="import no_such_module_xyz")
    cache_dir = tmp_path / "cache"
    for attempt in range(2):  # the second listing comes from the cache
        registry = Registry(cache_dir=cache_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pr.PluginWarning)
            with raises(PluginNotFoundError, "broken") as info:
                registry.load("wrecked")
        assert isinstance(info.value, PluginNotFoundError)
        assert isinstance(info.value.__cause__, ModuleNotFoundError), attempt
        assert "wrecked-plugins" in str(info.value)
    assert registry.stats.reused >= 1


# -- 14. the cache in a busy directory --------------------------------------------


def test_new_files_beside_the_script_do_not_force_a_rescan(site: SiteDir, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    Registry(cache_dir=cache_dir).list_plugins()
    (site.path / "checkpoint-1.pt").write_bytes(b"x")  # the directory's mtime changes
    warm = Registry(cache_dir=cache_dir)
    warm.list_plugins()
    assert not warm.stats.scanned and warm.stats.collected == 0
    install_env_package(site, "fresh-plugins", "fresh")
    seen = Registry(cache_dir=cache_dir)
    assert seen.get("fresh").distribution == "fresh-plugins" and seen.stats.scanned


def test_in_place_edit_of_an_egg_info_entry_points_is_seen(site: SiteDir, tmp_path: Path) -> None:
    mod = install_env_package(site, "legacy-plugins", "legacy")
    info = next(site.path.glob("legacy_plugins-*.dist-info"))
    egg = site.path / "legacy_plugins.egg-info"
    info.rename(egg)  # what `setup.py develop` leaves: an egg-info in the source tree
    (egg / "PKG-INFO").write_text((egg / "METADATA").read_text())
    cache_dir = tmp_path / "cache"
    Registry(cache_dir=cache_dir).list_plugins()
    time.sleep(0.05)
    (egg / "entry_points.txt").write_text(f"[plugin_registry]\nplugins = {mod}.registration\n\n")
    os.utime(site.path, ns=(0, 0))  # the directory itself looks untouched
    (egg / "entry_points.txt").write_text("")
    registry = Registry(cache_dir=cache_dir)
    assert "legacy" not in {r.name for r in registry.list_plugins()}


def test_printing_detect_and_hardware_hooks_do_not_corrupt_json(
    site: SiteDir, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugin_registry.resolver import hardware

    monkeypatch.setattr(hardware, "_cached", None)  # restored after: no detection leaks out
    mod = unique("chatty")
    env = textwrap.dedent(env_class_module()).replace(
        "        return False", '        print("detect says hi"); return False'
    )
    body = registration(
        "cluster_environment",
        f'PluginInfo(name="chatty", kind="cluster_environment", target="{mod}.env:Env", '
        'accelerators=("any",))',
        preamble="""
            from plugin_registry import hookimpl as _impl

            @_impl
            def plugin_registry_detect_hardware():
                print("hardware hook says hi")
                return []
        """,
    )
    site.install(
        "chatty-plugins",
        {f"{mod}/__init__.py": "", f"{mod}/env.py": env, f"{mod}/reg.py": body},
        f"{mod}.reg",
    )
    from plugin_registry.resolver.hardware import detect_hardware

    detect_hardware(Registry(cache=False), refresh=True)
    assert "says hi" not in capfd.readouterr().out
    for command in (["resolve", "--precision", "32-true", "--json"], ["hardware", "--json"]):
        assert cli.main(["--no-cache", *command]) == 0
        out = capfd.readouterr().out
        json.loads(out)
        assert "says hi" not in out


def test_lookup_in_a_blocked_distribution_says_so_not_no_such_plugin() -> None:
    registry = Registry(cache=False, block=["plugin-registry:*"])
    with raises(PluginNotFoundError, "blocked") as info:
        registry.get("precision/plugin-registry:bf16-mixed")
    assert "installed (by plugin-registry) but its package is not loaded" in str(info.value)
    assert "remove that pattern" in str(info.value)
    with raises(PluginNotFoundError, "blocked") as info:
        registry.get("slurm")
    assert not str(info.value).startswith("no plugin named")
    assert info.value.providers == ("plugin-registry",)


def test_lookup_errors_carry_structured_fields() -> None:
    registry = Registry(cache=False)
    with pytest.raises(PluginNotFoundError) as info:
        registry.get("bitsandbytes-nf5")
    assert info.value.name == "bitsandbytes-nf5" and "bitsandbytes-nf4" in info.value.suggestions
    with raises(PluginNotFoundError, "ambiguous") as ambiguous:
        registry.get("xla")
    assert "checkpoint_io/xla" in ambiguous.value.suggestions
    with pytest.raises(pr.PluginLoadError) as load:
        registry.load("checkpoint_io/torch", no_such_parameter=1)
    assert load.value.stage == "parameters"


def test_every_error_and_warning_is_declared_in_errors() -> None:
    import inspect

    from plugin_registry import resolver, scaffold
    from plugin_registry.kinds import checkpoint_io, cluster_environment
    from plugin_registry.resolver import hardware, lockfile, preferences, settings

    for module in (
        hardware,
        lockfile,
        preferences,
        resolver,
        scaffold,
        settings,
        checkpoint_io,
        cluster_environment,
    ):
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, (Exception, Warning)):
                assert obj.__module__ == "plugin_registry.errors", (module.__name__, name)
    assert issubclass(pr.PluginWarning, errors.PluginRegistryWarning)
    assert issubclass(PluginRegistryWarning, errors.PluginRegistryWarning)
    assert issubclass(PluginRegistryWarning, errors.PluginRegistryWarning)


def test_cached_constraint_that_is_no_specifier_is_a_miss(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_file = _warm_cache(cache_dir)
    data = json.loads(cache_file.read_text())
    for result in data["results"].values():
        for record in result["records"]:
            if record["constraints"]:
                record["constraints"] = {"compute_capability": "not a specifier"}
    cache_file.write_text(json.dumps(data))
    registry = Registry(cache_dir=cache_dir)
    constrained = [r for r in registry.list_plugins() if r.constraints]
    assert constrained and all(
        v != "not a specifier" for r in constrained for v in r.constraints.values()
    )
    assert registry.stats.collected == 1, "the package is collected afresh"


def test_a_second_registry_in_the_same_process_reads_the_cache(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from plugin_registry.registry import Registry\n"
        f"first = Registry(cache_dir={str(tmp_path / 'cache')!r}); first.list_plugins()\n"
        f"second = Registry(cache_dir={str(tmp_path / 'cache')!r}); second.list_plugins()\n"
        "print(json.dumps([first.stats.cache_file == second.stats.cache_file,"
        " second.stats.scanned]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    same_file, rescanned = json.loads(out.stdout)
    assert same_file and not rescanned


def test_a_heavy_registration_module_is_reported_by_every_registry_of_the_process(
    site: SiteDir,
) -> None:
    install_env_package(site, "heavy-again", "heavy-again", preamble="import torch")
    # A fresh interpreter: torch must not be imported before the package imports it.
    code = (
        "import json, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from plugin_registry.registry import Registry\n"
        "seen = []\n"
        "for _ in range(2):  # the second collects it again: the module is imported already\n"
        "    reg = Registry(cache=False)\n"
        "    seen.append([p.reason for p in reg.problems() if p.distribution == 'heavy-again'])\n"
        "print(json.dumps(seen))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": f"{site.path}{os.pathsep}{REPO}"},
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(out.stdout)
    assert all(any("imports" in r and "torch" in r for r in reasons) for reasons in seen), seen


def test_a_metadata_less_egg_info_on_the_path_breaks_neither_doctor_nor_version(
    tmp_path: Path,
) -> None:
    """An unpacked sdist leaves ``plugin_registry.egg-info`` holding only SOURCES.txt
    in the working directory (on sys.path as ''): doctor failed on it with "No package
    metadata was found" and ``__version__`` was None, read from that empty copy."""
    (tmp_path / "plugin_registry.egg-info").mkdir()
    # The files it lists exist (as in the sdist): only then are their modules reported.
    (tmp_path / "plugin_registry.egg-info" / "SOURCES.txt").write_text("stray_module.py\n")
    (tmp_path / "stray_module.py").write_text("")
    code = (
        "import json, plugin_registry as pr; from plugin_registry import cli; "
        "print(json.dumps(pr.__version__)); raise SystemExit(cli.main(['--no-cache', 'doctor']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "No package metadata" not in proc.stderr
    version = json.loads(proc.stdout.splitlines()[0])
    import importlib.metadata

    assert version == importlib.metadata.version("plugin-registry")


def test_a_registration_module_that_forks_does_not_print_the_listing_twice(
    tmp_path: Path,
) -> None:
    """The forked child returned into the listing and printed its own JSON after the
    parent's: two documents, invalid. The child of a plugin's fork ends there."""
    site = SiteDir(tmp_path / "site")
    install_env_package(
        site,
        "forking-plugins",
        "forking-env",
        preamble="""
            import os
            os.fork()  # both processes return from the import
        """,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "plugin_registry.cli", "--no-cache", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{site.path}{os.pathsep}{REPO}"},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # one document
    assert "forking-env" in {p["name"] for p in data["plugins"]}


def test_a_registration_module_that_ends_the_process_is_named_by_the_next_run(
    tmp_path: Path,
) -> None:
    """os._exit in a registration module ended `list` with its status and no word of
    which package did it, run after run. The next run names it on stderr before
    importing plugin code again, and lists it among the problems."""
    site = SiteDir(tmp_path / "site")
    flag = tmp_path / "exit-once"
    flag.write_text("")
    install_env_package(
        site,
        "exiting-plugins",
        "exiting-env",
        preamble=f"""
            import os
            if os.path.exists({str(flag)!r}):
                os.remove({str(flag)!r})
                os._exit(3)
        """,
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PLUGIN_REGISTRY_")},
        "PYTHONPATH": f"{site.path}{os.pathsep}{REPO}",
        "PLUGIN_REGISTRY_CACHE_DIR": str(tmp_path / "cache"),
    }

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "plugin_registry.cli", "list", "--json"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip

    first = run()
    assert (first.returncode, first.stdout) == (3, "")
    second = run()
    assert second.returncode == 0, second.stderr
    assert "ended while importing" in second.stderr
    assert "PLUGIN_REGISTRY_BLOCK='exiting-plugins:*'" in second.stderr
    data = json.loads(second.stdout)
    reasons = [p["reason"] for p in data["problems"] if p["distribution"] == "exiting-plugins"]
    assert any("os._exit" in r for r in reasons), reasons
    assert "exiting-env" in {p["name"] for p in data["plugins"]}
    third = run()  # reported once: the marker is gone, and the import returned this time
    assert "ended while importing" not in third.stderr
    assert not list((tmp_path / "cache").glob(".importing.*"))


def test_planted_import_markers_are_read_safely(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Files named like import markers in the cache directory: garbage, a FIFO, a link,
    one of a live process, one with escape sequences. None hangs, breaks or injects."""
    from plugin_registry import _files

    cache = Path(os.environ["PLUGIN_REGISTRY_CACHE_DIR"])
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    dead = 4_194_305  # above any pid_max: no such process

    def marker(pid: int, tid: int) -> Path:
        return cache / f".importing.{_files._host()}.{pid}.{tid}.json"

    marker(dead, 1).write_bytes(b"\x00{not json")
    os.mkfifo(marker(dead, 2))
    (tmp_path / "secret").write_text('{"distribution": "x"}')
    marker(dead, 3).symlink_to(tmp_path / "secret")
    fields = {"entry_point": "plugins", "value": "evil.reg", "version": "1"}
    marker(os.getpid(), 4).write_text(json.dumps({**fields, "distribution": "alive-dist"}))
    marker(dead, 5).write_text(json.dumps({**fields, "distribution": "evil\x1b[31mred"}))
    registry = Registry(cache=False)
    with pytest.warns(pr.PluginWarning, match="ended while importing") as caught:
        reasons = [p.reason for p in registry.problems() if "ended while importing" in p.reason]
    assert all("\x1b" not in str(w.message) for w in caught)  # the package name too
    err = capfd.readouterr().err
    assert len(reasons) == 1 and "\\x1b" in reasons[0] and "\x1b" not in err, (reasons, err)
    assert "alive-dist" not in err  # a live process's marker is another listing's, now
    left = sorted(p.name for p in cache.glob(".importing.*"))
    assert left == [marker(os.getpid(), 4).name]  # the dead ones removed, even unreadable
    assert (tmp_path / "secret").exists()  # a link is removed itself, not its target


def test_an_environment_whose_detect_blocks_is_named_on_stderr(tmp_path: Path) -> None:
    """resolve / detect_environment hung with nothing on stderr (fds still captured)."""
    site = SiteDir(tmp_path / "site")
    mod = install_env_package(site, "stuck-plugins", "stuck-env")
    env_module = site.path / mod / "env.py"
    source = env_module.read_text()
    indent = source.split("def detect():")[0].rsplit("\n", 1)[1]
    slow = f"def detect():\n{indent}    import time; time.sleep(6)"
    assert "def detect():" in source
    env_module.write_text(source.replace("def detect():", slow))
    code = "import plugin_registry as pr; print(pr.detect_environment().name)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{site.path}{os.pathsep}{REPO}"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "stuck-env" in proc.stderr and "detect()" in proc.stderr
    assert "PLUGIN_REGISTRY_BLOCK='stuck-plugins:stuck-env'" in proc.stderr


# -- issue 28 item 6: output capture, process-wide ----------------------------------


def _run_listing_script(site: SiteDir, code: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", textwrap.dedent(code)],
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{site.path}{os.pathsep}{REPO}"},
        **({"capture_output": True} | kw),
    )


_FDS_BEFORE_AFTER = """
    import os, sys, json
    def ident(fd):
        st = os.fstat(fd)
        return (st.st_dev, st.st_ino)
    before = (sys.stdout, sys.stderr, ident(1), ident(2))
"""


def test_two_threads_listing_at_once_leave_the_streams_as_they_were(tmp_path: Path) -> None:
    """Two registries listing in two threads left sys.stdout a StringIO and fds 1/2 on
    a deleted temporary file for good (interleaved swaps restored each other's)."""
    site = SiteDir(tmp_path / "site")
    for n in range(2):
        install_env_package(
            site, f"slow{n}-plugins", f"slow{n}-env", preamble="import time; time.sleep(0.3)"
        )
    proc = _run_listing_script(
        site,
        _FDS_BEFORE_AFTER
        + """
    import threading
    from plugin_registry.registry import Registry
    found = []
    def listing():
        found.append(sorted(r.name for r in Registry(cache=False).list_plugins()))
    threads = [threading.Thread(target=listing) for _ in range(2)]
    for t in threads: t.start()
    for t in threads: t.join()
    after = (sys.stdout, sys.stderr, ident(1), ident(2))
    assert found[0] == found[1] and "slow0-env" in found[0], found
    print(json.dumps({"same": before == after}))
    """,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"same": True}


@pytest.mark.parametrize("upto", ["1024", "limit"])
def test_a_registration_module_that_closes_descriptors_breaks_nothing(
    tmp_path: Path, upto: str
) -> None:
    """os.closerange(3, 1024) in a registration module made listing raise EBADF and
    left fds 1/2 captured. The saved copies now sit above 1024; closed anyway (up to
    the limit), fd 1/2 are reopened from their paths, and the package is named."""
    site = SiteDir(tmp_path / "site")
    stop = "1024" if upto == "1024" else "resource.getrlimit(resource.RLIMIT_NOFILE)[0]"
    install_env_package(
        site,
        "closing-plugins",
        "closing-env",
        preamble=f"""
            import os, resource
            print("before closing")
            os.closerange(3, {stop})
        """,
    )
    out_file = tmp_path / "out.json"
    err_file = tmp_path / "err.txt"
    with out_file.open("w") as out, err_file.open("w") as err:  # files: they have a path
        proc = _run_listing_script(
            site,
            _FDS_BEFORE_AFTER
            + """
    from plugin_registry.registry import Registry
    registry = Registry(cache=False)
    names = {r.name for r in registry.list_plugins()}
    after = (sys.stdout, sys.stderr, ident(1), ident(2))
    problems = [p.reason for p in registry.problems()]
    print(json.dumps({"same": before == after, "listed": "closing-env" in names,
                      "problems": problems}))
    """,
            capture_output=False,
            stdout=out,
            stderr=err,
        )
    assert proc.returncode == 0, err_file.read_text()
    result = json.loads(out_file.read_text())
    assert result["same"] and result["listed"], result
    assert "before closing" not in out_file.read_text()
    assert not [p for p in result["problems"] if "closed file descriptors" in p]


def test_a_capture_in_a_threaded_process_leaves_the_descriptor_table_as_it_is(
    tmp_path: Path,
) -> None:
    """Growing the descriptor table of a multithreaded process waits for an RCU grace
    period: 20 ms of the first resolve() after ``import torch`` went to the capture's
    copies moved above fd 1024. With other threads running they stay low; alone, the
    process still moves them high (a plugin's closerange(3, 1024) misses them)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the descriptor table's size is read from /proc/self/status")
    code = """
        import json, os, resource, threading
        from plugin_registry import _capture

        def table():
            with open("/proc/self/status") as fh:
                return next(int(l.split()[1]) for l in fh if l.startswith("FDSize:"))

        before = table()
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)
        other.start()
        with _capture.captured() as out:
            os.write(1, b"from the plugin")
        threaded = table()
        stop.set()
        other.join()
        with _capture.captured() as alone:
            os.write(1, b"alone")
        print(json.dumps({"before": before, "threaded": threaded, "alone": table(),
                          "texts": [out.text, alone.text], "lost": out.lost + alone.lost,
                          "limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}))
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["texts"] == ["from the plugin", "alone"] and not result["lost"], result
    if result["before"] >= 1024:
        pytest.skip(f"the table already holds {result['before']} descriptors: nothing grows")
    assert result["threaded"] == result["before"], result
    if result["limit"] < 0 or result["limit"] > 2 * result["before"]:
        assert result["alone"] > result["before"], result  # the copies went high


def test_closed_stdout_pipe_is_reported_not_left_captured(tmp_path: Path) -> None:
    """A pipe cannot be reopened: once plugin code closes every descriptor, the
    listing says so (exit 2, the package named by doctor), never a traceback or
    output swallowed into the capture file."""
    site = SiteDir(tmp_path / "site")
    install_env_package(
        site,
        "closing-plugins",
        "closing-env",
        preamble="""
            import os, resource
            os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        """,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "plugin_registry.cli", "--no-cache", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{site.path}{os.pathsep}{REPO}"},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    result = tmp_path / "result.json"
    proc = _run_listing_script(
        site,
        f"""
    import json
    from plugin_registry.registry import Registry
    registry = Registry(cache=False)
    registry.list_plugins()
    reasons = [p.reason for p in registry.problems() if p.distribution == "closing-plugins"]
    with open({str(result)!r}, "w") as f:  # stdout and stderr (pipes) are gone
        json.dump(reasons, f)
    """,
    )
    assert proc.returncode == 0
    reasons = json.loads(result.read_text())
    assert any("closed file descriptors it did not open" in r for r in reasons), reasons
    assert any("stdout and stderr" in r for r in reasons), reasons


def test_the_hosts_threads_keep_their_output_during_a_slow_import(tmp_path: Path) -> None:
    """While a slow registration module imported, the host's other threads' lines were
    swallowed and attributed to the plugin."""
    site = SiteDir(tmp_path / "site")
    install_env_package(
        site,
        "sleepy-plugins",
        "sleepy-env",
        preamble="""
            import time
            print("plugin says hello")
            time.sleep(1.0)
        """,
    )
    proc = _run_listing_script(
        site,
        """
    import sys, threading, time, json
    from plugin_registry.registry import Registry
    done = threading.Event()
    def ticker():
        n = 0
        while not done.is_set():
            print(f"tick {n}", flush=True)
            sys.stderr.write(f"tock {n}\\n")
            n += 1
            time.sleep(0.05)
    t = threading.Thread(target=ticker); t.start()
    time.sleep(0.1)
    started = time.monotonic()
    registry = Registry(cache=False)
    registry.list_plugins()
    took = time.monotonic() - started
    done.set(); t.join()
    (text,) = [v for k, v in registry.output().items() if "sleepy" in k]
    print(json.dumps({"took": took, "captured": text}))
    """,
    )
    assert proc.returncode == 0, proc.stderr
    *lines, last = proc.stdout.splitlines()
    result = json.loads(last)
    assert result["took"] >= 1.0
    assert "plugin says hello" in result["captured"]
    assert "tick" not in result["captured"] and "tock" not in result["captured"]
    assert not [line for line in lines if "plugin says" in line]
    # one tick every 50 ms: the second of the slow import alone gives well over 5
    assert len([line for line in lines if line.startswith("tick")]) >= 5 + int(result["took"])
    assert len([line for line in proc.stderr.splitlines() if line.startswith("tock")]) >= 6


def test_an_unknown_name_is_not_blamed_on_an_unrelated_broken_package(
    site: SiteDir, tmp_path: Path
) -> None:
    install_env_package(site, "wrecked-plugins", "wrecked", preamble="import no_such_module_xyz")
    for attempt in range(2):  # the second listing comes from the cache
        registry = Registry(cache_dir=tmp_path / "cache")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pr.PluginWarning)
            with pytest.raises(PluginNotFoundError) as info:
                registry.get("nosuch-plugin")
            assert info.value.reason == "unknown", attempt
            assert "wrecked-plugins" in str(info.value) and "may provide it" in str(info.value)
            with pytest.raises(PluginNotFoundError) as info:
                registry.get("bf16-mixd")
            assert info.value.reason == "unknown"
            assert info.value.suggestions[0] == "bf16-mixed"
            with raises(PluginNotFoundError, "broken"):  # its own name is still its to answer for
                registry.get("wrecked-env")


@pytest.mark.parametrize("typo", ["registratoin", "top-level"])
def test_a_misspelt_entry_point_module_is_named_with_the_close_match_and_where_to_fix_it(
    site: SiteDir, typo: str
) -> None:
    from plugin_registry.cli import doctor

    mod = unique("speller_plugins")
    record = f'PluginInfo(name="speller", kind="cluster_environment", target="{mod}.env:Env")'
    value = f"{mod}.registratoin" if typo == "registratoin" else f"{mod[:-1]}.registration"
    site.install(
        "speller-plugins",
        {
            f"{mod}/__init__.py": "",
            f"{mod}/env.py": env_class_module(),
            f"{mod}/registration.py": registration("cluster_environment", record),
        },
        value,
    )
    registry = Registry(cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pr.PluginWarning)
        (problem,) = [p for p in registry.problems() if p.distribution == "speller-plugins"]
    wanted = f"{mod}.registration" if typo == "registratoin" else mod
    assert "which does not exist (ModuleNotFoundError: No module named" in problem.reason
    assert f"). Did you mean {wanted!r}?" in problem.reason
    (finding,) = [
        f for f in doctor._problem_findings(registry) if f.subject.startswith("speller-plugins")
    ]
    assert (
        "[project.entry-points.plugin_registry]" in finding.fix and "pyproject.toml" in finding.fix
    )
    assert "Fix:" not in finding.message and "uninstall" not in finding.fix


def test_doctor_checks_one_package_and_names_a_misspelt_one(site: SiteDir) -> None:
    from plugin_registry.cli import doctor

    install_env_package(site, "wrecked-plugins", "wrecked", preamble="import no_such_module_xyz")
    install_env_package(site, "fine-plugins", "fine")
    registry = Registry(cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pr.PluginWarning)
        everything = doctor.run(registry)
        only_fine = doctor.run(registry, ["Fine_Plugins"])
        with pytest.raises(PluginNotFoundError, match="did you mean 'fine-plugins'") as info:
            doctor.run(registry, ["fine-plugin"])
    assert info.value.suggestions == ["fine-plugins"] or info.value.suggestions == ("fine-plugins",)
    assert not everything.ok and only_fine.ok
    assert set(only_fine.import_times) == {"fine-plugins:plugins"}
    assert all(
        "wrecked" not in f.subject and "plugin-registry" not in f.subject
        for f in only_fine.findings
    )
    # A built-in whose optional library is absent is a note: a fresh install's normal state.
    builtin = doctor.run(registry, ["plugin-registry"])
    unavailable = [f for f in builtin.findings if f.message.startswith("unavailable:")]
    assert unavailable and {f.severity for f in unavailable} == {"info"}


def test_the_cache_warmed_by_one_program_serves_another_from_another_directory(
    site: SiteDir, tmp_path: Path
) -> None:
    """``plugin-registry list`` (sys.path[0]: the command's bin), ``python -c`` (the current
    directory) and ``python script.py`` (the script's) share one cache: a script's first
    listing imports no registration module after the CLI listed. A first entry that holds
    a distribution is not shared."""
    mod = install_env_package(site, "shared-plugins", "shared")
    for path in (site.path, *site.path.rglob("*")):
        os.utime(path, (time.time() - 3600, time.time() - 3600))  # settled, so trusted
    cache_dir = tmp_path / "cache"
    probe = (
        "import json, sys, plugin_registry as pr; r = pr.Registry(); "
        "names = [p.name for p in r.list_plugins()]; "
        f"print(json.dumps([r.stats.scanned, r.stats.collected, {mod!r}.split('.')[0] + "
        "'.registration' in sys.modules, 'shared' in names]))"
    )
    env = {
        **os.environ,
        "PLUGIN_REGISTRY_CACHE_DIR": str(cache_dir),
        "PYTHONPATH": os.pathsep.join([str(site.path), str(REPO)]),
    }

    def run(*args: str, cwd: Path) -> list[Any]:
        out = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second, third = (tmp_path / d for d in ("first", "second", "third"))
    for d in (first, second, third):
        d.mkdir()
    (second / "script.py").write_text(probe)
    cold = run("-c", probe, cwd=first)
    assert cold[1] >= 1 and cold[2] and cold[3]  # collected: the registration module ran
    warm = run(str(second / "script.py"), cwd=third)
    assert warm == [False, 0, False, True], warm  # nothing scanned, collected or imported
    (third / "other_dist-1.0.dist-info").mkdir()  # a distribution in the first entry
    (third / "script.py").write_text(probe)
    rescanned = run(str(third / "script.py"), cwd=first)
    assert rescanned[0] is True and rescanned[3]


def test_a_name_that_becomes_ambiguous_says_what_it_meant_before(
    site: SiteDir, tmp_path: Path
) -> None:
    """A package that comes to provide a name another package served alone (a core
    upgrade that ships a third party's name as a built-in, say) makes bare lookups
    ambiguous: refused still, but the error says which package the name meant until then
    (the record cache remembers), and the doctor tells the third party to rename."""
    cache_dir = tmp_path / "cache"
    install_env_package(site, "first-plugins", "shared-env")
    assert Registry(cache_dir=cache_dir).get("shared-env").distribution == "first-plugins"
    install_env_package(site, "second-plugins", "shared-env")
    for attempt in range(2):  # the listing that saw the change, and a later one
        registry = Registry(cache_dir=cache_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pr.PluginWarning)
            with raises(PluginNotFoundError, "conflict") as info:
                registry.get("shared-env")
        message = str(info.value)
        assert "was first-plugins's: 'first-plugins:shared-env'" in message, attempt
        assert "(or PLUGIN_REGISTRY_PIN=shared-env=first-plugins) keeps that" in message
    install_env_package(site, "mine-plugins", "slurm")  # a built-in's name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pr.PluginWarning)
        problems = Registry(cache=False).problems()
    (clash,) = [p for p in problems if "'slurm'" in p.reason and "mine-plugins" in p.reason]
    assert "is a built-in name of plugin-registry: mine-plugins should give its plugin a name" in (
        clash.reason
    )
