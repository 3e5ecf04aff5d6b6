"""Models from outside: a plugin package installed from the test's temp dir (pip, its entry point in the group
`uvssm.models`), then trained, benchmarked and used to restore like a built-in model; and a reference
`pkg.module:attr`. Parameter counts are worked out by hand."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from models import registry

PLUGIN = '''
import torch
import torch.nn.functional as F
from torch import nn

from models.registry import ModelSpec


class ShuffleNet(nn.Module):
    """3 frames stacked on channels -> conv -> ReLU -> conv -> pixel shuffle, plus the centre frame upsampled."""

    def __init__(self, scale: int = 2, feat: int = 8):
        super().__init__()
        self.scale = scale
        self.body = nn.Conv2d(9, feat, 3, padding=1)
        self.head = nn.Conv2d(feat, 3 * scale * scale, 3, padding=1)

    def forward(self, x):
        b, t, c, h, w = x.shape
        y = self.head(torch.relu(self.body(x.reshape(b, t * c, h, w))))
        base = F.interpolate(x[:, t // 2], scale_factor=self.scale, mode="bilinear", align_corners=False)
        return F.pixel_shuffle(y, self.scale) + base


# x2: body 9*8*9 + 8 = 656, head 8*12*9 + 12 = 876, 1,532 in all; x4: head 8*48*9 + 48 = 3,504, 4,160 in all
def specs():
    return [ModelSpec("shufflenet-tiny", ShuffleNet, {}, "a plugin's model", num_frame=3, multiple=1,
                      params={2: 1532, 4: 4160})]
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The plugin package, installed with pip into a folder of its own (PYTHONPATH points at it)."""
    root = tmp_path_factory.mktemp("plugin")
    pkg = root / "src"
    (pkg / "uvssm_shufflenet").mkdir(parents=True)
    (pkg / "uvssm_shufflenet" / "__init__.py").write_text(PLUGIN)
    (pkg / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "uvssm-shufflenet"
        version = "0.1"

        [project.entry-points."uvssm.models"]
        shufflenet = "uvssm_shufflenet:specs"
    '''))
    site = root / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(site), str(pkg)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return site


def _uvssm(site: Path, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "uvssm", *args], capture_output=True, text=True, timeout=600, env=env)


def test_an_installed_plugin_trains_benches_and_restores_like_a_built_in(tmp_path, plugin_site, tiny_reds):
    runs = tmp_path / "runs"
    done = _uvssm(plugin_site, "train", "edvr-tiny-sample", "--set", "model=shufflenet-tiny", "--data", str(tiny_reds),
                  "--out", str(runs / "shufflenet-tiny"), "--iters", "2", "--set", "val_every=2", "--set", "save_every=2",
                  "--set", "batch_size=2", "--set", "val_frames=1")
    assert done.returncode == 0, done.stderr
    assert "1,532 trainable parameters" in done.stdout

    done = _uvssm(plugin_site, "bench", "--models", "shufflenet-tiny,bicubic", "--data", str(tiny_reds), "--qp", "28",
                  "--weights", str(runs), "--out", str(tmp_path / "res"), "--max-frames", "3", "--save-frames", "0")
    assert done.returncode == 0, done.stderr
    models = pd.read_parquet(tmp_path / "res" / "models.parquet").set_index("model")
    assert models.loc["shufflenet-tiny", "params"] == 1532
    assert len(pd.read_parquet(tmp_path / "res" / "frames.parquet").query("model == 'shufflenet-tiny'")) == 2 * 3

    out = tmp_path / "restored.mp4"
    done = _uvssm(plugin_site, "restore", str(tiny_reds / "LQ_qp28_x2" / "240.mp4"), "-o", str(out), "--model",
                  "shufflenet-tiny", "--weights", str(runs / "shufflenet-tiny" / "checkpoints" / "latest.pt"))
    assert done.returncode == 0, done.stderr
    import av

    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (384, 224) and stream.frames == 16

    # without the plugin on the path the name is unknown, and said so in one line
    done = _uvssm(tmp_path / "nowhere", "bench", "--models", "shufflenet-tiny", "--data", str(tiny_reds), "--qp", "28",
                  "--out", str(tmp_path / "res2"))
    assert done.returncode == 2 and "unknown model 'shufflenet-tiny'" in done.stderr


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """The plugin's module on sys.path (not installed): for references `uvssm_refnet:...`."""
    (tmp_path / "uvssm_refnet.py").write_text(PLUGIN.replace("shufflenet-tiny", "refnet-tiny") + textwrap.dedent('''
        bad_count = ModelSpec("refnet-miscounted", ShuffleNet, {}, num_frame=3, multiple=1, params={2: 1000})
        no_dfm = ModelSpec("refnet-no-dfm", ShuffleNet, {}, num_frame=3, multiple=1, features=frozenset({"dfm"}))
        taken = ModelSpec("votes", ShuffleNet, {}, num_frame=3, multiple=1)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = dict(registry.MODELS)
    yield
    registry.MODELS.clear()
    registry.MODELS.update(saved)


def test_a_reference_registers_its_spec_and_a_bad_spec_is_refused(plugin_module):
    spec = registry.get_spec("uvssm_refnet:specs")
    assert spec.name == "refnet-tiny" and spec.source == "uvssm_refnet:specs"
    assert registry.model_name("uvssm_refnet:specs") == "refnet-tiny" and "refnet-tiny" in registry.list_models()
    assert sum(p.numel() for p in registry.create_model("refnet-tiny", 4).parameters()) == 4160
    for reference, message in (
            ("uvssm_refnet:bad_count", "refnet-miscounted: declares 1,000 parameters at x2, builds 1,532"),
            ("uvssm_refnet:no_dfm", "refnet-no-dfm: declares dfm but ShuffleNet has no estimate_dfm"),
            ("uvssm_refnet:taken", "model name 'votes' is taken (uvssm)"),
            ("uvssm_refnet:nothing", "cannot import it (AttributeError"),
            ("no_such_module_here:spec", "cannot import it (ModuleNotFoundError")):
        with pytest.raises(ValueError, match=re.escape(message)):
            registry.get_spec(reference)
