"""The checklist as text: each check with its mark and reason, the tallies, the verdict."""

from __future__ import annotations

from .results import CheckReport, plural


def render_checks(report: CheckReport, *, encoding: str | None = "utf-8") -> str:
    """The checklist as text: each check with ✓/✗ and its reason, then the tallies.

    ``encoding`` is the target stream's; where it cannot show ✓ and ✗ (ASCII, latin-1, or
    None), the marks are ``ok`` and ``XX``.
    """
    good, bad, rule = _marks(encoding)
    lines: list[str] = []
    if not report.results:
        return "No checks are configured: add a `checks:` section to the playbook.\n"
    for tally in report.categories:
        lines.append(tally.category.value.replace("_", " ").upper())
        for result in report.results:
            if result.category is not tally.category:
                continue
            lines.append(f"  {good if result.ok else bad} {result.name}: {result.reason}")
            lines.extend(f"      {detail}" for detail in result.details)
        lines.append(f"  {tally.passed}/{tally.total} checks passed")
        lines.append("")
    lines.append(rule * 50)
    lines.append(f"OVERALL: {report.passed}/{report.total} checks passed")
    if report.ok:
        lines.append("Ready: every check passed.")
    else:
        lines.append(f"Not ready: {plural(len(report.failed), 'check')} failed.")
    return "\n".join(lines) + "\n"


def _marks(encoding: str | None) -> tuple[str, str, str]:
    if encoding:
        try:
            "✓✗═".encode(encoding)
            return "✓", "✗", "═"
        except (UnicodeEncodeError, LookupError):
            pass
    return "ok", "XX", "="
