"""A COMISR checkpoint that TensorFlow itself wrote, committed (gzipped) under tests/data/comisr-tf/, and the
script that wrote it. Test code, not product.

The converter's test reads it without TensorFlow, so TensorFlow stays out of the test install. To write it
again (needs `pip install tensorflow-cpu`; the version that wrote the committed files is in
tests/data/comisr-tf/WRITTEN_BY.txt):

    python -m tests.comisr_tf

Its variables are the x4 release's, under their names and shapes (the hand table below), each holding
`release_values`: a patterned array (so that gzip keeps the files small) that tells every element and
every layout apart, so a wrong transposition or a wrong variable cannot pass; with EMA, the shadows
hold the values + 1, as a trained release's EMA copy would hold other numbers than its plain weights.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data" / "comisr-tf"
PREFIX = "model.ckpt-300000"
SHARDS = (".index", ".data-00000-of-00001")

# Its variables, written out by hand from google-research comisr/lib/model.py (fnet, generator_f) and
# inference_and_eval.py (the fnet/deconv_flow_* layers, the generator/ and fnet/ scopes) with lib/ops.py's
# slim layers: conv2 → <scope>/Conv/{weights [kh, kw, in, out], biases}, conv2_tran →
# <scope>/Conv2d_transpose/{weights [kh, kw, out, in], biases}. Beside each: the uvssm module it becomes.

def comisr_variables() -> list[tuple[str, str, tuple[int, ...], bool]]:
    """(TF scope, uvssm module, TF kernel shape, transposed) of the x4 release."""
    g, f = "generator/generator_unit", "fnet/autoencode_unit"
    out = [(f"{g}/input_stage/conv/Conv", "generator.input_stage", (3, 3, 3 + 3 * 16, 64), False)]
    out += [(f"{g}/resblock_{i}/conv_{j}/Conv", f"generator.resblock_{i}.conv_{j}", (3, 3, 64, 64), False)
            for i in range(1, 11) for j in (1, 2)]
    out += [(f"{g}/conv_tran2highres/conv_tran{k}/Conv2d_transpose", f"generator.conv_tran{k}", (3, 3, 64, 64), True)
            for k in (1, 2)]
    out += [(f"{g}/output_stage/conv/Conv", "generator.output_stage", (3, 3, 64, 3), False)]
    for name, cin, cout in (("encoder_1", 6, 32), ("encoder_2", 32, 64), ("encoder_3", 64, 128),
                            ("decoder_1", 128, 256), ("decoder_2", 256, 128), ("decoder_3", 128, 64)):
        out += [(f"{f}/{name}/conv_1/Conv", f"fnet.autoencode_unit.{name}.conv_1", (3, 3, cin, cout), False),
                (f"{f}/{name}/conv_2/Conv", f"fnet.autoencode_unit.{name}.conv_2", (3, 3, cout, cout), False)]
    out += [(f"{f}/output_stage/conv1/Conv", "fnet.autoencode_unit.output_stage.conv1", (3, 3, 64, 32), False),
            (f"{f}/output_stage/conv2/Conv", "fnet.autoencode_unit.output_stage.conv2", (3, 3, 32, 2), False),
            ("fnet/deconv_flow_tran1/Conv2d_transpose", "fnet.deconv_flow_tran1", (3, 3, 64, 2), True),
            ("fnet/deconv_flow_tran2/Conv2d_transpose", "fnet.deconv_flow_tran2", (3, 3, 64, 64), True),
            ("fnet/deconv_flow_conv/Conv", "fnet.deconv_flow_conv", (3, 3, 64, 2), False)]
    return out


def _pattern(shape: tuple[int, ...], k: int) -> np.ndarray:
    n = int(np.prod(shape))
    return (((np.arange(n) * 31 + 17 * k) % 1009) / 1009 - 0.5).astype(np.float32).reshape(shape)


def release_values() -> dict[str, np.ndarray]:
    """The trained values of every variable ("<scope>/weights", "<scope>/biases"), in the table's order."""
    values = {}
    for k, (scope, _, shape, transposed) in enumerate(comisr_variables()):
        values[f"{scope}/weights"] = _pattern(shape, 2 * k)
        values[f"{scope}/biases"] = _pattern((shape[2] if transposed else shape[3],), 2 * k + 1)
    return values


def stored_values(with_ema: bool) -> dict[str, np.ndarray]:
    """Everything the checkpoint holds beside global_step: the values, their EMA shadows (values + 1) where
    `with_ema`, an Adam slot and a non-trainable buffer, as a training run's checkpoint has them."""
    values = release_values()
    stored = dict(values)
    if with_ema:
        stored.update({f"{k}/ExponentialMovingAverage": v + 1 for k, v in values.items()})
    stored["generator/generator_unit/input_stage/conv/Conv/weights/Adam"] = np.zeros((3, 3, 51, 64), np.float32)
    stored["pre_gen"] = np.zeros((1, 8, 8, 3), np.float32)
    return stored


def checkpoint_prefix(into: Path, with_ema: bool) -> Path:
    """The committed checkpoint, unpacked into the folder `into`; returns its PREFIX."""
    into.mkdir(parents=True, exist_ok=True)
    source = DATA / ("ema" if with_ema else "plain")
    for suffix in SHARDS:
        with gzip.open(source / f"{PREFIX}{suffix}.gz", "rb") as packed, open(into / f"{PREFIX}{suffix}", "wb") as out:
            shutil.copyfileobj(packed, out)
    return into / PREFIX


WRITER = r'''
import sys
import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_eager_execution()
for name, value in np.load(sys.argv[1]).items():
    tf.Variable(value, name=name, trainable=name != "pre_gen")
tf.Variable(0, name="global_step", dtype=tf.int64)
with tf.Session() as session:
    session.run(tf.global_variables_initializer())
    tf.train.Saver().save(session, sys.argv[2], global_step=300000)
print(tf.__version__)
'''


def write(tmp: Path, with_ema: bool) -> str:
    """Write the checkpoint with TensorFlow (in a subprocess) under `tmp`, gzip it into DATA; returns TF's version."""
    np.savez(tmp / "values.npz", **stored_values(with_ema))
    done = subprocess.run([sys.executable, "-c", WRITER, str(tmp / "values.npz"), str(tmp / "ckpt" / "model.ckpt")],
                          capture_output=True, text=True, check=True)
    target = DATA / ("ema" if with_ema else "plain")
    target.mkdir(parents=True, exist_ok=True)
    for suffix in SHARDS:
        with open(tmp / "ckpt" / f"{PREFIX}{suffix}", "rb") as raw, \
                gzip.GzipFile(target / f"{PREFIX}{suffix}.gz", "wb", mtime=0) as out:
            shutil.copyfileobj(raw, out)
    return done.stdout.split()[-1]


if __name__ == "__main__":
    import platform
    import tempfile

    versions = set()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("ema", "plain"):
            (Path(tmp) / kind).mkdir()
            versions.add(write(Path(tmp) / kind, with_ema=kind == "ema"))
    (DATA / "WRITTEN_BY.txt").write_text(
        f"written by `python -m tests.comisr_tf` with tensorflow-cpu {', '.join(sorted(versions))}, "
        f"numpy {np.__version__}, Python {platform.python_version()}\n")
    print(f"wrote {DATA} with TensorFlow {', '.join(sorted(versions))}")
