"""`nurture check`: load every campaign, newsletter and template, render each email
for a sample subscriber, and lint what comes out.

Each finding is "file:line: what is wrong", pointing at the Markdown the owner
edits where possible: the front-matter line for subject and preheader, the line
holding the offending text for body problems (else the first body line). The
rules (issue 3):

- every referenced template and file exists; every step and newsletter renders;
- each marketing email has, in both the HTML and the text part, the unsubscribe
  link, the postal address, the "education, not medical advice" line and the
  crisis line, and the List-Unsubscribe / List-Unsubscribe-Post headers;
  the confirmation has its confirm link and no List-Unsubscribe headers;
- subject at most 78 characters and on one line; preheader present;
- alt text on every <img>;
- no http:// links; every link absolute https (mailto: only in the footer);
- no unrendered template syntax ({{ {% [[ [%) or substitution tags left in the output.

`check_email` runs the rules (nurture.content.rules) on one prepared email
(newsletter scheduling uses it to refuse a newsletter with any finding).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nurture.config import Config
from nurture.content.campaigns import (
    NEWSLETTERS_DIR,
    EmailSource,
    load_campaign,
    load_email,
    newsletter_files,
)
from nurture.content.prepared import PreparedEmail
from nurture.content.preview import newsletter_name, sample_recipient
from nurture.content.rendering import TEMPLATES, Renderer
from nurture.content.rules import RULES, EmailFacts, Finding, Locator, html_facts, squash
from nurture.errors import ContentError

_LOCATED = re.compile(r"^(?P<path>.+?):(?P<line>\d+): (?P<what>.*)$")
_UNLOCATED = re.compile(r"^(?P<path>[^\s:][^:]*?): (?P<what>.*)$")


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    emails: int = 0  # emails that were rendered and linted
    passed: int = 0  # of those, emails with no finding
    unchecked: list[str] = field(default_factory=list)  # series whose campaign.yaml did not load

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        if self.ok:
            return f"all {self.emails} emails pass"
        problems = len(self.findings)
        emails = f"{self.emails} email{'s' if self.emails != 1 else ''}"
        summary = (
            f"{problems} problem{'s' if problems != 1 else ''} found; {self.passed} of {emails} checked pass"
        )
        if self.unchecked:
            # Its emails were never rendered: "n of n pass" alone would read as all clear.
            summary += f"; not checked: the series {', '.join(self.unchecked)} (fix its campaign.yaml first)"
        return summary

    def render(self) -> str:
        return "\n".join([*(str(finding) for finding in self.findings), self.summary()])


def check_email(
    config: Config, renderer: Renderer, source: EmailSource | None, prepared: PreparedEmail
) -> list[Finding]:
    """Every rule in RULES on one prepared email, rendered for the sample subscriber."""
    sample = sample_recipient(config, prepared.name).recipient
    try:
        rendered = prepared.render(sample)
    except ContentError as exc:
        return findings_from_error(exc)
    html = html_facts(rendered.html)
    email = EmailFacts(
        config=config,
        source=source,
        prepared=prepared,
        sample=sample,
        rendered=rendered,
        html=html,
        visible=html.text,
        text_flat=squash(rendered.text),
        locate=Locator(config, source, prepared),
    )
    findings = {finding for rule in RULES for finding in rule(email)}
    return sorted(findings, key=lambda f: (str(f.path), f.line or 0, f.message))


def findings_from_error(exc: ContentError) -> list[Finding]:
    """A ContentError's lines as findings (`path:line: what` where the message names them)."""
    findings = []
    for line in str(exc).splitlines():
        located = _LOCATED.match(line)
        if located:
            findings.append(Finding(Path(located["path"]), int(located["line"]) or None, located["what"]))
            continue
        unlocated = _UNLOCATED.match(line)
        if unlocated:
            findings.append(Finding(Path(unlocated["path"]), None, unlocated["what"]))
        elif line.strip():
            findings.append(Finding(Path("."), None, line.strip()))
    return findings


def check_content(config: Config) -> CheckReport:
    """Load, render and lint everything under campaigns/ and templates/."""
    report = CheckReport()
    findings: list[Finding] = []

    # `...`: the callers' lambdas bind loop variables as defaulted parameters; lint calls them with none.
    def lint(source: EmailSource | None, prepare: Callable[..., PreparedEmail]) -> None:
        try:
            prepared = prepare()
        except ContentError as exc:
            report.emails += 1
            findings.extend(findings_from_error(exc))
            return
        found = check_email(config, renderer, source, prepared)
        report.emails += 1
        report.passed += 0 if found else 1
        findings.extend(found)

    for filename in sorted({name for pair in TEMPLATES.values() for name in pair}):
        path = config.templates_dir / filename
        if not path.is_file():
            findings.append(Finding(path, None, "template not found"))

    renderer = Renderer(config)
    root = config.campaigns_dir
    if not root.is_dir():
        findings.append(Finding(root, None, "campaigns folder not found"))
    else:
        for folder in sorted(root.iterdir()):
            if not folder.is_dir() or folder.name == NEWSLETTERS_DIR or folder.name.startswith("."):
                continue
            try:
                campaign = load_campaign(folder)
            except ContentError as exc:
                findings.extend(findings_from_error(exc))
                report.unchecked.append(folder.name)
                continue
            for step in campaign.steps:
                lint(step.email, lambda c=campaign, s=step: renderer.prepare_step(c, s))
        for path in newsletter_files(root):
            try:
                email = load_email(path)
            except ContentError as exc:
                report.emails += 1
                findings.extend(findings_from_error(exc))
                continue
            lint(email, lambda e=email, p=path: renderer.prepare_newsletter(e, newsletter_name(p)))
    lint(None, renderer.prepare_confirmation)
    lint(None, renderer.prepare_repermission)

    unique: list[Finding] = []
    for finding in findings:
        if finding not in unique:
            unique.append(finding)
    report.findings = unique
    return report
