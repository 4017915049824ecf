"""The LLM options shared by every command that can call an LLM (annotate, synthesize, feedback).

One decorator adds the flags; :func:`llm_configs` turns them into :class:`~nerwheel.llm.config.LLMConfig`
objects. The API key is never a flag: it comes from ``NERWHEEL_LLM_API_KEY`` (or ``OPENAI_API_KEY``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["llm_configs", "llm_options", "open_cache"]


def llm_options(f: Any) -> Any:
    opts = [
        click.option("--llm-url", envvar="NERWHEEL_LLM_URL", default=None,
                     help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1 (env NERWHEEL_LLM_URL)."),
        click.option("--llm-model", "llm_models", multiple=True, envvar="NERWHEEL_LLM_MODEL",
                     help="Model name; repeat for several LLM teachers (env NERWHEEL_LLM_MODEL)."),
        click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
                     help="LLM requests in flight at once."),
        click.option("--rps", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="At most this many LLM requests started per second."),
        click.option("--max-tokens", type=click.IntRange(min=1), default=1024, show_default=True,
                     help="Longest LLM answer, in tokens. An answer cut off there: annotation fails its record "
                     "(salvaged entities kept for review); embed pairs keep its complete questions, the cut one "
                     "rejected."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
                     help="Read timeout per LLM request, seconds."),
        click.option("--retries", type=click.IntRange(min=0), default=5, show_default=True,
                     help="Retries per LLM request after a timeout, connection error, 429 or 5xx (with backoff)."),
        click.option("--max-retry-after", type=click.FloatRange(min=0), default=60.0, show_default=True,
                     help="Longest Retry-After (seconds) a 429/503 answer may impose; longer ones are clamped."),
        click.option("--structured", type=click.Choice(["auto", "json_schema", "off"]), default="auto",
                     show_default=True, help="Send response_format json_schema (auto: fall back if refused)."),
        click.option("--price-prompt", type=float, default=0.0, help="Cost per 1k prompt tokens, for the report."),
        click.option("--price-completion", type=float, default=0.0, help="Cost per 1k completion tokens."),
        click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="SQLite response cache (default: llm-cache.sqlite beside --out); reruns never call twice."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def llm_configs(kw: dict[str, Any]) -> list[Any]:
    """One config per ``--llm-model``; empty without ``--llm-url``."""
    from nerwheel.llm.config import LLMConfig

    if not kw["llm_url"]:
        return []
    if not kw["llm_models"]:
        raise click.UsageError("--llm-url needs --llm-model (the model name the server expects)")
    return [LLMConfig(base_url=kw["llm_url"], model=m, max_in_flight=kw["concurrency"],
                      requests_per_second=kw["rps"], max_tokens=kw["max_tokens"], read_timeout=kw["timeout"],
                      max_retries=kw["retries"], max_retry_after_s=kw.get("max_retry_after", 60.0),
                      structured=kw["structured"],
                      price_prompt_per_1k=kw["price_prompt"], price_completion_per_1k=kw["price_completion"])
            for m in kw["llm_models"]]


def open_cache(kw: dict[str, Any], out: Path) -> Any:
    """The response cache named by ``--cache``, or ``llm-cache.sqlite`` beside the output."""
    from nerwheel.llm.cache import ResponseCache

    return ResponseCache(kw["cache_path"] or out.parent / "llm-cache.sqlite")
