"""The option tables of docs/configuration.md, generated from the option declarations.

    python -m registry.config.docs docs/configuration.md          # rewrite the tables
    python -m registry.config.docs --check docs/configuration.md  # exit 1 when out of date

The tables sit between `<!-- options:NAME -->` and `<!-- /options:NAME -->` lines; the rest
of the file is written by hand. A test runs the check, so an option declared without
regenerating the docs fails the suite.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from registry.config.sections import TYPED
from registry.config.serve_options import ServeOptions, WebOptions
from registry.options import Declared, declared, default_doc, type_doc

# Each options model, with where its YAML keys sit under a Configuration's `spec`.
YAML_SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("spec", ServeOptions),
    ("spec.web", WebOptions),
    *((f"spec.{path}", model) for path, model in TYPED),
)


def _flag_cell(opt: Declared) -> str:
    if opt.flag is None:
        return "—"
    spellings = ", ".join(f"`-{name}`" for name in (opt.flag, *opt.aliases))
    return f"{spellings} / `{opt.env_name}`" if opt.env_name else spellings


def _type_cell(opt: Declared) -> str:
    text = type_doc(opt)
    return f"{text}, secret" if opt.secret and "secret" not in text else text


def yaml_table() -> str:
    """Every option that has a YAML field: field, type, default, meaning, flag / variable."""
    rows = [
        "| field | type | default | meaning | flag / variable |",
        "|---|---|---|---|---|",
    ]
    for prefix, model in YAML_SECTIONS:
        for opt in declared(model):
            if opt.yaml is not None:
                cells = (
                    f"`{prefix}.{opt.yaml}`",
                    _type_cell(opt),
                    default_doc(opt),
                    opt.doc,
                    _flag_cell(opt),
                )
                rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def flags_table() -> str:
    """The options that are flags and variables only."""
    rows = ["| flag | variable | type | default | meaning |", "|---|---|---|---|---|"]
    for _, model in YAML_SECTIONS:
        for opt in declared(model):
            if opt.yaml is None and opt.flag is not None:
                flags = ", ".join(f"`-{name}`" for name in (opt.flag, *opt.aliases))
                variable = f"`{opt.env_name}`" if opt.env_name else "—"
                kind = "switch" if opt.switch else _type_cell(opt)
                cells = (flags, variable, kind, default_doc(opt), opt.doc)
                rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


TABLES: dict[str, Callable[[], str]] = {"yaml": yaml_table, "flags": flags_table}


def render(text: str) -> str:
    """`text` with every generated table replaced by its current version."""
    for name, table in TABLES.items():
        pattern = re.compile(
            rf"(<!-- options:{name} -->\n).*?(\n<!-- /options:{name} -->)", re.DOTALL
        )
        if not pattern.search(text):
            raise ValueError(f"no <!-- options:{name} --> block")
        text = pattern.sub(lambda match, t=table: match[1] + t() + match[2], text)  # type: ignore[misc]
    return text


def main(argv: Sequence[str]) -> int:
    check = "--check" in argv
    paths = [Path(arg) for arg in argv if arg != "--check"]
    stale = []
    for path in paths:
        current = path.read_text(encoding="utf-8")
        wanted = render(current)
        if wanted != current:
            stale.append(str(path))
            if not check:
                path.write_text(wanted, encoding="utf-8")
    if check and stale:
        print(f"out of date: {', '.join(stale)}; run python -m registry.config.docs on it")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
