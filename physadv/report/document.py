"""A report as a list of blocks (heading, paragraph, table, image, links), written both as
Markdown and as one self-contained HTML file (images embedded)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from physadv.harness.metrics import format_rate


def fmt_rate(rate: dict | None) -> str:
    """``{"rate", "k", "n", "ci95"}`` → ``83.3% [70.1, 91.4] (50/60)``; an em dash when absent."""
    if not rate or not rate.get("n"):
        return "—"
    return format_rate(rate["k"], rate["n"])  # from the counts: the same digits as the terminal


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        if rows:
            self.blocks.append(("table", (header, rows)))

    def image(self, path: Path | None, caption: str) -> None:
        if path is not None:
            self.blocks.append(("img", (Path(path), caption)))

    def links(self, files: list[tuple[str, str]]) -> None:
        self.blocks.append(("links", files))

    def markdown(self, base: Path) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "h2":
                out += [f"## {value}", ""]
            elif kind == "p":
                out += [str(value), ""]
            elif kind == "table":
                header, rows = value
                out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                out += ["| " + " | ".join(r) + " |" for r in rows] + [""]
            elif kind == "img":
                path, caption = value
                out += [f"![{caption}]({path.relative_to(base).as_posix()})", ""]
            elif kind == "links":
                out += [f"- [{name}]({name}) — {what}" for name, what in value] + [""]
        return "\n".join(out)

    def html(self, base: Path) -> str:
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "h2":
                body.append(f"<h2>{e(value)}</h2>")
            elif kind == "p":
                body.append(f"<p>{e(str(value))}</p>")
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{e(h)}</th>" for h in header)
                cells = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><tr>{head}</tr>{cells}</table>")
            elif kind == "img":
                path, caption = value
                data = base64.b64encode(path.read_bytes()).decode()
                mime = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "png"
                body.append(
                    f'<figure><img alt="{e(caption)}" src="data:image/{mime};base64,{data}">'
                    f"<figcaption>{e(caption)}</figcaption></figure>"
                )
            elif kind == "links":
                items = "".join(f'<li><a href="{e(n)}">{e(n)}</a> — {e(w)}</li>' for n, w in value)
                body.append(f"<ul>{items}</ul>")
        style = (
            "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
            "text-align:left;font-size:14px}th{background:#f3f3f3}img{max-width:100%}"
            "figcaption{color:#555;font-size:13px}"
        )
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{e(self.title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
        )

    def write(self, out: Path, stem: str = "report") -> tuple[Path, Path]:
        md, page = out / f"{stem}.md", out / f"{stem}.html"
        md.write_text(self.markdown(out))
        page.write_text(self.html(out))
        return md, page
