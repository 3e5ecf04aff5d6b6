"""One set of inference options for bench and restore, and a loaded model that a run does not change."""

from __future__ import annotations

import pytest
import torch

from models.inference import InferenceOptions, Stage, compiled, configured, prepare
from models.registry import create_model, get_spec
from uvssm.cli import cli


def _stage(name: str) -> Stage:
    spec = get_spec(name)
    return Stage(create_model(name, 2), spec.num_frame, 2, spec.multiple, kind=spec.kind, features=spec.features)


def test_prepare_and_compile_give_copies_and_leave_the_loaded_stages_as_they_were():
    loaded = [_stage("basicvsr-tiny")]
    module = loaded[0].model
    options = InferenceOptions(device="cpu", chunk=3, chunk_overlap=1, channels_last=True, compile="eager")
    ready, backend = prepare(loaded, options, torch.device("cpu"), (32, 24))
    assert backend is None  # BasicVSR has no deformable convolution
    assert (loaded[0].chunk, loaded[0].chunk_overlap, loaded[0].fixed_batch) == (100, 8, 0)  # Stage's defaults
    assert (ready[0].chunk, ready[0].chunk_overlap) == (3, 1) and ready[0] is not loaded[0]
    assert ready[0].model is module  # the same weights, set up on the device
    running = compiled(ready, options)
    assert running[0].model is not module and running[0].fixed_batch == options.batch
    assert ready[0].model is module and ready[0].fixed_batch == 0
    assert configured(loaded, InferenceOptions())[0].chunk == 100


@pytest.mark.parametrize("options, message", [
    (InferenceOptions(batch=0), "--batch must be at least 1, got 0"),
    (InferenceOptions(tile=-1), "--tile and --overlap must be >= 0"),
    (InferenceOptions(chunk=0), "--chunk must be at least 1 and --chunk-overlap >= 0, got 0, 8"),
    (InferenceOptions(dcn_backend="cuda"), "--dcn-backend cuda: expected one of auto, torch, torchvision"),
    (InferenceOptions(), None),
])
def test_bad_options_are_named_in_one_line(options, message):
    assert options.problem() == message


def test_bench_and_restore_take_the_same_inference_options():
    names = {"--device", "--bf16", "--batch", "--tile", "--overlap", "--chunk", "--chunk-overlap", "--dcn-backend",
             "--channels-last", "--compile"}
    for command in ("bench", "restore"):
        given = {opt for p in cli.get_command(None, command).params for opt in p.opts}
        assert names <= given, (command, names - given)
