"""EDVR without TSA, what fails to fit, and weights out (`uvssm convert --to basicsr|mmagic|votes-official`).

Every key a file must hold is written here by hand from the projects' own files, never from uvssm's code:
- BasicSR `basicsr/archs/edvr_arch.py`: with `with_tsa=False`, `self.fusion = nn.Conv2d(num_frame * num_feat,
  num_feat, 1, 1)` where TSAFusion was; `basicsr/models/base_model.py` `save_network`: `{param_key: state_dict}`
  and nothing else ("params", and "params_ema" beside it for a model with an EMA copy);
- mmagic `mmagic/models/editors/edvr/edvr_net.py`: with `with_tsa=False`, `self.fusion = nn.Conv2d(num_frames *
  mid_channels, mid_channels, 1, 1)` (a plain conv, no ConvModule); `.../basicvsr/basicvsr.py`: the BasicVSR model
  registers `step_counter` (`torch.zeros(1)`, persistent) beside its generator; mmengine saves `meta` and
  `state_dict`;
- luohongming/VOTES `archs/edvr_arch.py`: EDVR with `scale=2` has `upconv1 = nn.Conv2d(num_feat, 64 * 4, 3, 1, 1)`
  and no upconv2; `archs/votes_arch.py`: VOTES, saved as BasicSR saves.
The tables of tests/test_official_keys.py (BasicSR's and VOTES's names, by hand) and tests/test_convert.py
(mmagic's names beside BasicSR's, by hand) are reused.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from models.registry import MODELS, create_model, model_kwargs
from tests.test_convert import _mmagic_file, basicvsr_pairs, edvr_pairs
from tests.test_convert import conv as mm_conv
from tests.test_official_keys import (basicsr_basicvsr, basicsr_edvr, conv, make_layer, pcd, pyramid, tsa,
                                      votes_official)

Shapes = dict[str, tuple[int, ...]]


def basicsr_edvr_wotsa(nf: int = 64, reconstruct: int = 10, scale: int = 4) -> Shapes:
    """BasicSR's EDVR(with_tsa=False) at x4; at x2 the VOTES repository's EDVR(with_tsa=False, scale=2)."""
    if scale == 4:
        head = conv("upconv1", nf, nf * 4, 3) | conv("upconv2", nf, 64 * 4, 3)
    else:
        head = conv("upconv1", nf, 64 * 4, 3)
    return (pyramid(nf, 5) | pcd("pcd_align", nf, 8) | conv("fusion", 5 * nf, nf, 1)
            | make_layer("reconstruction", reconstruct, nf) | head
            | conv("conv_hr", 64, 64, 3) | conv("conv_last", 64, 3, 3))


def votes_repo_edvr_x2(nf: int = 64, reconstruct: int = 10) -> Shapes:
    """The VOTES repository's EDVR(scale=2), TSA: upconv1 straight to 64·4 channels, no upconv2."""
    return (pyramid(nf, 5) | pcd("pcd_align", nf, 8) | tsa("fusion", nf, 5)
            | make_layer("reconstruction", reconstruct, nf)
            | conv("upconv1", nf, 64 * 4, 3) | conv("conv_hr", 64, 64, 3) | conv("conv_last", 64, 3, 3))


def mmagic_edvr_wotsa_pairs() -> list[tuple[str, str, tuple[int, ...]]]:
    """edvrm_wotsa_x4_8x4_600k_reds: EDVRNet(mid_channels=64, num_blocks_reconstruction=10, with_tsa=False)."""
    return [p for p in edvr_pairs() if not p[0].startswith("fusion.")] + mm_conv("fusion", "fusion", 5 * 64, 64, 1)


def _numel(shapes: Shapes) -> int:
    return sum(torch.Size(s).numel() for s in shapes.values())


def _uvssm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uvssm", *args], capture_output=True, text=True, timeout=600)


def _random(shapes: Shapes, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def _uvssm_checkpoint(path, model: str, scale: int, values: dict) -> None:
    """A checkpoint as `uvssm train` writes it (the weights under the official names, which are uvssm's)."""
    torch.save({"params": values, "uvssm": {"model": model, "scale": scale, "iteration": 1234,
                                            "model_kwargs": model_kwargs(model, scale)}}, path)


# --- EDVR without TSA -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [4, 2])
def test_edvr_m_without_tsa_is_basicsr_key_for_key(scale):
    official = basicsr_edvr_wotsa(scale=scale)
    model = create_model("edvr-m-wo-tsa", scale)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == official
    # BasicSR's EDVR_M_woTSA_x4_SR_REDS: EDVR-M (3,300,131) less TSA's 324,416 parameters plus a 1x1 conv's 20,544
    assert MODELS["edvr-m-wo-tsa"].params[scale] == _numel(official) == {4: 2_996_259, 2: 2_848_547}[scale]


def test_mmagic_edvr_m_without_tsa_converts_tensor_for_tensor(tmp_path):
    src, out = tmp_path / "edvrm_wotsa_x4_8x4_600k_reds.pth", tmp_path / "w.pt"
    pairs = mmagic_edvr_wotsa_pairs()
    values = _mmagic_file(src, pairs, seed=3)
    done = _uvssm("convert", "mmagic", str(src), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "as edvr-m-wo-tsa x4" in done.stdout
    params = torch.load(out, weights_only=True)["params"]
    assert set(params) == {bs for _, bs, _ in pairs}
    assert all(torch.equal(params[bs], values[mm]) for mm, bs, _ in pairs)


def test_basicsr_edvr_m_without_tsa_converts(tmp_path):
    src, out = tmp_path / "EDVR_M_woTSA_x4_SR_REDS_official-1edf645c.pth", tmp_path / "w.pt"
    values = _random(basicsr_edvr_wotsa(), seed=4)
    torch.save({"params": values}, src)
    done = _uvssm("convert", "basicsr", str(src), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "(basicsr, params)" in done.stdout and "as edvr-m-wo-tsa x4" in done.stdout
    saved = torch.load(out, weights_only=True)
    assert saved["uvssm"]["model"] == "edvr-m-wo-tsa"
    assert all(torch.equal(saved["params"][k], v) for k, v in values.items())


# --- what fails to fit: the nearest model and its keys ------------------------------------------------------------

def test_a_checkpoint_missing_one_key_names_it_and_its_model(tmp_path):
    src = tmp_path / "edvrm_x4.pth"
    pairs = [p for p in edvr_pairs() if p[0] != "conv_last.weight"]
    _mmagic_file(src, pairs, seed=5)
    done = _uvssm("convert", "mmagic", str(src), "-o", str(tmp_path / "o.pt"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{src}: mmagic edvr weights that fit no registered model; nearest edvr-m x4: 1 missing: " \
           "generator.conv_last.weight" in done.stderr
    assert "unexpected" not in done.stderr and not (tmp_path / "o.pt").exists()


def test_unexpected_and_mis_shaped_keys_are_named_as_the_file_names_them(tmp_path):
    src = tmp_path / "EDVR_M.pth"
    values = _random(basicsr_edvr(64, 10), seed=6)
    values["fusion.extra.weight"] = torch.zeros(2)
    values["conv_hr.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save({"params": values}, src)
    done = _uvssm("convert", "basicsr", str(src), "-o", str(tmp_path / "o.pt"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    line = " ".join(done.stderr.split())  # rich may wrap; the words are what count
    assert "nearest edvr-m x4: 1 unexpected: fusion.extra.weight; 1 shape mismatch: conv_hr.weight [64, 64, 1, 1] " \
           "(model [64, 64, 3, 3])" in line
    assert "missing" not in line


# --- weights out -----------------------------------------------------------------------------------------------

def _mmagic_names(pairs) -> tuple[Shapes, dict[str, str]]:
    return {bs: shape for _, bs, shape in pairs}, {f"generator.{mm}": bs for mm, bs, _ in pairs}


def _same_names(shapes: Shapes) -> tuple[Shapes, dict[str, str]]:
    return shapes, {k: k for k in shapes}


CASES = [  # (target, model, scale, (uvssm's shapes, the target's keys → uvssm's), words of the options printed)
    ("basicsr", "edvr-m-wo-tsa", 4, _same_names(basicsr_edvr_wotsa()), "type='EDVR'", "with_tsa=False"),
    ("basicsr", "basicvsr", 4, _same_names(basicsr_basicvsr()), "type='BasicVSR'", "num_block=30"),
    ("mmagic", "edvr-m-wo-tsa", 4, _mmagic_names(mmagic_edvr_wotsa_pairs()), "type='EDVRNet'", "with_tsa=False"),
    ("mmagic", "edvr-m", 4, _mmagic_names(edvr_pairs()), "type='EDVRNet'", "with_tsa=True"),
    ("mmagic", "basicvsr", 4, _mmagic_names(basicvsr_pairs()), "type='BasicVSRNet'", "num_blocks=30"),
    ("votes-official", "edvr-m", 2, _same_names(votes_repo_edvr_x2()), "type='EDVR'", "scale=2"),
    ("votes-official", "votes", 2, _same_names(votes_official(2)), "type='VOTES'", "sr_factor=2"),
]


@pytest.mark.parametrize("target, model, scale, table, kind, option", CASES,
                         ids=[f"{c[0]}-{c[1]}-x{c[2]}" for c in CASES])
def test_weights_go_out_in_the_targets_layout_and_come_back(tmp_path, target, model, scale, table, kind, option):
    from uvssm.pipelines.convert import convert

    shapes, names = table
    values = _random(shapes, seed=len(shapes))
    src, out = tmp_path / "latest.pt", tmp_path / "out.pth"
    _uvssm_checkpoint(src, model, scale, values)
    done = _uvssm("convert", "--to", target, str(src), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"({model} x{scale})" in done.stdout and kind in done.stdout and option in done.stdout

    saved = torch.load(out, weights_only=True)  # what BasicSR's load_network / mmengine's load_checkpoint read
    if target == "mmagic":
        assert set(saved) == {"meta", "state_dict"}
        state = saved["state_dict"]
        extra = {"step_counter"} if model == "basicvsr" else set()  # BasicVSR's buffer beside the generator
        assert set(state) == set(names) | extra
        if extra:
            assert state["step_counter"].shape == (1,) and state["step_counter"].item() == 1234
    else:
        assert set(saved) == {"params"}  # save_network writes this key alone
        state = saved["params"]
        assert set(state) == set(names)
    for key, bs in names.items():
        assert torch.equal(state[key], values[bs]), key

    # and back in: the same tensors, as the same model
    back = tmp_path / "back.pt"
    convert("mmagic" if target == "mmagic" else "basicsr", out, back)
    again = torch.load(back, weights_only=True)
    assert (again["uvssm"]["model"], again["uvssm"]["scale"]) == (model, scale)
    assert set(again["params"]) == set(values) and all(torch.equal(again["params"][k], v) for k, v in values.items())


def test_params_ema_goes_out_beside_params(tmp_path):
    values = _random(basicsr_edvr_wotsa(), seed=8)
    ema = {k: v + 1 for k, v in values.items()}
    src = tmp_path / "latest.pt"
    torch.save({"params": values, "params_ema": ema,
                "uvssm": {"model": "edvr-m-wo-tsa", "scale": 4, "model_kwargs": model_kwargs("edvr-m-wo-tsa", 4)}}, src)
    from uvssm.pipelines.convert import export_weights

    export_weights("basicsr", src, tmp_path / "b.pth")
    saved = torch.load(tmp_path / "b.pth", weights_only=True)
    assert set(saved) == {"params", "params_ema"}
    assert torch.equal(saved["params_ema"]["fusion.weight"], ema["fusion.weight"])
    export_weights("mmagic", src, tmp_path / "m.pth")
    state = torch.load(tmp_path / "m.pth", weights_only=True)["state_dict"]
    assert torch.equal(state["generator_ema.fusion.weight"], ema["fusion.weight"])
    assert torch.equal(state["generator.fusion.weight"], values["fusion.weight"])
    assert torch.equal(state["generator_ema.feat_l2_conv1.conv.weight"], ema["conv_l2_1.weight"])


@pytest.mark.parametrize("target, model, scale, says", [
    ("basicsr", "edvr-m", 2, "BasicSR's EDVR is x4 only, not x2; the official VOTES code's EDVR takes x2"),
    ("mmagic", "tga-tiny", 4, "mmagic has no TGA; --to mmagic takes EDVR and BasicVSR"),
    ("votes-official", "votes-wo-dfm-tiny", 2, "has dfm 'estimate' only, not 'zero'"),
    ("basicsr", "edvr-tiny", 4, "BasicSR's EDVR has head_feat 64 only, not 16"),
])
def test_what_a_target_cannot_hold_is_refused_in_one_line(tmp_path, target, model, scale, says):
    src, out = tmp_path / "latest.pt", tmp_path / "out.pth"
    _uvssm_checkpoint(src, model, scale, create_model(model, scale).state_dict())
    done = _uvssm("convert", "--to", target, str(src), "-o", str(out))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{src}: {model} x{scale}: " in done.stderr and says in " ".join(done.stderr.split())
    assert not out.exists()


def test_a_checkpoint_that_does_not_hold_its_model_is_not_written_out(tmp_path):
    values = _random(basicsr_edvr_wotsa(), seed=9)
    del values["conv_last.bias"]
    src, out = tmp_path / "latest.pt", tmp_path / "out.pth"
    _uvssm_checkpoint(src, "edvr-m-wo-tsa", 4, values)
    done = _uvssm("convert", "--to", "basicsr", str(src), "-o", str(out))
    assert done.returncode == 2 and "1 missing: conv_last.bias" in done.stderr and not out.exists()
    done = _uvssm("convert", "--to", "basicsr", "mmagic", str(src), "-o", str(out))
    assert done.returncode == 2 and "--to basicsr takes SRC alone" in done.stderr
