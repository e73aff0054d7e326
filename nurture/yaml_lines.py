"""Where each key of a YAML document is, so errors can name the line."""

from __future__ import annotations

import yaml


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path (list items by index) to its 1-based line; {} if the YAML does not parse."""
    found: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                found[path + (str(key.value),)] = key.start_mark.line + 1
                walk(value, path + (str(key.value),))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                found[path + (str(index),)] = item.start_mark.line + 1
                walk(item, path + (str(index),))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return found
    if root is not None:
        walk(root, ())
    return found
