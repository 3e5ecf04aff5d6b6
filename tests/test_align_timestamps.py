"""The frame times the alignment reads (`uvssm.align.pair.timestamps`): a millisecond clock's
rounding is undone where the frames lie on a constant-rate grid, and a variable rate is kept as it is.
Expected times come from the frame rate given to ffmpeg (frame j of a 60000/1001 fps stream is
shown at j·1001/60000 s) and from the times a setpts expression wrote, never from uvssm."""

from __future__ import annotations

import subprocess

import numpy as np

from uvssm.align.pair import timestamps
from uvssm.align.timing import named_by_theta
from uvssm.base.probe import frame_times, probe


def _encode(ffmpeg, path, rate: str, frames: int, vf: str = "null", extra: tuple[str, ...] = ()):
    subprocess.run([ffmpeg.path, "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s=96x64:r={rate}",
                    "-frames:v", str(frames), "-vf", vf, *extra, "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-y", str(path)], check=True)
    return path


def test_a_millisecond_clock_is_read_as_the_exact_constant_rate(tmp_path, ffmpeg):
    for ext in (".mkv", ".webm"):
        if ext == ".webm":  # WebM takes VP8/VP9/AV1 only
            path = tmp_path / "v.webm"
            subprocess.run([ffmpeg.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=60000/1001",
                            "-frames:v", "40", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                            "-y", str(path)], check=True)
        else:
            path = _encode(ffmpeg, tmp_path / f"v{ext}", "60000/1001", 40)
        exact = np.arange(40) * 1001 / 60000
        stored = frame_times(path)
        assert np.abs(stored - exact).max() > 2e-4  # the container rounded them (to the millisecond)
        assert np.abs(stored - exact).max() <= 5e-4 + 1e-9
        got, how = timestamps(probe(path), 40)
        np.testing.assert_allclose(got, exact, rtol=0, atol=1e-9)
        assert "60000/1001 fps grid" in how
    # why it matters, by hand: LQ frame 5 of a 59.94 fps share of a 24 fps original is shown at
    # 0.0834167 s, HQ position 2.002: the frame on screen (θ 1) is HQ frame 2; stored as 0.083 s its
    # position is 1.992, which names HQ frame 1
    assert named_by_theta(0.083 * 24, 1.0) == 1 and named_by_theta(5 * 1001 / 60000 * 24, 1.0) == 2


def test_a_variable_rate_and_a_fine_clock_are_kept(tmp_path, ffmpeg):
    # frames at 0, 1/25, …, 9/25 s, then every 0.1 s (a setpts expression: the times are known)
    vfr = _encode(ffmpeg, tmp_path / "vfr.mkv", "25", 20,
                  "settb=1/1000,setpts='if(lt(N,10),N/25,0.4+(N-10)/10)/TB'", ("-fps_mode", "vfr", "-enc_time_base", "1/1000"))
    want = np.array([n / 25 if n < 10 else 0.4 + (n - 10) / 10 for n in range(20)])
    got, how = timestamps(probe(vfr), 20)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3 + 1e-9)  # setpts truncates to its 1 ms tick
    assert "grid" not in how
    # MP4's clock at 30000/1001 is fine already: nothing to undo, the same times
    mp4 = _encode(ffmpeg, tmp_path / "cfr.mp4", "30000/1001", 30)
    got, how = timestamps(probe(mp4), 30)
    np.testing.assert_allclose(got, np.arange(30) * 1001 / 30000, rtol=0, atol=1e-9)
