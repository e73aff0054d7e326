"""Rendering: MJML once per step, Jinja per recipient, text part, headers, escaping."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from nurture import links
from nurture.content.campaigns import load_campaigns, load_email, newsletter_files
from nurture.content.prepared import SUBSTITUTION_TAGS, Recipient, clean_first_name, header_text
from nurture.content.rendering import Renderer
from nurture.errors import InputError
from nurture.providers.base import apply_substitutions
from nurture.providers.outbox import build_message
from tests.support.factories import memory_config, recipient

HOSTILE_NAMES = [
    "<script>alert(1)</script>",
    "Eve\r\nBcc: victim@example.com",
    "Tom & Jerry \"quoted\" 'single'",
    "Zoë\u202eevil\u2028line",
    "-unsubscribe_url_html- [[ first_name ]] {{ practice_name }}",
    "   ",
    None,
    "Sam",
]
DISCLAIMER = "This email is education, not medical advice."
CRISIS = (
    "If you are in crisis, call or text 988 in the US (Suicide &amp; Crisis Lifeline), "
    "or call your local emergency number."
)


@pytest.fixture
def config():
    return memory_config()  # the repo's campaigns/ and templates/, read only


@pytest.fixture
def renderer(config):
    return Renderer(config)


@pytest.fixture
def campaigns(config):
    return load_campaigns(config.campaigns_dir)


def all_steps(campaigns):
    return [(campaign, step) for campaign in campaigns.values() for step in campaign.steps]


def visible_text(html: str) -> str:
    html = re.sub(r"<(style|title|head)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_shipped_series_has_steps(campaigns):
    assert "kap-intro" in campaigns
    assert len(campaigns["kap-intro"].steps) >= 5


def test_every_step_renders_both_parts_with_complete_footer_and_headers(config, renderer, campaigns):
    for campaign, step in all_steps(campaigns):
        prepared = renderer.prepare_step(campaign, step)
        who = recipient(config)
        out = prepared.render(who)
        assert prepared.kind == "marketing"
        assert prepared.name == f"{campaign.slug}/{step.slug}"
        assert out.subject == step.email.subject
        assert out.preheader == step.email.preheader and out.preheader
        # HTML
        assert '<html lang="en"' in out.html
        assert '<meta name="color-scheme" content="light dark"' in out.html
        assert out.preheader.split()[0] in out.html
        assert "Hi Sam," in out.html
        assert f'href="{who.unsubscribe_url}"' in out.html
        assert config.practice.postal_address in out.html
        assert config.practice.name in out.html
        assert DISCLAIMER in visible_text(out.html)
        assert CRISIS in out.html
        assert "You are receiving this because you signed up at" in out.html
        assert "<img" not in out.html  # no images at all, so no text baked into one
        assert "<link" not in out.html and "@import" not in out.html  # no external fonts or CSS
        # text
        assert "Hi Sam," in out.text
        assert who.unsubscribe_url in out.text
        assert config.practice.postal_address in out.text
        assert DISCLAIMER in out.text
        assert CRISIS.replace("&amp;", "&") in out.text
        assert "<" not in out.text.replace("<script>", "")  # no HTML in the text part
        # call to action, in both parts
        front = step.email.front
        if front.cta_target == "article":
            expected = links.article_url(config, front.article)
        elif front.cta_target == "booking":
            expected = config.practice.booking_url
        else:
            expected = front.cta_url
        assert f'href="{expected}"' in out.html
        assert expected in out.text
        # headers
        assert out.headers == {
            "List-Unsubscribe": f"<{who.unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }


def test_unrendered_placeholders_never_reach_the_output(config, renderer, campaigns):
    for campaign, step in all_steps(campaigns):
        out = renderer.prepare_step(campaign, step).render(recipient(config))
        for part in (out.html, out.text):
            for marker in ("{{", "{%", "[[", "[%", *SUBSTITUTION_TAGS):
                assert marker not in part, (step.slug, marker)


def test_greeting_falls_back_to_hi_there(config, renderer, campaigns):
    campaign = campaigns["kap-intro"]
    prepared = renderer.prepare_step(campaign, campaign.steps[0])
    for name in (None, "", "  ", "\r\n"):
        out = prepared.render(recipient(config, first_name=name))
        assert "Hi there," in out.html
        assert "Hi there," in out.text


def test_hostile_first_name_is_escaped_in_html_and_kept_out_of_headers(config, renderer, campaigns):
    campaign = campaigns["kap-intro"]
    prepared = renderer.prepare_step(campaign, campaign.steps[0])
    who = recipient(config, first_name="<script>alert(1)</script>\r\nBcc: victim@example.com")
    out = prepared.render(who)
    assert "<script>" not in out.html
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt; Bcc: victim@example.com," in out.html
    assert (
        "Hi <script>alert(1)</script> Bcc: victim@example.com," in out.text
    )  # text is not HTML: no escaping
    envelope = prepared.envelope("d-1", who, {"delivery_id": "d-1"})
    assert envelope.to_name == "<script>alert(1)</script> Bcc: victim@example.com"
    assert "script" not in envelope.subject
    for value in [envelope.to_name, envelope.subject, *envelope.headers.values()]:
        assert "\r" not in value and "\n" not in value

    message = build_message(prepared.batch([envelope]), envelope)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert parsed["To"].addresses[0].addr_spec == "sam@example.com"
    assert parsed["Subject"] == campaign.steps[0].email.subject


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_batch_substitutions_equal_the_per_recipient_render(config, renderer, campaigns, name):
    for campaign, step in all_steps(campaigns):
        prepared = renderer.prepare_step(campaign, step)
        who = recipient(config, first_name=name)
        out = prepared.render(who)
        envelope = prepared.envelope("d-9", who, {"delivery_id": "d-9"})
        batch = prepared.batch([envelope])
        assert apply_substitutions(batch.html, envelope.substitutions) == out.html
        assert apply_substitutions(batch.text, envelope.substitutions) == out.text
        assert envelope.subject == out.subject
        assert dict(envelope.headers) == out.headers


def test_batch_carries_tags_not_personal_data(config, renderer, campaigns):
    campaign = campaigns["kap-intro"]
    prepared = renderer.prepare_step(campaign, campaign.steps[0])
    who = recipient(config, first_name="Alexandra")
    envelope = prepared.envelope("d-1", who, {"delivery_id": "d-1", "campaign": "kap-intro"})
    batch = prepared.batch([envelope])
    assert "Alexandra" not in batch.html and "Alexandra" not in batch.text
    assert who.unsubscribe_url not in batch.html
    assert "-first_name_html-" in batch.html and "-first_name_text-" in batch.text
    assert "-unsubscribe_url_html-" in batch.html and "-unsubscribe_url_text-" in batch.text
    assert envelope.substitutions["-first_name_html-"] == "Alexandra"
    assert envelope.custom_args == {"delivery_id": "d-1", "campaign": "kap-intro"}
    assert envelope.to_email == "sam@example.com"
    assert batch.sender.from_email == config.sender.from_email
    assert batch.sender.from_name == config.sender.from_name
    assert batch.sender.reply_to == config.practice.reply_to
    assert batch.transactional is False
    assert list(batch.categories) == ["series"]
    assert list(batch.envelopes) == [envelope]


def test_html_values_in_substitutions_are_escaped(config, renderer, campaigns):
    campaign = campaigns["kap-intro"]
    prepared = renderer.prepare_step(campaign, campaign.steps[0])
    envelope = prepared.envelope("d", recipient(config, first_name="<b>Bo</b> & Co"), {})
    assert envelope.substitutions["-first_name_html-"] == "&lt;b&gt;Bo&lt;/b&gt; &amp; Co"
    assert envelope.substitutions["-first_name_text-"] == "<b>Bo</b> & Co"


def test_mjml_compiles_once_per_step_not_per_recipient(config, renderer, campaigns):
    steps = all_steps(campaigns)
    for campaign, step in steps:
        prepared = renderer.prepare_step(campaign, step)
        for number in range(50):
            who = recipient(config, first_name=f"Person {number}", subscriber_id=number)
            prepared.render(who)
            prepared.envelope(str(number), who, {})
        assert renderer.prepare_step(campaign, step) is prepared  # cached
    assert renderer.mjml_compilations == len(steps)
    renderer.prepare_confirmation()
    renderer.prepare_confirmation()
    assert renderer.mjml_compilations == len(steps) + 1


def test_list_unsubscribe_adds_mailto_when_configured():
    config = memory_config(**{"practice.unsubscribe_mailto": "unsubscribe@example.com"})
    campaign = load_campaigns(config.campaigns_dir)["kap-intro"]
    prepared = Renderer(config).prepare_step(campaign, campaign.steps[0])
    who = recipient(config)
    headers = prepared.render(who).headers
    assert (
        headers["List-Unsubscribe"]
        == f"<{who.unsubscribe_url}>, <mailto:unsubscribe@example.com?subject=unsubscribe>"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert dict(prepared.envelope("d", who, {}).headers) == headers


def test_confirmation_is_transactional_without_marketing_footer_or_list_headers(config, renderer):
    prepared = renderer.prepare_confirmation()
    confirm = "https://mail.example.com/confirm/abc.def"
    who = Recipient(email="new@example.com", first_name="Ana", confirm_url=confirm)
    out = prepared.render(who)
    assert prepared.kind == "transactional" and prepared.name == "confirmation"
    assert out.headers == {}
    assert config.practice.name in out.subject and len(out.subject) <= 78
    assert out.preheader
    for part in (visible_text(out.html), out.text):
        assert "Hi Ana," in part
        assert "Confirm my subscription" in part
        assert "If you did not ask for this, ignore this email; nothing will be sent." in part
        assert "Unsubscribe" not in part and "unsubscribe" not in part
        assert "medical advice" not in part
    assert f'href="{confirm}"' in out.html
    assert confirm in out.text
    envelope = prepared.envelope("confirm-1", who, {"kind": "confirmation"})
    batch = prepared.batch([envelope])
    assert batch.transactional is True
    assert dict(envelope.headers) == {}
    assert apply_substitutions(batch.html, envelope.substitutions) == out.html
    assert apply_substitutions(batch.text, envelope.substitutions) == out.text
    message = build_message(batch, envelope)
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None


def test_confirmation_needs_a_confirm_url(renderer):
    with pytest.raises(InputError):
        renderer.prepare_confirmation().render(Recipient(email="a@example.com", first_name=None))


def test_marketing_needs_an_unsubscribe_url(renderer, campaigns):
    campaign = campaigns["kap-intro"]
    prepared = renderer.prepare_step(campaign, campaign.steps[0])
    with pytest.raises(InputError):
        prepared.render(Recipient(email="a@example.com", first_name="A"))
    with pytest.raises(InputError):
        prepared.envelope(
            "d", Recipient(email="a@example.com", first_name="A", unsubscribe_url="https://x/u\r\nBcc: y"), {}
        )


@pytest.mark.parametrize(
    "address", ["a@example.com\r\nBcc: b@example.com", "no-at-sign", "", "a b@example.com"]
)
def test_unusable_addresses_are_refused(config, renderer, campaigns, address):
    campaign = campaigns["kap-intro"]
    prepared = renderer.prepare_step(campaign, campaign.steps[0])
    who = Recipient(
        email=address, first_name="A", unsubscribe_url=links.unsubscribe_url(config, 1, "kap-intro")
    )
    with pytest.raises(InputError):
        prepared.envelope("d", who, {})


def test_newsletters_render(config, renderer):
    files = newsletter_files(config.campaigns_dir)
    assert files
    for path in files:
        source = load_email(path)
        prepared = renderer.prepare_newsletter(source, f"newsletter:{path.stem}")
        who = recipient(config, stream=f"newsletter:{path.stem}")
        out = prepared.render(who)
        assert prepared.kind == "marketing" and prepared.name == f"newsletter:{path.stem}"
        assert "Newsletter" in out.html and "Newsletter" in out.text
        assert f'href="{who.unsubscribe_url}"' in out.html
        assert CRISIS in out.html
        assert out.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert list(prepared.batch([]).categories) == ["newsletter"]
        if source.front.cta_url:
            assert source.front.cta_url in out.text


def test_clean_first_name():
    assert clean_first_name("  Ana\r\n Maria\t ") == "Ana Maria"
    assert clean_first_name("\u202eevil") == "evil"
    assert clean_first_name("-first_name_html-") is None
    assert clean_first_name("x" * 500) == "x" * 60
    assert clean_first_name(None) is None
    assert header_text("a\r\nb\x00c") == "a b c"
