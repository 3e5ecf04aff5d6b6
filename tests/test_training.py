"""The training pieces: schedule, configs, patch sampling, the loop (resume, stage 1), DDP on CPU."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from models import checkpoint
from models.inference import Stage
from models.registry import create_model
from models.training import loop
from models.training.config import ConfigError, list_configs, load_config
from models.training.data import WindowPatches
from models.training.losses import charbonnier
from models.training.schedule import CosineRestarts


def test_cosine_restarts_follow_basicsr_stepping():
    s = CosineRestarts(2e-4, (50_000, 100_000, 150_000), (1, 0.5, 0.5), 1e-7)
    assert s.lr_at(1) == s.lr_at(0) == 2e-4  # the scheduler first steps before iteration 2
    assert s.lr_at(2) == pytest.approx(1e-7 + 0.5 * (2e-4 - 1e-7) * (1 + math.cos(math.pi / 50_000)), rel=1e-12)
    assert s.lr_at(25_001) == pytest.approx(1e-7 + 0.5 * (2e-4 - 1e-7), rel=1e-12)  # half way down
    assert s.lr_at(50_001) == pytest.approx(1e-7)  # the end of a period still belongs to it
    assert s.lr_at(50_002) == pytest.approx(1e-7 + 0.5 * 0.5 * (2e-4 - 1e-7) * (1 + math.cos(math.pi / 100_000)))
    assert s.lr_at(300_001) == pytest.approx(1e-7) and s.lr_at(10**7) == 1e-7
    with pytest.raises(ValueError):
        CosineRestarts(1e-3, (10, 10), (1,))


def test_charbonnier_is_the_sum_of_sqrt():
    a, b = torch.tensor([0.0, 1.0, 0.5]), torch.tensor([0.0, 0.0, 1.0])
    assert float(charbonnier(a, b)) == pytest.approx(1e-6 + 1.0 + 0.5, abs=1e-6)


def test_packaged_configs_load_and_match_the_official_recipe():
    names = list_configs()
    for name in ("votes-reds-qp28-x2", "votes-reds-qp33-x2", "votes-reds-qp28-x4", "votes-reds-qp33-x4",
                 "votes-uvssm-wechat-x2", "dsm-reds-qp28-x2", "votes-tiny-sample", "dsm-tiny-sample"):
        assert name in names
    for name in names:
        load_config(name)
    qp33 = load_config("votes-reds-qp33-x2")
    assert qp33.periods == (25_000, 50_000, 75_000, 75_000, 75_000) and qp33.iterations == 300_000
    assert qp33.restart_weights == (1, 0.5, 0.5, 0.5, 0.5) and qp33.betas == (0.9, 0.99)
    assert (qp33.loss, qp33.loss_reduction, qp33.lr, qp33.batch_size, qp33.gt_size) == ("charbonnier", "sum", 2e-4, 16, 128)
    for name in ("edvr-reds-qp28-x2", "rsdn-reds-qp28-x2", "basicvsr-reds-qp28-x2", "tga-reds-qp28-x2"):
        assert load_config(name).chain == "stdf", name  # SR stages of STDF+X learn from STDF's outputs
    assert load_config("comisr-reds-qp28-x2").chain is None  # one stage
    wechat = load_config("votes-uvssm-wechat-x2")
    assert wechat.iterations == 600_000 and wechat.data.kind == "frames" and wechat.data.platform == "WeChat"


def test_config_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: restore\nbatch_sise: 4\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key\(s\) batch_sise"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="lr must be a number"):
        load_config("votes-tiny-sample", ["lr=fast"])
    with pytest.raises(ConfigError, match="unknown config"):
        load_config("votes-nope")
    cfg = load_config("votes-tiny-sample", ["lr=2e-3", "data.qp=33", "batch_size=2"])
    assert (cfg.lr, cfg.data.qp, cfg.batch_size) == (2e-3, 33, 2)


@dataclass
class ArrayClip:
    """A clip in memory whose HQ is its LQ with every pixel repeated scale×scale times, so that a
    sample's alignment can be checked exactly under any flip or transpose."""

    name: str
    lq_frames: np.ndarray  # (N, h, w, 3) uint8
    scale: int = 2

    @property
    def n_frames(self) -> int:
        return len(self.lq_frames)

    @property
    def lq_size(self) -> tuple[int, int]:
        return self.lq_frames.shape[1:3]

    def hq(self, i):
        return self.lq_frames[i].repeat(self.scale, axis=0).repeat(self.scale, axis=1)

    def lq(self, i):
        return self.lq_frames[i]

    def ref(self, i):
        return self.lq(i).astype(np.float32) / 255


def _array_clip(name="c", n=8, h=24, w=32, seed=0) -> ArrayClip:
    rng = np.random.default_rng(seed)
    return ArrayClip(name, rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8))


def test_patches_are_aligned_deterministic_and_augmented():
    clip = _array_clip()
    patches = WindowPatches([clip], lq_patch=8, with_ref=True, seed=3)
    flips = set()
    for n in range(40):
        s = patches[n]
        assert s["lq"].shape == (5, 3, 8, 8) and s["gt"].shape == (3, 16, 16) and s["ref"].shape == (3, 3, 8, 8)
        assert torch.equal(s["gt"][:, ::2, ::2], s["lq"][2])  # same crop, same augmentation
        torch.testing.assert_close(s["ref"][1], s["lq"][2])
        assert torch.equal(patches[n]["lq"], s["lq"])  # sample n is a function of (seed, rank, n)
        # which augmentation was drawn: compare with the un-augmented frames of the clip
        lq_frames = torch.from_numpy(np.stack([clip.lq(i) for i in range(8)])).permute(0, 3, 1, 2).float() / 255
        flips.add(any(torch.equal(s["lq"][2], lq_frames[c, :, t:t + 8, l:l + 8])
                      for c in range(8) for t in range(17) for l in range(25)))
    assert flips == {True, False}  # some samples un-augmented, some flipped or transposed
    other_rank = WindowPatches([clip], lq_patch=8, seed=3, rank=1)
    assert not torch.equal(other_rank[0]["lq"], patches[0]["lq"])


def _tiny_cfg(**overrides):
    values = ["batch_size=2", "gt_size=16", "periods=[6]", "log_every=1", "val_every=3", "save_every=3",
              "val_frames=2", "cache_mb=0", *[f"{k}={v}" for k, v in overrides.items()]]
    return load_config("votes-tiny-sample", values)


def _train(tmp_path, name, cfg, clips, resume=False, model=None):
    torch.manual_seed(0)
    model = model or create_model("votes-tiny", 2, dfm="zero")
    return model, loop.train(model, cfg, clips, clips[:1], tmp_path / name, meta={"model": "votes-tiny"},
                             device=torch.device("cpu"), resume=resume)


def test_resume_continues_exactly(tmp_path):
    clips = [_array_clip("a", seed=1), _array_clip("b", seed=2)]
    straight, result = _train(tmp_path, "straight", _tiny_cfg(), clips)
    assert result["iteration"] == 6 and (tmp_path / "straight" / "checkpoints" / "iter_0000003.pt").exists()

    _train(tmp_path, "split", _tiny_cfg(total_iter=3), clips)  # "interrupted" after 3 of the 6 iterations
    resumed, result = _train(tmp_path, "split", _tiny_cfg(), clips, resume=True)
    assert result["iteration"] == 6
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    saved = checkpoint.read(tmp_path / "split" / "checkpoints" / "latest.pt")
    assert saved["uvssm"]["iteration"] == 6 and "optimizer" in saved
    import pandas as pd

    log = pd.read_parquet(tmp_path / "split" / "train_log.parquet")
    assert log["iteration"].tolist() == [1, 2, 3, 4, 5, 6]
    assert pd.read_parquet(tmp_path / "split" / "val_log.parquet")["iteration"].tolist() == [3, 6]


def test_stage1_trains_only_the_dsm(tmp_path):
    clips = [_array_clip("a", seed=1)]
    torch.manual_seed(0)
    model = create_model("votes-tiny", 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = load_config("dsm-tiny-sample", ["batch_size=2", "gt_size=16", "periods=[3]", "val_every=3",
                                          "save_every=3", "val_frames=1", "cache_mb=0"])
    result = loop.train(model, cfg, clips, clips, tmp_path / "dsm", meta={"model": "votes-tiny"},
                        device=torch.device("cpu"))
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith("bin.") for k in changed)
    assert not any(p.requires_grad for p in model.bin.parameters())  # frozen again for stage 2
    assert result["val"]["baseline"] == "lq"
    saved = checkpoint.read(tmp_path / "dsm" / "checkpoints" / "latest.pt")["params"]
    assert set(saved) == {k[len("bin."):] for k in before if k.startswith("bin.")}  # like bin_100000.pth


def test_diverging_loss_stops_with_a_clear_error(tmp_path):
    clips = [_array_clip("a", seed=1)]
    from uvssm.base.errors import UvssmError

    with pytest.raises(UvssmError, match="iteration 1: loss is nan.*last good checkpoint: none"):
        _train(tmp_path, "nan", _tiny_cfg(), clips,
               model=_nan_model())
    assert not (tmp_path / "nan" / "checkpoints").exists()  # nothing written from a diverged step


def _nan_model():
    model = create_model("votes-tiny", 2, dfm="zero")
    with torch.no_grad():
        model.conv_last.bias.fill_(float("nan"))
    return model


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo, tested on Linux")
def test_ddp_with_torchrun_on_cpu(tmp_path, tiny_reds):
    """Two processes (gloo backend) train together; rank 0 writes one checkpoint and the logs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "uvssm", "train", "votes-tiny-sample", "--data", str(tiny_reds), "--out", str(tmp_path / "ddp"),
           "--device", "cpu", "--set", "batch_size=1", "--set", "gt_size=32", "--set", "periods=[2]",
           "--set", "val_every=2", "--set", "save_every=2", "--set", "val_frames=1",
           "--set", "model_args={dfm: zero}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = checkpoint.read(tmp_path / "ddp" / "checkpoints" / "latest.pt")
    assert saved["uvssm"]["iteration"] == 2
    assert not any(k.startswith("module.") for k in saved["params"])


_DDP_SCRIPT = """
import os, sys, torch
sys.path.insert(0, {root!r})
from models.registry import create_model
from models.training import loop
from tests.test_training import _array_clip, _tiny_cfg
from uvssm.base.devices import setup_device

dist_info, device = setup_device("cpu")
torch.manual_seed(0)
model = create_model("votes-tiny", 2, dfm="zero")
loop.train(model, _tiny_cfg(periods="[3]", val_every=100, save_every=100), [_array_clip("a", seed=1)], [],
           {out!r}, meta={{"model": "votes-tiny"}}, device=device, dist_info=dist_info)
os.makedirs({out!r}, exist_ok=True)  # rank 0 makes it when it saves; this rank may get here first
torch.save(model.state_dict(), {out!r} + f"/rank{{dist_info.rank}}.pt")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo, tested on Linux")
def test_ddp_averages_gradients_across_ranks(tmp_path):
    """Each rank draws its own samples; with gradients averaged, both ranks take the same steps and end with
    the same weights, which differ from what rank 0's samples alone give."""
    from pathlib import Path

    out = str(tmp_path / "run")
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT.format(root=str(Path(__file__).resolve().parent.parent), out=out))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29521",
           str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (torch.load(f"{out}/rank{r}.pt") for r in (0, 1))
    alone, _ = _train(tmp_path, "alone", _tiny_cfg(periods="[3]", val_every=100, save_every=100),
                      [_array_clip("a", seed=1)])
    trained = [k for k in rank0 if not torch.equal(rank0[k], alone.state_dict()[k])]
    assert trained  # rank 0's steps used rank 1's gradients too
    for k in rank0:
        assert torch.equal(rank0[k], rank1[k]), k


def test_tiny_votes_beats_bicubic_after_a_short_cpu_training(tmp_path, tiny_reds):
    """Both stages of votes-tiny on the first 11 frames of a synthesised clip (QP 28, x2); scored on
    its last 5 frames, which training never saw. The assertion is on the measured PSNR."""
    import pandas as pd

    from models.training.init import INITIALISERS
    from tests.frame_range import FrameRange
    from uvssm.base.datasets import open_dataset
    from uvssm.pipelines.train import load_dsm

    clip = next(c for c in open_dataset(tiny_reds, split="all", qp=28).clips if c.name == "001")
    train_part, held_out = FrameRange(clip, 0, 11), FrameRange(clip, 11, 5)
    torch.set_num_threads(2)
    # the DSM's measure (its DFM's agreement with the true degradation) grows with training: 1 iteration, then 40
    agreement = {}
    for iterations in (1, 40):
        stage1 = load_config("dsm-tiny-sample", [f"periods=[{iterations}]", f"val_every={iterations}",
                                                 f"save_every={iterations}"])
        torch.manual_seed(0)
        model = create_model("votes-tiny", 2)
        dsm = loop.train(model, stage1, [train_part], [held_out], tmp_path / f"dsm{iterations}",
                         meta={"model": "votes-tiny"}, device=torch.device("cpu"))
        agreement[iterations] = dsm["val"]["dfm_corr"]
        assert pd.read_parquet(tmp_path / f"dsm{iterations}" / "val_log.parquet")["dfm_corr"].tolist() == [
            agreement[iterations]]
    print(f"DSM: its DFM's agreement with the true degradation {agreement[1]:.3f} after 1 iteration, "
          f"{agreement[40]:.3f} after 40")
    assert agreement[40] > agreement[1] + 0.02
    stage2 = load_config("votes-tiny-sample", ["periods=[150]", "val_every=150", "save_every=150", "val_frames=0"])
    torch.manual_seed(0)
    model = INITIALISERS[stage2.init](create_model("votes-tiny", 2))  # the config's recipe, as `uvssm train` applies it
    load_dsm(model, tmp_path / "dsm40" / "checkpoints" / "latest.pt")
    result = loop.train(model, stage2, [train_part], [held_out], tmp_path / "votes", meta={"model": "votes-tiny"},
                        device=torch.device("cpu"))
    val = result["val"]
    print(f"held-out PSNR-Y: votes-tiny {val['psnr']:.2f} dB, bicubic {val['baseline_psnr']:.2f} dB")
    assert val["baseline"] == "bicubic" and val["psnr"] > val["baseline_psnr"] + 0.1
    assert math.isnan(val["dfm_corr"])  # a score of the DSM's stage only


def test_step_decay_holds_each_periods_rate():
    from models.training.schedule import StepDecay, make_schedule

    s = make_schedule("step", 2e-3, (3, 3), (1, 0.1), 0.0)
    assert isinstance(s, StepDecay)
    assert [s.lr_at(n) for n in range(1, 9)] == pytest.approx([2e-3] * 3 + [2e-4] * 5)
    with pytest.raises(ValueError):
        make_schedule("linear", 1e-3, (3,), (1,), 0.0)
    with pytest.raises(ConfigError, match="schedule"):
        load_config("tga-reds-qp28-x2", ["schedule=linear"])


def test_loss_reductions():
    from models.training.losses import l1, mse

    a, b = torch.zeros(2, 3), torch.ones(2, 3)
    assert float(l1(a, b, reduction="batch")) == 3.0  # TGA: the sum divided by the batch
    assert float(mse(a, 2 * b, reduction="mean")) == 4.0
    with pytest.raises(ConfigError, match="loss_reduction"):
        load_config("tga-reds-qp28-x2", ["loss_reduction=median"])


def test_aux_losses_add_rsdn_detail_structure_and_comisr_warping():
    """With aux_weight, the loss is the SR loss plus the weighted auxiliary pairs the model names."""
    from models.rsdn import structure_detail
    from models.training.losses import charbonnier

    torch.manual_seed(0)
    lq, gt = torch.rand(2, 3, 3, 8, 8), torch.rand(2, 3, 3, 16, 16)
    model = create_model("rsdn-tiny", 2).train()
    cfg = load_config("rsdn-tiny-sample")
    assert cfg.aux_weight == 1.0
    cpu = torch.device("cpu")
    runner = Stage(model, 3, 2, 1, kind="recurrent")
    got = loop.restoration_stage(model, cfg, runner, cpu).loss(model, {"lq": lq, "gt": gt})
    out, detail, structure = model.forward_all(lq)
    s, d = structure_detail(gt)
    want = charbonnier(out, gt) + charbonnier(detail, d) + charbonnier(structure, s)
    torch.testing.assert_close(got, want)
    cfg.aux_weight = 0.0
    torch.testing.assert_close(loop.restoration_stage(model, cfg, runner, cpu).loss(model, {"lq": lq, "gt": gt}),
                               charbonnier(out, gt))

    model = create_model("comisr-tiny", 2).train()
    cfg = load_config("comisr-tiny-sample")
    lq = torch.rand(2, 3, 3, 16, 16)
    gt = torch.rand(2, 3, 3, 32, 32)
    got = loop.restoration_stage(model, cfg, Stage(model, 3, 2, 1, kind="recurrent"), cpu).loss(model, {"lq": lq, "gt": gt})
    out, [(warped, target)] = model(lq, return_aux=True)
    torch.testing.assert_close(got, charbonnier(out, gt) + 0.05 * charbonnier(warped, target))


def test_the_loss_window_averages_on_the_device_and_names_the_first_bad_iteration(tmp_path):
    from uvssm.base.errors import UvssmError

    window = loop.LossWindow(torch.device("cpu"))
    for it, value in zip((1, 2, 3), (1.0, 2.0, 6.0)):
        window.add(it, torch.tensor(value))
    assert window.read(tmp_path / "latest.pt") == 3.0  # (1 + 2 + 6) / 3
    for it, value in zip((4, 5, 6, 7), (1.0, float("inf"), float("nan"), 2.0)):
        window.add(it, torch.tensor(value))
    with pytest.raises(UvssmError, match=r"^iteration 5: loss is nan; .*last good checkpoint: none"):
        window.check(tmp_path / "latest.pt")


def test_loader_workers_auto_is_none_on_the_cpu_and_some_per_gpu(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert loop.loader_workers("auto", cpu) == 0
    assert loop.loader_workers("auto", gpu) == 4  # min(4, 16 - 1)
    assert loop.loader_workers("auto", gpu, local_world=8) == 1  # 16 // 8 - 1: a core each for the ranks
    assert loop.loader_workers(3, cpu) == 3
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert loop.loader_workers("auto", gpu) == 1
    assert load_config("votes-tiny-sample").num_workers == "auto"
    with pytest.raises(ConfigError, match="num_workers must be 'auto' or >= 0"):
        load_config("votes-tiny-sample", ["num_workers=-1"])


def test_resuming_a_run_that_is_not_there_is_an_error(tmp_path):
    """A typo in --out must not restart a long run from scratch (#42, item 1)."""
    from uvssm.base.errors import UvssmError
    from uvssm.pipelines.train import run_training

    with pytest.raises(UvssmError, match=r"runs/votes-typo: no training run to resume .*latest.pt not found"):
        run_training(load_config("votes-tiny-sample"), tmp_path / "data", tmp_path / "runs" / "votes-typo",
                     device="cpu", resume=True)
    assert not (tmp_path / "runs").exists()
