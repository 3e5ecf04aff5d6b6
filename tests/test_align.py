"""`uvssm simulate` makes pairs with a known truth; the alignment recovers it (the #3 acceptance)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uvssm.align import resample_box, spatial_fit, temporal_match
from uvssm.base.decode import gray_frames
from uvssm.base.ffmpeg import find_ffmpeg
from uvssm.base.errors import UvssmError
from uvssm.base.probe import frame_times, probe
from uvssm.pipelines.simulate import SimulateOptions, plan_mapping, simulate


def luma_frames(path, size=None, indices=None) -> np.ndarray:
    """Luma of a video's frames (display orientation) as float32, by ffmpeg."""
    return np.stack([f for _, f in gray_frames(find_ffmpeg(), probe(path), size, indices)]).astype(np.float32)


def test_plan_mapping_trims_resamples_drops_and_repeats():
    assert plan_mapping(np.arange(10) / 30, 15, SimulateOptions(trim_start=2)) == [2, 4, 6, 8]
    # nearest timestamps, worked out by hand: 0, .04, .08, .12, .16, .20 s against k/30 s
    assert plan_mapping(np.arange(7) / 30, 25, SimulateOptions()) == [0, 1, 2, 4, 5, 6]
    # variable frame rate: 0, .1, .2 s, then .5, .6 s; at 10 fps .3 and .4 s show the nearest frames
    assert plan_mapping(np.array([0, .1, .2, .5, .6]), 10, SimulateOptions()) == [0, 1, 2, 2, 3, 3, 4]
    dropped = plan_mapping(np.arange(1000) / 25, 25, SimulateOptions(drop=0.1, seed=1))
    assert 850 < len(dropped) < 950 and dropped == sorted(set(dropped))
    repeated = plan_mapping(np.arange(1000) / 25, 25, SimulateOptions(duplicate=0.1, seed=1))
    assert 1050 < len(repeated) < 1150 and len(set(repeated)) == 1000


def test_simulate_maps_a_variable_frame_rate_original_by_its_timestamps(tmp_path, ffmpeg):
    """50 real frames, 25 at 25 fps then 25 at 10 fps (a plain ffmpeg setpts command). Each LQ
    frame at 25 fps must come from the original frame nearest its time, worked out here from
    the timestamps the command wrote, and must show that frame (checked against every frame)."""
    import subprocess

    hq = tmp_path / "vfr.mp4"
    subprocess.run([ffmpeg.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25,noise=alls=12:allf=t",
                    "-frames:v", "50", "-vf", "settb=1/1000,setpts='if(lt(N,25),N/25,1+(N-25)/10)/TB'", "-fps_mode", "vfr", "-enc_time_base", "1/1000",
                    "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", "-y", str(hq)], check=True)
    times = np.array([n / 25 if n < 25 else 1 + (n - 25) / 10 for n in range(50)])
    lq = tmp_path / "lq.mp4"
    simulate(hq, lq, ffmpeg, SimulateOptions(platform="twitter", fps=25))
    got = pd.read_parquet(tmp_path / "lq.mapping.parquet")["hq_frame"].to_numpy()
    n_lq = int(np.ceil((times[-1] + 0.05) * 25 - 1e-9))  # until the last frame's half interval (0.05 s) ends
    want = [int(np.argmin(np.abs(times - j / 25) - 1e-7 * (times > j / 25))) for j in range(n_lq)]
    assert got.tolist() == want
    hq_y = luma_frames(hq, (64, 48))
    assert len(hq_y) == 50
    lq_y = luma_frames(lq, (64, 48))
    best = [int(np.argmin(((hq_y - f) ** 2).mean(axis=(1, 2)))) for f in lq_y]
    assert (np.array(best) == got).mean() >= 0.99


def test_simulate_writes_video_and_truth(tmp_path, ffmpeg, hq_video):
    truth = simulate(hq_video, tmp_path / "lq.mp4", ffmpeg,
                     SimulateOptions(platform="twitter", fps=25, letterbox=20, rotate=90, full_range=True, frames=30))
    info = probe(tmp_path / "lq.mp4")
    assert (info.width, info.height, info.avg_fps, info.n_frames) == (640, 360, 25.0, 30)
    assert info.rotation == 90 and info.color_range == "pc"
    mapping = pd.read_parquet(tmp_path / "lq.mapping.parquet")
    assert mapping["hq_frame"].tolist() == plan_mapping(np.arange(100) / 30, 25, SimulateOptions(frames=30))
    assert truth["geometry"]["letterbox"] == 20 and truth["geometry"]["content_size"] == [640, 320]
    lq = luma_frames(tmp_path / "lq.mp4", indices={0})[0]
    # shown upright (90° counter-clockwise): the stored top and bottom bars are now left and right
    assert lq.shape == (640, 360) and lq[:, :18].max() < 24 and lq[:, 22:-22].mean() > 40

    with pytest.raises(UvssmError, match="file not found"):
        simulate(tmp_path / "missing.mp4", tmp_path / "x.mp4", ffmpeg)
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(UvssmError, match="junk.mp4"):
        simulate(tmp_path / "junk.mp4", tmp_path / "x.mp4", ffmpeg)


@pytest.mark.parametrize("seed", [0, 1])
def test_alignment_recovers_trim_fps_drops_and_crop(tmp_path, ffmpeg, hq_video, seed):
    """Random start trim (0-30 frames), 30 → 25 fps, 1% dropped frames, a crop of a few pixels:
    ≥ 99% of frames mapped to the true HQ frame, the crop within 1 pixel, and the aligned pairs'
    PSNR far above sorted-position pairing."""
    rng = np.random.default_rng(seed)
    crop = tuple(int(v) for v in rng.integers(0, 7, 4))
    options = SimulateOptions(platform="twitter", trim_start=int(rng.integers(0, 31)), fps=25, drop=0.01,
                              crop=crop, seed=seed)
    truth = simulate(hq_video, tmp_path / "lq.mp4", ffmpeg, options)
    true_map = pd.read_parquet(tmp_path / "lq.mapping.parquet")["hq_frame"].to_numpy()

    hq_small = luma_frames(hq_video, (64, 36))
    lq_small = luma_frames(tmp_path / "lq.mp4", (64, 36))
    match = temporal_match(hq_small, lq_small, frame_times(hq_video), frame_times(tmp_path / "lq.mp4"))
    mapping = match.mapping
    assert (mapping == true_map).mean() >= 0.99
    assert match.offset_frames == options.trim_start and match.offset_margin > 0.3

    sample = list(range(0, len(mapping), 10))
    hq_full = luma_frames(hq_video, indices={int(mapping[j]) for j in sample})
    order = {v: k for k, v in enumerate(sorted({int(mapping[j]) for j in sample}))}
    fit = spatial_fit(np.stack([hq_full[order[int(mapping[j])]] for j in sample]),
                      luma_frames(tmp_path / "lq.mp4", indices=set(sample)))
    left, top, right, bottom = crop
    expected = (left, top, 1280 - right, 720 - bottom)
    assert np.abs(np.array(fit.hq_box) - expected).max() <= 1.0, (fit.hq_box, expected)
    assert fit.bars == (0, 0, 0, 0)

    hq_on_lq = resample_box(luma_frames(hq_video, (640, 360)), tuple(v / 2 for v in fit.hq_box), (320, 180))
    lq = luma_frames(tmp_path / "lq.mp4", (320, 180))

    def mean_psnr(a, b):
        return float(np.mean(10 * np.log10(255**2 / np.mean((a - b) ** 2, axis=(1, 2)))))

    aligned = mean_psnr(hq_on_lq[mapping], lq)
    naive = mean_psnr(hq_on_lq[: len(lq)], lq)
    assert aligned > 30 and aligned > naive + 8, (aligned, naive)
    assert truth["n_lq_frames"] == len(lq)


def test_duplicated_frames_map_to_the_same_original(tmp_path, ffmpeg, hq_video):
    simulate(hq_video, tmp_path / "lq.mp4", ffmpeg, SimulateOptions(platform="twitter", fps=25, duplicate=0.05, seed=4))
    true_map = pd.read_parquet(tmp_path / "lq.mapping.parquet")["hq_frame"].to_numpy()
    assert (np.diff(true_map) == 0).any()
    match = temporal_match(luma_frames(hq_video, (64, 36)), luma_frames(tmp_path / "lq.mp4", (64, 36)),
                           frame_times(hq_video), frame_times(tmp_path / "lq.mp4"))
    assert (match.mapping == true_map).mean() >= 0.99
    # the repeats the timestamps do not show are reported, and only those
    assert match.repeated == int((np.diff(true_map) == 0).sum()) and match.dropped == 0
