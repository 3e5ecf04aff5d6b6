"""uvssm's training against the official VOTES training code's procedure, transcribed by hand, and training states
that move between the two.

The reference below is written from the official repository's files, not from uvssm:
- `models/votes_model.py` `VOTESModel.optimize_parameters`: zero_grad, forward, `cri_pix(output, gt)`, backward, step;
- `models/sr_model.py` `setup_optimizers`: one Adam group of every `net_g.named_parameters()` that requires grad
  (the official VOTES never turns requires_grad off on its DSM: `votes_arch.py` runs it under `torch.no_grad()`);
- `models/base_model.py` `update_learning_rate`: `scheduler.step()` before every iteration from the second on,
  the linear warm-up `v / warmup_iter * current_iter` below `warmup_iter`; `save_training_state`'s layout;
- BasicSR's `CosineAnnealingRestartLR.get_lr` and `get_position_from_periods` (`lr_scheduler.py`);
- BasicSR's `CharbonnierLoss` (eps 1e-12) with `reduction: sum` and `loss_weight: 1.0`, as the option files set it.
Its deformable convolution is uvssm's, whose gradients `tests/test_dcn_kernel_rules.py` checks against a
transcription of the official CUDA kernel; what this file checks is the recipe around it.
"""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import torch
import yaml

from models import checkpoint
from models.registry import create_model
from models.training import loop
from models.training.config import ConfigError, load_config
from models.training.data import WindowPatches
from tests.test_training import _array_clip


class OfficialCosineRestart(torch.optim.lr_scheduler.LRScheduler):
    """BasicSR's CosineAnnealingRestartLR, as its lr_scheduler.py writes it."""

    def __init__(self, optimizer, periods, restart_weights=(1, ), eta_min=0, last_epoch=-1):
        self.periods = periods
        self.restart_weights = restart_weights
        self.eta_min = eta_min
        self.cumulative_period = [sum(self.periods[0:i + 1]) for i in range(0, len(self.periods))]
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        idx = next(i for i, period in enumerate(self.cumulative_period) if self.last_epoch <= period)
        current_weight = self.restart_weights[idx]
        nearest_restart = 0 if idx == 0 else self.cumulative_period[idx - 1]
        current_period = self.periods[idx]
        return [self.eta_min + current_weight * 0.5 * (base_lr - self.eta_min) *
                (1 + math.cos(math.pi * ((self.last_epoch - nearest_restart) / current_period)))
                for base_lr in self.base_lrs]


def _official_setup(net, lr, periods, restart_weights, eta_min):
    """SRModel.setup_optimizers + BaseModel.setup_schedulers: the network's parameters all require grad."""
    net.bin.requires_grad_(True)
    optim_params = [v for k, v in net.named_parameters() if v.requires_grad]
    optimizer = torch.optim.Adam(optim_params, lr, weight_decay=0, betas=[0.9, 0.99])
    return optimizer, OfficialCosineRestart(optimizer, periods, restart_weights, eta_min)


def _official_run(net, optimizer, scheduler, batches, first_iter, last_iter, warmup_iter=-1):
    """The official training loop from `first_iter` to `last_iter`: (losses, learning rates)."""
    losses, lrs = [], []
    for current_iter in range(first_iter, last_iter + 1):
        if current_iter > 1:  # update_learning_rate
            scheduler.step()
        if current_iter < warmup_iter:
            init_lr = [v["initial_lr"] for v in optimizer.param_groups]
            for group, v in zip(optimizer.param_groups, init_lr):
                group["lr"] = v / warmup_iter * current_iter
        lrs.append(optimizer.param_groups[0]["lr"])
        batch = batches(current_iter)
        optimizer.zero_grad()  # optimize_parameters
        output = net(batch["lq"])
        l_pix = 1.0 * torch.sqrt((output - batch["gt"]) ** 2 + 1e-12).sum()  # CharbonnierLoss, reduction sum
        l_pix.backward()
        optimizer.step()
        losses.append(l_pix.item())
    return losses, lrs


# periods shortened so that 30 iterations cross two restarts; at these lengths the order of the arithmetic in the
# cosine (π·(e−R)/P against the official π·((e−R)/P)) changes 6 of the rates
PERIODS = [6, 11, 13]


def _recipe(gt_size, total=30, **extra):
    """The official REDS recipe (votes-reds-qp28-x2) on votes-tiny, with PERIODS."""
    values = ["model=votes-tiny", "batch_size=2", f"gt_size={gt_size}", f"periods={PERIODS}",
              "restart_weights=[1,0.5,0.5]", f"total_iter={total}", "log_every=1", "val_every=1000",
              f"save_every={total}", "cache_mb=0", "num_workers=0",
              *[f"{k}={v}" for k, v in extra.items()]]
    return load_config("votes-reds-qp28-x2", values)


def _batches(clips, cfg):
    data = WindowPatches(clips, num_frame=5, lq_patch=cfg.gt_size // 2, flip=cfg.flip, transpose=cfg.transpose,
                         seed=cfg.seed)
    return lambda n: torch.utils.data.default_collate([data[k] for k in range((n - 1) * cfg.batch_size,
                                                                                n * cfg.batch_size)])


def _max_distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("gt_size", [64, 96])  # LQ patches of 32 and of 48 (not a power of two)
def test_thirty_iterations_equal_the_official_training_code(tmp_path, gt_size):
    torch.set_num_threads(2)
    clips = [_array_clip("a", n=9, h=56, w=64, seed=1), _array_clip("b", n=9, h=56, w=64, seed=2)]
    cfg = _recipe(gt_size)
    torch.manual_seed(0)
    ours = create_model("votes-tiny", 2)
    official = copy.deepcopy(ours)
    official.bin.requires_grad_(True)
    moved_from = copy.deepcopy(ours)

    loop.train(ours, cfg, clips, [], tmp_path / "run", meta={"model": "votes-tiny"}, device=torch.device("cpu"))
    log = pd.read_parquet(tmp_path / "run" / "train_log.parquet")

    optimizer, scheduler = _official_setup(official, cfg.lr, PERIODS, [1, 0.5, 0.5], cfg.eta_min)
    losses, lrs = _official_run(official, optimizer, scheduler, _batches(clips, cfg), 1, 30)

    assert log["iteration"].tolist() == list(range(1, 31))
    assert log["lr"].tolist() == lrs  # identical, bit for bit
    for n, (a, b) in enumerate(zip(log["loss"], losses), start=1):
        assert a == pytest.approx(b, rel=1e-5), f"iteration {n}"
    moved = _max_distance(moved_from, official)
    assert moved > 1e-4  # the run moved the weights: the comparison below can fail
    assert _max_distance(ours, official) <= 1e-5


def test_our_training_state_is_basicsrs_and_resumes_there(tmp_path):
    """A uvssm run exported as BasicSR's experiment folder loads into the official setup (Adam over every
    parameter, CosineAnnealingRestartLR) and the official loop's next steps equal uvssm's own continuation."""
    from uvssm.pipelines.convert import export_basicsr_state

    clips = [_array_clip("a", n=9, h=40, w=48, seed=3)]
    torch.manual_seed(0)
    start = create_model("votes-tiny", 2)
    ours = copy.deepcopy(start)
    loop.train(ours, _recipe(32, total=12), clips, [], tmp_path / "run", meta={"model": "votes-tiny"},
               device=torch.device("cpu"))
    loop.train(ours, _recipe(32, total=15), clips, [], tmp_path / "run", meta={"model": "votes-tiny"},
               device=torch.device("cpu"), resume=True)

    partial = copy.deepcopy(start)
    loop.train(partial, _recipe(32, total=12), clips, [], tmp_path / "part", meta={"model": "votes-tiny"},
               device=torch.device("cpu"))
    done = export_basicsr_state(tmp_path / "part" / "checkpoints" / "latest.pt", tmp_path / "experiment")
    state = torch.load(tmp_path / "experiment" / "training_states" / "12.state", weights_only=True)
    net = torch.load(tmp_path / "experiment" / "models" / "net_g_12.pth", weights_only=True)
    assert done["written"][0].name == "net_g_12.pth"
    # save_training_state's layout, by hand: the iteration, one optimiser over every parameter, one scheduler
    assert state["iter"] == 12 and len(state["optimizers"]) == 1 and len(state["schedulers"]) == 1
    n_params = len(list(start.parameters()))
    assert state["optimizers"][0]["param_groups"][0]["params"] == list(range(n_params))
    assert state["optimizers"][0]["param_groups"][0]["initial_lr"] == 2e-4
    assert state["schedulers"][0]["last_epoch"] == 11 and state["schedulers"][0]["base_lrs"] == [2e-4]

    official = create_model("votes-tiny", 2)
    official.load_state_dict(net["params"])
    optimizer, scheduler = _official_setup(official, 2e-4, PERIODS, [1, 0.5, 0.5], 1e-7)
    optimizer.load_state_dict(state["optimizers"][0])  # BaseModel.resume_training
    scheduler.load_state_dict(state["schedulers"][0])
    _official_run(official, optimizer, scheduler, _batches(clips, _recipe(32)), 13, 15)
    assert _max_distance(ours, official) <= 1e-5


def test_an_official_training_state_resumes_here(tmp_path):
    """A state the official code would write (its loop, `save_training_state`'s dict, `save_network`'s file) is
    continued by `uvssm train --resume-from` to the weights the official loop reaches."""
    clips = [_array_clip("a", n=9, h=40, w=48, seed=4)]
    cfg = _recipe(32, total=8)
    batches = _batches(clips, cfg)
    torch.manual_seed(0)
    official = create_model("votes-tiny", 2)
    ours = copy.deepcopy(official)
    optimizer, scheduler = _official_setup(official, cfg.lr, PERIODS, [1, 0.5, 0.5], cfg.eta_min)
    _official_run(official, optimizer, scheduler, batches, 1, 5)
    experiment = tmp_path / "experiments" / "VOTES_tiny"
    (experiment / "models").mkdir(parents=True)
    (experiment / "training_states").mkdir()
    torch.save({"params": official.state_dict()}, experiment / "models" / "net_g_5.pth")
    torch.save({"epoch": 0, "iter": 5, "optimizers": [optimizer.state_dict()],
                "schedulers": [scheduler.state_dict()]}, experiment / "training_states" / "5.state")
    _official_run(official, optimizer, scheduler, batches, 6, 8)

    result = loop.train(ours, cfg, clips, [], tmp_path / "run", meta={"model": "votes-tiny"},
                        device=torch.device("cpu"), resume_from=experiment / "training_states" / "5.state")
    assert result["iteration"] == 8
    assert _max_distance(ours, official) <= 1e-5
    saved = checkpoint.read(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert saved["uvssm"]["iteration"] == 8


def test_a_state_of_another_network_is_refused_by_its_sizes(tmp_path):
    from models.training.state import from_basicsr
    from uvssm.base.errors import UvssmError

    groups = [{"params": [torch.zeros(1)] * 3, "lr_mul": 1.0, "fixed": 0}]
    state = {"iter": 5, "optimizers": [{"state": {}, "param_groups": [{"params": [0, 1], "lr": 1e-4}]}]}
    with pytest.raises(UvssmError, match=r"groups of \[2\] parameters; this model's has \[3\]"):
        from_basicsr(state, groups, where="x.state")


# train_VOTES_L_x2_SR_REDS_QP28.yml of the official repository (options/train/VOTES/), key by key
OFFICIAL_REDS_QP28 = {
    "name": "VOTES_L_x2_SR_REDS_QP28", "model_type": "VOTESModel", "scale": 2, "num_gpu": 1, "manual_seed": 10,
    "debug": False,
    "datasets": {
        "train": {"name": "REDS_compressed", "type": "UVSSMDataset",
                  "dataroot_gt": "./datasets/REDS_compressed/HQ_frames",
                  "dataroot_lq": "./datasets/REDS_compressed/LQ_frames_qp28_x2", "dataroot_mask": None,
                  "meta_info_file": "./data/meta_info/meta_info_REDS.txt",
                  "meta_val_file": "./data/meta_info/meta_info_REDS4_test_GT.txt",
                  "meta_test_file": "./data/meta_info/meta_info_REDSofficial_test_GT.txt",
                  "io_backend": {"type": "disk"}, "num_frame": 5, "center_gt": True, "gt_size": 128,
                  "interval_list": [1], "random_reverse": False, "use_flip": True, "use_rot": True,
                  "use_shuffle": True, "num_worker_per_gpu": 1, "batch_size_per_gpu": 16,
                  "dataset_enlarge_ratio": 200, "prefetch_mode": None},
        "val": {"name": "REDS4", "type": "VideoUVSSMTestDataset", "dataroot_gt": "./datasets/REDS_compressed/HQ_frames",
                "dataroot_lq": "./datasets/REDS_compressed/LQ_frames_qp28_x2", "dataroot_mask": None,
                "meta_info_file": "./data/meta_info/meta_info_REDS4_test_GT.txt", "io_backend": {"type": "disk"},
                "cache_data": False, "center_gt": True, "num_frame": 5, "padding": "reflection_circle"}},
    "network_g": {"type": "VOTES", "num_in_ch": 3, "num_feat": 128, "num_frame": 5, "deformable_groups": 8,
                  "num_extract_block": 5, "num_reconstruct_block": 40, "center_frame_idx": None,
                  "num_modulation_blocks": 10, "bin_model": "./experiments/bin_100000.pth", "sr_factor": 2},
    "path": {"pretrain_network_g": None, "strict_load_g": False, "resume_state": None},
    "train": {"optim_g": {"type": "Adam", "lr": 2e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
              "scheduler": {"type": "CosineAnnealingRestartLR", "periods": [50000, 100000, 150000],
                            "restart_weights": [1, 0.5, 0.5], "eta_min": 1e-7},
              "total_iter": 300000, "warmup_iter": -1, "senmap_iter": None, "dcn_lr_mul": 1,
              "pixel_opt": {"type": "CharbonnierLoss", "loss_weight": 1.0, "reduction": "sum"}},
    "val": {"val_freq": 5000.0, "save_img": True,
            "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True}}},
    "logger": {"print_freq": 200, "save_checkpoint_freq": 5000.0, "use_tb_logger": False,
               "wandb": {"project": None, "resume_id": None}},
    "dist_params": {"backend": "nccl", "port": 29600},
    "find_unused_parameters": True,
}


def _official_file(tmp_path, values, name="train_VOTES_L_x2_SR_REDS_QP28.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_the_official_option_file_trains_the_packaged_recipe(tmp_path):
    cfg = load_config(_official_file(tmp_path, OFFICIAL_REDS_QP28))
    packaged = load_config("votes-reds-qp28-x2")
    for key in ("stage", "model", "batch_size", "gt_size", "flip", "transpose", "loss", "loss_reduction", "lr",
                "betas", "weight_decay", "schedule", "periods", "restart_weights", "eta_min", "warmup_iter",
                "iterations", "seed", "val_every", "save_every"):
        assert getattr(cfg, key) == getattr(packaged, key), key
    assert (cfg.data.kind, cfg.data.qp, cfg.data.scale) == ("reds", 28, 2)
    assert cfg.name == "VOTES_L_x2_SR_REDS_QP28" and cfg.bin_checkpoint == "./experiments/bin_100000.pth"
    assert cfg.num_workers == 1 and cfg.log_every == 200
    assert create_model(cfg.model, 2, **cfg.model_args).state_dict().keys() == create_model("votes", 2).state_dict().keys()


def test_the_official_wechat_file_reads_its_platform_and_schedule(tmp_path):
    values = copy.deepcopy(OFFICIAL_REDS_QP28)
    values["name"] = "VOTES_L_x2_SR_UVSSMWeChat"
    values["datasets"]["train"]["dataroot_lq"] = "./datasets/UVSSM/WeChat/LQ_frames"
    values["train"]["scheduler"]["periods"] = [50000, 100000, 150000, 150000, 150000]
    values["train"]["scheduler"]["restart_weights"] = [1, 1, 1, 1, 1]
    values["train"]["total_iter"] = 600000
    cfg = load_config(_official_file(tmp_path, values, "train_VOTES_L_x2_SR_UVSSMWeChat.yml"))
    assert (cfg.data.kind, cfg.data.platform, cfg.data.qp) == ("frames", "WeChat", None)
    assert cfg.iterations == 600000 and cfg.restart_weights == (1, 1, 1, 1, 1)


@pytest.mark.parametrize("path,value,message", [
    (("train", "pixel_opt", "type"), "L1Loss", r"train.pixel_opt.type: 'L1Loss' is not supported"),
    (("train", "scheduler", "type"), "MultiStepRestartLR", r"train.scheduler.type: 'MultiStepRestartLR'"),
    (("train", "tsa_iter"), 50000, r"key 'train.tsa_iter' of the official option file is not one uvssm knows"),
    (("network_g", "sr_factor"), 4, r"network_g.sr_factor 4 differs from scale 2"),
    (("path", "resume_state"), "exp/5.state", r"path.resume_state: 'exp/5.state' is not supported"),
])
def test_what_uvssm_cannot_honour_is_refused_by_name(tmp_path, path, value, message):
    values = copy.deepcopy(OFFICIAL_REDS_QP28)
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        load_config(_official_file(tmp_path, values))


def test_each_checkpoint_records_the_dcn_that_trained_it(tmp_path, monkeypatch):
    from models.ops import deform_conv
    from models.ops.deform_conv import DeformConvBackend

    clips = [_array_clip("a", n=9, h=40, w=48, seed=5)]
    torch.manual_seed(0)
    model = create_model("votes-tiny", 2)
    loop.train(model, _recipe(32, total=2), clips, [], tmp_path / "run", meta={"model": "votes-tiny"},
               device=torch.device("cpu"))
    assert checkpoint.read(tmp_path / "run" / "checkpoints" / "latest.pt")["uvssm"]["dcn_backend"] == "torch"
    # on CUDA, "auto" takes torchvision's op where it imports (its border gradient is not the kernel's)
    monkeypatch.setattr(deform_conv, "_torchvision_op", lambda *a, **k: None)
    monkeypatch.setattr(deform_conv, "_looked", True)
    assert loop._training_dcn_backend(model, "auto", torch.device("cuda")) == "torchvision"
    assert {m.dcn_backend for m in model.modules() if isinstance(m, DeformConvBackend)} == {"torchvision"}
    assert loop._training_dcn_backend(model, "torch", torch.device("cuda")) == "torch"
    assert loop._training_dcn_backend(create_model("basicvsr-tiny", 2), "auto", torch.device("cpu")) is None
    with pytest.raises(ConfigError, match="dcn_backend must be"):
        _recipe(32, dcn_backend="cuda")


def test_the_fusion_parameters_come_in_the_official_order():
    """The official `MaskFusion.__init__` registers feat_fusion, the empty lists mask_modulation_l and feat_cas_l,
    mask_modulation_first, then appends to the lists, then fusion: `named_parameters()`'s order, and so the
    official optimiser's indices. Written from that file for two blocks."""
    model = create_model("votes-tiny", 2, num_modulation_blocks=2)
    names = [n for n, _ in model.named_parameters() if n.startswith("fusion.")]
    expected = ["feat_fusion", "mask_modulation_l.0", "mask_modulation_l.1", "feat_cas_l.0", "feat_cas_l.1",
                "mask_modulation_first", "fusion"]
    assert names == [f"fusion.{m}.{p}" for m in expected for p in ("weight", "bias")]


def test_a_run_saved_before_the_official_layout_resumes_by_name(tmp_path):
    """A checkpoint of the earlier layout: Adam over the trainable parameters only, in the earlier module order
    (the fusion's mask_modulation_first before its lists). Each parameter gets its own Adam state back."""
    from models.training.state import widened

    torch.manual_seed(0)
    model = create_model("votes-tiny", 2, num_modulation_blocks=2)
    named = dict(model.named_parameters())
    earlier = [n for n in named if not n.startswith("fusion.")]
    fusion = ["feat_fusion", "mask_modulation_first", "mask_modulation_l.0", "mask_modulation_l.1",
              "feat_cas_l.0", "feat_cas_l.1", "fusion"]
    at = earlier.index("pcd_align.cas_dcnpack.conv_offset.bias") + 1
    earlier[at:at] = [f"fusion.{m}.{p}" for m in fusion for p in ("weight", "bias")]
    trainable = [n for n in earlier if named[n].requires_grad]
    old = torch.optim.Adam([named[n] for n in trainable], lr=1e-3)
    for p in old.param_groups[0]["params"]:
        p.grad = torch.rand_like(p)
    old.step()
    saved_sd = old.state_dict()

    group = [{"params": list(model.parameters()), "lr_mul": 1.0, "fixed": 0}]
    new = torch.optim.Adam(group, lr=1e-3)
    names = {id(p): n for n, p in model.named_parameters()}
    new.load_state_dict(widened(saved_sd, new.param_groups, earlier, names))
    by_name = {names[id(p)]: new.state[p] for p in new.param_groups[0]["params"] if p in new.state}
    assert set(by_name) == set(trainable)
    for k, n in enumerate(trainable):
        assert torch.equal(by_name[n]["exp_avg"], saved_sd["state"][k]["exp_avg"]), n


def test_a_state_of_another_recipe_or_stage_is_refused(tmp_path):
    from models.training.schedule import CosineRestarts
    from models.training.state import from_basicsr, to_basicsr
    from uvssm.base.errors import UvssmError

    groups = [{"params": [torch.zeros(1)] * 2, "lr_mul": 1.0, "fixed": 0}]
    state = {"iter": 5, "optimizers": [{"state": {}, "param_groups": [{"params": [0, 1], "lr": 1e-4}]}],
             "schedulers": [{"periods": [50000, 100000, 150000], "restart_weights": [1, 0.5, 0.5], "eta_min": 1e-7,
                             "base_lrs": [2e-4]}]}
    qp33_wechat = CosineRestarts(2e-4, (50000, 100000, 150000, 150000, 150000), (1, 1, 1, 1, 1), 1e-7)
    with pytest.raises(UvssmError, match=r"scheduler's periods is \[50000, 100000, 150000\]"):
        from_basicsr(state, groups, qp33_wechat, "x.state")
    assert from_basicsr(state, groups, CosineRestarts(2e-4, (50000, 100000, 150000), (1, 0.5, 0.5), 1e-7))[0] == 5
    dsm = {"params": {}, "optimizer": {}, "uvssm": {"model": "votes-tiny", "iteration": 3,
                                                   "config": {"stage": "dsm", "schedule": "cosine"}}}
    with pytest.raises(UvssmError, match="stage 'dsm'"):
        to_basicsr(dsm, "dsm.pt")

