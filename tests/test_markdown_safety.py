"""Model-derived text in summary.md and review.md (answers, check reasons, errors, tool
arguments, lane warnings) cannot form an image, a link or raw HTML: rendered with a real
Markdown renderer (markdown-it-py, CommonMark plus tables, with and without linkify),
no ``<img>``, ``<a>`` or model-made tag comes out, and the text is still there to read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from hbench.models import AttemptSummary, Latency, PromptScore, Scorecard, Telemetry, Throughput
from hbench.plugins.reporters.markdown import md_cell

HOSTILE = [
    "![x](http://host/p.png)",
    "![x][r]\n\n[r]: http://host/r.png",
    "[click me](https://evil.example/phish)",
    "<img src=http://host/i.png>",
    "<a href='http://host'>a</a>",
    "<http://host/auto>",
    "see http://host/bare.png and www.evil.example and o.marchetti@larkspur-saddles.example",
    "[ref]: http://host/defined",
    "`code` ** bold ** | pipe | \\](x)",
    "![x](<http://host/p.png>)",
]


def renderers() -> list[MarkdownIt]:
    """CommonMark with tables, and the same with ``http://``, ``www.`` and e-mail addresses
    linked as GitHub's autolink extension does (linkify-it-py, from the test extra's
    markdown-it-py[linkify]; bare ``name.tld`` is not linked there, so fuzzy links are off)."""
    gh = MarkdownIt("commonmark", {"linkify": True}).enable(["table", "linkify"])
    gh.linkify.set({"fuzzy_link": False})
    return [MarkdownIt("commonmark").enable("table"), gh]


def assert_inert(markdown: str) -> str:
    for md in renderers():
        rendered = md.render(markdown)
        assert "<img" not in rendered, rendered
        assert "<a " not in rendered and "<a>" not in rendered, rendered
        # every tag in the output is Markdown formatting the renderer made, never the model's HTML
        tags = set(re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", rendered))
        assert tags <= {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
                        "code", "pre", "ul", "li", "em", "strong", "br", "ol", "hr", "blockquote", "s", "del"}, tags
    return MarkdownIt("commonmark").enable("table").render(markdown)


@pytest.mark.parametrize("text", HOSTILE)
def test_md_cell_is_inert_and_keeps_the_text(text: str):
    cell = md_cell(text)
    html = assert_inert(f"| a |\n|---|\n| {cell} |\n\n- {cell}\n")
    assert "http://host" not in text or "http://host" in html  # still readable


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("![]()<>:/\\|`*_&#;@. \nxh") + ["http://h/p.png", "www.", "a@b.co"]),
                max_size=40).map("".join))
def test_md_cell_never_makes_a_link_image_or_tag(text: str):
    assert_inert(f"| a |\n|---|\n| {md_cell(text)} |\n\n- {md_cell(text)}\n")


def _card(answer: str, why: str, error: str | None, warning: str) -> Scorecard:
    attempts = [AttemptSummary(n=1, passed=False, runaway=None, error=error, answer=answer, tools=["read_file"],
                               wall_s=1.0, why=why)]
    ps = PromptScore(id="p1", category="files", core=True, runs=1, passes=0, pass_rate=0.0,
                     pass_hat_k={"1": 0.0}, agreement=1.0, correct_tool_rate=1.0, runaway_rate=0.0,
                     format_errors=0, errors=0, majority_pass=False, vibe=True, attempts=attempts)
    return Scorecard(
        lane={"name": "lane-a", "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
        suite={"name": "s", "version": "1", "sha256": "0" * 64, "fixtures_sha256": "1" * 64},
        runs=1, core_pass=0, core_n=1, pass_rate=0.0, pass_rate_ci95=[0.0, 0.79], pass_hat_k={"1": 0.0},
        consistency=1.0, runaway_rate=0.0, correct_tool_rate=1.0, format_error_rate=0.0, rankable=True,
        gate={"passed": True, "failed": [], "reason": ""}, throughput=Throughput(tok_s=5.0),
        latency=Latency(1.0, 1.0, 1.0), telemetry=Telemetry(), prompts=[ps], warnings=[warning],
        provenance={"hbench_version": "0.1.0", "started_at": "", "finished_at": "", "host": {}, "plugins": {}})


@pytest.mark.parametrize("reporter", ["md", "review"])
def test_reports_render_no_image_or_link_from_model_text(tmp_path: Path, reporter: str):
    from hbench.plugin_manager import get_registries

    evil = " ".join(HOSTILE).replace("\n", " ")
    card = _card(answer=evil, why=f"expected one of ['42'], got {evil[:200]}",
                 error=f"HTTP 400: {evil}", warning=f"tool call read_file({{'path': '{evil}'}}) odd")
    (path,) = get_registries().reporters.get(reporter).write([card], tmp_path, {"suite": None})
    text = path.read_text(encoding="utf-8")
    html = assert_inert(text)
    assert "host/p.png" in html  # the model's text is shown, as text
