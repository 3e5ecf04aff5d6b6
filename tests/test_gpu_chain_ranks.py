"""A chained config's first stage on the device of its frames, restored once under torchrun, and a rank that fails
bringing the others down with its error (issue #41 items 1 and 9). On the CPU: the `meta` device stands for a GPU
(a model left on the CPU runs there anyway: conv2d of a meta input and CPU weights gives a meta output, so only
the parameters' device tells), and torchrun runs two processes on gloo. Expected values: the restored frames
against the first stage run in this process, one clip at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from models import checkpoint
from models.inference import restore_stage
from models.registry import create_model, model_kwargs
from uvssm.base.datasets import ClipPair
from uvssm.base.frames import frame_name, frames_to_tensor, read_rgb, write_rgb
from uvssm.base.metrics import quantize
from uvssm.pipelines.train import load_first_stage

ROOT = Path(__file__).resolve().parent.parent
CLIPS, FRAMES, LQ = ["a", "b", "c", "d", "e"], 7, (24, 32)  # STDF needs 7 frames
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo, tested on Linux")


def _stdf_checkpoint(path: Path) -> Path:
    """A first stage as `uvssm train stdf-...` saves it (seeded weights: its outputs differ from its inputs)."""
    torch.manual_seed(0)
    model = create_model("stdf", 1)
    return checkpoint.save(path, model, {"model": "stdf", "model_kwargs": model_kwargs("stdf", 1)})


def _lq_clips(root: Path) -> None:
    rng = np.random.default_rng(0)
    for name in CLIPS:
        for i in range(FRAMES):
            write_rgb(root / "LQ" / name / frame_name(i), rng.integers(0, 256, (*LQ, 3), dtype=np.uint8))


def test_the_first_stage_runs_on_the_device_of_its_frames(tmp_path):
    first = load_first_stage(_stdf_checkpoint(tmp_path / "stdf.pt"), expect="stdf")
    assert {p.device.type for p in first.stage.model.parameters()} == {"cpu"}  # loaded on the CPU
    frames = [torch.rand(3, *LQ) for _ in range(FRAMES)]
    outs = list(restore_stage(frames, first.stage, device="meta", on_device=True))
    assert [o.shape for o in outs] == [torch.Size([3, *LQ])] * FRAMES and {o.device.type for o in outs} == {"meta"}
    assert {p.device.type for p in first.stage.model.parameters()} == {"meta"}  # the model went where the frames went


_RESTORE_SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.test_gpu_chain_ranks import dataset
from uvssm.base.devices import setup_device
from uvssm.base.progress import RestoreClip
from uvssm.pipelines.train import load_first_stage, restore_dataset

dist_info, device = setup_device("cpu")
events = []
first = load_first_stage({ckpt!r}, expect="stdf")
restored = restore_dataset(dataset(Path({data!r})), first, device=device, progress=events.append)
names = [e.clip for e in events if isinstance(e, RestoreClip)]
seen = [c.lq(c.n_frames - 1).tobytes().hex()[:32] for c in restored.clips]  # every clip readable after the wait
Path({data!r}, f"rank{{dist_info.rank}}.json").write_text(json.dumps({{"restored": names, "seen": seen}}))
"""


def dataset(root: Path):
    """The hand-made LQ clips under `root` as a dataset (HQ unused: the first stage reads LQ only)."""
    from uvssm.base.datasets import PairedDataset

    clips = [ClipPair(name, root / "HQ" / name, root / "LQ" / name, FRAMES, 2, LQ) for name in CLIPS]
    return PairedDataset("hand", "reds", root, "train", 2, 28, None, clips)


@linux_only
def test_two_ranks_restore_every_clip_once_into_a_shared_folder(tmp_path):
    data, ckpt = tmp_path / "data", _stdf_checkpoint(tmp_path / "stdf.pt")
    _lq_clips(data)
    script = tmp_path / "restore.py"
    script.write_text(_RESTORE_SCRIPT.format(root=str(ROOT), ckpt=str(ckpt), data=str(data)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           str(script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [json.loads((data / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert sorted(ranks[0]["restored"] + ranks[1]["restored"]) == CLIPS  # each clip by one rank, once
    assert ranks[0]["restored"] and ranks[1]["restored"]  # both ranks took a share
    assert ranks[0]["seen"] == ranks[1]["seen"]

    first = load_first_stage(ckpt, expect="stdf")
    base = data / "restored" / first.folder / "LQ"
    assert sorted(p.name for p in base.iterdir()) == sorted(CLIPS + [f"{c}.done" for c in CLIPS])
    assert not list(data.rglob("*.tmp"))  # no write left half done
    for name in CLIPS:  # complete: every frame as the first stage makes it here
        frames = (frames_to_tensor(read_rgb(data / "LQ" / name / frame_name(i))) for i in range(FRAMES))
        for i, out in enumerate(restore_stage(frames, first.stage)):
            want = np.ascontiguousarray(quantize(out).permute(1, 2, 0).numpy())
            assert np.array_equal(read_rgb(base / name / frame_name(i)), want), (name, i)
        assert (base / f"{name}.done").read_text() == f"{FRAMES}\n"
        assert sorted(p.name for p in (base / name).iterdir()) == [frame_name(i) for i in range(FRAMES)]
    assert json.loads((data / "restored" / first.folder / "provenance.json").read_text())["model"] == "stdf"


_FAILING_BENCH = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
import benchmarks.harness as harness
from uvssm.cli import main

real = harness._run_model


def run_model(*args, **kwargs):
    if os.environ["RANK"] == "1":
        Path({stamp!r}).write_text(str(time.time()))
        raise RuntimeError("forced failure on rank 1")
    return real(*args, **kwargs)


harness._run_model = run_model
sys.argv = ["uvssm", "bench", "--models", "bicubic", "--data", {data!r}, "--qp", "28", "--split", "all",
            "--device", "cpu", "--out", {out!r}, "--max-frames", "2", "--save-frames", "0"]
main()
"""


def _failing_bench(tmp_path: Path, tiny_reds: Path) -> tuple[Path, Path]:
    script, stamp = tmp_path / "bench.py", tmp_path / "failed-at"
    script.write_text(_FAILING_BENCH.format(root=str(ROOT), stamp=str(stamp), data=str(tiny_reds),
                                            out=str(tmp_path / "bench")))
    return script, stamp


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("UVSSM_DIST_TIMEOUT", None)  # the default 4 hours: the job must not wait for it
    return env




@linux_only
def test_a_rank_that_fails_on_another_node_stops_rank_0_with_its_error(tmp_path, tiny_reds):
    """Two torchrun agents, one process each, as on two machines: rank 0's agent does not watch rank 1, so only
    the ranks themselves can tell rank 0 that rank 1 failed."""
    script, stamp = _failing_bench(tmp_path, tiny_reds)
    agents = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank",
                                str(node), "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port",
                                "29535", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=_env(), start_new_session=True) for node in (0, 1)]
    try:
        _, err0 = agents[0].communicate(timeout=180)
        ended = time.time()
        agents[1].communicate(timeout=60)
    finally:
        for agent in agents:  # an agent and its worker, if the job hangs
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
    assert agents[0].returncode != 0 and stamp.exists(), err0[-3000:]
    assert ended - float(stamp.read_text()) < 60
    assert "rank 1 failed: RuntimeError: forced failure on rank 1" in err0, err0[-3000:]


def test_a_waiting_rank_stops_with_the_error_of_a_rank_that_failed(monkeypatch):
    """Two ranks as threads on one store: they exchange words in rank order; then rank 1 fails while rank 0 waits
    at a barrier, and rank 0 stops within a poll with rank 1's error, long before its timeout."""
    import threading

    import torch.distributed as dist

    from uvssm.base import devices

    monkeypatch.setenv("UVSSM_DIST_TIMEOUT", "30")  # a hang fails the test in 30 s; the wait must end in 5
    store = dist.HashStore()
    monkeypatch.setattr(devices, "_store", lambda: store)
    monkeypatch.setattr(devices, "_rounds", _PerThreadCount())  # each rank, a process of its own, counts its waits
    ranks = [devices.Distributed(r, r, 2) for r in (0, 1)]
    got = {}

    def rank1():
        got[1] = devices.exchange(ranks[1], "one")
        try:
            with devices.ranks_fail_together(ranks[1]):
                time.sleep(0.3)  # rank 0 is waiting by now
                raise RuntimeError("out of memory on rank 1")
        except RuntimeError as exc:
            got["raised"] = str(exc)

    other = threading.Thread(target=rank1)
    other.start()
    got[0] = devices.exchange(ranks[0], "zero")
    start = time.monotonic()
    with pytest.raises(devices.RankFailed, match=r"^rank 1 failed: RuntimeError: out of memory on rank 1$"):
        devices.barrier(ranks[0])
    other.join()
    assert time.monotonic() - start < 5
    assert got == {0: ["zero", "one"], 1: ["zero", "one"], "raised": "out of memory on rank 1"}


class _PerThreadCount:
    def __init__(self):
        import threading

        self._local = threading.local()

    def __next__(self) -> int:
        n = getattr(self._local, "n", 0)
        self._local.n = n + 1
        return n
