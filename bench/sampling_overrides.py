"""`SamplingConfig` fields set from the command line ("key=value"), for the benchmarks that compare sampler
settings (`bench/compare/vista_budget_train.py --sampling`, `bench/step_ab.py --variants`)."""

from __future__ import annotations

import dataclasses


def with_sampling(config, items: list[str]):
    """`config` (a TrainConfig) with each "key=value" of `items` set in its sampling, parsed as the field's type:
    a tuple from comma-separated ints ("proposal_samples=48,24"), a bool from "True"/"False"."""
    sampling = config.sampling
    for item in items:
        key, _, value = item.partition("=")
        if not hasattr(sampling, key):
            raise SystemExit(f"{item}: SamplingConfig has no field {key!r}")
        kind = type(getattr(sampling, key))
        if kind is tuple:
            parsed = tuple(int(v) for v in value.split(","))
        else:
            parsed = value == "True" if kind is bool else kind(value)  # bool("False") would be True
        sampling = dataclasses.replace(sampling, **{key: parsed})
    return dataclasses.replace(config, sampling=sampling)
