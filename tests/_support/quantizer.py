"""A third party's quantizing precision plugin, installed as a package would be.

Each Linear becomes int8 rows and a float scale per row (buffers ``qweight`` and
``scale``, which an unconverted Linear has no place for); the bias trains. It follows
docs/plugin-authors.md (``prepare_for_load``) and needs no bitsandbytes: the quantized
resume tests of Lightning and Accelerate both install it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin_registry import Registry
from tests._support.sitedir import SiteDir, registration

ROWWISE = """
import torch
from plugin_registry.kinds.precision import Precision


class RowwiseInt8Linear(torch.nn.Module):
    def __init__(self, linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        self.register_buffer("qweight", torch.round(weight / scale[:, None]).to(torch.int8))
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach())

    def forward(self, x):
        return torch.nn.functional.linear(x, self.qweight.float() * self.scale[:, None], self.bias)


class RowwiseInt8(Precision):
    precision = "rowwise-int8"

    def __init__(self, ignore_modules=()):
        self.ignore_modules = tuple(ignore_modules)

    def convert_module(self, module, prefix=""):
        for name, child in module.named_children():
            full = prefix + name
            if full.startswith(self.ignore_modules) and self.ignore_modules:
                continue
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, RowwiseInt8Linear(child))
            else:
                self.convert_module(child, full + ".")
        return module

    def prepare_for_load(self, module):
        return self.convert_module(module)  # converted layers are no Linear: left alone
"""


def install_rowwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """``rowwise-quant`` installed in a site directory on sys.path; a registry seeing it."""
    site = SiteDir(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site.path))
    record = (
        'PluginInfo(name="rowwise-int8", kind="precision", '
        'target="rowwise_quant.precision:RowwiseInt8")'
    )
    site.install(
        "rowwise-quant",
        {
            "rowwise_quant/__init__.py": "",
            "rowwise_quant/precision.py": ROWWISE,
            "rowwise_quant/registration.py": registration("precision", record),
        },
        "rowwise_quant.registration",
    )
    return Registry(cache=False)
