"""What the embedding task's KFP components run (plain functions; the components in :mod:`.pipeline` are thin).

Artifacts are folders, as everywhere in nerwheel: the split artifact is what
``embed split`` writes (``corpus.jsonl``, ``split.json``, ``rejects.jsonl``),
the pairs artifact a BEIR folder (plus ``pairs.json``, ``rejects.jsonl``),
the base artifact either an expanded model or a note that the backbone is
used as it is, the model a sentence-transformers folder. An empty corpus URI
means the bundled sample corpus (``nerwheel/data/sample/embed_corpus.txt``).
Gate, export and deploy are the shared steps: they read the task from the
metrics or the model.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nerwheel.errors import ConfigError
from nerwheel.storage import write_json

__all__ = ["BASE_FILE", "SAMPLE_CORPUS", "evaluate", "expand", "pairs", "split", "train"]

SAMPLE_CORPUS = "embed_corpus.txt"
BASE_FILE = "base.json"  # in the base artifact: {"model": <name or "artifact">, "expanded": bool, ...}


@contextlib.contextmanager
def _local(uri: str) -> Iterator[Path]:
    """A local path for ``uri`` (a file or folder, local or ``s3://``); empty = the bundled sample corpus."""
    from nerwheel import storage

    if not uri.strip():
        from nerwheel.data.sample import sample_path

        yield sample_path(SAMPLE_CORPUS)
        return
    if not storage.is_s3(uri):
        yield Path(uri)
        return
    store = storage.get_storage()
    if store.exists(uri):  # one object
        from nerwheel.components.data import local_copy

        with local_copy(uri) as path:
            yield path
        return
    with store.local_dir(uri) as folder:  # a prefix of files
        yield Path(folder)


def _numbers(tree: dict[str, Any]) -> dict[str, float]:
    from nerwheel.components.steps import flatten_metrics

    return flatten_metrics(tree, bools=False)


def _quiet() -> None:
    from nerwheel.tasks.embed.model import quiet_transformers

    quiet_transformers()  # a task's log is read by people: no loading bars, no per-load weight reports


def split(*, corpus_uri: str, max_tokens: int, ratio: str, seed: int, tokenizer: str, split_path: str,
          report_path: str) -> dict[str, float]:
    """Raw text -> passages (train/val) in the folder ``split_path``; returns the report's counts."""
    _quiet()
    from nerwheel.components.report import Report
    from nerwheel.tasks.embed.model import token_counter
    from nerwheel.tasks.embed.passages import SplitConfig, split_corpus, write_split

    cfg = SplitConfig(max_tokens=max_tokens, ratio=ratio, seed=seed)
    with _local(corpus_uri) as path:
        result = split_corpus([path], token_counter(tokenizer), cfg, tokenizer_name=tokenizer)
    write_split(result, split_path)
    report = result.report.to_dict()
    Report("embed split: passages").paragraph(result.report.summary()).pre(
        json.dumps(report, ensure_ascii=False, indent=2)).write(report_path)
    return _numbers({"passages": report["passages"], "sentences": report["sentences"], "lines": report["lines"]})


def pairs(*, split_path: str, teacher: str, queries_per_passage: int, seed: int, llm_endpoint: str, llm_model: str,
          llm_max_tokens: int, pairs_path: str, report_path: str) -> dict[str, float]:
    """Queries for the passages (LLM or inverse cloze) -> a BEIR folder at ``pairs_path``."""
    _quiet()
    from nerwheel.components.report import Report
    from nerwheel.tasks.embed.beir import read_corpus
    from nerwheel.tasks.embed.pairs import PairsConfig, make_pairs, write_pairs

    cfg = PairsConfig(teacher=teacher, queries_per_passage=queries_per_passage, seed=seed)  # type: ignore[arg-type]
    writer = None
    if teacher == "llm":
        if not (llm_endpoint.strip() and llm_model.strip()):
            raise ConfigError("teacher llm needs llm_endpoint and llm_model (pipeline parameters); or use ict",
                              field="teacher")
        from nerwheel.llm.cache import ResponseCache
        from nerwheel.llm.config import LLMConfig
        from nerwheel.tasks.embed.questions import QuestionWriter

        Path(pairs_path).mkdir(parents=True, exist_ok=True)
        writer = QuestionWriter(LLMConfig(base_url=llm_endpoint.strip(), model=llm_model.strip(),
                                          max_tokens=llm_max_tokens), k=queries_per_passage, prompt=cfg.prompt,
                                cache=ResponseCache(Path(pairs_path) / "llm-cache.sqlite"))
    result = make_pairs(read_corpus(split_path), cfg, writer=writer)
    write_pairs(result, pairs_path)
    r = result.report.to_dict()
    Report("embed pairs").paragraph(result.report.summary()).pre(json.dumps(r, ensure_ascii=False, indent=2)).write(
        report_path)
    return _numbers({"passages": {k: v for k, v in r["passages"].items() if k != "without"}, "queries": r["queries"],
                     "questions": {k: v for k, v in r["questions"].items() if k != "rejected"}})


def expand(*, pairs_path: str, backbone: str, expand_words: int, words_uri: str, base_path: str,
           report_path: str) -> dict[str, float]:
    """Tokenizer expansion before training, or (``expand_words`` 0 and no ``words_uri``) the backbone as it is.

    Words are ``words_uri`` (one per line, reviewed by a person) or, failing that, the ``expand_words`` best
    candidates mined from the training passages and queries (:func:`nerwheel.tasks.embed.expand.mine_words`).
    """
    _quiet()
    from nerwheel.components.report import Report
    from nerwheel.tasks.embed.beir import read_beir
    from nerwheel.tasks.embed.expand import expand_vocabulary, mine_words, read_words

    out = Path(base_path)
    out.mkdir(parents=True, exist_ok=True)
    if expand_words <= 0 and not words_uri.strip():
        write_json(out / BASE_FILE, {"model": backbone, "expanded": False})
        Report("embed expand: skipped").paragraph(f"no expansion: training starts from {backbone} as it is "
                                                  "(expand_words 0, no words_uri)").write(report_path)
        return {"words_added": 0.0}
    data = read_beir(pairs_path)
    train_q = set(data.qrels.get("train", {}))
    texts = [t for q, t in data.queries.items() if q in train_q] + [
        data.corpus[c] for grades in data.qrels.get("train", {}).values() for c in grades]
    if words_uri.strip():
        with _local(words_uri) as path:
            words = read_words(path)
        how = f"{len(words)} words from {words_uri}"
    else:
        words = [c.word for c in mine_words(backbone, texts, expand_words)]
        how = f"{len(words)} words mined from the training pairs (freq)"
    model_dir = out / "model"
    report = expand_vocabulary(backbone, words, model_dir, corpus=[*data.corpus.values(), *data.queries.values()])
    write_json(out / BASE_FILE, {"model": "model", "expanded": True, "backbone": backbone, "words": how})
    Report("embed expand").paragraph(how).paragraph(report.summary()).pre(
        json.dumps(report.to_dict(), ensure_ascii=False, indent=2)).write(report_path)
    return {"words_added": float(len(report.added)), "vocab_after": float(report.vocab_after)}


def _base_model(base_path: str, backbone: str) -> str:
    note = json.loads((Path(base_path) / BASE_FILE).read_text(encoding="utf-8"))
    return str(Path(base_path) / "model") if note.get("expanded") else (note.get("model") or backbone)


def train(*, pairs_path: str, base_path: str, epochs: int, seed: int, overrides: str, model_path: str,
          report_path: str, backbone: str = "e5-small") -> dict[str, float]:
    """Fine-tune the base (expanded model or backbone) on the pairs into ``model_path``."""
    _quiet()
    import yaml

    from nerwheel.components.report import Report, line_chart
    from nerwheel.tasks.embed.train import HISTORY_FILE, load_train_config
    from nerwheel.tasks.embed.train import train as run

    settings: dict[str, Any] = {}
    for item in (p.strip() for chunk in overrides.splitlines() for p in chunk.split(";")):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"train override {item!r}: expected key=value (keys of nerwheel embed train --set)",
                              field="train_overrides")
        if key.strip() in ("model", "epochs", "seed"):
            raise ConfigError(f"train override {item!r} sets {key.strip()}, which has its own pipeline parameter",
                              field="train_overrides")
        settings[key.strip()] = yaml.safe_load(raw)
    cfg = load_train_config(None, {**settings, "model": _base_model(base_path, backbone), "epochs": epochs,
                                   "seed": seed})
    out = Path(model_path)
    if out.exists() and not any(out.iterdir()):
        out.rmdir()  # KFP hands out an empty folder; train wants to create it
    run(cfg, pairs_path, out)
    card = json.loads((out / "nerwheel.json").read_text(encoding="utf-8"))
    m = card["metrics"]
    history = [json.loads(x) for x in (out / HISTORY_FILE).read_text(encoding="utf-8").splitlines() if x.strip()]
    rep = Report("embed train").key_values({"base": card["base"], "dimension": card["dimension"],
                                            "prompts": json.dumps(card["prompts"], ensure_ascii=False),
                                            "val nDCG@10": round(m["val"]["ndcg@10"], 4),
                                            "base val nDCG@10": round(m["base_val"]["ndcg@10"], 4),
                                            "beats base": m["beats_base"], "seconds": card["seconds"]})
    if history:
        rep.heading("Validation nDCG@10 per evaluation").raw(line_chart({"ndcg@10": [h["ndcg@10"] for h in history]},
                                                                        title="validation", x_label="evaluation"))
    rep.pre(json.dumps(card, ensure_ascii=False, indent=2)).write(report_path)
    return {"val_ndcg_at_10": float(m["val"]["ndcg@10"]), "base_val_ndcg_at_10": float(m["base_val"]["ndcg@10"]),
            "val_recall_at_10": float(m["val"]["recall@10"]), "steps": float(m["steps"]),
            "seconds": float(card["seconds"])}


def evaluate(*, model_path: str, pairs_path: str, eval_uri: str, production_model_uri: str, repository_uri: str,
             model_name: str, production_from_repository: bool, scores_path: str, production_scores_path: str,
             report_path: str, split: str = "val") -> dict[str, float]:
    """Score the candidate and production on the same BEIR set: ``eval_uri`` (its ``qrels/test.tsv``) or, when
    empty, the held-out validation pairs of this run (``qrels/val.tsv`` of the pairs)."""
    _quiet()
    from nerwheel import storage
    from nerwheel.serving.production import find_production
    from nerwheel.components.report import Report
    from nerwheel.tasks.embed.beir import read_beir
    from nerwheel.tasks.embed.evaluate import evaluate_model, load_for_evaluation, metrics_record

    production = find_production(production_model_uri, repository_uri, model_name,
                                 from_repository=production_from_repository)
    with contextlib.ExitStack() as stack:
        if eval_uri.strip():
            folder, which = stack.enter_context(_local(eval_uri)), "test"
        else:
            folder, which = Path(pairs_path), split
        data = read_beir(folder, [which])
        prod_model = None
        if production.uri is not None:  # loaded first: a production model that cannot run fails before any work
            prod_dir = stack.enter_context(storage.get_storage().local_dir(production.uri))
            prod_model = load_for_evaluation(str(prod_dir))
        candidate = metrics_record(evaluate_model(load_for_evaluation(model_path), data, which), data, which,
                                   model_path)
        prod_metrics = None
        if prod_model is not None:
            prod_metrics = metrics_record(evaluate_model(prod_model, data, which), data, which, production.uri or "")
    rows = [(k, v, (prod_metrics or {}).get("overall", {}).get(k, "n/a")) for k, v in candidate["overall"].items()]
    Report("evaluate: candidate and production").paragraph(
        f"{candidate['n_queries']} queries ({which} of {data.source}) against {candidate['n_corpus']} passages"
    ).paragraph(f"production: {production.note}").table(rows, ("metric", "candidate", "production")).write(
        report_path)
    write_json(scores_path, candidate)
    write_json(production_scores_path, {**production.to_dict(), "metrics": prod_metrics})
    return {k.replace("@", "_at_"): float(v) for k, v in candidate["overall"].items()} | {
        "n_queries": float(candidate["n_queries"])}

