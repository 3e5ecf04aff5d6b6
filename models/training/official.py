"""The official VOTES option files (`options/train/VOTES/train_VOTES_*.yml`, BasicSR's layout) read as uvssm configs.

`uvssm train path/to/train_VOTES_L_x2_SR_REDS_QP28.yml --data ... --out ...` takes one of the three official files
as it is. Each key the official training honours is mapped onto `TrainConfig` (`OPTIONS`); a key that only names a
place or a service uvssm sets another way (data paths: `--data`; GPUs: `--device`/torchrun; loggers) is accepted
and listed in `IGNORED` with its reason; a key whose value uvssm cannot honour is refused with that value
(`REQUIRED`); any other key is refused by name. So a file is either trained as the official code would train it,
or not at all.
"""

from __future__ import annotations

import re

from models.training.config import ConfigError

# official key (dotted) -> uvssm config key (dotted)
OPTIONS = {
    "name": "name",
    "manual_seed": "seed",
    "datasets.train.gt_size": "gt_size",
    "datasets.train.use_flip": "flip",
    "datasets.train.use_rot": "transpose",  # BasicSR's rot90 = a transpose and flips, the same eight-fold set
    "datasets.train.num_worker_per_gpu": "num_workers",
    "datasets.train.batch_size_per_gpu": "batch_size",
    "network_g.bin_model": "bin_checkpoint",
    "train.optim_g.lr": "lr",
    "train.optim_g.weight_decay": "weight_decay",
    "train.optim_g.betas": "betas",
    "train.scheduler.periods": "periods",
    "train.scheduler.restart_weights": "restart_weights",
    "train.scheduler.eta_min": "eta_min",
    "train.total_iter": "total_iter",
    "train.pixel_opt.reduction": "loss_reduction",
    "val.val_freq": "val_every",
    "logger.print_freq": "log_every",
    "logger.save_checkpoint_freq": "save_every",
}
# network_g keys that are VOTES's constructor arguments under the same names
NETWORK_ARGS = ("num_in_ch", "num_feat", "num_frame", "deformable_groups", "num_extract_block",
                "num_reconstruct_block", "num_modulation_blocks")
# official key -> the values uvssm honours (what it does is fixed: VOTES's recipe)
REQUIRED = {
    "model_type": ("VOTESModel",),
    "network_g.type": ("VOTES",),
    "network_g.center_frame_idx": (None, 2),
    "datasets.train.num_frame": (5,),
    "datasets.train.center_gt": (True,),
    "datasets.train.interval_list": ([1],),
    "datasets.train.random_reverse": (False,),
    "datasets.val.num_frame": (5,),
    "datasets.val.center_gt": (True,),
    "datasets.val.padding": ("reflection_circle",),
    "path.pretrain_network_g": (None,),
    "path.resume_state": (None,),
    "train.optim_g.type": ("Adam",),
    "train.scheduler.type": ("CosineAnnealingRestartLR",),
    "train.senmap_iter": (None,),
    "train.pixel_opt.type": ("CharbonnierLoss",),
    "train.pixel_opt.loss_weight": (1, 1.0),
    "val.metrics.psnr.type": ("calculate_psnr",),
    "val.metrics.psnr.test_y_channel": (True,),
}
# official key -> why it changes nothing here
IGNORED = {
    "num_gpu": "uvssm train --device / torchrun choose the devices",
    "debug": "BasicSR's debug mode",
    "datasets.train.name": "a label",
    "datasets.train.type": "the dataset class: uvssm reads the folder given by --data",
    "datasets.train.dataroot_gt": "data paths: --data",
    "datasets.train.dataroot_lq": "data paths: --data",
    "datasets.train.dataroot_mask": "data paths: --data",
    "datasets.train.meta_info_file": "the splits of the --data folder",
    "datasets.train.meta_val_file": "the splits of the --data folder",
    "datasets.train.meta_test_file": "the splits of the --data folder",
    "datasets.train.io_backend": "uvssm reads frames its own way",
    "datasets.train.use_shuffle": "samples are a function of (seed, iteration)",
    "datasets.train.dataset_enlarge_ratio": "the length of BasicSR's epoch only",
    "datasets.train.prefetch_mode": "BasicSR's prefetcher",
    "datasets.val.name": "a label",
    "datasets.val.type": "the dataset class: uvssm validates on the --data folder's val split",
    "datasets.val.dataroot_gt": "data paths: --data",
    "datasets.val.dataroot_lq": "data paths: --data",
    "datasets.val.dataroot_mask": "data paths: --data",
    "datasets.val.meta_info_file": "the splits of the --data folder",
    "datasets.val.io_backend": "uvssm reads frames its own way",
    "datasets.val.cache_data": "BasicSR's cache",
    "path.strict_load_g": "only with pretrain_network_g",
    "train.warmup_iter": "mapped: -1 (none) is warmup_iter 0",
    "train.dcn_lr_mul": "VOTESModel's optimiser (SRModel.setup_optimizers) never reads it",
    "val.save_img": "uvssm bench --save-frames writes restored frames",
    "val.metrics.psnr.crop_border": "checked: the validation crops `scale` pixels",
    "logger.use_tb_logger": "uvssm writes train_log.parquet and val_log.parquet",
    "logger.wandb": "uvssm writes train_log.parquet and val_log.parquet",
    "dist_params": "torchrun sets the process group",
    "find_unused_parameters": "DDP sees only the parameters that learn",
}


def is_official(values: dict) -> bool:
    """Whether a config file's keys are BasicSR's (the official option files) rather than uvssm's."""
    return "model_type" in values and "network_g" in values


def _flatten(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in IGNORED and dotted not in OPTIONS:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _set(config: dict, dotted: str, value) -> None:
    node = config
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def _data(flat: dict, where: str) -> dict:
    """The data section, from the training LQ folder's name: REDS `LQ_frames_qp<N>_x<s>` (the official recipe's
    synthesis, `uvssm synth-reds`) or a UVSSM platform folder (`UVSSM/<Platform>/LQ_frames`)."""
    scale = flat.get("scale")
    lq = str(flat.get("datasets.train.dataroot_lq", ""))
    reds = re.search(r"LQ_frames_qp(\d+)_x(\d+)", lq)
    if reds:
        if int(reds.group(2)) != scale:
            raise ConfigError(f"{where}: datasets.train.dataroot_lq {lq!r} is x{reds.group(2)} but scale is {scale}")
        return {"kind": "reds", "qp": int(reds.group(1)), "scale": scale, "train_split": "train", "val_split": "val"}
    platform = re.search(r"UVSSM/([^/]+)/LQ_frames", lq)
    if platform:
        return {"kind": "frames", "platform": platform.group(1), "qp": None, "scale": scale}
    raise ConfigError(f"{where}: datasets.train.dataroot_lq {lq!r} names neither a REDS LQ_frames_qp<N>_x<s> folder "
                      "nor a UVSSM/<Platform>/LQ_frames folder")


def from_official(values: dict, where: str) -> dict:
    """uvssm config values (before `TrainConfig`) for an official option file's values."""
    flat = _flatten(values)
    config: dict = {"note": f"the official option file {where}", "stage": "restore", "model": "votes",
                    "loss": "charbonnier", "warmup_iter": 0, "model_args": {}}
    for key, value in flat.items():
        if key in OPTIONS:
            _set(config, OPTIONS[key], value)
        elif key in REQUIRED:
            if value not in REQUIRED[key]:
                allowed = " or ".join(repr(v) for v in REQUIRED[key])
                raise ConfigError(f"{where}: {key}: {value!r} is not supported (uvssm trains with {allowed})")
        elif key.startswith("network_g.") and key.split(".", 1)[1] in NETWORK_ARGS:
            config["model_args"][key.split(".", 1)[1]] = value
        elif key == "network_g.sr_factor":
            if value != flat.get("scale"):
                raise ConfigError(f"{where}: network_g.sr_factor {value} differs from scale {flat.get('scale')}")
        elif key == "scale":
            pass  # in the data section
        elif key == "train.warmup_iter":
            config["warmup_iter"] = max(int(value), 0)
        elif key == "val.metrics.psnr.crop_border":
            if value != flat.get("scale"):
                raise ConfigError(f"{where}: val.metrics.psnr.crop_border {value} is not the scale {flat.get('scale')}"
                                  " (uvssm validates with `scale` pixels cropped)")
        elif key in IGNORED or any(key.startswith(k + ".") for k in IGNORED):
            pass
        else:
            raise ConfigError(f"{where}: key {key!r} of the official option file is not one uvssm knows")
    config["data"] = _data(flat, where)
    if config["model_args"].get("num_in_ch", 3) != 3:
        raise ConfigError(f"{where}: network_g.num_in_ch {config['model_args']['num_in_ch']} (VOTES reads RGB)")
    config["model_args"].pop("num_in_ch", None)
    return config
