"""Which plugin packages are loaded and which plugins are visible.

Patterns are shell-style (``fnmatch``) and compared in normalised form. A
pattern without ``:`` matches plugin names; ``dist:name`` matches a plugin of
one distribution; ``dist:*`` a whole distribution. Only whole-distribution
patterns can keep a package's registration module from being imported at all:
a bare-name pattern can only be checked once the records are known.

========================================  =====================================
``PLUGIN_REGISTRY_DISABLE_AUTOLOAD=1``     load no entry point except those of
                                           ``PLUGIN_REGISTRY_ENABLE``
``PLUGIN_REGISTRY_ENABLE=dist,...``        distributions still loaded with
                                           autoload off (default:
                                           ``plugin-registry``, the built-ins)
``PLUGIN_REGISTRY_ALLOW=pattern,...``      only matching plugins are visible
``PLUGIN_REGISTRY_BLOCK=pattern,...``      matching plugins are hidden
``PLUGIN_REGISTRY_PIN=name=dist,...``      which provider wins a name two
                                           distributions register (``kind/name``
                                           narrows a pin to one kind)
========================================  =====================================
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping

from plugin_registry.errors import ConfigurationError
from plugin_registry.names import normalize_distribution, normalize_kind, normalize_name

ENV_DISABLE_AUTOLOAD = "PLUGIN_REGISTRY_DISABLE_AUTOLOAD"
ENV_ENABLE = "PLUGIN_REGISTRY_ENABLE"
ENV_ALLOW = "PLUGIN_REGISTRY_ALLOW"
ENV_BLOCK = "PLUGIN_REGISTRY_BLOCK"
ENV_PIN = "PLUGIN_REGISTRY_PIN"
_VARIABLES = (ENV_DISABLE_AUTOLOAD, ENV_ENABLE, ENV_ALLOW, ENV_BLOCK, ENV_PIN)

#: The distribution that ships the core and the built-in plugins. With autoload
#: off it is still loaded unless ``enable`` says otherwise: turning off
#: third-party code should not take away the plugins that come with the core.
CORE_DISTRIBUTION = "plugin-registry"


# Plain classes, not frozen dataclasses: building one costs ~0.5 ms at import, and
# every warm listing imports this module (benchmarks/bench_listing.py).


class Pattern:
    """``[dist:]name`` with shell wildcards, normalised."""

    __slots__ = ("distribution", "name", "text")

    def __init__(self, text: str, distribution: str | None, name: str) -> None:
        self.text = text
        self.distribution = distribution
        self.name = name

    def __repr__(self) -> str:
        return f"Pattern({self.text!r}, {self.distribution!r}, {self.name!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not Pattern:
            return NotImplemented
        return (self.text, self.distribution, self.name) == (
            other.text,
            other.distribution,
            other.name,
        )

    def __hash__(self) -> int:
        return hash((self.text, self.distribution, self.name))

    @classmethod
    def parse(cls, text: str) -> Pattern:
        raw = text.strip()
        if not raw:
            raise ConfigurationError("an empty allow/block pattern", subject="name")
        if ":" in raw:
            dist, name = raw.split(":", 1)
            return cls(raw, normalize_distribution(dist), normalize_name(name) or "*")
        return cls(raw, None, normalize_name(raw))

    @property
    def whole_distribution(self) -> bool:
        return self.distribution is not None and self.name == "*"

    def matches_distribution(self, distribution: str | None) -> bool:
        if self.distribution is None:
            return True
        return fnmatch.fnmatchcase(distribution or "", self.distribution)

    def matches(self, distribution: str | None, name: str) -> bool:
        return self.matches_distribution(distribution) and fnmatch.fnmatchcase(name, self.name)


class Control:
    """The policy one :class:`~plugin_registry.Registry` applies."""

    __slots__ = ("allow", "autoload", "block", "enable", "pins")

    def __init__(
        self,
        autoload: bool = True,
        enable: frozenset[str] = frozenset({CORE_DISTRIBUTION}),
        allow: tuple[Pattern, ...] | None = None,
        block: tuple[Pattern, ...] = (),
        pins: Mapping[tuple[str | None, str], str] | None = None,
    ) -> None:
        self.autoload = autoload
        self.enable = enable
        self.allow = allow
        self.block = block
        self.pins: Mapping[tuple[str | None, str], str] = dict(pins or {})

    def __repr__(self) -> str:
        return (
            f"Control(autoload={self.autoload!r}, enable={self.enable!r}, "
            f"allow={self.allow!r}, block={self.block!r}, pins={self.pins!r})"
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not Control:
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in Control.__slots__)

    __hash__ = None  # type: ignore[assignment]  # pins is a dict

    @property
    def hides_nothing(self) -> bool:
        """True when no allow or block pattern can hide a plugin name."""
        return self.allow is None and not self.block

    @classmethod
    def build(
        cls,
        *,
        autoload: bool | None = None,
        enable: Iterable[str] | None = None,
        allow: Iterable[str] | None = None,
        block: Iterable[str] | None = None,
        pins: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Control:
        """Arguments win; each one left as None is read from the environment."""
        env = os.environ if environ is None else environ
        if any(variable in env for variable in _VARIABLES):
            # The parsers load only when there is something to parse: most programs set
            # none of these, and every warm listing builds a Control.
            from plugin_registry._environ import flag, items, pairs

            if autoload is None:
                autoload = not flag(env, ENV_DISABLE_AUTOLOAD)
            if enable is None and ENV_ENABLE in env:
                # Set but empty means "nothing besides the switch": not even the core.
                enable = items(env, ENV_ENABLE) or []
            if allow is None:
                allow = items(env, ENV_ALLOW)
            if block is None:
                block = items(env, ENV_BLOCK)
            if pins is None:
                pins = pairs(env, ENV_PIN, "xla=acme-xla", "name=distribution", subject="name")
        autoload = True if autoload is None else autoload
        enable = [CORE_DISTRIBUTION] if enable is None else enable
        block = block or []
        pins = pins or {}
        parsed_pins: dict[tuple[str | None, str], str] = {}
        for name, dist in pins.items():
            kind: str | None = None
            if "/" in name:
                kind_part, name = name.split("/", 1)
                kind = normalize_kind(kind_part)
            if not normalize_name(name) or not normalize_distribution(dist):
                raise ConfigurationError(
                    f"pin {name!r}={dist!r} needs a plugin name and a distribution "
                    "(e.g. PLUGIN_REGISTRY_PIN=xla=acme-xla)",
                    subject="name",
                )
            parsed_pins[(kind, normalize_name(name))] = normalize_distribution(dist)
        return cls(
            autoload=autoload,
            enable=frozenset(normalize_distribution(d) for d in enable),
            allow=None if allow is None else tuple(Pattern.parse(p) for p in allow),
            block=tuple(Pattern.parse(p) for p in block),
            pins=parsed_pins,
        )

    def loads_distribution(self, distribution: str) -> str:
        """'' when the distribution's entry points may be imported, else why not and the way out."""
        if not self.autoload and distribution not in self.enable:
            return (
                f"autoload is off ({ENV_DISABLE_AUTOLOAD}) and it is not enabled; to load it, "
                f"add it to {ENV_ENABLE} (or Registry(enable=[...]))"
            )
        for pattern in self.block:
            if pattern.whole_distribution and pattern.matches_distribution(distribution):
                return (
                    f"blocked by pattern {pattern.text!r} ({ENV_BLOCK}); to load it, remove "
                    "that pattern"
                )
        if self.allow is not None and not any(
            p.matches_distribution(distribution) for p in self.allow
        ):
            return f"no allow pattern names it ({ENV_ALLOW}); to load it, add '{distribution}:*'"
        return ""

    def hides(self, distribution: str | None, name: str) -> str:
        """'' when the plugin name is visible, else the rule that hides it."""
        for pattern in self.block:
            if pattern.matches(distribution, name):
                return f"blocked by pattern {pattern.text!r} ({ENV_BLOCK})"
        if self.allow is not None and not any(p.matches(distribution, name) for p in self.allow):
            return f"not matched by any allow pattern ({ENV_ALLOW})"
        return ""

    def pinned(self, kind: str, name: str) -> str | None:
        return self.pins.get((kind, name)) or self.pins.get((None, name))
