"""`uvssm bench`: streaming windows, tiling, chaining, the result schema, aggregation, resume, errors."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks import paper, tables
from benchmarks.harness import run_bench
from benchmarks.options import BenchOptions
from models.inference import InferenceOptions
from uvssm.base.timing import SectionClock
from models.trained import load_trained
from uvssm.base.metrics import MetricConfig, psnr_ssim, quantize
from uvssm.base.scalers import imresize
from models import checkpoint
from models.inference import Stage, restore_stream, run_windows, sliding_windows
from models.registry import create_model, model_kwargs
from models.windows import reflection_circle
from uvssm.base.datasets import open_dataset
from uvssm.base.errors import UvssmError
from uvssm.base.progress import BenchClip, BenchSkip


def _save(path, name, scale, seed=0):
    torch.manual_seed(seed)
    model = create_model(name, scale)
    checkpoint.save(path, model, {"model": name, "scale": scale, "model_kwargs": model_kwargs(name, scale)})
    return model


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    _save(root / "votes-tiny.pt", "votes-tiny", 2)
    _save(root / "stdf.pt", "stdf", 1, seed=1)
    _save(root / "stdf+edvr-tiny.pt", "edvr-tiny", 2, seed=2)
    return root


@pytest.mark.parametrize("n,window", [(5, 5), (6, 5), (9, 5), (30, 5), (7, 7), (8, 7), (30, 7)])
def test_streamed_windows_are_reflection_circle_and_hold_few_frames(n, window):
    held = []

    def frames():
        for i in range(n):
            held.append(i)
            yield torch.tensor(float(i))

    got = []
    for c, w in sliding_windows(frames(), window):
        got.append((c, [int(v) for v in w]))
        assert len(held) - c <= 2 * (window // 2) + 1  # never read further ahead than the window needs
    assert got == [(c, reflection_circle(c, n, window)) for c in range(n)]


def test_a_clip_shorter_than_the_window_is_refused():
    with pytest.raises(ValueError, match="shorter than the 5-frame window"):
        list(sliding_windows([torch.zeros(1)] * 4, 5))


def test_tiles_give_the_untiled_output():
    """VOTES-tiny (with its DFM) on a frame whose size is not a multiple of 4, in 32-px tiles."""
    torch.manual_seed(0)
    stage = Stage(create_model("votes-tiny", 2).eval(), 5, 2, 4)
    x = torch.rand(2, 5, 3, 70, 98)
    with torch.no_grad():
        whole = run_windows(stage, x)
        tiled = run_windows(stage, x, tile=32, overlap=16)
        no_context = run_windows(stage, x, tile=32, overlap=0)
    assert whole.shape == tiled.shape == (2, 3, 140, 196)
    assert (tiled - whole).abs().max() < 1e-4
    assert (no_context - whole).abs().max() > 1e-4  # the overlap matters: the test can fail


def test_batching_does_not_change_outputs():
    """The DFM is normalised per window, so --batch gives the same frames as one window at a time."""
    torch.manual_seed(0)
    stage = Stage(create_model("votes-tiny", 2).eval(), 5, 2, 4)
    frames = [torch.rand(3, 24, 32) for _ in range(7)]
    one = list(restore_stream(frames, [stage], batch=1))
    four = list(restore_stream(frames, [stage], batch=4))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(one, four))


def test_two_stages_chain_frame_by_frame(weights):
    """stdf+edvr-tiny: STDF restores every LQ frame (7-frame windows), then EDVR upsamples STDF's frames,
    handed over as 8-bit images (as the training data of the SR stage are)."""
    model = load_trained("stdf+edvr-tiny", 2, [str(weights)])
    stdf, edvr = (s.model.eval() for s in model.stages)
    torch.manual_seed(3)
    lq = [torch.rand(3, 24, 32) for _ in range(9)]
    got = list(restore_stream(lq, model.stages))
    with torch.no_grad():
        mid = [stdf(torch.stack([lq[i] for i in reflection_circle(c, 9, 7)])[None])[0].clamp(0, 1) for c in range(9)]
        mid = [(m * 255).round() / 255 for m in mid]
        want = [edvr(torch.stack([mid[i] for i in reflection_circle(c, 9, 5)])[None])[0].clamp(0, 1)
                for c in range(9)]
    assert len(got) == 9 and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, want))


def test_shards_of_a_clip_give_the_whole_clip_results_and_rank0_checks_them(tmp_path, tiny_reds, weights):
    """Cut into 3-frame shards (window models, bicubic) and 3-frame chunks (recurrent), every score
    equals the whole-clip run's; a missing shard is named by the completeness check."""
    from benchmarks.shards import check_parts, part_dir, plan_shards, recorded_backend, run_key
    from models.inference import configured

    _save(weights / "basicvsr-tiny.pt", "basicvsr-tiny", 2, seed=3)
    models = ["bicubic", "votes-tiny", "basicvsr-tiny"]
    runs = {}
    for shard in (3, 100):
        opts = BenchOptions(models, tiny_reds, tmp_path / f"s{shard}", qp=28, weights=[str(weights)],
                            shard_frames=shard, max_frames=7,
                            inference=InferenceOptions(device="cpu", chunk=3, chunk_overlap=1))
        run_bench(opts)
        runs[shard] = pd.read_parquet(tmp_path / f"s{shard}" / "frames.parquet")
    cols = ["model", "clip", "frame", "psnr", "ssim"]
    assert len(runs[3]) == 3 * 2 * 7
    pd.testing.assert_frame_equal(runs[3][cols], runs[100][cols])
    chunks = runs[3].groupby("model")["chunk"].unique()  # the recurrent chunk each row was computed in
    assert list(chunks["basicvsr-tiny"]) == [3] and pd.isna(chunks["votes-tiny"][0])
    parts = tmp_path / "s3" / ".parts" / "sample" / "qp28_x2" / "test"
    assert sorted(p.name for p in (parts / "votes-tiny").glob("240*.parquet")) == \
        ["240@00000.parquet", "240@00003.parquet", "240@00006.parquet"]
    assert sorted(p.name for p in (parts / "basicvsr-tiny").glob("240*.parquet")) == \
        ["240@00000.parquet", "240@00003.parquet", "240@00006.parquet"]

    opts = BenchOptions(models, tiny_reds, tmp_path / "s3", qp=28, weights=[str(weights)],
                        shard_frames=3, max_frames=7, inference=InferenceOptions(device="cpu", chunk=3, chunk_overlap=1))
    ds = open_dataset(tiny_reds, split="test", scale=2, qp=28)
    trained = [load_trained(m, 2, [str(weights)]) for m in models]
    trained = [dataclasses.replace(m, stages=configured(m.stages, opts.inference),  # as --gather
                                   dcn_backend=recorded_backend(tmp_path / "s3", ds, "test", m.name)) for m in trained]
    assert [m.dcn_backend for m in trained] == [None, "torch", None]  # votes-tiny's DCNs ran on the pure-torch op
    plans = {m.name: plan_shards(m, ds.clips, opts) for m in trained}
    keys = {m.name: run_key(m, MetricConfig("y", 2), opts) for m in trained}
    check_parts(tmp_path / "s3", ds, "test", plans, keys)  # all there
    (part_dir(tmp_path / "s3", ds, "test", "votes-tiny") / "241@00003.parquet").unlink()
    with pytest.raises(UvssmError, match=r"1 of 18 parts missing .*votes-tiny clip 241 frames 3-5"):
        check_parts(tmp_path / "s3", ds, "test", plans, keys)


def test_channels_last_and_compile_give_the_eager_scores(tmp_path, tiny_reds, weights):
    """--channels-last and torch.compile (the eager backend here: inductor takes minutes on this
    CPU) change how the model runs, not what it computes."""
    runs = {}
    for name, extra in (("plain", {}), ("fast", {"channels_last": True, "compile": "eager"})):
        run_bench(BenchOptions(["votes-tiny"], tiny_reds, tmp_path / name, qp=28, weights=[str(weights)], max_frames=3,
                               inference=InferenceOptions(device="cpu", **extra)))
        runs[name] = pd.read_parquet(tmp_path / name / "frames.parquet")
    np.testing.assert_allclose(runs["fast"]["psnr"], runs["plain"]["psnr"], atol=1e-4)
    np.testing.assert_allclose(runs["fast"]["ssim"], runs["plain"]["ssim"], atol=1e-6)
    assert runs["fast"]["run_key"].iloc[0] != runs["plain"]["run_key"].iloc[0]


def test_bench_end_to_end_schema_aggregation_resume_and_tiles(tmp_path, tiny_reds, weights):
    opts = BenchOptions(["bicubic", "votes-tiny"], tiny_reds, tmp_path / "res", qp=28, weights=[str(weights)],
                        max_frames=6, inference=InferenceOptions(device="cpu"))
    clips_done = []

    def stop_after_first_clip(event):
        if isinstance(event, BenchClip):
            clips_done.append(event.clip)
            if event.model == "votes-tiny":
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bench(opts, stop_after_first_clip)
    parts = tmp_path / "res" / ".parts" / "sample" / "qp28_x2" / "test"
    first = parts / "votes-tiny" / "240.parquet"
    assert first.is_file() and not (parts / "votes-tiny" / "241.parquet").exists()
    assert not (tmp_path / "res" / "frames.parquet").exists()  # never half-written
    stamp = first.stat().st_mtime_ns

    events = []
    result = run_bench(opts, events.append)
    assert BenchSkip("votes-tiny", "240", 6) in events
    assert [e.clip for e in events if isinstance(e, BenchClip) and e.model == "votes-tiny"] == ["241"]
    assert first.stat().st_mtime_ns == stamp

    frames = pd.read_parquet(tmp_path / "res" / "frames.parquet")
    assert list(frames.columns) == tables.FRAME_COLUMNS
    assert len(frames) == 2 * 2 * 6 and set(frames["model"]) == {"bicubic", "votes-tiny"}
    assert set(frames["metric_color_space"]) == {"y_bt601_limited"} and set(frames["metric_crop_border"]) == {2}
    assert frames.loc[frames["model"] == "votes-tiny", "checkpoint_sha256"].iloc[0] == \
        checkpoint.file_sha256(weights / "votes-tiny.pt")
    # what the deformable convolutions ran on (the only backend without torchvision); bicubic has none
    by_model = frames.groupby("model")["dcn_backend"].unique()
    assert list(by_model["votes-tiny"]) == ["torch"] and pd.isna(by_model["bicubic"][0])

    # Table 2 = mean over clips of each clip's frame mean, computed by hand here.
    for model in ("bicubic", "votes-tiny"):
        mine = frames[frames["model"] == model]
        by_hand = np.mean([mine[mine["clip"] == c]["psnr"].sum() / 6 for c in ("240", "241")])
        row = result.tables.table2.set_index("model").loc[model]
        assert row["psnr"] == pytest.approx(by_hand, abs=1e-12) and row["clips"] == 2

    # The bicubic row equals MATLAB bicubic + the metric, computed directly on one frame.
    clip = open_dataset(tiny_reds, split="test", qp=28).clips[0]
    lq = torch.tensor(clip.lq(3)).permute(2, 0, 1)[None].double() / 255
    hq = torch.tensor(clip.hq(3)).permute(2, 0, 1)[None]
    p, _ = psnr_ssim(quantize(imresize(lq, 2)), hq, MetricConfig("y", 2))
    got = frames[(frames["model"] == "bicubic") & (frames["clip"] == clip.name) & (frames["frame"] == 3)]["psnr"]
    assert got.iloc[0] == pytest.approx(float(p[0]), abs=1e-9)

    stats = result.tables.models.set_index("model")
    assert stats.loc["votes-tiny", "params"] == sum(p.numel() for p in create_model("votes-tiny", 2).parameters())
    assert stats.loc["votes-tiny", "macs_per_frame"] > 1e9 and stats.loc["votes-tiny", "ms_per_frame"] > 0
    assert stats.loc["votes-tiny", "dcn_backend"] == "torch"

    # Tiled: a different run key, so it is recomputed, and equal to the untiled scores.
    tiled = run_bench(BenchOptions(["votes-tiny"], tiny_reds, tmp_path / "tiled", qp=28, weights=[str(weights)],
                                   max_frames=6, save_frames=0,
                                   inference=InferenceOptions(device="cpu", tile=48, overlap=32)))
    t = pd.read_parquet(tiled.tables.paths["frames"])
    u = frames[frames["model"] == "votes-tiny"].reset_index(drop=True)
    assert set(t["tile"]) == {48}
    assert np.abs(t["psnr"].to_numpy() - u["psnr"].to_numpy()).max() < 1e-3
    saved = tmp_path / "res" / "frames" / "qp28_x2" / "votes-tiny" / "240"
    assert (saved / "00000003.png").is_file() and (saved / "00000003.dfm.npy").is_file()
    assert np.load(saved / "00000003.dfm.npy").shape == (112, 192)
    # the saved map is the model's own DFM of frame 3's window (frames 1-5 of the clip), read as the official test
    # code reads a window: the frames stacked, then one tensor, padded to a multiple of 4 (112 x 192 is one already)
    trained = load_trained("votes-tiny", 2, [str(weights)])
    clip240 = next(c for c in open_dataset(tiny_reds, split="test", qp=28).clips if c.name == "240")
    window = torch.from_numpy(np.stack([clip240.lq(i) for i in (1, 2, 3, 4, 5)])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        want = trained.stages[0].model.eval().estimate_dfm(window[None])[0, 0].numpy().astype(np.float16)
    assert np.array_equal(np.load(saved / "00000003.dfm.npy"), want)

    from benchmarks.figures import write_figures

    names = sorted(p.name for p in write_figures(tmp_path / "res"))
    assert names == ["crops_qp28_x2_240_00000003.png", "crops_qp28_x2_241_00000003.png",
                     "dfm_qp28_x2_240_00000003.png", "dfm_qp28_x2_241_00000003.png",
                     "dfm_qp_qp28_x2_240_00000003.png", "dfm_qp_qp28_x2_241_00000003.png"]  # one QP: no PSNR-QP plot
    from PIL import Image

    models_saved = sorted(p.name for p in (tmp_path / "res" / "frames" / "qp28_x2").iterdir())
    for name in names:
        with Image.open(tmp_path / "res" / name) as im:
            rgb = np.asarray(im.convert("RGB"))
        assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 200, f"{name}: next to blank"
        if name.startswith("crops_"):  # LQ, every saved model, GT: 2.4 x 2.9 inches a panel
            panels = len(models_saved) + 2
            assert rgb.shape[1] / rgb.shape[0] == pytest.approx(2.4 * panels / 2.9, rel=0.2), name
    # the DFM/QP table: one row per clip; a fixed-QP frame has one QP, so no rank correlation with it
    corr = pd.read_parquet(tmp_path / "res" / "dfm_qp.parquet")
    assert corr["clip"].tolist() == ["240", "241"] and corr["rho_dfm_qp"].isna().all()
    assert (corr["macroblocks"] == (112 // 16) * (192 // 16)).all() and corr["rho_dfm_error"].between(-1, 1).all()


def test_the_crop_goes_where_the_detail_is():
    from benchmarks.figures import detailed_crop

    img = np.full((120, 200, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    img[70:110, 140:190] = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    top, left = detailed_crop(img, 40)
    assert 60 <= top <= 80 and 130 <= left <= 160


def test_missing_and_mismatched_checkpoints_say_what_to_do(tmp_path, weights):
    with pytest.raises(UvssmError, match=r"edvr-m: no checkpoint .*uvssm train"):
        load_trained("edvr-m", 2, [str(weights)])
    with pytest.raises(UvssmError, match=r"x2 votes-tiny checkpoint, but x4 was asked for"):
        load_trained("votes-tiny", 4, [str(weights)])
    with pytest.raises(UvssmError, match=r"holds a votes-tiny checkpoint, not edvr-tiny"):
        load_trained("edvr-tiny", 2, [f"edvr-tiny={weights / 'votes-tiny.pt'}"])
    with pytest.raises(UvssmError, match="unknown model"):
        load_trained("nosuchnet", 2, [])


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, tiny_reds):
    proc = subprocess.run([sys.executable, "-m", "uvssm", "bench", "--models", "votes", "--data", str(tiny_reds),
                           "--qp", "28", "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert proc.returncode == 2 and "votes: no checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "uvssm", "bench", "--models", "bicubic", "--data",
                           str(tmp_path / "nothing"), "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert proc.returncode == 2 and "dataset folder not found" in proc.stderr
    done = tmp_path / "done"  # a finished run stays as it was when a bad option is refused
    run_bench(BenchOptions(["bicubic"], tiny_reds, done, qp=28, max_frames=2, inference=InferenceOptions(device="cpu")))
    before = (done / "frames.parquet").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "uvssm", "bench", "--models", "bicubic", "--data", str(tiny_reds),
                           "--qp", "28", "--out", str(done), "--shard-frames", "0"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--shard-frames must be at least 1, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr and (done / "frames.parquet").read_bytes() == before


def test_paper_values_only_where_comparable():
    assert paper.reference("REDS", "test", 2, 28, None, "votes") == (32.15, 0.8644)
    assert paper.reference("UVSSM", "test", 2, None, "WeChat", "stdf+edvr-l") == (31.67, 0.879)
    assert paper.reference("REDS", "test", 2, 28, None, "votes-tiny") is None
    assert paper.reference("sample", "test", 2, 28, None, "votes") is None
    assert paper.reference("REDS", "val", 2, 28, None, "votes") is None
    redsofficial = ",".join(f"{i:03d}" for i in range(240, 270))  # the paper's REDS test clips, by hand
    base = {"dataset": "REDS", "split": "test", "setting": "qp33_x4", "scale": 4, "qp": 33, "platform": None,
            "model": "votes", "metric_color_space": "y_bt601_limited", "metric_crop_border": 4, "psnr": 26.0,
            "ssim": 0.7, "clips": 30, "frames": 3000, "clip_list": redsofficial}
    rows = pd.DataFrame([base, base | {"clip_list": "240,241"},
                         base | {"dataset": "UVSSM", "platform": "wechat", "setting": "wechat_x2", "scale": 2,
                                 "qp": None, "metric_crop_border": 2, "clip_list": "a,b,c"}])
    out = tables.with_paper(rows)
    assert out["delta_psnr"].iloc[0] == pytest.approx(26.0 - 26.61) and out["paper_note"].iloc[0] == ""
    # a subset of the paper's clips, or a built folder's own (K-fold) test split: no paper value, and why
    assert out["paper_psnr"].iloc[1:].isna().all()
    assert out["paper_note"].iloc[1] == "clips differ from the paper's test split (2 of its 30, 0 others)"
    assert out["paper_note"].iloc[2].startswith("clips differ from the paper's test split (0 of its 10")


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo, tested on Linux")
def test_torchrun_ranks_share_the_clips_and_rank0_gathers(tmp_path, tiny_reds):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519",
           "-m", "uvssm", "bench", "--models", "bicubic", "--data", str(tiny_reds), "--qp", "28", "--split", "all",
           "--device", "cpu", "--out", str(tmp_path / "ddp"), "--max-frames", "3", "--shard-frames", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = pd.read_parquet(tmp_path / "ddp" / "frames.parquet")
    run_bench(BenchOptions(["bicubic"], tiny_reds, tmp_path / "one", qp=28, split="all", max_frames=3,
                           inference=InferenceOptions(device="cpu")))
    one = pd.read_parquet(tmp_path / "one" / "frames.parquet")
    assert len(ddp) == 6 * 3 and ddp["psnr"].tolist() == one["psnr"].tolist()


def test_frames_ahead_decodes_each_frame_once_and_serves_re_reads():
    from benchmarks.prefetch import FramesAhead

    loads = []
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) for _ in range(12)]

    def load(i):
        loads.append(i)
        return frames[i]

    ahead = FramesAhead(load, 12, torch.device("cpu"), SectionClock("cpu"), depth=3, keep=4)
    try:
        order = [0, 1, 2, 3, 4, 2, 3, 5, 6, 7, 8, 9, 10, 11]  # a recurrent chunk's context re-read
        for i in order:
            np.testing.assert_array_equal(ahead(i).permute(1, 2, 0).mul(255).round().byte().numpy(), frames[i])
    finally:
        ahead.close()
    assert sorted(loads) == list(range(12))
