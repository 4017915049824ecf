"""Production step: which model is live, decided once at the start of a run
(:func:`nerwheel.serving.production.find_production`).

The DAG branches on it: with a production model the shards run the feedback loop
(model vs teacher), without one they label every text. Deciding once means every
shard diffs against the same version, even if a deploy lands while the run is going.
"""

__all__ = ["run"]


def run(*, production_model_uri: str, repository_uri: str, model_name: str, production_from_repository: bool,
        record_path: str) -> str:
    """Write the production record ``{uri, how, note}`` to ``record_path``; return the model's URI ("" = none)."""
    from nerwheel.components.data import write_json
    from nerwheel.serving.production import find_production

    production = find_production(production_model_uri, repository_uri, model_name,
                                 from_repository=production_from_repository)
    write_json(record_path, production.to_dict())
    return production.uri or ""
