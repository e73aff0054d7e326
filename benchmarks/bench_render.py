"""Benchmark (not a test): personalize 10,000 messages of one step.

    .venv/bin/python benchmarks/bench_render.py [--count 10000] [--step 1]

Prepares one step of the shipped kap-intro series (Markdown, Jinja, MJML: once),
then personalizes N recipients three ways and prints messages per second and
microseconds per message:

  render()                    one recipient's finished HTML + text (preview, check)
  envelope()                  what a SendGrid request carries per recipient
  envelope() + substitutions  envelope, then both parts filled in, as the outbox does
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, without installing

from nurture import links
from nurture.config import load_config
from nurture.content.campaigns import load_campaigns
from nurture.content.prepared import Recipient
from nurture.content.rendering import Renderer
from nurture.providers.base import apply_substitutions

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--campaign", default="kap-intro")
    parser.add_argument("--step", type=int, default=1)
    args = parser.parse_args()

    config = load_config(
        ROOT / "config.yaml", environ={"NURTURE_SECRET_KEY": "benchmark-secret-key-0123456789"}
    )
    campaign = load_campaigns(config.campaigns_dir)[args.campaign]
    step = campaign.step(args.step)
    renderer = Renderer(config)

    started = time.perf_counter()
    prepared = renderer.prepare_step(campaign, step)
    prepare_ms = (time.perf_counter() - started) * 1000

    recipients = [
        Recipient(
            email=f"person{i}@example.com",
            first_name=None if i % 10 == 0 else f"Person <{i}> & co",
            unsubscribe_url=links.unsubscribe_url(config, i, campaign.slug),
            preferences_url=links.preferences_url(config, i),
        )
        for i in range(args.count)
    ]

    def render() -> None:
        for who in recipients:
            prepared.render(who)

    def envelope() -> None:
        for i, who in enumerate(recipients):
            prepared.envelope(str(i), who, {"delivery_id": str(i)})

    def envelope_and_fill() -> None:
        envelopes = [
            prepared.envelope(str(i), who, {"delivery_id": str(i)}) for i, who in enumerate(recipients)
        ]
        batch = prepared.batch(envelopes)
        for env in batch.envelopes:
            apply_substitutions(batch.html, env.substitutions)
            apply_substitutions(batch.text, env.substitutions)

    print(
        f"step {campaign.slug}/{step.slug}: prepared in {prepare_ms:.1f} ms "
        f"(Markdown + Jinja + MJML, {renderer.mjml_compilations} MJML compilation); "
        f"HTML {len(prepared.html_template) / 1024:.1f} KiB, "
        f"text {len(prepared.text_template) / 1024:.1f} KiB"
    )
    for label, run in (
        ("render()", render),
        ("envelope()", envelope),
        ("envelope() + substitutions", envelope_and_fill),
    ):
        started = time.perf_counter()
        run()
        elapsed = time.perf_counter() - started
        print(
            f"{label:28s} {args.count:>7,} messages in {elapsed:6.3f} s: "
            f"{args.count / elapsed:>9,.0f} messages/s, {elapsed / args.count * 1e6:7.1f} µs/message"
        )
    assert renderer.mjml_compilations == 1, "MJML must compile once per step"


if __name__ == "__main__":
    main()
