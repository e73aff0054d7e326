"""Campaigns and newsletters as the owner writes them: YAML plus Markdown files.

campaigns/<slug>/campaign.yaml   title, trigger, stop_on_tags, steps (file + delay_days, optional key)
campaigns/<slug>/NN-name.md      front matter (subject, preheader, article, cta...) + body
campaigns/newsletters/*.md       one newsletter each (same front matter, plus segment)

Every problem is a ContentError naming the file, the line and what to do.
Steps are numbered from 1 in every message (steps[1] is the first), as the owner counts.

The text of an email is a Jinja template for one reason only: `{{ practice_name }}`.
`BodyEnvironment` is the sandboxed environment that renders it and accepts nothing
else (no blocks, filters, calls, arithmetic, include/import/extends or macros), so
no text can run code, loop, recurse or divide by zero while an email is prepared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nurture.errors import ContentError
from nurture.yaml_lines import OwnerYaml, OwnerYamlError, read_owner_yaml

NEWSLETTERS_DIR = "newsletters"
BODY_PLACEHOLDERS = frozenset({"practice_name"})
FILE_NAME_MAX = 200  # characters of a step's file: name (file systems allow 255 bytes)


class BodyEnvironment(SandboxedEnvironment):
    """Jinja for the text of an email: literal text and {{ name }} outputs, nothing else.

    The template is checked as it is parsed, so every refusal is a TemplateSyntaxError
    with the line, which callers already turn into "file:line: ..."."""

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
        self.globals.clear()  # range, lipsum, dict...: only the context's names remain

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        try:
            template = super()._parse(source, name, filename)
        except RecursionError:
            raise TemplateSyntaxError("the text nests {{ ( [ too deeply to read", 1, name, filename) from None
        for node in template.body:
            _check_body_node(node, name, filename)
        return template


def _check_body_node(node: nodes.Node, name: str | None, filename: str | None) -> None:
    allowed = "only {{ practice_name }} may be used in the text; names and links are filled in by the layout"
    if isinstance(node, nodes.Output):
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData) or (
                isinstance(child, nodes.Name) and child.ctx == "load"
            ):
                continue
            raise TemplateSyntaxError(
                f"{{{{ }}}} may hold a name and nothing else: {allowed}", child.lineno, name, filename
            )
        return
    statement = type(node).__name__.lower()
    raise TemplateSyntaxError(f"{{% {statement} %}} is not allowed: {allowed}", node.lineno, name, filename)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A step's key: what "this email" means for a person, whatever the owner edits later.
STEP_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$"


class StepRef(_Strict):
    file: str = Field(min_length=1)
    delay_days: float = Field(ge=0, le=365)
    # Default: the file's stem. Keep the key when renaming a file, so that people who
    # had the email do not get it again; a new key is a new email.
    key: str | None = None

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.match(STEP_KEY_PATTERN, value):
            raise ValueError(
                f"{value!r} is not a usable key: use letters, digits, '.', '-' and '_' (at most 120, "
                "starting with a letter or digit), for example the old file name without .md"
            )
        return value


class CampaignFile(_Strict):
    title: str = Field(min_length=1)
    description: str = ""
    trigger: Literal["confirmed", "manual"] = "confirmed"
    stop_on_tags: list[str] = []
    steps: list[StepRef] = Field(min_length=1)


class FrontMatter(_Strict):
    subject: str = Field(min_length=1)
    preheader: str = ""
    article: str | None = None
    cta: str | None = None
    cta_target: Literal["article", "booking", "url"] | None = None
    cta_url: str | None = None
    segment: str | None = None  # newsletters only: send to subscribers with this tag


@dataclass(frozen=True)
class EmailSource:
    """One email as written: front matter plus Markdown body."""

    path: Path
    front: FrontMatter
    body: str
    body_line: int  # 1-based line of the file where the body starts

    @property
    def subject(self) -> str:
        return self.front.subject

    @property
    def preheader(self) -> str:
        return self.front.preheader


@dataclass(frozen=True)
class Step:
    number: int  # 1-based position in the series
    slug: str  # file stem, e.g. "01-what-is-kap"
    delay_days: float
    email: EmailSource
    key: str = ""  # the stable key; "" only for Steps built by hand, read as the slug

    @property
    def step_key(self) -> str:
        return self.key or self.slug


@dataclass(frozen=True)
class Campaign:
    slug: str
    path: Path
    title: str
    description: str
    trigger: str
    stop_on_tags: tuple[str, ...]
    steps: tuple[Step, ...]
    version: int | None = None  # the published version; None for the files as they are (a draft)

    def step(self, number: int) -> Step:
        return self.steps[number - 1]

    def by_key(self, key: str) -> Step | None:
        return next((step for step in self.steps if step.step_key == key), None)


def key_name(loc: tuple[str | int, ...]) -> str:
    """('steps', 0, 'file') -> 'steps[1].file': list items counted from 1, as the owner counts."""
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part + 1}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "(top)"


def _pydantic_problems(where: Path, document: OwnerYaml, exc: ValidationError, line_offset: int = 0) -> str:
    lines = document.lines
    problems = []
    for error in exc.errors():
        path = tuple(str(part) for part in error["loc"])
        line = next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)
        location = f"{where}:{line + line_offset}" if line else str(where)
        message = (
            "unknown key"
            if error["type"] == "extra_forbidden"
            else str(error["msg"]).removeprefix("Value error, ")
        )
        problems.append(f"{location}: {key_name(tuple(error['loc']))}: {message}")
    return "\n".join(problems)


def _load_yaml(where: Path, text: str, line_offset: int = 0) -> OwnerYaml:
    try:
        return read_owner_yaml(text)
    except OwnerYamlError as exc:
        line = f":{exc.line + line_offset}" if exc.line is not None else ""
        raise ContentError(f"{where}{line}: {exc.message}") from None


def load_email(path: Path) -> EmailSource:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContentError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError(f"{path}: cannot read ({exc})") from None
    return email_from_text(path, text)


def email_from_text(path: Path, text: str) -> EmailSource:
    """The email in `text`, as if read from the file `path` (which need not exist)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ContentError(
            f"{path}:1: missing front matter: start the file with a line '---', then subject: and preheader:"
        )
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ContentError(f"{path}:1: front matter is not closed: add a line '---' after it") from None
    front_text = "".join(lines[1:end])
    document = _load_yaml(path, front_text, line_offset=1)
    if not isinstance(document.data, dict):
        raise ContentError(f"{path}:2: front matter must be 'key: value' lines (subject:, preheader:, ...)")
    try:
        front = FrontMatter.model_validate(document.data)
    except ValidationError as exc:
        raise ContentError(_pydantic_problems(path, document, exc, line_offset=1)) from None
    return EmailSource(
        path=path, front=front, body="".join(lines[end + 1 :]).strip("\n") + "\n", body_line=end + 2
    )


def load_campaign(directory: Path) -> Campaign:
    spec_path = directory / "campaign.yaml"
    try:
        text = spec_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContentError(
            f"{spec_path}: file not found (every campaign folder needs a campaign.yaml)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError(f"{spec_path}: cannot read ({exc})") from None
    document = _load_yaml(spec_path, text)
    if not isinstance(document.data, dict):
        raise ContentError(f"{spec_path}:1: expected 'key: value' lines (title:, trigger:, steps:)")
    try:
        spec = CampaignFile.model_validate(document.data)
    except ValidationError as exc:
        raise ContentError(_pydantic_problems(spec_path, document, exc)) from None
    steps = []
    first_with_key: dict[str, int] = {}
    for number, ref in enumerate(spec.steps, start=1):
        where = (
            f"{spec_path}:{document.lines.get(('steps', str(number - 1), 'file'), 1)}: steps[{number}].file"
        )
        email_path = _step_file(where, directory, ref.file)
        key = ref.key or email_path.stem
        if key in first_with_key:
            line = document.lines.get(("steps", str(number - 1), "key"), 0) or document.lines.get(
                ("steps", str(number - 1), "file"), 0
            )
            raise ContentError(
                f"{spec_path}:{line}: steps[{number}]: the key {key!r} "
                f"is already used by steps[{first_with_key[key]}]; "
                "give each step its own key: (each key is one email a person receives at most once)"
            )
        first_with_key[key] = number
        steps.append(Step(number, email_path.stem, ref.delay_days, load_email(email_path), key))
    return Campaign(
        slug=directory.name,
        path=directory,
        title=spec.title,
        description=spec.description,
        trigger=spec.trigger,
        stop_on_tags=tuple(spec.stop_on_tags),
        steps=tuple(steps),
    )


def _step_file(where: str, directory: Path, name: str) -> Path:
    """The Markdown file a step names, inside the campaign folder."""
    if len(name) > FILE_NAME_MAX:
        raise ContentError(
            f"{where}: the file name is {len(name)} characters long; keep it under {FILE_NAME_MAX}"
        )
    if Path(name).is_absolute() or ".." in Path(name).parts or "\0" in name:
        raise ContentError(f"{where}: {name!r} must be the name of a file in {directory}")
    email_path = directory / name
    try:
        found = email_path.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        raise ContentError(f"{where}: {name} cannot be opened ({exc.strerror or exc})") from None
    if not found:
        raise ContentError(f"{where}: {name} does not exist in {directory}")
    return email_path


def load_campaigns(root: Path) -> dict[str, Campaign]:
    """Every campaign under `root` (the campaigns/ folder), by slug."""
    if not root.is_dir():
        raise ContentError(f"{root}: campaigns folder not found")
    return {
        folder.name: load_campaign(folder)
        for folder in sorted(root.iterdir())
        if folder.is_dir() and folder.name != NEWSLETTERS_DIR and not folder.name.startswith(".")
    }


def newsletter_files(root: Path) -> list[Path]:
    folder = root / NEWSLETTERS_DIR
    return sorted(folder.glob("*.md")) if folder.is_dir() else []
