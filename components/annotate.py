"""KFP component: label unlabelled texts with a teacher (:func:`nerwheel.stages.annotate.annotate`)."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Metrics, Output

from nerwheel.components.images import image

__all__ = ["annotate", "run"]


def run(*, texts_uri: str, teacher: str, llm_endpoint: str, llm_model: str, out_path: str,
        report_path: str) -> dict[str, float]:
    """Label the texts at ``texts_uri`` (empty = bundled sample traffic) with the ``kb`` or ``llm`` teacher.

    Returns the scalars the component logs.
    """
    from nerwheel.components.data import read_dataset, resolve_uri, write_dataset
    from nerwheel.components.report import Report, bar_chart
    from nerwheel.stages.annotate import annotate, make_teacher

    texts = read_dataset(resolve_uri(texts_uri, "texts"), format="text")
    teacher_obj = make_teacher(teacher, endpoint=llm_endpoint or None, model=llm_model or None)
    result = annotate(texts.records, teacher_obj)
    write_dataset(out_path, result.records, rejects=texts.rejects)
    labels: dict[str, int] = {}
    for rec in result.records:
        for ent in rec.entities:
            labels[ent.label] = labels.get(ent.label, 0) + 1
    Report(f"annotate: {teacher} teacher").paragraph(texts.summary()).heading("Entities per label").raw(
        bar_chart(dict(sorted(labels.items())))).write(report_path)
    return {"texts": float(len(texts.records)), "texts_rejected": float(len(texts.rejects)),
            "records": float(len(result.records)), "entities": float(sum(labels.values()))}


@dsl.component(base_image=image("annotate"), install_kfp_package=False)
def annotate(
    texts_uri: str,
    teacher: str,
    llm_endpoint: str,
    llm_model: str,
    annotated: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Label unlabelled texts with the knowledge-base or LLM teacher.

    Args:
        texts_uri: plain-text lines (local path or s3:// URI); empty = the bundled sample traffic.
        teacher: ``kb`` (gazetteer + rules, no network) or ``llm`` (an OpenAI-compatible endpoint;
            its API key comes from the ``nerwheel-llm`` secret as NERWHEEL_LLM_API_KEY).
        llm_endpoint: base URL of the OpenAI-compatible server (``llm`` only).
        llm_model: model name on that server (``llm`` only).

    Returns:
        annotated: the labelled records (Dataset folder: records.jsonl, rejects.jsonl); metrics: counts; report: HTML with label counts.
    """
    from nerwheel.components.annotate import run

    scalars = run(texts_uri=texts_uri, teacher=teacher, llm_endpoint=llm_endpoint, llm_model=llm_model,
                  out_path=annotated.path, report_path=report.path)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    annotated.metadata["teacher"] = teacher
