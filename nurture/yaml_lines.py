"""Reading the YAML the owner writes (config.yaml, campaign.yaml, front matter).

One reader for all of them, stricter than `yaml.safe_load` where YAML 1.1 would
quietly change what the owner meant or let a small file cost unbounded work:

- `9:00` stays the text "9:00" (YAML 1.1 reads it as the base-60 number 540,
  which turned a 09:00 send window into 00:09);
- anchors and aliases (`&name`, `*name`, `<<:`) are refused: nothing an owner
  writes needs them, and nested aliases expand exponentially (a "billion laughs"
  file of a few hundred bytes);
- nesting deeper than MAX_DEPTH is refused as the scanner meets it, before the
  recursive composer runs into Python's recursion limit, and a text longer than
  MAX_CHARACTERS is refused unread;
- a key written twice is refused (YAML keeps the last one silently);
- a syntax error caused by a quote left open names the line where the quote
  starts, not the line where the parser finally noticed.

Every problem is an OwnerYamlError with the 1-based line of the text; callers
add their file name (and the line offset of front matter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

MAX_DEPTH = 20  # config.yaml needs 3 levels, campaign.yaml 3, front matter 1
# The example config.yaml is 2 KB; PyYAML reads about 100 KB a second, so this bounds
# the time a file can take as well as its size.
MAX_CHARACTERS = 100_000

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
# PyYAML's YAML 1.1 patterns without the base-60 ("sexagesimal") forms.
_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class OwnerYamlError(Exception):
    """A problem at `line` (1-based within the text, None if unknown)."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class OwnerYaml:
    data: Any  # what yaml.safe_load would return (dicts, lists, scalars), or None
    lines: dict[tuple[str, ...], int]  # key path (list items by index) -> 1-based line


class _OwnerLoader(yaml.SafeLoader):
    """SafeLoader without base-60 numbers, anchors or aliases, and with bounded nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: type[yaml.Token]) -> None:
        # PyYAML's scanner does work per open [ or { for every token, so deep flow
        # nesting costs quadratic time before the composer ever sees it: stop here.
        if self.flow_level >= MAX_DEPTH:
            raise OwnerYamlError(
                self.get_mark().line + 1,
                f"nested more than {MAX_DEPTH} levels deep: nothing here needs that much nesting",
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise OwnerYamlError(
                line,
                "anchors and aliases (&name, *name, <<:) are not supported here: write the value out in full",
            )
        if self._depth >= MAX_DEPTH:
            raise OwnerYamlError(
                line, f"nested more than {MAX_DEPTH} levels deep: nothing here needs that much nesting"
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_OwnerLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_OwnerLoader.add_implicit_resolver(_INT_TAG, _INT, list("-+0123456789"))
_OwnerLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


def _key_lines(root: yaml.Node) -> dict[tuple[str, ...], int]:
    found: dict[tuple[str, ...], int] = {}
    # Depth is bounded by the loader; an explicit stack keeps this loop flat anyway.
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                key_path = path + (str(key.value),)
                if key_path in found and isinstance(key, yaml.ScalarNode):
                    raise OwnerYamlError(
                        key.start_mark.line + 1,
                        f"{'.'.join(key_path)} is written twice (first on line {found[key_path]}): keep one",
                    )
                found[key_path] = key.start_mark.line + 1
                stack.append((value, key_path))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                found[path + (str(index),)] = item.start_mark.line + 1
                stack.append((item, path + (str(index),)))
    return found


def _open_quote_line(text: str, error_line: int) -> int | None:
    """The line where a quoted value starts that runs on past its line up to the error."""
    start: int | None = None
    try:
        for token in yaml.scan(text, Loader=_OwnerLoader):
            if token.start_mark.line + 1 > error_line:
                break
            if (
                isinstance(token, yaml.ScalarToken)
                and token.style in ("'", '"')
                and token.end_mark.line > token.start_mark.line
            ):
                start = token.start_mark.line + 1
    except (yaml.YAMLError, OwnerYamlError):
        pass  # the tokens before the error are what matter
    return start


def _syntax_error(text: str, exc: yaml.YAMLError) -> OwnerYamlError:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return OwnerYamlError(
            line,
            f"the character U+{exc.character:04X} is not allowed in YAML (a control character): remove it",
        )
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", None) or exc)
    if mark is None:
        return OwnerYamlError(None, f"YAML syntax error: {problem}")
    line = mark.line + 1
    context = str(getattr(exc, "context", None) or "")
    context_mark = getattr(exc, "context_mark", None)
    if "quoted scalar" in context and context_mark is not None:
        quote_line: int | None = (
            context_mark.line + 1
        )  # the scanner ran off the end looking for the closing quote
    else:
        quote_line = _open_quote_line(text, line)
    if quote_line is not None and quote_line < line:
        return OwnerYamlError(
            quote_line,
            f"YAML syntax error: the quoted value that starts on this line is not closed on it "
            f"(the parser stopped at line {line}: {problem}); close the quote or remove it",
        )
    return OwnerYamlError(line, f"YAML syntax error: {problem}")


def read_owner_yaml(text: str) -> OwnerYaml:
    """Parse `text` as the owner's YAML; raise OwnerYamlError naming the line of any problem."""
    if len(text) > MAX_CHARACTERS:
        raise OwnerYamlError(
            None,
            f"{len(text):,} characters is far more than this file needs; the limit is {MAX_CHARACTERS:,}",
        )
    try:
        loader = _OwnerLoader(text)  # the reader refuses control characters right here
    except yaml.YAMLError as exc:
        raise _syntax_error(text, exc) from None
    try:
        root = loader.get_single_node()
        if root is None:
            return OwnerYaml(None, {})
        lines = _key_lines(root)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise _syntax_error(text, exc) from None
    finally:
        loader.dispose()
    return OwnerYaml(data, lines)
