"""`nurture preview`: every email rendered for a sample subscriber, plus a gallery.

out_dir/<campaign>/NN-slug.html|.txt|.eml, out_dir/newsletters/<name>.*,
out_dir/confirmation/confirmation.*, and out_dir/index.html: each email in two
iframes (600 px and 375 px) side by side with its subject and preheader. The
gallery is one self-contained file (the emails are inlined with srcdoc; no
external resources), so it can be opened from disk or attached to a ticket.
"""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nurture import links
from nurture.config import Config
from nurture.content.campaigns import load_campaigns, load_email, newsletter_files
from nurture.content.prepared import PreparedEmail, Recipient, RenderedEmail
from nurture.content.rendering import Renderer
from nurture.errors import InputError
from nurture.providers.outbox import build_message

SAMPLE_EMAIL = "sam@example.com"
SAMPLE_FIRST_NAME = "Sam"
SAMPLE_SUBSCRIBER_ID = 0
# Signs preview links when NURTURE_SECRET_KEY is not set. Such links do not work
# on the real site, and the gallery says so.
PREVIEW_SECRET = "nurture-preview-only-key-never-used-for-sending"
NEWSLETTERS = "newsletters"
CONFIRMATION = "confirmation"
REPERMISSION = "repermission"


@dataclass(frozen=True)
class Sample:
    recipient: Recipient
    real_key: bool  # False: links are signed with the preview-only key


def sample_recipient(config: Config, stream: str, *, now: datetime | None = None) -> Sample:
    """Sam, with an unsubscribe link for `stream` and a confirmation link (subscriber id 0)."""
    real = bool(config.secrets.secret_key) and len(config.secrets.secret_key or "") >= 16
    signing = config
    if not real:
        signing = dataclasses.replace(
            config, secrets=dataclasses.replace(config.secrets, secret_key=PREVIEW_SECRET)
        )
    issued = now or datetime.now(UTC)
    recipient = Recipient(
        email=SAMPLE_EMAIL,
        first_name=SAMPLE_FIRST_NAME,
        unsubscribe_url=links.unsubscribe_url(signing, SAMPLE_SUBSCRIBER_ID, stream),
        preferences_url=links.preferences_url(signing, SAMPLE_SUBSCRIBER_ID),
        confirm_url=links.confirm_url(signing, SAMPLE_SUBSCRIBER_ID, 0, issued),
    )
    return Sample(recipient, real)


@dataclass(frozen=True)
class _Entry:
    group: str
    stem: str
    prepared: PreparedEmail
    rendered: RenderedEmail
    folder: Path


def newsletter_name(path: Path) -> str:
    return f"newsletter:{path.stem}"


def _write(entry: _Entry, sample: Sample) -> None:
    entry.folder.mkdir(parents=True, exist_ok=True)
    base = entry.folder / entry.stem
    base.with_suffix(".html").write_text(entry.rendered.html, encoding="utf-8")
    base.with_suffix(".txt").write_text(entry.rendered.text, encoding="utf-8")
    envelope = entry.prepared.envelope(f"preview-{entry.stem}", sample.recipient, {})
    message = build_message(entry.prepared.batch([envelope]), envelope)
    base.with_suffix(".eml").write_bytes(message.as_bytes())


def write_preview(config: Config, out_dir: Path, campaign: str | None) -> Path:
    """Render every email (or one campaign's, or "newsletters", or "confirmation") into out_dir.

    Returns the path of index.html. Raises ContentError when content is broken,
    InputError when `campaign` names nothing.
    """
    out_dir = Path(out_dir)
    renderer = Renderer(config)
    campaigns = load_campaigns(config.campaigns_dir)
    known = [*campaigns, NEWSLETTERS, CONFIRMATION, REPERMISSION]
    if campaign is not None and campaign not in known:
        raise InputError(f"no campaign named {campaign!r}; choose one of: {', '.join(known)}")
    entries: list[_Entry] = []
    real_key = True

    def add(group: str, stem: str, prepared: PreparedEmail, stream: str) -> None:
        nonlocal real_key
        sample = sample_recipient(config, stream)
        real_key = real_key and sample.real_key
        entry = _Entry(group, stem, prepared, prepared.render(sample.recipient), out_dir / group)
        _write(entry, sample)
        entries.append(entry)

    for slug, camp in campaigns.items():
        if campaign in (None, slug):
            for step in camp.steps:
                add(slug, step.slug, renderer.prepare_step(camp, step), slug)
    if campaign in (None, NEWSLETTERS):
        for path in newsletter_files(config.campaigns_dir):
            name = newsletter_name(path)
            add(NEWSLETTERS, path.stem, renderer.prepare_newsletter(load_email(path), name), name)
    if campaign in (None, CONFIRMATION):
        add(CONFIRMATION, CONFIRMATION, renderer.prepare_confirmation(), CONFIRMATION)
    if campaign in (None, REPERMISSION):
        add(REPERMISSION, REPERMISSION, renderer.prepare_repermission(), REPERMISSION)

    index = out_dir / "index.html"
    out_dir.mkdir(parents=True, exist_ok=True)
    index.write_text(_gallery(config, entries, preview_key=not real_key), encoding="utf-8")
    return index


_GALLERY_CSS = """
:root { color-scheme: light dark; }
body { margin: 0; padding: 24px;
       font: 16px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif;
       background: #ece7df; color: #2b2a28; }
h1 { font-size: 24px; margin: 0 0 4px; color: #1d4f4a; }
h2 { font-size: 20px; margin: 40px 0 8px; color: #1d4f4a; }
.note { margin: 0 0 16px; color: #4a4640; }
.warn { background: #fff3cd; color: #4d3b00; border: 1px solid #d9b84a;
        padding: 8px 12px; border-radius: 6px; }
section.email { background: #fbf9f5; border-radius: 8px; padding: 16px 20px; margin: 16px 0 24px; }
section.email h3 { font-size: 18px; margin: 0 0 4px; }
.meta { margin: 0; color: #4a4640; font-size: 15px; }
.meta b { color: #2b2a28; }
.frames { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; margin-top: 12px; }
figure { margin: 0; max-width: 100%; }
figcaption { font-size: 13px; color: #4a4640; margin-bottom: 4px; }
iframe { border: 1px solid #c9c4bb; background: #ece7df; height: 900px; display: block; }
@media (max-width: 700px) {
  body { padding: 12px; }
  section.email { padding: 12px; }
  /* Until the script below measures the room: both frames shown whole, scaled down. */
  iframe[data-width="600"] { zoom: 0.5; }
  iframe[data-width="375"] { zoom: 0.8; }
}
.files a { color: #1d5c56; margin-right: 12px; }
details { margin-top: 12px; }
pre { white-space: pre-wrap; background: #f1ede6; padding: 12px; border-radius: 6px; font-size: 14px; }
@media (prefers-color-scheme: dark) {
  body { background: #161a19; color: #e7e3db; }
  h1, h2 { color: #9ad3ca; }
  section.email { background: #1f2322; }
  .meta, .note, figcaption { color: #c9c4bb; }
  .meta b { color: #e7e3db; }
  .files a { color: #9ad3ca; }
  pre { background: #161a19; }
}
"""


# allow-same-origin lets the gallery's script measure each email's height; without
# allow-scripts nothing inside an email can run, so the email gains no power from it.
_SANDBOX = "allow-same-origin allow-popups"

# Each frame keeps its width (600 or 375 px inside) but is scaled down (CSS zoom) when the
# page is narrower, and grows to its email's full height: nothing scrolls sideways, nothing is cut.
_FIT_FRAMES_JS = """
(function () {
  function fit() {
    document.querySelectorAll("iframe[data-width]").forEach(function (frame) {
      var room = frame.closest(".frames").clientWidth;
      var natural = Number(frame.dataset.width) + 2;
      frame.style.zoom = String(Math.min(1, room / natural));
      var doc = frame.contentDocument;
      if (doc && doc.documentElement) {
        frame.style.height = doc.documentElement.scrollHeight + "px";
      }
    });
  }
  window.addEventListener("load", fit);
  window.addEventListener("resize", fit);
})();
"""


def _gallery(config: Config, entries: list[_Entry], preview_key: bool) -> str:
    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>Email preview: {esc(config.practice.name)}</title>",
        f"<style>{_GALLERY_CSS}</style></head><body>",
        f"<h1>Email preview: {esc(config.practice.name)}</h1>",
        f'<p class="note">Every email as <b>{esc(SAMPLE_FIRST_NAME)}</b> ({esc(SAMPLE_EMAIL)}) would get it, '
        "at 600 px (desktop) and 375 px (phone) wide. Generated "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>",
    ]
    if preview_key:
        parts.append(
            '<p class="note warn">NURTURE_SECRET_KEY is not set: the unsubscribe and confirmation links in '
            "these previews are <b>preview links</b>, signed with "
            "a preview-only key. They will not work on the site.</p>"
        )
    group = None
    for entry in entries:
        if entry.group != group:
            group = entry.group
            parts.append(f"<h2>{esc(group)}</h2>")
        rel = f"{entry.group}/{entry.stem}"
        srcdoc = esc(entry.rendered.html, quote=True)
        kind = "transactional" if entry.prepared.transactional else "marketing"
        parts.append(
            f'<section class="email" id="{esc(rel)}">'
            f"<h3>{esc(entry.stem)}</h3>"
            f'<p class="meta"><b>Subject:</b> {esc(entry.rendered.subject)} '
            f"<span>({len(entry.rendered.subject)} characters, {kind})</span></p>"
            f'<p class="meta"><b>Preheader:</b> {esc(entry.rendered.preheader) or "<i>none</i>"}</p>'
            f'<p class="meta files"><a href="{esc(rel)}.html">HTML</a><a href="{esc(rel)}.txt">Plain text</a>'
            f'<a href="{esc(rel)}.eml">.eml</a></p><div class="frames">'
            + "".join(
                f'<figure><figcaption>{width} px</figcaption><iframe title="{esc(entry.stem)} at {width} px" '
                f'width="{width}" data-width="{width}" '
                f'sandbox="{_SANDBOX}" srcdoc="{srcdoc}"></iframe></figure>'
                for width in (600, 375)
            )
            + "</div>"
            f"<details><summary>Plain-text part</summary><pre>{esc(entry.rendered.text)}</pre></details>"
            "</section>"
        )
    parts.append(f"<script>{_FIT_FRAMES_JS}</script></body></html>")
    return "\n".join(parts) + "\n"
