"""The architecture's two invariants, each checked for real."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import plugin_registry

CORE = Path(plugin_registry.__file__).parent


def test_core_never_imports_builtin_plugins() -> None:
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            assert not any(m.split(".")[0] == "builtin_plugins" for m in mods), path


def test_builtins_register_through_the_entry_point_group() -> None:
    import importlib_metadata

    eps = importlib_metadata.entry_points(group="plugin_registry")
    assert any(ep.value == "builtin_plugins.registration" for ep in eps)


def test_import_is_light() -> None:
    code = (
        "import json, sys, plugin_registry; "
        "print(json.dumps(sorted(m for m in ('torch', 'pluggy', 'importlib_metadata', "
        "'packaging', 'rich', 'builtin_plugins') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


_WARM = """
import json, sys
import plugin_registry as pr
before = set(sys.modules)
pr.list_plugins()
from plugin_registry._default import default_registry
stats = default_registry().stats
print(json.dumps({"new": sorted(set(sys.modules) - before), "scanned": stats.scanned,
                  "collected": stats.collected}))
"""


def test_a_warm_listing_imports_its_own_few_modules_only(tmp_path: Path) -> None:
    """What a warm listing's first call imports is most of its cost (each module ~0.1-0.3
    ms of ~2.5): registry, discovery snapshot, cache, file helpers, the JSON scanner;
    nothing else (no json, no _environ without a variable, no _text, no control without
    a policy)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGIN_REGISTRY_")}
    env["PLUGIN_REGISTRY_CACHE_DIR"] = str(tmp_path / "cache")
    for _ in range(4):
        out = subprocess.run(
            [sys.executable, "-c", _WARM], env=env, cwd=tmp_path, capture_output=True,
            text=True, check=True,
        )  # fmt: skip
        run = json.loads(out.stdout.splitlines()[-1])
        if not run["scanned"] and not run["collected"]:
            break
        time.sleep(2.1)  # a path changed under two seconds ago is not trusted yet
    else:
        pytest.fail(f"the cache never became warm: {run}")
    ours = {m for m in run["new"] if m.split(".")[0] in ("plugin_registry", "builtin_plugins")}
    assert ours <= {
        "plugin_registry._files",
        "plugin_registry._snapshot",
        "plugin_registry.cache",
        "plugin_registry.registry",
    }, run["new"]
    # The standard modules it needs (pathlib, fnmatch) may be imported already (by site, an
    # editable install's finder) or not; none of the heavy ones a listing never needs.
    heavy = {"json", "tempfile", "platformdirs", "inspect", "importlib_metadata", "pluggy",
             "packaging", "hashlib", "zlib", "socket", "torch"}  # fmt: skip
    assert not heavy & set(run["new"]), run["new"]


def test_registration_modules_of_the_builtins_import_no_torch() -> None:
    code = (
        "import json, sys, builtin_plugins.registration; print(json.dumps('torch' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False


def test_layer_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    """core < resolver < adapters, and nothing in plugin_registry imports the built-ins."""
    from importlinter.cli import lint_imports

    from tests._support.support import REPO

    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 kept, 0 broken" in out


def _contracts() -> list[dict[str, object]]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    from tests._support.support import REPO

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


#: The layers above the core: everything else directly in plugin_registry is the core.
ABOVE_THE_CORE = {"resolver", "cli", "lightning", "accelerate", "scaffold", "testing"}


def test_the_core_contract_names_every_core_module() -> None:
    """A module added to the core later cannot slip out of the core's contract: the list
    is checked against the package's contents (the root package is the facade, above)."""

    (contract,) = [c for c in _contracts() if str(c["name"]).startswith("The core imports")]
    package = Path(plugin_registry.__file__).parent  # the installed one, in the release run
    core = {
        f"plugin_registry.{path.stem if path.is_file() else path.name}"
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem not in ("__init__", "__main__"))
        or (path.is_dir() and (path / "__init__.py").exists() and path.name not in ABOVE_THE_CORE)
    }
    assert core == set(contract["source_modules"])  # type: ignore[arg-type]


def test_the_builtins_contract_forbids_every_private_module() -> None:
    """A private module added later cannot slip out of the public-API-only contract."""

    (contract,) = [c for c in _contracts() if c.get("source_modules") == ["builtin_plugins"]]
    package = Path(plugin_registry.__file__).parent  # the installed one, in the release run
    private = {
        ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for path in package.rglob("_*.py")
        if path.stem not in ("__init__", "__main__") and "template" not in path.parts
    }
    assert private and private == set(contract["forbidden_modules"])  # type: ignore[arg-type]


def test_no_import_cycles_also_at_run_time() -> None:
    """Function-level (lazy) imports count too; only TYPE_CHECKING imports do not."""
    import grimp

    graph = grimp.build_graph(
        "plugin_registry", include_external_packages=False, exclude_type_checking_imports=True
    )
    cycles = sorted(
        {
            tuple(sorted((a, b)))
            for a in graph.modules
            for b in graph.find_modules_directly_imported_by(a)
            if graph.chain_exists(importer=b, imported=a)
        }
    )
    assert cycles == []


def test_the_kinds_are_declared_once() -> None:
    """Records, names, hook specs, the CLI and the resolution read one table."""
    from plugin_registry import hookspecs, kinds, names, records
    from plugin_registry.resolver import resolution

    assert records.KINDS is kinds.KINDS
    assert {s.name: s.hook for s in kinds.SPECS} == hookspecs.HOOK_FOR_KIND
    assert {s.name: s.slot for s in kinds.SPECS} == resolution.SLOT_TITLES
    assert [names.normalize_kind(s.name.replace("_", "-").upper()) for s in kinds.SPECS] == list(
        kinds.KINDS
    )
    for spec in kinds.SPECS:
        base = kinds.base_class(spec.name)
        assert base is not None and spec.base.endswith(":" + base.__qualname__)


def test_lightnings_vocabulary_is_declared_once() -> None:
    """Settings, the resolver and the built-ins read the one declaration beside Precision."""
    from builtin_plugins.precision import deepspeed, fsdp, xla
    from plugin_registry.kinds import precision
    from plugin_registry.resolver import settings, verdicts

    assert settings.PRECISIONS is precision.PRECISIONS
    assert settings.SHORT_PRECISIONS is precision.SHORT_PRECISIONS
    assert verdicts.PRECISION_DTYPE is precision.PRECISION_DTYPE
    assert fsdp.FSDP_PRECISIONS is precision.FAMILY_PRECISIONS["fsdp"]
    assert deepspeed.DEEPSPEED_PRECISIONS is precision.FAMILY_PRECISIONS["deepspeed"]
    assert xla.XLA_PRECISIONS is precision.FAMILY_PRECISIONS["xla"]
    source = "".join((CORE / "resolver" / m).read_text() for m in ("choosing.py", "verdicts.py"))
    for name in ("FSDPPrecision", "DeepSpeedPrecision", "XLAPrecision", "XLAEnvironment"):
        assert f'"{name}"' not in source, f"the resolver names {name}; read it from the records"


def test_one_dist_info_scanner_and_no_private_importlib_metadata() -> None:
    """Discovery, requirements and the doctor read plugin_registry._distributions."""
    import importlib.metadata

    from plugin_registry import _distributions

    for path in CORE.rglob("*.py"):
        text = path.read_text()
        assert "._path" not in text and "_normalized_name" not in text, path
    for module in ("discovery.py", "requirements.py", "cli/doctor.py"):
        assert "_distributions" in (CORE / module).read_text(), module
    # It sees what importlib.metadata sees (first of each name, by normalised name).
    ours = {d.name: d.version for d in _distributions.first_of_each()}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
        if name in ours:
            assert ours[name], name
    assert "plugin-registry" in ours and "torch" in ours
