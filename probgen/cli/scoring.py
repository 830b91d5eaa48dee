"""How ``fit`` and ``eval`` score a model: its log-likelihood where it has one, else the
likelihood-free metrics of its samples (what ``probgen run`` reports for the same model)."""

from __future__ import annotations

from typing import Any

__all__ = ["implicit_scores", "samples_for", "scorable", "score", "score_implicit"]


def scorable(model: Any) -> bool:
    """Whether the model has a log-likelihood to report."""
    return model.density != "implicit"  # unnormalized models are scored with their estimated log Z


def samples_for(model: Any, requested: int | None) -> int | None:
    """Importance samples per example: as requested, else 1000 for a lower-bound model."""
    return requested or (1000 if model.density == "lower_bound" else None)


def score(model: Any, data: Any, split: str, num_samples: int | None, distributed: bool = False) -> dict[str, Any]:
    import probgen as pg

    result = pg.log_likelihood(model, data, num_samples=samples_for(model, num_samples), distributed=distributed)
    print(f"{split}: {result} ({result.num_examples} examples)")
    return {"split": split, **result.as_dict()}


def score_implicit(model: Any, data: Any, split: str, tune: Any, seed: int) -> dict[str, Any]:
    """An implicit model's likelihood-free metrics on (at most ``METRIC_SAMPLES`` examples of)
    ``data``, from as many samples drawn with ``seed``, as ``probgen run`` computes them; the
    Parzen bandwidth is chosen on ``tune`` (another split) when there is one."""
    from probgen.experiments.runner import implicit_metrics
    from probgen.inference.sample_metrics import METRIC_SAMPLES

    x = data.x[:METRIC_SAMPLES]
    metrics = implicit_metrics(model, data, tune, seed)  # what `probgen run` reports for a job
    print(
        f"{split}: MMD² {metrics['mmd2']:.4g} (permutation p {metrics['mmd_p_value']:.3g}), "
        f"C2ST accuracy {metrics['c2st_accuracy']:.4f} (p {metrics['c2st_p_value']:.3g}), "
        f"precision {metrics['precision']:.4f}, recall {metrics['recall']:.4f} "
        f"[{METRIC_SAMPLES} samples against {len(x)} {split} examples; implicit: no likelihood]"
    )
    if "parzen_nats" in metrics:
        print(f"{split}: Parzen log p {metrics['parzen_nats']:.4f} nats/example (a weak estimate, not a likelihood)")
    shape = {"num_examples": len(x), "num_dims": model.num_dims, "num_samples": METRIC_SAMPLES}
    return {"split": split, "kind": "implicit", "method": "sample_metrics", **shape, **metrics}


def implicit_scores(model: Any, splits: Any, seed: int) -> list[dict[str, Any]]:
    """Metrics on the held-out parts (each tuned on another: test on val, val on train)."""
    tunes = {"val": splits.train, "test": splits.val if splits.val is not None else splits.train}
    return [score_implicit(model, data, name, tunes[name], seed) for name, data in splits.parts() if name != "train"]


# ----------------------------------------------------------------------------- output directories
