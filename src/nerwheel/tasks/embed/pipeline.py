"""The embedding task as a Kubeflow Pipelines v2 DAG, on the same machinery as the other tasks'.

    split -> pairs -> expand (or pass the backbone through) -> train -> evaluate -> gate -> [promoted] export -> deploy

The five task-specific components below are thin wrappers over
:mod:`nerwheel.tasks.embed.steps`; gate, export and deploy are the shared
components, attached by
:func:`~nerwheel.pipelines.flywheel.gate_and_ship` as in every task's DAG
(their steps read the task from the metrics or the model: the gate decides on
nDCG@10 with the usual policy, the export writes the encoder with pooling and
normalisation in the graph, deploy probes served == offline embeddings).
Expansion is a step that passes the backbone through unchanged
when ``expand_words`` is 0 and no ``words_uri`` is given, so the DAG stays one
line and ``train`` always reads its base from one artifact. Cluster settings
(:class:`~nerwheel.pipelines.flywheel.Platform`: GPU for train, S3 and LLM
credentials as env) are attached as for the other tasks.
"""

from kfp import dsl, kubernetes
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from nerwheel.components.images import component
from nerwheel.stages.gate import GatePolicy

__all__ = ["DISPLAY_NAMES", "PIPELINE_NAME", "STAGES", "build_pipeline", "embed_evaluate", "embed_expand",
           "embed_pairs", "embed_split", "embed_train", "pipeline"]

PIPELINE_NAME = "nerwheel-embed"
#: The DAG's tasks in order (KFP names tasks after their component functions).
STAGES = ("embed-split", "embed-pairs", "embed-expand", "embed-train", "embed-evaluate", "gate", "export", "deploy")
_GATE = GatePolicy()

DISPLAY_NAMES = {
    "split": "Split the corpus into passages",
    "pairs": "Write queries for the passages",
    "expand": "Expand the tokenizer (or pass the backbone through)",
    "train": "Fine-tune the encoder (GPU)",
    "evaluate": "Evaluate candidate and production (nDCG@10)",
    "gate": "Gate: does the candidate beat production (nDCG@10)?",
}


@component("train")
def embed_split(corpus_uri: str, max_tokens: int, ratio: str, seed: int, tokenizer: str, passages: Output[Dataset],
                metrics: Output[Metrics], report: Output[HTML]) -> None:
    """Split raw text into passages that fit the encoder, train/val by a seeded hash.

    Args:
        corpus_uri: text file or folder (local path or s3:// URI); empty = the bundled sample corpus.
        max_tokens: longest passage in tokens of the tokenizer.
        ratio: train:val proportion, e.g. 8:2.
        seed: seed of the train/val split.
        tokenizer: whose tokenizer counts tokens (e5-small or a model folder).

    Returns:
        passages: corpus.jsonl (passages with their split), split.json, rejects.jsonl.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.tasks.embed.steps import split

    task_logging()
    for name, value in split(corpus_uri=corpus_uri, max_tokens=max_tokens, ratio=ratio, seed=seed,
                             tokenizer=tokenizer, split_path=passages.path, report_path=report.path).items():
        metrics.log_metric(name, value)


@component("train")
def embed_pairs(passages: Input[Dataset], teacher: str, queries_per_passage: int, seed: int, llm_endpoint: str,
                llm_model: str, llm_max_tokens: int, pairs: Output[Dataset], metrics: Output[Metrics],
                report: Output[HTML]) -> None:
    """Write queries for every passage: an LLM (versioned prompt, cached) or inverse cloze (no LLM).

    Args:
        passages: the split task's output.
        teacher: llm or ict.
        queries_per_passage: questions per passage.
        seed: seed of the inverse-cloze sentence choice.
        llm_endpoint: OpenAI-compatible base URL (teacher=llm).
        llm_model: model name on that server (teacher=llm).
        llm_max_tokens: longest LLM answer.

    Returns:
        pairs: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv, qrels/val.tsv), pairs.json, rejects.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.tasks.embed.steps import pairs as run

    task_logging()
    for name, value in run(split_path=passages.path, teacher=teacher, queries_per_passage=queries_per_passage,
                           seed=seed, llm_endpoint=llm_endpoint, llm_model=llm_model, llm_max_tokens=llm_max_tokens,
                           pairs_path=pairs.path, report_path=report.path).items():
        metrics.log_metric(name, value)


@component("train")
def embed_expand(pairs: Input[Dataset], backbone: str, expand_words: int, words_uri: str, base: Output[Model],
                 metrics: Output[Metrics], report: Output[HTML]) -> None:
    """Add domain words to the backbone's tokenizer (rows = mean of the old sub-tokens), or pass it through.

    Args:
        pairs: the pairs task's output (training text to mine words from).
        backbone: e5-small or a model folder.
        expand_words: mine and add this many words; 0 (with no words_uri) = no expansion.
        words_uri: reviewed words, one per line (local or s3://); empty = mine them.

    Returns:
        base: the expanded model, or a note naming the backbone to train from.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.tasks.embed.steps import expand

    task_logging()
    for name, value in expand(pairs_path=pairs.path, backbone=backbone, expand_words=expand_words,
                              words_uri=words_uri, base_path=base.path, report_path=report.path).items():
        metrics.log_metric(name, value)


@component("train")
def embed_train(pairs: Input[Dataset], base: Input[Model], backbone: str, epochs: int, seed: int, overrides: str,
                model: Output[Model], metrics: Output[Metrics], report: Output[HTML]) -> None:
    """Fine-tune the bi-encoder (MultipleNegativesRankingLoss; best checkpoint by validation nDCG@10).

    Args:
        pairs: the pairs task's output.
        base: the expand task's output.
        backbone: the backbone the base was made from.
        epochs: most epochs (early stopping may end sooner).
        seed: training seed.
        overrides: more settings of `nerwheel embed train --set`, key=value separated by ';'.

    Returns:
        model: a sentence-transformers folder plus nerwheel.json (task embed) and metrics.jsonl.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.tasks.embed.steps import train

    task_logging()
    for name, value in train(pairs_path=pairs.path, base_path=base.path, backbone=backbone, epochs=epochs, seed=seed,
                             overrides=overrides, model_path=model.path, report_path=report.path).items():
        metrics.log_metric(name, value)
    model.metadata["framework"] = "sentence-transformers"
    model.metadata["task"] = "embed"


@component("evaluate")
def embed_evaluate(model: Input[Model], pairs: Input[Dataset], eval_uri: str, production_model_uri: str,
                   repository_uri: str, model_name: str, production_from_repository: bool, metrics: Output[Metrics],
                   scores: Output[Artifact], production_scores: Output[Artifact], report: Output[HTML]) -> float:
    """Score candidate and production on the same queries: nDCG@10 (graded), MRR@10, recall@1/5/10/100.

    Args:
        model: the fine-tuned encoder.
        pairs: the pairs task's output (its held-out validation pairs are the eval set when eval_uri is empty).
        eval_uri: a BEIR folder with qrels/test.tsv (local or s3://); empty = the validation pairs.
        production_model_uri: the production model; empty = the version live in repository_uri.
        repository_uri: the Triton model repository.
        model_name: the Triton model name.
        production_from_repository: look up the live version when production_model_uri is empty.

    Returns:
        The candidate's nDCG@10; scores: its metrics.json; production_scores: the production record.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.tasks.embed.steps import evaluate

    task_logging()
    values = evaluate(model_path=model.path, pairs_path=pairs.path, eval_uri=eval_uri,
                      production_model_uri=production_model_uri, repository_uri=repository_uri, model_name=model_name,
                      production_from_repository=production_from_repository, scores_path=scores.path,
                      production_scores_path=production_scores.path, report_path=report.path)
    for name, value in values.items():
        metrics.log_metric(name, value)
    return values["ndcg_at_10"]


def build_pipeline(platform=None):  # noqa: ANN001, ANN201 - a Platform, a kfp GraphComponent
    """The embedding task's DAG with ``platform``'s cluster settings attached."""
    from nerwheel.gitops import DEFAULT_OVERLAY_FILE
    from nerwheel.pipelines.flywheel import DEFAULT_REPOSITORY, Platform, gate_and_ship, tail_args

    p = platform or Platform()

    @dsl.pipeline(name=PIPELINE_NAME, description="nerwheel embeddings: split -> pairs (LLM or inverse cloze) -> "
                  "(expand) -> train -> evaluate -> gate (nDCG@10) -> (if promoted) ONNX export -> Triton deploy.")
    @tail_args(  # the Args lines of production_model_uri ... gitops_path: TAIL_ARGS, and the gate's words here
        min_delta="Gate: required rise of nDCG@10.",
        max_type_drop="Gate: largest allowed fall of recall@10 / MRR@10 (the other metrics checked).",
        noise_spans="Gate: a metric may fall by max(max_type_drop, noise_spans / queries).",
        min_support="Gate: opt-out (metrics are checked when there are at least this many queries).",
    )
    def embed_flywheel(
        corpus_uri: str = "",
        max_tokens: int = 256,
        ratio: str = "8:2",
        split_seed: int = 0,
        teacher: str = "ict",
        queries_per_passage: int = 3,
        llm_endpoint: str = "",
        llm_model: str = "",
        llm_max_tokens: int = 512,
        backbone: str = "e5-small",
        expand_words: int = 0,
        words_uri: str = "",
        epochs: int = 3,
        train_seed: int = 42,
        train_overrides: str = "",
        eval_uri: str = "",
        production_model_uri: str = "",
        production_from_repository: bool = True,
        min_delta: float = _GATE.min_delta,
        max_type_drop: float = _GATE.max_type_drop,
        noise_spans: float = _GATE.noise_spans,
        min_support: int = _GATE.min_support,
        quantize: str = "",
        model_name: str = "nerwheel-embed",
        repository_uri: str = DEFAULT_REPOSITORY,
        triton_url: str = "",
        gitops_repo_url: str = "",
        gitops_path: str = DEFAULT_OVERLAY_FILE,
    ) -> None:
        """One turn of the embedding task.

        Args:
            corpus_uri: Raw text file or folder (local or s3://); empty = the bundled sample corpus.
            max_tokens: Longest passage in tokens of the backbone's tokenizer.
            ratio: train:val proportion of passages.
            split_seed: Seed of the train/val split and of inverse cloze.
            teacher: Who writes the queries: ict (inverse cloze, no LLM) or llm.
            queries_per_passage: Queries per passage.
            llm_endpoint: Base URL of the OpenAI-compatible server (teacher=llm).
            llm_model: Model name on that server (teacher=llm).
            llm_max_tokens: Longest LLM answer per passage.
            backbone: Encoder: e5-small, or a sentence-transformers / Hugging Face model folder.
            expand_words: Mine and add this many domain words to the tokenizer; 0 = no expansion.
            words_uri: Reviewed domain words (one per line) to add instead of mined ones.
            epochs: Most training epochs.
            train_seed: Training seed.
            train_overrides: More training settings, key=value separated by ';' (nerwheel embed train --set).
            eval_uri: BEIR folder (qrels/test.tsv) both models are scored on; empty = this run's validation pairs.
        """
        t_split = embed_split(corpus_uri=corpus_uri, max_tokens=max_tokens, ratio=ratio, seed=split_seed,
                              tokenizer=backbone)
        t_split.set_display_name(DISPLAY_NAMES["split"])
        t_split.set_caching_options(False)  # reads data by URI
        t_pairs = embed_pairs(passages=t_split.outputs["passages"], teacher=teacher,
                              queries_per_passage=queries_per_passage, seed=split_seed, llm_endpoint=llm_endpoint,
                              llm_model=llm_model, llm_max_tokens=llm_max_tokens)
        t_pairs.set_display_name(DISPLAY_NAMES["pairs"])
        kubernetes.use_secret_as_env(t_pairs, secret_name=p.llm_secret,
                                     secret_key_to_env={p.llm_secret_key: p.llm_env}, optional=True)
        t_expand = embed_expand(pairs=t_pairs.outputs["pairs"], backbone=backbone, expand_words=expand_words,
                                words_uri=words_uri)
        t_expand.set_display_name(DISPLAY_NAMES["expand"])
        t_train = embed_train(pairs=t_pairs.outputs["pairs"], base=t_expand.outputs["base"], backbone=backbone,
                              epochs=epochs, seed=train_seed, overrides=train_overrides)
        t_train.set_display_name(DISPLAY_NAMES["train"])
        p.gpu(t_train, 1)  # the embedding model trains in one process: one GPU
        t_eval = embed_evaluate(model=t_train.outputs["model"], pairs=t_pairs.outputs["pairs"], eval_uri=eval_uri,
                                production_model_uri=production_model_uri, repository_uri=repository_uri,
                                model_name=model_name, production_from_repository=production_from_repository)
        t_eval.set_display_name(DISPLAY_NAMES["evaluate"])
        t_eval.set_caching_options(False)
        tasks = [t_split, t_pairs, t_expand, t_train, t_eval]
        tasks += gate_and_ship(p, t_eval, t_train.outputs["model"], gate_name=DISPLAY_NAMES["gate"],
                               min_delta=min_delta, max_type_drop=max_type_drop, noise_spans=noise_spans,
                               min_support=min_support, metric="strict", quantize=quantize, model_name=model_name,
                               repository_uri=repository_uri, triton_url=triton_url,
                               gitops_repo_url=gitops_repo_url, gitops_path=gitops_path)
        # time limits and retries as the NER stages that do the same work (pairs: an LLM teacher, like annotate)
        for task, stage in zip(tasks, ("merge", "annotate", "merge", "train", "evaluate", "gate", "export", "deploy"),
                               strict=True):
            p.limits(task, stage)
            p.storage_access(task)

    return embed_flywheel


#: The pipeline with the default Platform (what ``nerwheel compile --task embed`` and ``run --task embed`` use).
pipeline = build_pipeline()
