"""Every model's state dict equals the official one, key for key and shape for shape.

The expected tables below are written out by hand from the official architecture files, following
each file's module nesting (an `nn.Sequential` inside a `Sequential` adds a level, a ModuleDict keys
by name, `make_layer` returns a Sequential). They are not derived from uvssm's models:
- BasicSR `basicsr/archs/basicvsr_arch.py` (BasicVSR, ConvResidualBlocks), `spynet_arch.py` (SpyNet,
  BasicModule), `edvr_arch.py` (EDVR, PCDAlignment, TSAFusion), `arch_util.py` (ResidualBlockNoBN,
  DCNv2Pack = ModulatedDeformConvPack: weight, bias, conv_offset);
- VOTES `archs/votes_arch.py` (VOTES, MaskFusion), `archs/bin_arch.py` (BIN → RDN_residual_scale2 →
  RDN_residual_interp_x_input, RDB, RDB_Conv), with the official test configs' values (128 features,
  5 extraction / 40 reconstruction / 10 modulation blocks, 8 deformable groups);
- RSDN `RSDN/arch.py` (RSDN9_128 → neuro, ResidualBlock_noBN with its detail and structure convs),
  ×4 as released (16·3 = 48 channels per branch head);
- STDF-PyTorch `net_stdf.py` (MFVQE → STDF + PlainCNN, ModulatedDeformConv: weight, bias) with
  `option_R3_mfqev2_4G.yml` (radius 3, nf 32, nb 3, QE nf 48 nb 8) and the RGB variant (in_nc 3).
"""

from __future__ import annotations

import pytest

from models.registry import create_model

Shapes = dict[str, tuple[int, ...]]


def conv(p: str, cin: int, cout: int, k: int) -> Shapes:
    return {f"{p}.weight": (cout, cin, k, k), f"{p}.bias": (cout,)}


def conv_transpose(p: str, cin: int, cout: int, k: int) -> Shapes:
    return {f"{p}.weight": (cin, cout, k, k), f"{p}.bias": (cout,)}


def resblock(p: str, nf: int) -> Shapes:  # ResidualBlockNoBN: conv1, relu, conv2
    return {**conv(f"{p}.conv1", nf, nf, 3), **conv(f"{p}.conv2", nf, nf, 3)}


def make_layer(p: str, n: int, nf: int) -> Shapes:  # nn.Sequential of n ResidualBlockNoBN
    out: Shapes = {}
    for i in range(n):
        out |= resblock(f"{p}.{i}", nf)
    return out


def dcn_pack(p: str, nf: int, groups: int) -> Shapes:  # ModulatedDeformConvPack(nf, nf, 3)
    return {f"{p}.weight": (nf, nf, 3, 3), f"{p}.bias": (nf,), **conv(f"{p}.conv_offset", nf, groups * 3 * 9, 3)}


def pcd(p: str, nf: int, groups: int) -> Shapes:
    out: Shapes = {}
    for i in (3, 2, 1):
        level = f"l{i}"
        out |= conv(f"{p}.offset_conv1.{level}", 2 * nf, nf, 3)
        if i == 3:
            out |= conv(f"{p}.offset_conv2.{level}", nf, nf, 3)
        else:
            out |= conv(f"{p}.offset_conv2.{level}", 2 * nf, nf, 3)
            out |= conv(f"{p}.offset_conv3.{level}", nf, nf, 3)
        out |= dcn_pack(f"{p}.dcn_pack.{level}", nf, groups)
        if i < 3:
            out |= conv(f"{p}.feat_conv.{level}", 2 * nf, nf, 3)
    out |= conv(f"{p}.cas_offset_conv1", 2 * nf, nf, 3) | conv(f"{p}.cas_offset_conv2", nf, nf, 3)
    return out | dcn_pack(f"{p}.cas_dcnpack", nf, groups)


def tsa(p: str, nf: int, frames: int) -> Shapes:
    layers = [("temporal_attn1", nf, 3), ("temporal_attn2", nf, 3), ("feat_fusion", frames * nf, 1),
              ("spatial_attn1", frames * nf, 1), ("spatial_attn2", 2 * nf, 1), ("spatial_attn3", nf, 3),
              ("spatial_attn4", nf, 1), ("spatial_attn5", nf, 3), ("spatial_attn_l1", nf, 1),
              ("spatial_attn_l2", 2 * nf, 3), ("spatial_attn_l3", nf, 3), ("spatial_attn_add1", nf, 1),
              ("spatial_attn_add2", nf, 1)]
    out: Shapes = {}
    for name, cin, k in layers:
        out |= conv(f"{p}.{name}", cin, nf, k)
    return out


def pyramid(nf: int, extract: int) -> Shapes:  # conv_first, feature_extraction, L2/L3 convs (EDVR, VOTES)
    out = conv("conv_first", 3, nf, 3) | make_layer("feature_extraction", extract, nf)
    for name in ("conv_l2_1", "conv_l2_2", "conv_l3_1", "conv_l3_2"):
        out |= conv(name, nf, nf, 3)
    return out


def basicsr_edvr(nf: int, reconstruct: int) -> Shapes:  # EDVR(..., with_tsa=True), x4
    return (pyramid(nf, 5) | pcd("pcd_align", nf, 8) | tsa("fusion", nf, 5)
            | make_layer("reconstruction", reconstruct, nf) | conv("upconv1", nf, nf * 4, 3)
            | conv("upconv2", nf, 64 * 4, 3) | conv("conv_hr", 64, 64, 3) | conv("conv_last", 64, 3, 3))


def basicsr_spynet(p: str) -> Shapes:
    out: Shapes = {f"{p}.mean": (1, 3, 1, 1), f"{p}.std": (1, 3, 1, 1)}
    for level in range(6):
        for index, (cin, cout) in zip((0, 2, 4, 6, 8), ((8, 32), (32, 64), (64, 32), (32, 16), (16, 2))):
            out |= conv(f"{p}.basic_module.{level}.basic_module.{index}", cin, cout, 7)
    return out


def basicsr_basicvsr(nf: int = 64, blocks: int = 30) -> Shapes:
    out = basicsr_spynet("spynet")
    for trunk in ("backward_trunk", "forward_trunk"):
        # ConvResidualBlocks.main = Sequential(conv, LeakyReLU, make_layer(...)): the blocks live at main.2.<i>
        out |= conv(f"{trunk}.main.0", nf + 3, nf, 3) | make_layer(f"{trunk}.main.2", blocks, nf)
    return (out | conv("fusion", 2 * nf, nf, 1) | conv("upconv1", nf, nf * 4, 3) | conv("upconv2", nf, 64 * 4, 3)
            | conv("conv_hr", 64, 64, 3) | conv("conv_last", 64, 3, 3))


def votes_rdn(p: str, n_inputs: int = 2, g0: int = 64, d: int = 6, c: int = 4, g: int = 32) -> Shapes:
    out = conv(f"{p}.SFENet1", 12 * n_inputs, g0, 5) | conv(f"{p}.SFENet2", g0, g0, 3)
    for i in range(d):
        for k in range(c):  # RDB.convs = Sequential(RDB_Conv...), RDB_Conv.conv = Sequential(conv, ReLU)
            out |= conv(f"{p}.RDBs.{i}.convs.{k}.conv.0", g0 + k * g, g, 3)
        out |= conv(f"{p}.RDBs.{i}.LFF", g0 + c * g, g0, 1)
    out |= conv(f"{p}.GFF.0", d * g0, g0, 1) | conv(f"{p}.GFF.1", g0, g0, 3)
    return out | conv(f"{p}.UPNet.0", g0, 256, 3) | conv(f"{p}.UPNet.2", 64, 3, 3)


def votes_official(scale: int, nf: int = 128) -> Shapes:
    out = votes_rdn("bin.model.model1_1") | votes_rdn("bin.model.model2_1")
    out |= pyramid(nf, 5) | pcd("pcd_align", nf, 8)
    out |= conv("fusion.feat_fusion", 5 * nf, nf, 1) | conv("fusion.mask_modulation_first", 1, nf, 3)
    for i in range(10):
        out |= conv(f"fusion.feat_cas_l.{i}", nf, nf, 3) | conv(f"fusion.mask_modulation_l.{i}", nf, nf, 3)
    out |= conv("fusion.fusion", nf, nf, 3) | make_layer("reconstruction", 40, nf)
    if scale == 2:
        out |= conv("upconv1", nf, 64 * 4, 3)
    else:
        out |= conv("upconv1", nf, nf * 4, 3) | conv("upconv2", nf, 64 * 4, 3)
    return out | conv("conv_hr", 64, 64, 3) | conv("conv_last", 64, 3, 3)


def stdf_official(in_nc: int, radius: int = 3, nf: int = 32, nb: int = 3) -> Shapes:
    frames = 2 * radius + 1
    c = in_nc * frames  # MFVQE: STDF(in_nc=in_nc * input_len, out_nc=64, nf, nb, deform_ks=3)
    out = conv("ffnet.in_conv.0", c, nf, 3)
    for i in range(1, nb):
        out |= conv(f"ffnet.dn_conv{i}.0", nf, nf, 3) | conv(f"ffnet.dn_conv{i}.2", nf, nf, 3)
        out |= conv(f"ffnet.up_conv{i}.0", 2 * nf, nf, 3) | conv_transpose(f"ffnet.up_conv{i}.2", nf, nf, 4)
    out |= conv("ffnet.tr_conv.0", nf, nf, 3) | conv("ffnet.tr_conv.2", nf, nf, 3)
    out |= conv_transpose("ffnet.tr_conv.4", nf, nf, 4) | conv("ffnet.out_conv.0", nf, nf, 3)
    out |= conv("ffnet.offset_mask", nf, c * 3 * 9, 3)
    out |= {"ffnet.deform_conv.weight": (64, c, 3, 3), "ffnet.deform_conv.bias": (64,)}
    out |= conv("qenet.in_conv.0", 64, 48, 3)
    for k in range(8 - 2):  # hid_conv = Sequential(conv, ReLU, conv, ReLU, ...)
        out |= conv(f"qenet.hid_conv.{2 * k}", 48, 48, 3)
    return out | conv("qenet.out_conv", 48, in_nc, 3)


def rsdn_official(nf: int = 128) -> Shapes:
    out = conv("conv", 48 * 2, 48, 3) | conv("neuro.forget", 3, 3 * 3, 3)
    for branch in ("conv_d", "conv_s"):
        out |= conv(f"neuro.{branch}", 16 * 3 + nf + 3 * 2, nf, 3)
    for i in range(1, 10):
        for c in ("conv_d1", "conv_d2", "conv_s1", "conv_s2"):
            out |= conv(f"neuro.SD{i}.{c}", nf, nf, 3)
    out |= conv("neuro.conv_hd", nf, nf, 3) | conv("neuro.conv_od", nf, 48, 3)
    return out | conv("neuro.conv_hs", nf, nf, 3) | conv("neuro.conv_os", nf, 48, 3)


def _shapes(model) -> Shapes:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _compare(ours: Shapes, official: Shapes) -> None:
    missing, unexpected = sorted(set(official) - set(ours)), sorted(set(ours) - set(official))
    assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"
    wrong = {k: (ours[k], official[k]) for k in official if ours[k] != official[k]}
    assert not wrong, wrong


def test_basicvsr_is_basicsr_key_for_key():
    official = basicsr_basicvsr()
    assert len(official) == 316  # the count a BasicSR checkpoint has
    _compare(_shapes(create_model("basicvsr", 4)), official)


@pytest.mark.parametrize("name,nf,blocks", [("edvr-l", 128, 40), ("edvr-m", 64, 10)])
def test_edvr_is_basicsr_key_for_key(name, nf, blocks):
    _compare(_shapes(create_model(name, 4)), basicsr_edvr(nf, blocks))


@pytest.mark.parametrize("scale", [2, 4])
def test_votes_is_the_official_arch_key_for_key(scale):
    official = votes_official(scale)
    assert sum(k.startswith("bin.") for k in official) == 144
    _compare(_shapes(create_model("votes", scale)), official)


@pytest.mark.parametrize("name,in_nc", [("stdf", 3), ("stdf-y", 1)])
def test_stdf_is_stdf_pytorch_key_for_key(name, in_nc):
    _compare(_shapes(create_model(name, 1)), stdf_official(in_nc))


def test_a_checkpoint_in_the_official_basicvsr_layout_loads_strictly(tmp_path):
    """A state dict built from the official table (not from our model) loads strictly, and the
    blocks land where BasicSR's forward uses them."""
    import torch

    from models.checkpoint import load_weights

    official = basicsr_basicvsr()
    torch.manual_seed(0)
    state = {k: torch.randn(shape) for k, shape in official.items()}
    path = tmp_path / "BasicVSR_REDS4.pth"
    torch.save({"params": state}, path)
    model = create_model("basicvsr", 4)
    load_weights(model, path)
    assert torch.equal(model.backward_trunk.main[2][29].conv2.weight, state["backward_trunk.main.2.29.conv2.weight"])


def test_rsdn_is_the_release_key_for_key():
    _compare(_shapes(create_model("rsdn", 4)), rsdn_official())
