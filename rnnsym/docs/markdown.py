"""The derivation docs as one Markdown file with ``$$…$$`` math, and its pictures as SVG files.

GitHub, MkDocs (with arithmatex), Jupyter Book and pandoc all render ``$$…$$`` blocks; the
pictures are referenced by relative links, so the folder can be moved as a whole.
"""
from __future__ import annotations

from ..printing.markdown import derivation_markdown, network_markdown
from ..printing.text import text_name
from .svg import picture_svg


def network_document(network, derivations, report, stem: str) -> tuple[str, dict[str, str]]:
    """``(markdown, {file name: svg})`` for ``network``; ``stem`` names the files.

    >>> import rnnsym as rs
    >>> net = rs.seed_rnn(steps=2)
    >>> text, pictures = network_document(net, [net.derive("w")], None, "seed-T2")
    >>> sorted(pictures), "![The unrolled network](seed-T2.svg)" in text
    (['seed-T2-w.svg', 'seed-T2.svg'], True)
    """
    pictures = {f"{stem}.svg": picture_svg(network)}
    head = network_markdown(network, []).rstrip("\n").split("\n")
    at = head.index("## The network") + 1
    head[at:at] = ["", "![The unrolled network](" + f"{stem}.svg)", "",
                   "Time runs left to right; weights are written on the edges they scale."]
    out = ["\n".join(head), ""]
    taken: set[str] = set()
    from .pages import slug

    for d in derivations:
        picture = f"{stem}-{slug(d.target, taken)}.svg"
        pictures[picture] = picture_svg(network, d)
        section = derivation_markdown(d).split("\n")
        plural = "s" if d.path_count != 1 else ""
        section[1:1] = ["", f"![The path{plural} of dL/d{text_name(d.target)}]({picture})"]
        out.append("\n".join(section))
    if report is not None:
        out.append(_check_markdown(derivations, report))
    return "\n".join(out).rstrip("\n") + "\n", pictures


def _check_markdown(derivations, report) -> str:
    from .pages import has_path_values

    rows = ["## Gradient check", "",
            f"Compiled gradients against central differences (float64, step {report.eps:g}) at a random "
            f"point: seed {report.seed}, batch of {report.batch}.", "",
            "| parameter | analytic | finite difference | relative error |", "| --- | ---: | ---: | ---: |"]
    rows += [f"| `{r.name}` | {r.analytic:.10g} | {r.numeric:.10g} | {r.rel_error:.1e} |" for r in report.rows]
    verdict = "agrees" if report.ok else "DISAGREES"
    rows += ["", f"Largest relative error {report.max_rel_error:.1e} (tolerance {report.tolerance:g}): {verdict}."]
    numeric = {r.name: r.numeric for r in report.rows}
    shared = [d for d in derivations if has_path_values(d) and d.target in numeric]
    if shared:
        rows += ["", "A weight with several paths: each path's term at the same point, and their sum.", ""]
        for d in shared:
            values = d.evaluate(report.params, report.x, report.y)
            terms = " + ".join(f"({v:.6e})" for v in values)
            rows.append(f"- `dL/d{d.target}` = {terms} = {sum(values):.10g}; finite difference "
                        f"{numeric[d.target]:.10g}")
    return "\n".join(rows) + "\n"
