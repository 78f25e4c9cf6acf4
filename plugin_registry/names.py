"""How a plugin is spelled: normalising, templates, qualified forms, suggestions.

A name is matched case-insensitively with ``_`` and ``-`` equivalent. The full
spelling of a request is ``[kind/][distribution:]name``::

    bitsandbytes-nf4                      a bare name
    precision/xla                         the precision plugin named xla
    plugin-registry:torch                 torch, as provided by plugin-registry
    checkpoint_io/plugin-registry:xla     both
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

from plugin_registry.errors import ConfigurationError
from plugin_registry.kinds import KINDS, Kind

NAME_RE = re.compile(r"[a-z0-9][a-z0-9.-]*\Z")
_FIELD_RE = re.compile(r"\{(\w+)\}")
_DIST_RE = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    """The form names are compared in: lower case, ``_`` as ``-``, trimmed."""
    return name.strip().lower().replace("_", "-")


def normalize_distribution(name: str) -> str:
    """PEP 503 normalisation, as pip and importlib-metadata compare names."""
    return _DIST_RE.sub("-", name.strip()).lower()


def split_metadata_dir(path: str) -> tuple[str, str] | None:
    """``(name, version)`` from ``name-version.dist-info`` (or ``.egg-info``), else None.

    What every installer writes; reading it spares parsing METADATA. An egg-info
    name may carry the Python tag: ``foo-1.0-py3.11.egg-info``.
    """
    stem = os.path.basename(path.rstrip(os.sep)).rsplit(".", 1)[0]
    name, sep, rest = stem.partition("-")
    if sep and name and rest:
        return name, rest.split("-")[0]
    return None


def normalize_kind(kind: str) -> Kind:
    """The canonical kind for ``kind``; a ConfigurationError lists the valid ones."""
    key = kind.strip().lower().replace("-", "_")
    for known in KINDS:
        if key == known:
            return known
    raise ConfigurationError(
        f"unknown plugin kind {kind!r}; choose one of {', '.join(KINDS)}"
        + did_you_mean(key, KINDS),
        subject="name",
    )


def template_fields(spelled: str) -> set[str]:
    """The ``{field}`` placeholders in a name or alias."""
    if "{" not in spelled:  # most names: no regex run on every warm start
        return set()
    return set(_FIELD_RE.findall(spelled))


def fill_placeholders(spelled: str, value: str) -> str:
    """``spelled`` with every ``{field}`` placeholder replaced by ``value``."""
    return _FIELD_RE.sub(value, spelled) if "{" in spelled else spelled


class Expansion(NamedTuple):
    """One concrete name a record answers to, and the parameters it implies."""

    name: str
    parameters: dict[str, str]
    is_alias: bool


def expand(
    name: str, aliases: Iterable[str], choices: Mapping[str, Iterable[str]]
) -> Iterator[Expansion]:
    """Every concrete, normalised name of a record, in declaration order."""
    for index, spelled in enumerate((name, *aliases)):
        fields = sorted(template_fields(spelled))
        if not fields:
            yield Expansion(normalize_name(spelled), {}, index > 0)
            continue
        for combo in itertools.product(*(tuple(choices[f]) for f in fields)):
            params = dict(zip(fields, combo, strict=True))
            concrete = spelled
            for field, value in params.items():
                concrete = concrete.replace("{" + field + "}", value)
            yield Expansion(normalize_name(concrete), params, index > 0)


class Spec(NamedTuple):
    """A parsed request: ``[kind/][distribution:]name``."""

    kind: str | None
    distribution: str | None
    name: str

    def __str__(self) -> str:
        out = self.name
        if self.distribution:
            out = f"{self.distribution}:{out}"
        if self.kind:
            out = f"{self.kind}/{out}"
        return out


def parse_spec(spec: str, kind: str | None = None) -> Spec:
    """Split and normalise a request; ``kind`` is the caller's separate kind."""
    if not isinstance(spec, str):
        raise ConfigurationError(
            f"a plugin name must be a string, got {type(spec).__name__}", subject="name"
        )
    text = spec.strip()
    spec_kind: str | None = None
    if "/" in text:
        kind_part, text = text.split("/", 1)
        spec_kind = normalize_kind(kind_part)
    wanted = normalize_kind(kind) if kind is not None else None
    if spec_kind and wanted and spec_kind != wanted:
        raise ConfigurationError(
            f"{spec!r} names kind {spec_kind!r} but kind={kind!r} was given", subject="name"
        )
    dist: str | None = None
    if ":" in text:
        dist_part, text = text.split(":", 1)
        dist = normalize_distribution(dist_part)
    name = normalize_name(text)
    if not NAME_RE.match(name) or (dist is not None and not dist):
        raise ConfigurationError(
            f"{spec!r} is not a plugin name; write [kind/][distribution:]name, "
            "e.g. 'bitsandbytes-nf4', 'precision/xla' or 'plugin-registry:torch'",
            subject="name",
        )
    return Spec(spec_kind or wanted, dist, name)


#: Words of a description (compiled on first use: suggestions are an error path).
_TOKEN = r"[a-z0-9]+"


def suggestions(
    word: str,
    candidates: Iterable[str],
    n: int = 3,
    descriptions: Mapping[str, str] | None = None,
) -> list[str]:
    """The candidates ``word`` most likely meant, best first.

    Candidates that hold ``word`` as a whole ``-``-separated part (``nf4`` ->
    ``bitsandbytes-nf4``) or contain it (3 characters or more), shortest
    first; else spellings close by difflib's ratio (>= 0.6); else candidates
    whose description mentions it as a word (``fp8`` -> ``transformer-engine``).
    """
    # Compared folded (case, and _ as -); answered as spelled.
    spelled = {normalize_name(c): c for c in sorted(set(candidates), key=lambda c: (len(c), c))}
    pool = list(spelled)
    key = normalize_name(word)
    found: list[str] = []

    def add(items: Iterable[str]) -> None:
        for item in items:
            if item not in found and item != key:
                found.append(item)

    if key:
        add(c for c in pool if key in c.split("-"))
        if len(key) >= 3:
            add(c for c in pool if key in c)
        if not found:  # a part of a name beats a spelling that happens to be close
            add(difflib.get_close_matches(key, pool, n=n, cutoff=0.6))
        if not found and descriptions and re.fullmatch(_TOKEN, key):
            text = {c: descriptions.get(spelled[c], "").lower() for c in pool}
            add(c for c in pool if key in re.findall(_TOKEN, text[c]))
    return [spelled[c] for c in found[:n]]


def did_you_mean(
    word: str,
    candidates: Iterable[str],
    n: int = 3,
    descriptions: Mapping[str, str] | None = None,
) -> str:
    """``. Did you mean 'a' or 'b'?`` or an empty string."""
    return meant(suggestions(word, candidates, n, descriptions))


def meant(close: Iterable[str], lead: str = ". Did you mean", otherwise: str = "") -> str:
    """``lead 'a', 'b' or 'c'?`` for suggestions already computed (a message and an
    error's ``suggestions`` field share one list); ``otherwise`` when there are none."""
    quoted = [repr(c) for c in close]
    if not quoted:
        return otherwise
    joined = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"{lead} {joined}?"
