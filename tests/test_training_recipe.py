"""The short-run recipe pieces: the "signal" initialisation and the learning-rate warm-up.
Expected values are worked out by hand from their definitions."""

from __future__ import annotations

import math

import pytest
import torch

from models.layers import DCNv2Pack, ResidualBlockNoBN
from models.registry import create_model
from models.training.config import ConfigError, load_config
from models.training.init import signal_init
from models.training.schedule import make_schedule


def test_warmup_ramps_the_cosine_rate_linearly():
    schedule = make_schedule("cosine", 4e-3, [150], [1], 4e-5, warmup=30)
    cosine = lambda n: 4e-5 + 0.5 * (4e-3 - 4e-5) * (1 + math.cos(math.pi * (n - 1) / 150))  # noqa: E731
    assert schedule.lr_at(1) == pytest.approx(cosine(1) / 30)
    assert schedule.lr_at(15) == pytest.approx(cosine(15) * 15 / 30)
    assert schedule.lr_at(30) == pytest.approx(cosine(30))
    assert schedule.lr_at(100) == pytest.approx(cosine(100))
    assert make_schedule("cosine", 1e-3, [10], [1], 0.0).lr_at(1) == 1e-3  # no warm-up: the official stepping


def test_signal_init_keeps_the_signal_and_starts_at_the_residual():
    torch.manual_seed(0)
    model = create_model("votes-tiny", 2)
    dsm = {k: v.clone() for k, v in model.bin.state_dict().items()}
    blocks = {k: v.clone() for k, v in model.reconstruction.state_dict().items()}
    signal_init(model)
    assert all(torch.equal(v, model.bin.state_dict()[k]) for k, v in dsm.items())  # stage 1's, untouched
    assert all(torch.equal(v, model.reconstruction.state_dict()[k]) for k, v in blocks.items())
    assert model.conv_last.weight.abs().sum() == 0 and model.conv_last.bias.abs().sum() == 0
    gain = math.sqrt(2 / (1 + 0.1 ** 2))  # Kaiming for LeakyReLU(0.1)
    for name, module in model.named_modules():
        if isinstance(module, DCNv2Pack):
            assert module.conv_offset.weight.abs().sum() == 0  # alignment starts as a plain convolution
            fan_in = module.weight[0].numel()
            assert module.weight.std().item() == pytest.approx(2 * gain / math.sqrt(fan_in), rel=0.25), name
    conv = model.conv_first
    assert conv.weight.std().item() == pytest.approx(gain / math.sqrt(conv.weight[0].numel()), rel=0.25)
    assert not any(isinstance(m, ResidualBlockNoBN) and m.conv1.weight.std() > 0.1 for m in model.modules())

    # starting exactly at the bilinear residual
    x = torch.rand(1, 5, 3, 16, 16)
    up = torch.nn.functional.interpolate(x[:, 2], scale_factor=2, mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert torch.equal(model.eval()(x, dfm=torch.zeros(1, 1, 16, 16)), up)


def test_config_takes_init_warmup_and_several_qps():
    cfg = load_config("votes-tiny-sample", ["data.qp=[24,28,32]"])
    assert cfg.init == "signal" and cfg.warmup_iter == 30 and cfg.data.qps == [24, 28, 32]
    with pytest.raises(ConfigError, match="init must be one of"):
        load_config("votes-tiny-sample", ["init=xavier"])
    with pytest.raises(ConfigError, match="data.qp: an empty list"):
        load_config("votes-tiny-sample", ["data.qp=[]"])
    with pytest.raises(ConfigError, match="warmup_iter must be >= 0"):
        load_config("votes-tiny-sample", ["warmup_iter=-1"])
