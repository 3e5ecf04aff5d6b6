"""`uvssm convert mmagic`: checkpoints laid out as mmagic saves them, their keys written here by hand from
mmagic's own architecture files (mmagic/models/editors/edvr/edvr_net.py: EDVRNet, PCDAlignment, TSAFusion,
ModulatedDCNPack; .../basicvsr/basicvsr_net.py: BasicVSRNet, ResidualBlocksWithInputConv, SPyNet,
SPyNetBasicModule; mmcv's ConvModule keeps its convolution as `.conv`, mmagic's PixelShufflePack as
`.upsample_conv`), each beside the BasicSR name it must become, with random values: every converted tensor
must be the one its mmagic name held."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models import checkpoint
from models.trained import load_trained
from tests.comisr_tf import checkpoint_prefix, comisr_variables, release_values, stored_values

Pairs = list[tuple[str, str, tuple[int, ...]]]  # (mmagic key, BasicSR key, shape)


def conv(mm: str, bs: str, cin: int, cout: int, k: int, module: bool = False) -> Pairs:
    inner = ".conv" if module else ""  # a ConvModule
    return [(f"{mm}{inner}.weight", f"{bs}.weight", (cout, cin, k, k)), (f"{mm}{inner}.bias", f"{bs}.bias", (cout,))]


def resblocks(mm: str, bs: str, n: int, c: int) -> Pairs:  # make_layer(ResidualBlockNoBN): conv1, conv2
    return [p for i in range(n) for j in (1, 2) for p in conv(f"{mm}.{i}.conv{j}", f"{bs}.{i}.conv{j}", c, c, 3)]


def dcn(mm: str, bs: str, c: int, groups: int) -> Pairs:  # ModulatedDCNPack: weight, bias, conv_offset
    return [(f"{mm}.weight", f"{bs}.weight", (c, c, 3, 3)), (f"{mm}.bias", f"{bs}.bias", (c,)),
            *conv(f"{mm}.conv_offset", f"{bs}.conv_offset", c, groups * 3 * 9, 3)]


def edvr_pairs(c: int = 64, frames: int = 5, groups: int = 8, ext: int = 5, rec: int = 10) -> Pairs:
    pairs = conv("conv_first", "conv_first", 3, c, 3) + resblocks("feature_extraction", "feature_extraction", ext, c)
    for mm, bs in (("feat_l2_conv1", "conv_l2_1"), ("feat_l2_conv2", "conv_l2_2"), ("feat_l3_conv1", "conv_l3_1"),
                   ("feat_l3_conv2", "conv_l3_2")):
        pairs += conv(mm, bs, c, c, 3, module=True)
    for level in ("l3", "l2", "l1"):
        p, b = "pcd_alignment", "pcd_align"
        pairs += conv(f"{p}.offset_conv1.{level}", f"{b}.offset_conv1.{level}", 2 * c, c, 3, True)
        pairs += conv(f"{p}.offset_conv2.{level}", f"{b}.offset_conv2.{level}", c if level == "l3" else 2 * c, c, 3, True)
        if level != "l3":
            pairs += conv(f"{p}.offset_conv3.{level}", f"{b}.offset_conv3.{level}", c, c, 3, True)
            pairs += conv(f"{p}.feat_conv.{level}", f"{b}.feat_conv.{level}", 2 * c, c, 3, True)
        pairs += dcn(f"{p}.dcn_pack.{level}", f"{b}.dcn_pack.{level}", c, groups)
    pairs += conv("pcd_alignment.cas_offset_conv1", "pcd_align.cas_offset_conv1", 2 * c, c, 3, True)
    pairs += conv("pcd_alignment.cas_offset_conv2", "pcd_align.cas_offset_conv2", c, c, 3, True)
    pairs += dcn("pcd_alignment.cas_dcnpack", "pcd_align.cas_dcnpack", c, groups)
    tsa = [("temporal_attn1", c, 3, False), ("temporal_attn2", c, 3, False), ("feat_fusion", frames * c, 1, True),
           ("spatial_attn1", frames * c, 1, True), ("spatial_attn2", 2 * c, 1, True), ("spatial_attn3", c, 3, True),
           ("spatial_attn4", c, 1, True), ("spatial_attn5", c, 3, False), ("spatial_attn_l1", c, 1, True),
           ("spatial_attn_l2", 2 * c, 3, True), ("spatial_attn_l3", c, 3, True), ("spatial_attn_add1", c, 1, True),
           ("spatial_attn_add2", c, 1, False)]
    for name, cin, k, module in tsa:
        pairs += conv(f"fusion.{name}", f"fusion.{name}", cin, c, k, module)
    pairs += resblocks("reconstruction", "reconstruction", rec, c)
    pairs += conv("upsample1.upsample_conv", "upconv1", c, c * 4, 3) + conv("upsample2.upsample_conv", "upconv2", c, 64 * 4, 3)
    return pairs + conv("conv_hr", "conv_hr", 64, 64, 3) + conv("conv_last", "conv_last", 64, 3, 3)


def basicvsr_pairs(c: int = 64, blocks: int = 30) -> Pairs:
    pairs: Pairs = [("spynet.mean", "spynet.mean", (1, 3, 1, 1)), ("spynet.std", "spynet.std", (1, 3, 1, 1))]
    for level in range(6):  # five ConvModules; BasicSR's Sequential has a ReLU after each but the last
        for i, (cin, cout) in enumerate(((8, 32), (32, 64), (64, 32), (32, 16), (16, 2))):
            pairs += conv(f"spynet.basic_module.{level}.basic_module.{i}",
                          f"spynet.basic_module.{level}.basic_module.{2 * i}", cin, cout, 7, module=True)
    for side in ("backward", "forward"):  # ResidualBlocksWithInputConv: main = [conv, lrelu, make_layer]
        pairs += conv(f"{side}_resblocks.main.0", f"{side}_trunk.main.0", c + 3, c, 3)
        pairs += resblocks(f"{side}_resblocks.main.2", f"{side}_trunk.main.2", blocks, c)
    pairs += conv("fusion", "fusion", 2 * c, c, 1)
    pairs += conv("upsample1.upsample_conv", "upconv1", c, c * 4, 3) + conv("upsample2.upsample_conv", "upconv2", c, 64 * 4, 3)
    return pairs + conv("conv_hr", "conv_hr", 64, 64, 3) + conv("conv_last", "conv_last", 64, 3, 3)


def _mmagic_file(path, pairs: Pairs, seed: int, ema: bool = False):
    g = torch.Generator().manual_seed(seed)
    values = {mm: torch.randn(shape, generator=g) for mm, _, shape in pairs}
    state = {f"generator.{k}": v for k, v in values.items()}
    if ema:  # the EMA copy is the one to take
        values = {k: v + 1 for k, v in values.items()}
        state.update({f"generator_ema.{k}": v for k, v in values.items()})
    state["step_counter"] = torch.tensor(600000)  # something that is not the generator's
    torch.save({"meta": {"mmengine_version": "0.10.3", "iter": 600000}, "state_dict": state}, path)
    return values


@pytest.mark.parametrize("pairs, model, ema", [(edvr_pairs(), "edvr-m", False), (basicvsr_pairs(), "basicvsr", True)])
def test_mmagic_checkpoints_convert_tensor_for_tensor(tmp_path, pairs, model, ema):
    src, out = tmp_path / "mmagic.pth", tmp_path / "weights" / f"{model}.pt"
    values = _mmagic_file(src, pairs, seed=len(pairs), ema=ema)
    done = subprocess.run([sys.executable, "-m", "uvssm", "convert", "mmagic", str(src), "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"as {model} x4" in done.stdout and f"(mmagic, {'generator_ema' if ema else 'generator'})" in done.stdout
    saved = checkpoint.read(out)
    assert saved["uvssm"]["model"] == model and saved["uvssm"]["converted_from"]["sha256"] == checkpoint.file_sha256(src)
    params = saved["params"]
    assert set(params) == {bs for _, bs, _ in pairs}
    for mm, bs, _ in pairs:
        assert torch.equal(params[bs], values[mm]), (mm, bs)
    # and bench/restore take it like uvssm's own (strict load into the registered model)
    trained = load_trained(model, 4, [str(tmp_path / "weights")])
    assert trained.params == sum(v.numel() for mm, _, v in ((m, b, values[m]) for m, b, _ in pairs)
                                 if not mm.endswith(("mean", "std")))


def test_what_cannot_be_converted_is_said_in_one_line(tmp_path):
    src = tmp_path / "other.pth"
    torch.save({"state_dict": {"generator.conv.weight": torch.zeros(1)}}, src)
    done = subprocess.run([sys.executable, "-m", "uvssm", "convert", "mmagic", str(src), "-o", str(tmp_path / "o.pt")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and f"{src}: neither EDVRNet" in done.stderr and len(done.stderr.splitlines()) == 1
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, src)
    done = subprocess.run([sys.executable, "-m", "uvssm", "convert", "mmagic", str(src), "-o", str(tmp_path / "o.pt")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "no generator.* weights" in done.stderr
    _mmagic_file(src, edvr_pairs(), seed=1)
    done = subprocess.run([sys.executable, "-m", "uvssm", "convert", "mmagic", str(src), "-o", str(tmp_path / "o.pt"),
                           "--model", "edvr-l"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "weights do not fit EDVR" in done.stderr and not (tmp_path / "o.pt").exists()


# --- COMISR's TensorFlow release: a checkpoint TensorFlow wrote, committed (tests/comisr_tf.py) -------------

def _tf_checkpoint(tmp_path, with_ema: bool) -> tuple[Path, dict]:
    """The committed checkpoint that TensorFlow itself wrote under the release's variable names (the trained
    values, their EMA shadows: the values + 1, an Adam slot), unpacked; and the trained values."""
    return checkpoint_prefix(tmp_path / "ckpt", with_ema), release_values()


@pytest.mark.parametrize("with_ema", [True, False])
def test_the_committed_checkpoint_holds_what_its_script_wrote(tmp_path, with_ema):
    """TensorFlow's own reader on the committed files: every variable the script stored, to the bit (skipped
    without TensorFlow, which the test install leaves out: `pip install tensorflow-cpu` to run it)."""
    tf = pytest.importorskip("tensorflow", reason="TensorFlow's own reader of the committed checkpoint: "
                             "pip install tensorflow-cpu")
    reader = tf.train.load_checkpoint(str(checkpoint_prefix(tmp_path, with_ema)))
    stored = stored_values(with_ema)
    assert set(reader.get_variable_to_shape_map()) == {*stored, "global_step"}
    for name, value in stored.items():
        assert np.array_equal(reader.get_tensor(name), value), name
    assert reader.get_tensor("global_step") == 0


@pytest.mark.parametrize("with_ema", [True, False])
def test_comisr_tensorflow_checkpoint_converts_without_tensorflow(tmp_path, with_ema):
    prefix, values = _tf_checkpoint(tmp_path, with_ema)
    # the x4 release's parameter count (the spec's 2,628,391) from this table: it lists every layer
    assert sum(v.size for v in values.values()) == 2_628_391
    out = tmp_path / "weights" / "comisr.pt"
    done = subprocess.run([sys.executable, "-m", "uvssm", "convert", "comisr-tf", str(prefix), "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "as comisr x4" in done.stdout and f"(comisr-tf, {'ema' if with_ema else 'plain'})" in done.stdout
    params = checkpoint.read(out)["params"]
    shift = 1.0 if with_ema else 0.0
    expected = {}
    for scope, module, _, transposed in comisr_variables():
        kernel = values[f"{scope}/weights"] + shift
        # conv [kh, kw, in, out] -> [out, in, kh, kw]; transposed [kh, kw, out, in] -> [in, out, kh, kw]
        expected[f"{module}.weight"] = np.transpose(kernel, (3, 2, 0, 1))
        expected[f"{module}.bias"] = values[f"{scope}/biases"] + shift
    assert set(params) == set(expected)
    for key, want in expected.items():
        assert np.array_equal(params[key].numpy(), want), key
    load_trained("comisr", 4, [str(tmp_path / "weights")])  # bench and restore take it


def test_a_tensorflow_checkpoint_that_is_not_comisr_is_refused(tmp_path):
    (tmp_path / "x.index").write_bytes(b"not a table")
    done = subprocess.run([sys.executable, "-m", "uvssm", "convert", "comisr-tf", str(tmp_path / "x"), "-o",
                           str(tmp_path / "o.pt")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "not a TensorFlow checkpoint index" in done.stderr
    done = subprocess.run([sys.executable, "-m", "uvssm", "convert", "comisr-tf", str(tmp_path / "nothing"), "-o",
                           str(tmp_path / "o.pt")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "no PREFIX.index here" in done.stderr
