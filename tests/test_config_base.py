"""`_base_` in training configs: a variant states only what differs from the config it starts from."""

from __future__ import annotations

import pytest
import yaml

from models.training.config import CONFIG_DIR, ConfigError, list_configs, load_config


def _write(path, text: str):
    path.write_text(text)
    return path


def test_a_variant_takes_its_base_and_replaces_only_what_it_states(tmp_path):
    _write(tmp_path / "base.yaml", "note: base\nmodel: edvr-m\nlr: 4.0e-4\nperiods: [10, 20]\n"
                                   "data: {kind: reds, qp: 28, scale: 2, val_split: val}\n")
    _write(tmp_path / "mid.yaml", "_base_: base.yaml\ndata: {qp: 33}\nperiods: [5]\n")
    child = load_config(str(_write(tmp_path / "child.yaml", "_base_: mid.yaml\nnote: child\ndata: {scale: 4}\n")))
    # by hand: base, then mid's qp and periods, then child's note and scale; the name is the file's own
    assert (child.name, child.note, child.model, child.lr, list(child.periods)) == ("child", "child", "edvr-m", 4e-4, [5])
    assert (child.data.kind, child.data.qp, child.data.scale, child.data.val_split) == ("reds", 33, 4, "val")
    # overrides still come last, over the whole chain
    assert load_config(str(tmp_path / "child.yaml"), ["data.qp=40"]).data.qp == 40


def test_a_base_that_loops_or_is_missing_is_a_one_line_error_naming_the_file(tmp_path):
    _write(tmp_path / "a.yaml", "_base_: b.yaml\n")
    _write(tmp_path / "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match=r"a\.yaml: _base_ loops back to itself"):
        load_config(str(tmp_path / "a.yaml"))
    _write(tmp_path / "c.yaml", "_base_: no-such-config\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: _base_: unknown config 'no-such-config'"):
        load_config(str(tmp_path / "c.yaml"))
    _write(tmp_path / "d.yaml", "_base_: [a, b]\n")
    with pytest.raises(ConfigError, match=r"d\.yaml: _base_ must name one config"):
        load_config(str(tmp_path / "d.yaml"))


@pytest.mark.parametrize("name", [n for n in list_configs()
                                  if "_base_" in yaml.safe_load((CONFIG_DIR / f"{n}.yaml").read_text())])
def test_every_packaged_variant_equals_its_base_with_its_own_keys_over_it(name):
    """Read with plain YAML, outside the loader: the base's keys, the variant's over them."""
    own = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    base = load_config(own.pop("_base_"))
    variant = load_config(name)
    for key, value in own.items():
        if key == "data":
            for k, v in value.items():
                assert getattr(variant.data, k) == v, (name, k)
        else:
            got = getattr(variant, key)
            assert (list(got) if isinstance(got, tuple) else got) == value, (name, key)
    stated = set(own) - {"data"}
    for key in vars(base):
        if key not in stated and key not in ("name", "data"):
            assert getattr(variant, key) == getattr(base, key), (name, key)
    for key in vars(base.data):
        if key not in own.get("data", {}):
            assert getattr(variant.data, key) == getattr(base.data, key), (name, key)
