"""`nurture check`: every lint rule fires on a broken example, and the shipped content passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurture.content.campaigns import load_campaign, load_campaigns, load_email, newsletter_files
from nurture.content.checks import CheckReport, check_content, check_email
from nurture.content.rendering import Renderer
from nurture.content.rules import Finding
from tests.support.content_files import assert_finding, write_step
from tests.support.factories import make_config


def findings_for(config, path: Path) -> list[Finding]:
    report = check_content(config)
    return [finding for finding in report.findings if finding.path == path]


def break_template(config, relative: str, old: str, new: str = "") -> None:
    path = config.templates_dir / relative
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new), encoding="utf-8")


# -- the shipped content ------------------------------------------------------------------


def test_shipped_content_passes(config):
    report = check_content(config)
    assert report.findings == [], report.render()
    steps = sum(len(c.steps) for c in load_campaigns(config.campaigns_dir).values())
    expected = steps + len(newsletter_files(config.campaigns_dir)) + 2  # + confirmation, re-permission
    assert report.emails == report.passed == expected
    assert report.ok and report.exit_code == 0
    assert report.render() == f"all {expected} emails pass"


def test_shipped_content_passes_without_a_secret_key(tmp_path):
    config = make_config(tmp_path, environ={"NURTURE_SECRET_KEY": ""})
    assert config.secrets.secret_key is None
    assert check_content(config).ok


def test_check_email_on_one_newsletter(config):
    renderer = Renderer(config)
    for path in newsletter_files(config.campaigns_dir):
        source = load_email(path)
        assert (
            check_email(
                config, renderer, source, renderer.prepare_newsletter(source, f"newsletter:{path.stem}")
            )
            == []
        )
    bad = write_step(
        config,
        "Read [this](http://insecure.example.com/x).\n",
        name="01-news.md",
        campaign="newsletters",
        subject="x" * 90,
    )
    source = load_email(bad)
    found = check_email(config, renderer, source, renderer.prepare_newsletter(source, "newsletter:bad"))
    assert_finding(found, bad, 2, "subject is 90 characters")
    assert_finding(found, bad, 6, "http://insecure.example.com/x", "https://")


# -- one test per rule -----------------------------------------------------------------------


def test_report_lists_file_line_and_exits_1(config):
    path = write_step(config, "Body.\n", subject="y" * 79)
    report = check_content(config)
    assert not report.ok and report.exit_code == 1
    text = report.render()
    assert f"{path}:2: subject is 79 characters; keep it to 78 or fewer" in text.splitlines()
    assert text.splitlines()[-1].startswith("1 problem found;")


def test_rule_missing_template(config):
    missing = config.templates_dir / "newsletter.mjml"
    missing.unlink()
    report = check_content(config)
    assert_finding(report.findings, missing, None, "template not found")


def test_rule_missing_partial_template(config):
    missing = config.templates_dir / "partials" / "footer.mjml"
    missing.unlink()
    report = check_content(config)
    assert_finding(report.findings, missing, None, "template not found")
    assert report.passed == 1  # only the confirmation, which does not use that partial


def test_rule_missing_step_file(config):
    write_step(config, "Body.\n")
    spec = config.campaigns_dir / "broken" / "campaign.yaml"
    spec.write_text(spec.read_text() + "  - file: 02-nowhere.md\n    delay_days: 2\n", encoding="utf-8")
    report = check_content(config)
    assert_finding(report.findings, spec, 5, "02-nowhere.md does not exist")


def test_rule_every_step_renders(config):
    path = write_step(config, "First line.\n\nHello {{ first_name }}.\n")
    assert_finding(findings_for(config, path), path, 8, "first_name", "practice_name")


def test_rule_mjml_error_names_template(config):
    break_template(config, "layout.mjml", "</mj-body>")
    layout = config.templates_dir / "layout.mjml"
    assert_finding(check_content(config).findings, layout, None, "MJML error")


def test_rule_unsubscribe_link_in_html(config):
    path = write_step(config, "Body.\n")
    break_template(
        config, "partials/footer.mjml", '<a href="[[ unsubscribe_url ]]">Unsubscribe</a>', "Unsubscribe"
    )
    assert_finding(findings_for(config, path), path, 6, "HTML part has no unsubscribe link")


def test_rule_unsubscribe_link_in_text(config):
    path = write_step(config, "Body.\n")
    break_template(config, "partials/footer.txt", "[[ unsubscribe_url ]]", "(see the website)")
    assert_finding(findings_for(config, path), path, 6, "plain-text part has no unsubscribe link")


@pytest.mark.parametrize(
    ("partial", "snippet", "what"),
    [
        ("partials/footer.mjml", "<br>{{ postal_address }}", "HTML part has no postal address"),
        ("partials/footer.txt", "{{ postal_address }}", "plain-text part has no postal address"),
        (
            "partials/footer.mjml",
            "<strong>This email is education, not medical advice.</strong>",
            'HTML part has no "education, not medical advice"',
        ),
        (
            "partials/footer.txt",
            "This email is education, not medical advice.",
            'plain-text part has no "education, not medical advice"',
        ),
        ("partials/footer.mjml", "call or text 988 in the US", "HTML part has no crisis line"),
        ("partials/footer.txt", "call or text 988 in the US", "plain-text part has no crisis line"),
    ],
)
def test_rule_footer_lines(config, partial, snippet, what):
    path = write_step(config, "Body.\n")
    break_template(config, partial, snippet)
    assert_finding(findings_for(config, path), path, 6, what)


def test_rule_subject_length(config):
    path = write_step(config, "Body.\n", subject="z" * 79)
    assert_finding(findings_for(config, path), path, 2, "subject is 79 characters")
    ok = write_step(config, "Body.\n", name="02-ok.md", subject="z" * 78)
    assert findings_for(config, ok) == []


def test_rule_subject_on_one_line(config):
    path = write_step(config, "Body.\n", subject='"Line one\\nBcc: x@example.com"')
    assert_finding(findings_for(config, path), path, 2, "one line")


def test_rule_preheader_present(config):
    path = write_step(config, "Body.\n", preheader=None)
    assert_finding(findings_for(config, path), path, 1, "preheader is missing")
    empty = write_step(config, "Body.\n", name="02-empty.md", preheader='""')
    assert_finding(findings_for(config, empty), empty, 3, "preheader is missing")


def test_rule_image_alt_text(config):
    path = write_step(
        config,
        "Intro.\n\n![](https://www.example.com/photo.png)\n\n![A calm room](https://www.example.com/room.png)\n",
    )
    found = findings_for(config, path)
    assert_finding(found, path, 8, "photo.png has no alt text")
    assert not any("room.png" in f.message for f in found)


def test_rule_image_alt_text_in_template(config):
    path = write_step(config, "Body.\n")
    break_template(
        config,
        "partials/header.mjml",
        "<mj-column>",
        '<mj-column><mj-image src="https://www.example.com/logo.png" />',
    )
    assert any(
        "logo.png has no alt text" in f.message
        for f in findings_for(config, path) + check_content(config).findings
    )


def test_rule_no_http_links(config):
    path = write_step(config, "Intro.\n\nSee [the page](http://www.example.com/page) for more.\n")
    assert_finding(findings_for(config, path), path, 8, "http://www.example.com/page", "use https://")


def test_rule_no_http_cta(config):
    path = write_step(config, "Body.\n", article=None, cta_url="http://www.example.com/cta")
    assert_finding(findings_for(config, path), path, 4, "http://www.example.com/cta")


def test_rule_no_http_unsubscribe_from_config(tmp_path):
    config = make_config(tmp_path, **{"web.public_base_url": "http://mail.example.com"})
    report = check_content(config)
    line = next(
        n for n, text in enumerate(config.path.read_text().splitlines(), 1) if "public_base_url" in text
    )
    assert_finding(
        report.findings, config.path, line, "web.public_base_url is http://mail.example.com", "use https://"
    )
    assert len(report.findings) == 1  # one finding, not one per email


def test_rule_no_http_from_environment_override(tmp_path):
    config = make_config(tmp_path, environ={"NURTURE_WEB__PUBLIC_BASE_URL": "http://127.0.0.1:8000"})
    report = check_content(config)
    assert [f.message for f in report.findings] == [
        "web.public_base_url is http://127.0.0.1:8000: links built from it use http://; use https://"
    ]


@pytest.mark.parametrize(
    ("link", "words"),
    [
        ("[relative](/book-now)", ("/book-now", "not an absolute https://")),
        ("[anchor](#top)", ("#top", "not an absolute https://")),
        ("[mail us](mailto:hello@example.com)", ("mailto:hello@example.com", "footer only")),
        ("[ftp](ftp://files.example.com/a)", ("ftp://files.example.com/a", "not an absolute https://")),
    ],
)
def test_rule_links_absolute_https(config, link, words):
    path = write_step(config, f"Intro.\n\nSee {link} please.\n")
    assert_finding(findings_for(config, path), path, 8, *words)


def test_rule_mailto_allowed_in_footer(config):
    path = write_step(config, "Body.\n")
    break_template(
        config,
        "partials/footer.mjml",
        "<p>{{ practice_name }}<br>",
        '<p><a href="mailto:hello@example.com">Write to us</a></p><p>{{ practice_name }}<br>',
    )
    assert findings_for(config, path) == []


def test_rule_unrendered_jinja(config):
    path = write_step(config, "Intro.\n\nDear {% raw %}{{ first_name }}{% endraw %}, hello.\n")
    assert_finding(findings_for(config, path), path, 8, "unrendered template syntax", "{{ first_name }}")


def test_rule_unrendered_stage_two_syntax(config):
    path = write_step(config, "Intro.\n\nHello [[ first_name ]] there.\n")
    assert_finding(findings_for(config, path), path, 8, "unrendered template syntax", "[[ first_name ]]")


def test_rule_unrendered_syntax_in_subject(config):
    path = write_step(config, "Body.\n", subject='"Hello {{ name }}"')
    found = findings_for(config, path)
    assert_finding(found, path, 2, "unrendered template syntax", "subject")


def test_rule_unrendered_in_template(config):
    write_step(config, "Body.\n")
    break_template(
        config,
        "partials/body.mjml",
        "<p>Hi [[ first_name ]],</p>",
        "<p>Hi {% raw %}{{ name }}{% endraw %},</p>",
    )
    partial = config.templates_dir / "partials" / "body.mjml"
    line = next(n for n, text in enumerate(partial.read_text().splitlines(), 1) if "{% raw %}" in text)
    assert_finding(check_content(config).findings, partial, line, "unrendered template syntax", "{{ name }}")


def test_rule_leftover_substitution_tags(config):
    path = write_step(config, "Intro.\n\nA stray -first_name_html- tag.\n")
    assert_finding(findings_for(config, path), path, 8, "-first_name_html-", "reserved substitution tag")


def test_rule_confirmation_link_and_no_list_unsubscribe(config):
    break_template(config, "confirmation.txt", "[[ confirm_url ]]", "(link missing)")
    template = config.templates_dir / "confirmation.mjml"
    assert_finding(check_content(config).findings, template, 1, "plain-text part has no confirmation link")


def test_rule_front_matter_error_is_a_finding(config):
    path = write_step(config, "Body.\n", subjct="typo")
    assert_finding(check_content(config).findings, path, 5, "unknown key")


def test_broken_newsletter_is_reported(config):
    folder = config.campaigns_dir / "newsletters"
    bad = folder / "2099-01-bad.md"
    bad.write_text("no front matter here\n", encoding="utf-8")
    report = check_content(config)
    assert_finding(report.findings, bad, 1, "missing front matter")


def test_finding_format():
    assert (
        str(Finding(Path("campaigns/a/01-x.md"), 3, "subject is too long"))
        == "campaigns/a/01-x.md:3: subject is too long"
    )
    assert (
        str(Finding(Path("templates/layout.mjml"), None, "template not found"))
        == "templates/layout.mjml: template not found"
    )
    assert CheckReport(emails=2, passed=2).render() == "all 2 emails pass"


def test_findings_point_at_the_step_not_the_others(config):
    path = write_step(config, "Body.\n", subject="q" * 100)
    report = check_content(config)
    assert {f.path for f in report.findings} == {path}
    campaign = load_campaign(config.campaigns_dir / "broken")
    assert report.emails - report.passed == len(campaign.steps)
