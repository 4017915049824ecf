"""Typed settings of one OpenAI-compatible endpoint.

The API key is deliberately not a field: it is read from the environment
(``NERWHEEL_LLM_API_KEY``, then ``OPENAI_API_KEY``) when the client starts, so
it never lands in a command line, a config file, a KFP parameter or a log.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["API_KEY_ENV", "LLMConfig", "api_key_from_env"]

API_KEY_ENV: tuple[str, ...] = ("NERWHEEL_LLM_API_KEY", "OPENAI_API_KEY")


def api_key_from_env(names: tuple[str, ...] = API_KEY_ENV) -> str | None:
    """The first non-empty API key among ``names`` (local servers need none)."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


class LLMConfig(BaseModel):
    """One chat-completions endpoint and how hard to push it.

    ``structured`` picks JSON-schema constrained output: ``auto`` sends
    ``response_format`` and falls back to prompt-only output (with robust JSON
    extraction) the first time the server refuses it; ``json_schema`` always
    sends it; ``off`` never does.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="Server root, e.g. http://127.0.0.1:8080/v1 (a trailing /v1 is optional)")
    model: str = Field(description="Model name sent in every request")
    max_in_flight: int = Field(4, ge=1, description="Requests awaiting a response at once")
    requests_per_second: float | None = Field(None, gt=0, description="Start at most this many requests per second")
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0, description="Retries after the first try on 429, 5xx and timeouts")
    backoff_base: float = Field(0.5, ge=0, description="First backoff in seconds; doubles per retry, with full jitter")
    backoff_max: float = Field(30.0, ge=0)
    max_retry_after_s: float = Field(60.0, ge=0, description="Longest Retry-After honoured; a longer one is clamped "
                                     "(and logged), so one server header cannot park a run for hours")
    structured: Literal["auto", "json_schema", "off"] = "auto"
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(1024, ge=1)
    price_prompt_per_1k: float = Field(0.0, ge=0, description="Cost per 1,000 prompt tokens (any currency)")
    price_completion_per_1k: float = Field(0.0, ge=0, description="Cost per 1,000 completion tokens")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {v!r}")
        return v.rstrip("/")

    @property
    def chat_url(self) -> str:
        root = self.base_url if self.base_url.endswith("/v1") else f"{self.base_url}/v1"
        return f"{root}/chat/completions"
