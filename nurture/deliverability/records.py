"""The sending domain's DNS, checked the way mailbox providers read it.

Gmail and Yahoo (since February 2024) want SPF and DKIM for the sending domain, a
DMARC record with a policy, and the From domain aligned with what SPF or DKIM
vouch for. Each check returns findings in plain words, and, where something is
missing or wrong, the record to publish.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from nurture.deliverability.dns_lookup import Answer, Lookup
from nurture.deliverability.provider_dns import ProviderDns

SPF_LOOKUP_LIMIT = 10  # RFC 7208: more DNS-querying terms than this and SPF fails for everyone
PASS_ALL = re.compile(r"(^|\s)\+?all(?=\s|$)", re.IGNORECASE)


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but could be better, or could not be checked
    PROBLEM = "problem"  # mail may be filtered or refused: fix it
    SKIPPED = "skipped"  # does not apply to this setup


@dataclass(frozen=True)
class Finding:
    check: str  # "SPF", "DKIM", "DMARC", ...
    status: Status
    words: str  # what was found and why it matters, in plain words
    publish: str | None = None  # the DNS record (or setting) that fixes it

    def lines(self) -> list[str]:
        head = f"[{self.status.value.upper()}] {self.check}: {self.words}"
        return [head, f"    publish: {self.publish}"] if self.publish else [head]


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().rstrip(".").lower()


def organizational_domain(domain: str) -> str:
    """The registered domain, by the common rule of its last two labels (three under a
    two-letter country code's second level, as in example.co.uk). Without the public
    suffix list this is a good guess, and only used where DMARC is looked up."""
    labels = domain.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in {"co", "com", "org", "net", "ac", "gov"}:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _could_not(check: str, answer: Answer, name: str) -> Finding:
    return Finding(check, Status.WARN, f"could not look up {name}: {answer.error}. Try again later.")


# ---------------------------------------------------------------- SPF


def spf_records(answer: Answer) -> list[str]:
    return [record for record in answer.records if record.lower().startswith("v=spf1")]


def spf_includes(lookup: Lookup, record: str, wanted: str, budget: list[int]) -> bool:
    """Whether `record` (or an include: it names, followed down) includes `wanted`."""
    for term in record.split()[1:]:
        mechanism = term.lstrip("+-~?").lower()
        if not mechanism.startswith(("include:", "redirect=")):
            continue
        target = mechanism.split(":", 1)[1] if ":" in mechanism else mechanism.split("=", 1)[1]
        if target == wanted or target.endswith("." + wanted):
            return True
        budget[0] -= 1
        if budget[0] < 0:
            return False
        nested = spf_records(lookup.txt(target))
        if len(nested) == 1 and spf_includes(lookup, nested[0], wanted, budget):
            return True
    return False


def check_spf(lookup: Lookup, domain: str, provider: ProviderDns, return_path: str | None) -> list[Finding]:
    answer = lookup.txt(domain)
    if answer.error:
        return [_could_not("SPF", answer, domain)]
    records = spf_records(answer)
    include = f" include:{provider.spf_include}" if provider.spf_include else ""
    if not records:
        return [
            Finding(
                "SPF",
                Status.PROBLEM,
                f"{domain} has no SPF record, so mailbox providers cannot tell which servers may send "
                "its mail; Gmail and Yahoo filter or refuse such mail.",
                f'{domain} TXT "v=spf1{include} ~all"',
            )
        ]
    if len(records) > 1:
        return [
            Finding(
                "SPF",
                Status.PROBLEM,
                f"{domain} has {len(records)} SPF records; there must be exactly one (with several, SPF "
                "fails for every email). Merge them into one.",
                f'{domain} TXT "v=spf1{include} ... ~all" (one record, with the includes of all of them)',
            )
        ]
    record = records[0]
    findings = []
    if PASS_ALL.search(record.lower()):
        safer = PASS_ALL.sub(" ~all", record).strip()
        findings.append(
            Finding(
                "SPF",
                Status.PROBLEM,
                f"the SPF record of {domain} ends in +all, which lets any server in the world send as it.",
                f'{domain} TXT "{safer}"',
            )
        )
    if not provider.spf_include or not provider.sends:
        findings.append(Finding("SPF", Status.OK, f"{domain} has an SPF record: {record}"))
        return findings
    budget = [SPF_LOOKUP_LIMIT]
    if spf_includes(lookup, record, provider.spf_include, budget):
        findings.append(Finding("SPF", Status.OK, f"the SPF record of {domain} includes {provider.name}."))
        return findings
    if return_path:
        bounce = spf_records(lookup.txt(return_path))
        if len(bounce) == 1 and spf_includes(lookup, bounce[0], provider.spf_include, [SPF_LOOKUP_LIMIT]):
            findings.append(
                Finding(
                    "SPF",
                    Status.OK,
                    f"{provider.name} is in the SPF record of the Return-Path domain {return_path}, "
                    "which is what SPF checks.",
                )
            )
            return findings
    fixed = (
        record.replace(" ", f" include:{provider.spf_include} ", 1) if " " in record else f"{record}{include}"
    )
    findings.append(
        Finding(
            "SPF",
            Status.PROBLEM,
            f"the SPF record of {domain} does not include {provider.name} ({provider.spf_include}), so its "
            "servers are not allowed to send for the practice.",
            f'{domain} TXT "{fixed}"',
        )
    )
    return findings


# ---------------------------------------------------------------- DKIM


def check_dkim(lookup: Lookup, domain: str, provider: ProviderDns) -> list[Finding]:
    if not provider.dkim_selectors:
        return [
            Finding(
                "DKIM",
                Status.SKIPPED if not provider.sends else Status.WARN,
                "no DKIM selector to look up: set deliverability.dkim_selectors in config.yaml to the "
                f"selectors {provider.settings_page} shows.",
            )
        ]
    findings = []
    for selector in provider.dkim_selectors:
        name = f"{selector}._domainkey.{domain}"
        answer = lookup.txt(name)
        if answer.error:
            findings.append(_could_not("DKIM", answer, name))
            continue
        keys = [record for record in answer.records if "p=" in record.replace(" ", "")]
        publish = provider.dkim_record.format(selector=selector, domain=domain)
        if not keys:
            findings.append(
                Finding(
                    "DKIM",
                    Status.PROBLEM,
                    f"no DKIM key is published at {name}, so emails signed with selector {selector!r} "
                    f"cannot be verified. Copy the record from {provider.settings_page}.",
                    publish,
                )
            )
        elif any(re.search(r"(^|;)\s*p=\s*(;|$)", record) for record in keys):
            findings.append(
                Finding(
                    "DKIM",
                    Status.PROBLEM,
                    f"the DKIM key at {name} is empty (revoked): nothing signed with it verifies.",
                    publish,
                )
            )
        else:
            findings.append(Finding("DKIM", Status.OK, f"a DKIM key is published at {name}."))
    return findings


# ---------------------------------------------------------------- DMARC


def dmarc_tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            tags[key.strip().lower()] = value.strip()
    return tags


def check_dmarc(lookup: Lookup, domain: str, return_path: str | None, report_to: str | None) -> list[Finding]:
    organizational = organizational_domain(domain)
    names = [f"_dmarc.{domain}"] + ([f"_dmarc.{organizational}"] if organizational != domain else [])
    record, name = None, names[0]
    for name in names:
        answer = lookup.txt(name)
        if answer.error:
            return [_could_not("DMARC", answer, name)]
        found = [r for r in answer.records if r.replace(" ", "").lower().startswith("v=dmarc1")]
        if found:
            record = found[0]
            break
    rua = f"; rua=mailto:{report_to}" if report_to else ""
    publish = f'_dmarc.{organizational} TXT "v=DMARC1; p=none{rua}"'
    if record is None:
        return [
            Finding(
                "DMARC",
                Status.PROBLEM,
                f"{domain} has no DMARC record. Gmail and Yahoo require one (p=none is enough to start).",
                publish,
            )
        ]
    tags = dmarc_tags(record)
    policy = (
        tags.get("sp", "") if name != f"_dmarc.{domain}" and "sp" in tags else tags.get("p", "")
    ).lower()
    findings = []
    if policy not in ("none", "quarantine", "reject"):
        findings.append(
            Finding(
                "DMARC",
                Status.PROBLEM,
                f"the DMARC record at {name} has no valid policy (p=), so it counts as missing.",
                publish,
            )
        )
    elif policy == "none":
        findings.append(
            Finding(
                "DMARC",
                Status.OK,
                f"DMARC is published at {name} with p=none: enough for Gmail and Yahoo. Once its reports "
                "show only your own mail, p=quarantine protects the practice's name better.",
            )
        )
    else:
        findings.append(Finding("DMARC", Status.OK, f"DMARC is published at {name} with p={policy}."))
    if return_path:
        strict = tags.get("aspf", "r").lower() == "s"
        aligned = return_path == domain if strict else organizational_domain(return_path) == organizational
        if not aligned:
            findings.append(
                Finding(
                    "DMARC",
                    Status.WARN if tags.get("adkim", "r").lower() != "s" else Status.PROBLEM,
                    f"the Return-Path domain {return_path} is not aligned with the From domain {domain}"
                    + (" (aspf=s wants the very same domain)" if strict else "")
                    + ": SPF cannot pass DMARC, so DMARC rests on DKIM alone.",
                    f"a Return-Path domain under {organizational}, such as em1234.{domain}",
                )
            )
        else:
            findings.append(
                Finding("DMARC", Status.OK, f"the Return-Path domain {return_path} is aligned with {domain}.")
            )
    return findings


# ---------------------------------------------------------------- Return-Path and MX


def check_return_path(lookup: Lookup, return_path: str | None, provider: ProviderDns) -> list[Finding]:
    if not provider.sends:
        return [Finding("Return-Path", Status.SKIPPED, "the outbox sends nothing, so there are no bounces.")]
    if not return_path:
        return [
            Finding(
                "Return-Path",
                Status.WARN,
                "not checked: set deliverability.return_path_domain in config.yaml to the MAIL FROM "
                f"(Return-Path) domain {provider.settings_page} shows.",
                provider.return_path.format(domain="example.com"),
            )
        ]
    cname, mx, txt = (lookup.ask(return_path, kind) for kind in ("CNAME", "MX", "TXT"))
    for answer in (cname, mx, txt):
        if answer.error:
            return [_could_not("Return-Path", answer, return_path)]
    if not (cname.found or mx.found or txt.found):
        return [
            Finding(
                "Return-Path",
                Status.PROBLEM,
                f"{return_path} is not in DNS, so bounces cannot come back and SPF has nothing to check.",
                provider.return_path.format(domain=return_path.split(".", 1)[-1]),
            )
        ]
    target = f" (a CNAME to {cname.records[0]})" if cname.found else ""
    return [Finding("Return-Path", Status.OK, f"{return_path} is published{target}.")]


def check_mx(lookup: Lookup, address: str) -> list[Finding]:
    domain = domain_of(address)
    answer = lookup.ask(domain, "MX")
    if answer.error:
        return [_could_not("MX", answer, domain)]
    if answer.found and answer.records != (".",) and answer.records != ("",):
        return [Finding("MX", Status.OK, f"replies to {address} can be delivered ({domain} has MX records).")]
    return [
        Finding(
            "MX",
            Status.PROBLEM,
            f"{domain} has no MX record, so replies to {address} bounce, and some providers distrust a "
            "sender that cannot receive mail.",
            f"{domain} MX 10 <your mail host> (as your mailbox provider shows it)",
        )
    ]
