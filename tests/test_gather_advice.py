"""`uvssm bench --gather` after a job array: what it says when parts are missing must be advice that works.

A missing job is named with the command that makes its parts (run here as printed, after which the
gather succeeds); parts cut with another shard length than the gather's are named as such, both cuts
given (and the gather with the jobs' cut succeeds). Expected values: the plan worked out by hand, the
part files on disk."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pandas as pd
import pytest

from benchmarks.harness import run_bench
from benchmarks.options import BenchOptions
from models.inference import InferenceOptions
from uvssm.base.errors import UvssmError

COMMON = dict(qp=28, inference=InferenceOptions(device="cpu"), max_frames=8, save_frames=0)


def _jobs(data, out, num_shards, indices, shard_frames):
    for index in indices:
        result = run_bench(BenchOptions(["bicubic"], data, out, num_shards=num_shards, shard_index=index,
                                        shard_frames=shard_frames, **COMMON))
        assert result.tables is None  # a job writes parts only


def _parts(out):
    return sorted(p.name for p in (out / ".parts").rglob("*.parquet"))


def _uvssm(args):
    return subprocess.run([sys.executable, "-m", "uvssm", *args], capture_output=True, text=True, timeout=600)


def test_gather_names_the_missing_job_and_the_command_that_makes_it(tmp_path, tiny_reds):
    # 2 test clips x 8 frames in shards of 4: the plan is [240@0, 240@4, 241@0, 241@4]; job I of 3 takes
    # positions I, I+3: job 0 takes 240@0 and 241@4, job 1 takes 240@4, job 2 takes 241@0.
    out = tmp_path / "array"
    _jobs(tiny_reds, out, 3, (0, 2), 4)
    assert _parts(out) == ["240@00000.parquet", "241@00000.parquet", "241@00004.parquet"]
    gather = ["bench", "--models", "bicubic", "--data", str(tiny_reds), "--qp", "28", "--out", str(out),
              "--max-frames", "8", "--shard-frames", "4", "--save-frames", "0", "--device", "cpu", "--gather"]
    commands = []
    for extra in ([], ["--num-shards", "3"]):  # the array's size as the jobs recorded it, or as given
        done = _uvssm(gather + extra)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert "1 of 4 parts missing (bicubic clip 240 frames 4-7); job 1 of 3 has not written them" in lines[0]
        assert "same command again" not in lines[0]  # --gather never computes
        commands.append(shlex.split(re.search(r"`([^`]+)`", lines[0]).group(1)))
    assert commands[0] == commands[1]
    command = commands[0]
    assert command[:2] == ["uvssm", "bench"] and "--gather" not in command
    assert command[-4:] == ["--num-shards", "3", "--shard-index", "1"]
    done = _uvssm(command[1:])  # run the advice as printed
    assert done.returncode == 0, done.stderr
    assert _parts(out) == ["240@00000.parquet", "240@00004.parquet", "241@00000.parquet", "241@00004.parquet"]
    done = _uvssm(gather)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_parquet(out / "frames.parquet")) == 2 * 8


def test_gather_names_every_missing_job(tmp_path, tiny_reds):
    out = tmp_path / "array"
    _jobs(tiny_reds, out, 3, (0,), 4)  # jobs 1 (240@4) and 2 (241@0) have not run
    argv = ("bench", "--models", "bicubic", "--out", str(out), "--num-shards", "3", "--gather")
    with pytest.raises(UvssmError) as err:
        run_bench(BenchOptions(["bicubic"], tiny_reds, out, shard_frames=4, num_shards=3, gather=True, argv=argv,
                               **COMMON))
    message = str(err.value)
    assert "2 of 4 parts missing (bicubic clip 240 frames 4-7, bicubic clip 241 frames 0-3)" in message
    assert (f"jobs 1, 2 of 3 have not written them: run them again with `uvssm bench --models bicubic --out {out} "
            "--num-shards 3 --shard-index I` for I in 1 2") in message


@pytest.mark.parametrize("jobs_cut,gather_cut,on_disk,planned,disk,plan,fix", [
    (4, 25, 4, 2, "shards of 4 frames", "whole clips", 4),  # jobs cut at 4, gathered with the default
    (25, 4, 2, 4, "whole clips", "shards of 4 frames", 8),  # the other way: a shard as long as the clips
    (4, 2, 4, 8, "shards of 4 frames", "shards of 2 frames", 4),  # every part on disk is a planned name too
])
def test_gather_says_when_the_parts_were_cut_differently(tmp_path, tiny_reds, jobs_cut, gather_cut, on_disk,
                                                          planned, disk, plan, fix):
    out = tmp_path / "array"
    _jobs(tiny_reds, out, 2, (0, 1), jobs_cut)  # every job ran: nothing is missing, the cut differs
    assert len(_parts(out)) == on_disk

    def gather(shard_frames):
        return run_bench(BenchOptions(["bicubic"], tiny_reds, out, shard_frames=shard_frames, gather=True, **COMMON))

    with pytest.raises(UvssmError) as err:
        gather(gather_cut)
    assert str(err.value) == (
        f"{out}: the {on_disk} parts on disk were cut differently: into {disk}, while this command cuts {plan} "
        f"(--shard-frames {gather_cut}: {planned} parts); gather with the jobs' cut (--shard-frames {fix}), or run "
        "the jobs again with this command's")
    assert "parts missing" not in str(err.value)
    result = gather(fix)  # the advice works
    assert len(pd.read_parquet(result.tables.paths["frames"])) == 2 * 8
