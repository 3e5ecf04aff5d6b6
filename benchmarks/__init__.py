"""Evaluation: what `uvssm bench` and `uvssm report` run, one job per module.

    options      BenchOptions: the data, models, metrics and sharding of a run (how models run:
                 models.inference.InferenceOptions, embedded)
    harness      run_bench: every model over every shard, across processes, then the tables
    shards       the unit of work and resume: a shard, its part file, its run key
    prefetch     frames decoded ahead of the model and uploaded once
    scoring      one shard's outputs scored against HQ: its rows, its saved frames and DFMs
    metrics      the metric registry (PSNR, SSIM, VMAF, ...); vmaf: libvmaf through ffmpeg
    outputs      outputs made elsewhere, scored like a model (--outputs NAME=DIR)
    memory       peak memory of a block of work
    gather       the result tables from every finished part; tables: their schema and aggregation
    paper        the VOTES paper's Table 2, printed beside ours
    figures, html_report, dfm_qp   what `uvssm report` draws and writes
    basicsr_cpu  the field's CPU metric code, the reference the device metrics are timed against

The performance benchmarks are entry points, kept apart in `benchmarks/perf/` (`python -m benchmarks`).
"""
