"""`SamplingConfig` fields set from the command line ("key=value"), for the benchmarks that compare sampler
settings (`bench/compare/vista_budget_train.py --sampling`, `bench/step_ab.py --variants`)."""

from __future__ import annotations

import dataclasses


def _parsed(current, value: str):
    kind = type(current)
    if kind is tuple:
        return tuple(int(v) for v in value.split(","))
    return value == "True" if kind is bool else kind(value)  # bool("False") would be True


def with_sampling(config, items: list[str]):
    """`config` (a TrainConfig) with each "key=value" of `items` set in its sampling ("field.key=value": in its
    FieldConfig), parsed as the field's type: a tuple from comma-separated ints ("proposal_samples=48,24"), a bool
    from "True"/"False"."""
    sampling, field = config.sampling, config.field
    for item in items:
        key, _, value = item.partition("=")
        target = field if key.startswith("field.") else sampling
        key = key.removeprefix("field.")
        if not hasattr(target, key):
            raise SystemExit(f"{item}: {type(target).__name__} has no field {key!r}")
        changed = dataclasses.replace(target, **{key: _parsed(getattr(target, key), value)})
        sampling, field = (sampling, changed) if target is field else (changed, field)
    return dataclasses.replace(config, sampling=sampling, field=field)
