"""The registry against a model, through any sequence of changes (issue 13, item 15).

A hypothesis state machine installs, upgrades and removes plugin distributions
(dist-info trees on a temporary ``sys.path`` entry), registers and unregisters
in-process plugins, refreshes, blocks, allows and pins, and corrupts the cache
file. After every step the listing -- cold (no cache), cached (a cache written
before the step) and warm (the cache just written) -- equals a model computed
from scratch, and lookups raise only the documented errors.

CI runs a few examples; ``nox -s stateful`` runs many
(``PLUGIN_REGISTRY_STATEFUL_EXAMPLES``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import textwrap
import uuid
import warnings
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from plugin_registry.errors import (
    PluginNotFoundError,
    PluginRegistryError,
    PluginRegistryWarning,
    PluginWarning,
)
from plugin_registry.registry import Registry
from tests._support.sitedir import SiteDir, StubEnvironment, env_class_module, registration

DISTS = ("pkg-a", "pkg-b", "pkg-c")
NAMES = ("alpha", "beta", "gamma", "slurm")
EXAMPLES = int(os.environ.get("PLUGIN_REGISTRY_STATEFUL_EXAMPLES", "8"))
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)

_ENV = textwrap.dedent(env_class_module())


class InProcess(StubEnvironment):
    """The in-process plugin the machine registers."""


def _quiet() -> contextlib.AbstractContextManager[object]:
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore", PluginRegistryWarning)
    warnings.simplefilter("ignore", PluginWarning)
    return stack


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="registry-state-"))
        self.site = SiteDir(self.tmp / "site")
        sys.path.insert(0, str(self.site.path))
        self.cache_dir = self.tmp / "cache"
        # The model: dist -> (version, names); in-process names; the policy.
        self.installed: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.in_process: set[str] = set()
        self.blocked: set[str] = set()
        self.allowed: set[str] | None = None
        self.pins: dict[str, str] = {}
        self.live = self._registry(cache=False)

    def teardown(self) -> None:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(self.site.path))
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _policy(self) -> dict[str, object]:
        block = [f"{d}:*" for d in sorted(self.blocked)]
        allow = None
        if self.allowed is not None:
            allow = ["plugin-registry:*", *(f"{d}:*" for d in sorted(self.allowed))]
        return {"block": block, "allow": allow, "pins": dict(self.pins)}

    def _registry(self, *, cache: bool) -> Registry:
        policy = self._policy()
        return Registry(
            cache=cache,
            cache_dir=self.cache_dir,
            block=policy["block"],  # type: ignore[arg-type]
            allow=policy["allow"],  # type: ignore[arg-type]
            pins=policy["pins"],  # type: ignore[arg-type]
        )

    def _visible_dists(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        return {
            d: v
            for d, v in self.installed.items()
            if d not in self.blocked and (self.allowed is None or d in self.allowed)
        }

    def expected(self, with_in_process: bool) -> set[tuple[str, str | None, str | None]]:
        out: set[tuple[str, str | None, str | None]] = {
            (n, d, v) for d, (v, names) in self._visible_dists().items() for n in names
        }
        if with_in_process:
            out |= {(n, None, None) for n in self.in_process}
        return out

    @staticmethod
    def listed(registry: Registry) -> set[tuple[str, str | None, str | None]]:
        return {
            (r.name, r.distribution, r.version)
            for r in registry.list_plugins("cluster_environment")
            if r.distribution != "plugin-registry"
        }

    # -- rules -------------------------------------------------------------------

    @rule(
        dist=st.sampled_from(DISTS),
        version=st.sampled_from(("1.0", "2.0", "3.0")),
        names=st.sets(st.sampled_from(NAMES), min_size=1, max_size=3),
    )
    def install(self, dist: str, version: str, names: set[str]) -> None:
        mod = f"state_{uuid.uuid4().hex[:10]}"
        records = [
            f'PluginInfo(name="{n}", kind="cluster_environment", target="{mod}.env:Env")'
            for n in sorted(names)
        ]
        self.site.install(
            dist,
            {
                f"{mod}/__init__.py": "",
                f"{mod}/env.py": _ENV,
                f"{mod}/reg.py": registration("cluster_environment", *records),
            },
            f"{mod}.reg",
            version=version,
        )
        self.installed[dist] = (version, tuple(sorted(names)))

    @precondition(lambda self: self.installed)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        dist = data.draw(st.sampled_from(sorted(self.installed)))
        self.site.remove(dist)
        del self.installed[dist]

    @rule(name=st.sampled_from(("mine", "yours")))
    def register(self, name: str) -> None:
        if name in self.in_process:
            return
        self.live.register(InProcess, name=name, kind="cluster_environment")
        self.in_process.add(name)

    @precondition(lambda self: self.in_process)
    @rule(data=st.data())
    def unregister(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.in_process)))
        self.live.unregister(name, "cluster_environment")
        self.in_process.discard(name)

    @rule()
    def refresh(self) -> None:
        self.live.refresh()

    @rule(dist=st.sampled_from(DISTS), on=st.booleans())
    def block(self, dist: str, on: bool) -> None:
        (self.blocked.add if on else self.blocked.discard)(dist)
        self._rebuild_live()

    @rule(dists=st.none() | st.sets(st.sampled_from(DISTS)))
    def allow(self, dists: set[str] | None) -> None:
        self.allowed = dists
        self._rebuild_live()

    @rule(name=st.sampled_from(NAMES), dist=st.none() | st.sampled_from(DISTS))
    def pin(self, name: str, dist: str | None) -> None:
        if dist is None:
            self.pins.pop(name, None)
        else:
            self.pins[name] = dist
        self._rebuild_live()

    @rule(garbage=st.sampled_from([b"", b"{", b"[]", b'{"format": 4}', b"\xff" * 9, b"[" * 5000]))
    def corrupt_cache(self, garbage: bytes) -> None:
        for file in self.cache_dir.glob("*.json"):
            file.write_bytes(garbage)

    def _rebuild_live(self) -> None:
        """A new policy is a new registry; the in-process plugins come along."""
        with _quiet():
            live = self._registry(cache=False)
            for name in sorted(self.in_process):
                live.register(InProcess, name=name, kind="cluster_environment")
        self.live = live

    # -- what must hold after every step --------------------------------------------

    @invariant()
    def listings_match_the_model(self) -> None:
        with _quiet():
            self.live.refresh()
            assert self.listed(self.live) == self.expected(with_in_process=True)
            expected = self.expected(with_in_process=False)
            cached = self._registry(cache=True)  # the cache as earlier steps left it
            assert self.listed(cached) == expected
            warm = self._registry(cache=True)  # the cache just written
            assert self.listed(warm) == expected
            cold = self._registry(cache=False)
            assert self.listed(cold) == expected

    @invariant()
    def lookups_raise_only_documented_errors(self) -> None:
        with _quiet():
            registry = self._registry(cache=True)
            providers: dict[str, list[str]] = {}
            for dist, (_, names) in self._visible_dists().items():
                for n in names:
                    providers.setdefault(n, []).append(dist)
            for name in (*NAMES, "missing"):
                owners = providers.get(name, [])
                if name == "slurm":
                    owners = [*owners, "plugin-registry"]
                try:
                    record = registry.get(name, "cluster_environment")
                except PluginNotFoundError as exc:
                    if exc.reason == "conflict":
                        assert len(owners) > 1 and self.pins.get(name) not in owners
                    else:
                        assert exc.reason in ("unknown", "blocked") and not owners, exc.reason
                    continue
                except PluginRegistryError as exc:  # pragma: no cover - a failure
                    raise AssertionError(f"undocumented error for {name!r}: {exc!r}") from exc
                assert record.distribution in owners
                if len(owners) > 1:
                    assert record.distribution == self.pins.get(name)


RegistryMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # Shrinking a failure of this machine takes minutes; CI reports the sequence
    # as found, `nox -s stateful` (many examples) shrinks it.
    phases=tuple(Phase) if os.environ.get("PLUGIN_REGISTRY_STATEFUL_EXAMPLES") else NO_SHRINK,
)
test_registry_state_machine = RegistryMachine.TestCase
