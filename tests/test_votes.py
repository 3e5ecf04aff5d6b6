"""VOTES as the paper and the official code (`luohongming/VOTES`) define it: parameter counts, layout, the DFM, the DSM wiring,
checkpoint loading, border padding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models import checkpoint
from models.registry import create_model, list_models
from models.votes import VOTES, degradation_feature_map, dfm_agreement
from models.windows import reflection_circle
from uvssm.base.errors import UvssmError

TINY = dict(num_feat=16, deformable_groups=2, num_extract_block=1, num_reconstruct_block=2,
            num_modulation_blocks=2, bin_features=8, bin_blocks=1)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def full_x2():
    torch.manual_seed(0)
    return VOTES(scale=2)


def test_part_parameter_counts_match_the_spec(full_x2):  # the whole model's at x2/x4: tests/test_registry.py
    assert _count(full_x2.bin) == 2_270_854
    assert _count(full_x2.bin.model.model1_1) == _count(full_x2.bin.model.model2_1) == 1_135_427
    assert _count(full_x2) - _count(full_x2.bin) == 21_930_083
    assert _count(full_x2.pcd_align) == 4_537_184
    assert _count(full_x2.fusion) == 3_182_592
    assert _count(full_x2.reconstruction) == 11_806_720
    assert _count(full_x2.feature_extraction) == 1_475_840
    assert _count(full_x2.pcd_align.dcn_pack["l1"]) == 396_632
    assert _count(VOTES(scale=3)) == 24_569_897


def test_state_dict_layout_matches_the_official_keys(full_x2):
    sd = full_x2.state_dict()
    assert len(sd) == 426
    assert sum(k.startswith("bin.") for k in sd) == 144
    for key in ("pcd_align.dcn_pack.l3.conv_offset.weight", "fusion.feat_cas_l.7.weight",
                "bin.model.model1_1.RDBs.0.LFF.weight", "bin.model.model2_1.RDBs.5.convs.3.conv.0.weight",
                "bin.model.model1_1.UPNet.2.weight", "bin.model.model1_1.GFF.1.bias",
                "fusion.mask_modulation_first.weight", "fusion.fusion.weight", "fusion.feat_fusion.weight",
                "pcd_align.cas_dcnpack.weight", "pcd_align.offset_conv3.l2.weight", "pcd_align.feat_conv.l1.bias",
                "reconstruction.39.conv2.weight", "feature_extraction.4.conv1.weight", "upconv1.weight",
                "conv_hr.weight", "conv_last.weight", "conv_l3_2.weight"):
        assert key in sd, key
    assert sd["pcd_align.dcn_pack.l1.conv_offset.weight"].shape == (216, 128, 3, 3)
    assert sd["fusion.feat_fusion.weight"].shape == (128, 640, 1, 1)
    assert sd["upconv1.weight"].shape == (256, 128, 3, 3)
    assert "pcd_align.offset_conv3.l3.weight" not in sd and "pcd_align.feat_conv.l3.weight" not in sd


def test_dcn_initialisation(full_x2):
    pack = full_x2.pcd_align.dcn_pack["l2"]
    assert torch.count_nonzero(pack.conv_offset.weight) == 0 and torch.count_nonzero(pack.bias) == 0
    assert pack.weight.abs().max() <= 1 / math.sqrt(128 * 9)


def test_full_size_forward_shapes_on_a_tiny_input(full_x2):
    x = torch.rand(1, 5, 3, 16, 20)
    with torch.no_grad():
        out = full_x2(x)
    assert out.shape == (1, 3, 32, 40) and torch.isfinite(out).all()
    x4 = VOTES(**TINY, scale=4)
    assert x4(x).shape == (1, 3, 64, 80)


def test_bad_inputs_are_refused():
    model = VOTES(**TINY)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.rand(1, 5, 3, 18, 20))
    with pytest.raises(ValueError, match="5 frames"):
        model(torch.rand(1, 3, 3, 16, 16))
    with pytest.raises(ValueError, match="scale"):
        VOTES(scale=5)


def test_global_residual_is_bilinear_centre_frame():
    """With the last conv zeroed, the output is exactly the bilinear ×2 centre frame (unclamped)."""
    model = VOTES(**TINY).eval()
    with torch.no_grad():
        model.conv_last.weight.zero_()
        model.conv_last.bias.zero_()
        x = torch.rand(2, 5, 3, 8, 12)
        expected = torch.nn.functional.interpolate(x[:, 2], scale_factor=2, mode="bilinear", align_corners=False)
        torch.testing.assert_close(model(x), expected)


def test_dsm_wiring_and_input_order():
    """F_B1 sees (x_{t-2}, x_t) then (x_t, x_{t+2}); F_B2 sees (ẑ_{t-1}, ẑ_{t+1})."""
    model = VOTES(**TINY)
    x = torch.rand(1, 5, 3, 8, 8)
    calls = {"f1": [], "f2": []}
    model.bin.model.model1_1.register_forward_pre_hook(lambda m, args: calls["f1"].append(args[0]))
    model.bin.model.model2_1.register_forward_pre_hook(lambda m, args: calls["f2"].append(args[0]))
    pair, z_t = model.bin(x)
    (a, b), (c, d) = calls["f1"]
    assert a is not None and torch.equal(a, x[:, 0]) and torch.equal(b, x[:, 2])
    assert torch.equal(c, x[:, 2]) and torch.equal(d, x[:, 4])
    (e, f), = calls["f2"]
    assert torch.equal(e, pair[:, 0]) and torch.equal(f, pair[:, 1])
    assert pair.shape == (1, 2, 3, 8, 8) and z_t.shape == (1, 3, 8, 8)


def test_interpolator_output_is_mean_of_inputs_plus_residual():
    model = VOTES(**TINY)
    f_b = model.bin.model.model1_1
    with torch.no_grad():
        f_b.UPNet[2].weight.zero_()
        f_b.UPNet[2].bias.zero_()
        a, b = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
        torch.testing.assert_close(f_b([a, b]), (a + b) / 2)


def _dfm_reference(x, z, per_sample=False):
    """The spec's formula written in numpy (§1.2)."""
    def g(rgb):
        r, gg, b = (rgb * 255.0).transpose(1, 0, 2, 3)
        return np.round(0.299 * r + 0.587 * gg + 0.114 * b)
    lvl = np.log2(np.abs(g(x) - g(np.clip(z, 0, 1))) + 1)
    s = lvl.max(axis=(1, 2), keepdims=True) if per_sample else lvl.max()
    return np.round(255.0 * lvl / s) / 255.0


def test_dfm_formula_quantisation_and_batch_normalisation():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 10, 12, generator=g, dtype=torch.float64)
    z = (x + 0.2 * torch.randn(3, 3, 10, 12, generator=g, dtype=torch.float64)).clamp(-0.2, 1.2)
    e = degradation_feature_map(x, z)
    assert e.shape == (3, 1, 10, 12)
    np.testing.assert_allclose(e[:, 0].numpy(), _dfm_reference(x.numpy(), z.numpy()), atol=1e-12)
    assert float(e.max()) == 1.0
    levels = e * 255
    torch.testing.assert_close(levels, levels.round())

    per_sample = degradation_feature_map(x, z, normalize="sample")
    np.testing.assert_allclose(per_sample[:, 0].numpy(), _dfm_reference(x.numpy(), z.numpy(), True), atol=1e-12)
    assert torch.all(per_sample.amax(dim=(1, 2, 3)) == 1.0)


def test_dfm_depends_on_the_batch_only_with_batch_normalisation():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 8, 8, generator=g)
    z = x.clone()
    z[0] += 0.02 * torch.randn(3, 8, 8, generator=g)  # a mildly degraded sample
    z[1] = 1 - x[1]  # a very degraded one
    alone = degradation_feature_map(x[:1], z[:1])
    batched = degradation_feature_map(x, z)
    assert not torch.equal(alone[0], batched[0])
    assert torch.equal(degradation_feature_map(x[:1], z[:1], "sample")[0], degradation_feature_map(x, z, "sample")[0])


def test_dfm_zero_maximum_gives_zeros_not_nan():
    x = torch.rand(2, 3, 8, 8)
    e = degradation_feature_map(x, x.clone())
    assert torch.equal(e, torch.zeros_like(e))
    e = degradation_feature_map(x, x.clone(), normalize="sample")
    assert torch.equal(e, torch.zeros_like(e))


def test_dfm_agreement_by_hand():
    """Grey pixels (luma8 = the grey level): x = 10, 20, 30, 40; the true z differs by 0, 1, 3, 7 (levels
    log2(d + 1) = 0, 1, 2, 3) and the estimate by 0, 0, 1, 15 (levels 0, 0, 1, 4). Pearson by hand: deviations
    (-1.5, -0.5, 0.5, 1.5) and (-1.25, -1.25, -0.25, 2.75), products summing to 6.5, squares to 5 and 10.75."""
    def grey(*levels):
        return torch.tensor(levels, dtype=torch.float64).div(255).view(1, 1, 1, -1).expand(1, 3, 1, -1)

    x, z, z_hat = grey(10, 20, 30, 40), grey(10, 21, 33, 47), grey(10, 20, 31, 55)
    assert dfm_agreement(x, z_hat, z) == pytest.approx(6.5 / math.sqrt(5 * 10.75), abs=1e-12)
    assert dfm_agreement(x, z, z) == pytest.approx(1.0, abs=1e-12)  # the true z_t: exact agreement
    assert dfm_agreement(x, x, z) == 0.0  # an estimate that copies the LQ frame: a flat DFM says nothing
    assert dfm_agreement(x, grey(10, 19, 27, 33), z) == pytest.approx(1.0, abs=1e-12)  # |d| counts, not its sign


def test_without_dfm_ablation_skips_the_dsm():
    torch.manual_seed(0)
    model = create_model("votes-tiny", 2, dfm="zero").eval()
    called = []
    model.bin.register_forward_hook(lambda *a: called.append(1))
    x = torch.rand(1, 5, 3, 8, 8)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, model(x, dfm=torch.zeros(1, 1, 8, 8)))
    assert not called
    assert create_model("votes-wo-dfm").dfm_mode == "zero"


def test_stage2_gradients_skip_the_frozen_dsm():
    model = VOTES(**TINY)
    model(torch.rand(2, 5, 3, 8, 8)).sum().backward()
    assert all(p.grad is None for p in model.bin.parameters())
    assert model.conv_first.weight.grad is not None
    assert model.pcd_align.dcn_pack["l1"].conv_offset.weight.grad is not None
    assert model.fusion.mask_modulation_first.weight.grad is not None


def test_strict_round_trip_of_a_saved_checkpoint(tmp_path, full_x2):
    path = checkpoint.save(tmp_path / "votes.pt", full_x2, {"model": "votes", "scale": 2})
    torch.manual_seed(123)
    other = VOTES(scale=2)
    report = checkpoint.load_weights(other, path)
    assert report.ok and report.loaded == 426 and report.key == "params"
    for (k, a), (_, b) in zip(full_x2.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), k


def test_official_layouts_load_and_mismatches_are_reported(tmp_path):
    torch.manual_seed(0)
    model = VOTES(**TINY)
    sd = model.state_dict()
    torch.save({"params_ema": {f"module.{k}": v for k, v in sd.items()}, "params": {}}, tmp_path / "ema.pth")
    assert checkpoint.load_weights(VOTES(**TINY), tmp_path / "ema.pth").key == "params_ema"

    # the official test configs load non-strictly; a file without the DSM must not pass silently
    torch.save({"params": {k: v for k, v in sd.items() if not k.startswith("bin.")}}, tmp_path / "nobin.pth")
    with pytest.raises(UvssmError, match=r"nobin.pth: .*missing"):
        checkpoint.load_weights(VOTES(**TINY), tmp_path / "nobin.pth")
    report = checkpoint.load_weights(VOTES(**TINY), tmp_path / "nobin.pth", strict=False)
    assert len(report.missing) == sum(k.startswith("bin.") for k in sd) and not report.unexpected
    assert "missing" in report.summary()

    with pytest.raises(UvssmError, match="shape mismatch"):
        checkpoint.load_weights(VOTES(**{**TINY, "num_feat": 8}), tmp_path / "ema.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UvssmError, match="junk.pth: not a PyTorch checkpoint: a text file"):
        checkpoint.load_weights(model, tmp_path / "junk.pth")


def test_registry_names():
    assert {"votes", "votes-wo-dfm", "votes-tiny"} <= set(list_models())
    with pytest.raises(ValueError, match="unknown model"):
        create_model("nope")
    with pytest.raises(ValueError, match="unknown model arguments"):
        create_model("votes-tiny", colour=1)


@pytest.mark.parametrize("center, expected", [(0, [4, 3, 0, 1, 2]), (1, [4, 0, 1, 2, 3]),
                                              (50, [48, 49, 50, 51, 52]),
                                              (98, [96, 97, 98, 99, 95]), (99, [97, 98, 99, 96, 95])])
def test_reflection_circle_matches_the_spec_table(center, expected):
    assert reflection_circle(center, 100) == expected


def test_reflection_circle_refuses_short_clips():
    with pytest.raises(ValueError):
        reflection_circle(0, 4)


def test_padded_run_equals_direct_run_on_multiples_and_crops_otherwise():
    from models.padding import pad_to_multiple, run_padded

    model = VOTES(**TINY).eval()
    x = torch.rand(1, 5, 3, 8, 12)
    with torch.no_grad():
        assert torch.equal(run_padded(model, x, 2), model(x))
        odd = torch.rand(1, 5, 3, 10, 13)
        out = run_padded(model, odd, 2)
        assert out.shape == (1, 3, 20, 26)
        padded, size = pad_to_multiple(odd, 4)
        assert padded.shape[-2:] == (12, 16) and size == (10, 13)
        assert torch.equal(padded[..., :10, :13], odd)
        assert torch.equal(padded[..., 10, :13], odd[..., 8, :])  # reflected about the last row
