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


def test_warmup_is_basicsrs():
    """BasicSR's `update_learning_rate`: below `warmup_iter` W the rate is `initial_lr / W * current_iter`, from W on
    the scheduler's (which kept stepping meanwhile). Worked from that expression."""
    schedule = make_schedule("cosine", 4e-3, [150], [1], 4e-5, warmup=30)
    cosine = lambda n: 4e-5 + 1 * 0.5 * (4e-3 - 4e-5) * (1 + math.cos(math.pi * ((n - 1 - 0) / 150)))  # noqa: E731
    assert schedule.lr_at(1) == 4e-3 / 30 * 1
    assert schedule.lr_at(15) == 4e-3 / 30 * 15
    assert schedule.lr_at(29) == 4e-3 / 30 * 29
    assert schedule.lr_at(30) == cosine(30)
    assert schedule.lr_at(100) == cosine(100)
    assert make_schedule("cosine", 1e-3, [10], [1], 0.0).lr_at(1) == 1e-3  # no warm-up: the official stepping


def test_the_scaled_warmup_ramps_onto_the_schedule():
    """uvssm's short-run warm-up (`warmup: scaled`): the schedule's rate times n / W, worked by hand."""
    schedule = make_schedule("cosine", 4e-3, [150], [1], 4e-5, warmup=30, warmup_kind="scaled")
    cosine = lambda n: 4e-5 + 0.5 * (4e-3 - 4e-5) * (1 + math.cos(math.pi * ((n - 1) / 150)))  # noqa: E731
    assert schedule.lr_at(1) == cosine(1) * (1 / 30)
    assert schedule.lr_at(29) == cosine(29) * (29 / 30)
    assert schedule.lr_at(30) == cosine(30) * 1.0
    assert load_config("votes-tiny-sample").warmup == "scaled"
    with pytest.raises(ConfigError, match="warmup must be"):
        load_config("votes-tiny-sample", ["warmup=linear"])


def _official_cosine_restart_lrs(base_lr, periods, restart_weights, eta_min, total):
    """The rate of iterations 1..total as BasicSR runs CosineAnnealingRestartLR: the scheduler is built at
    last_epoch 0 and `step()`s before every iteration from the second on; `get_lr` is
    `eta_min + current_weight * 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * ((last_epoch - nearest_restart)
    / current_period)))` with the period found by `get_position_from_periods` (the first cumulative period >=
    last_epoch)."""
    cumulative = [sum(periods[0:i + 1]) for i in range(0, len(periods))]
    lrs = []
    for current_iter in range(1, total + 1):
        last_epoch = current_iter - 1
        idx = next(i for i, period in enumerate(cumulative) if last_epoch <= period)
        current_weight = restart_weights[idx]
        nearest_restart = 0 if idx == 0 else cumulative[idx - 1]
        current_period = periods[idx]
        lrs.append(eta_min + current_weight * 0.5 * (base_lr - eta_min) *
                   (1 + math.cos(math.pi * ((last_epoch - nearest_restart) / current_period))))
    return lrs


@pytest.mark.parametrize("name", [n for n in ("votes-reds-qp28-x2", "votes-uvssm-wechat-x2", "dsm-reds-qp28-x2",
                                              "edvr-reds-qp28-x2", "basicvsr-reds-qp28-x2")])
def test_every_rate_of_a_packaged_recipe_is_the_official_one(name):
    cfg = load_config(name)
    assert cfg.schedule == "cosine" and cfg.warmup_iter == 0
    schedule = make_schedule(cfg.schedule, cfg.lr, cfg.periods, cfg.restart_weights, cfg.eta_min, cfg.warmup_iter)
    expected = _official_cosine_restart_lrs(cfg.lr, list(cfg.periods), list(cfg.restart_weights), cfg.eta_min,
                                            cfg.iterations)
    ours = [schedule.lr_at(n) for n in range(1, cfg.iterations + 1)]
    differ = sum(a != b for a, b in zip(ours, expected))
    assert differ == 0, f"{differ} of {len(expected)} rates differ from the official expression"


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
