"""Rendering content written for the test into a project's own campaigns/ and templates/:
Markdown, placeholders, subjects, CTA targets, and broken or missing templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurture import links
from nurture.content.campaigns import load_campaign
from nurture.content.rendering import Renderer
from nurture.errors import ContentError
from tests.support.factories import make_config, recipient


def write_email(path: Path, body: str, **front: str) -> Path:
    front = {"subject": "A test subject", "preheader": "A test preheader", **front}
    lines = ["---", *(f"{key}: {value}" for key, value in front.items()), "---", body]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def scratch(tmp_path):
    """A config whose campaigns/ and templates/ are copies we may change."""
    config = make_config(tmp_path)  # the factory copies campaigns/ and templates/
    return config


def prepare_scratch(config, body: str, **front: str):
    folder = config.campaigns_dir / "scratch"
    write_email(folder / "01-test.md", body, **front)
    (folder / "campaign.yaml").write_text(
        "title: Scratch\nsteps:\n  - file: 01-test.md\n    delay_days: 0\n", encoding="utf-8"
    )
    campaign = load_campaign(folder)
    renderer = Renderer(config)
    return renderer, renderer.prepare_step(campaign, campaign.steps[0])


def test_raw_html_in_markdown_is_not_passed_through(scratch):
    body = 'Hello <script>alert(1)</script> and <b onclick="x()">bold</b>.\n\n<iframe src="https://evil.example"></iframe>\n\n[click](javascript:alert(1))\n'
    _, prepared = prepare_scratch(scratch, body, article="some-article")
    out = prepared.render(recipient(scratch))
    assert "<script>alert(1)</script>" not in out.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out.html
    assert "<iframe" not in out.html and 'onclick="x()"' not in out.html
    assert 'href="javascript:' not in out.html


def test_markdown_body_becomes_text_with_links_kept(scratch):
    body = (
        "Read [our article](https://www.example.com/articles/a) today.\n\n"
        "- first point\n- second point\n\n"
        "1. one\n2. two\n\n"
        "Bare https://www.example.com/x here, welcome from {{ practice_name }}.\n"
    )
    _, prepared = prepare_scratch(scratch, body, article="a")
    out = prepared.render(recipient(scratch))
    assert "Read our article (https://www.example.com/articles/a) today." in out.text
    assert "- first point\n- second point" in out.text
    assert "1. one\n2. two" in out.text
    assert f"welcome from {scratch.practice.name}." in out.text
    assert f"welcome from {scratch.practice.name}." in out.html
    assert '<a href="https://www.example.com/articles/a"' in out.html
    assert "<li>first point</li>" in out.html


def test_stage_two_syntax_in_content_stays_literal(scratch):
    body = "A literal [[ first_name ]] and [% if x %] and [# c #] stay as written.\n"
    _, prepared = prepare_scratch(scratch, body, subject="Subject with [[ first_name ]] in it")
    out = prepared.render(recipient(scratch, first_name="Kim"))
    assert "A literal [[ first_name ]] and [% if x %] and [# c #] stay as written." in out.text
    assert "A literal [[ first_name ]] and [% if x %] and [# c #] stay as written." in out.html
    assert out.subject == "Subject with [[ first_name ]] in it"
    assert "literal Kim" not in out.html


def test_body_may_use_only_practice_name(scratch):
    with pytest.raises(ContentError) as caught:
        prepare_scratch(scratch, "Line one.\n\nHi {{ first_name }}!\n")
    path = scratch.campaigns_dir / "scratch" / "01-test.md"
    # front matter is 4 lines (---, subject, preheader, ---): body line 1 is file line 5, line 3 is 7
    assert f"{path}:7:" in str(caught.value)
    assert "practice_name" in str(caught.value)


def test_subject_line_breaks_are_removed(scratch):
    _, prepared = prepare_scratch(scratch, "Body.\n", subject='"Two\\r\\nBcc: x@example.com"')
    envelope = prepared.envelope("d", recipient(scratch), {})
    assert envelope.subject == "Two Bcc: x@example.com"


def test_cta_targets(scratch):
    _, booking = prepare_scratch(scratch, "Body.\n", cta="Book", cta_target="booking")
    assert booking.cta_url == scratch.practice.booking_url
    _, article = prepare_scratch(scratch, "Body.\n", article="the-slug")
    assert article.cta_url == links.article_url(scratch, "the-slug")
    assert "Read the full article" in article.render(recipient(scratch)).text
    _, url = prepare_scratch(scratch, "Body.\n", cta_url="https://www.example.com/x")
    assert url.cta_url == "https://www.example.com/x"
    _, none = prepare_scratch(scratch, "Body.\n")
    assert none.cta_url is None
    with pytest.raises(ContentError, match="cta_target is 'article'"):
        prepare_scratch(scratch, "Body.\n", cta_target="article")


def test_mjml_error_names_the_template(scratch):
    layout = scratch.templates_dir / "layout.mjml"
    layout.write_text(layout.read_text().replace("</mj-body>", ""), encoding="utf-8")
    with pytest.raises(ContentError) as caught:
        prepare_scratch(scratch, "Body.\n")
    assert str(layout) in str(caught.value) and "MJML" in str(caught.value)


def test_unknown_mjml_tag_is_an_error(scratch):
    layout = scratch.templates_dir / "layout.mjml"
    layout.write_text(
        layout.read_text().replace("</mj-wrapper>", "<mj-bogus>x</mj-bogus></mj-wrapper>"), encoding="utf-8"
    )
    with pytest.raises(ContentError, match="mj-bogus"):
        prepare_scratch(scratch, "Body.\n")


def test_missing_template_is_a_content_error(scratch):
    (scratch.templates_dir / "partials" / "footer.mjml").unlink()
    with pytest.raises(ContentError, match="footer.mjml: template not found"):
        prepare_scratch(scratch, "Body.\n")
