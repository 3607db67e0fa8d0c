"""The readiness checklist as JUnit XML, for CI systems that show test reports.

One ``<testsuite>`` per category, one ``<testcase>`` per check, and a ``<failure>`` (its
``message`` the reason, its text the findings) for each check that failed. Built with
:mod:`xml.etree.ElementTree`, so names and findings are escaped; characters XML 1.0 cannot
carry at all (most control characters) are replaced with ``?``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from .checks import CheckReport

__all__ = ["junit_xml"]

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("?", text)


def junit_xml(report: CheckReport, *, name: str = "readiness") -> str:
    """The report as a JUnit XML document (``<testsuites>`` at the root), as text."""
    failures = len(report.failed)
    total_time = sum(r.duration for r in report.results)
    root = ET.Element(
        "testsuites",
        name=name,
        tests=str(report.total),
        failures=str(failures),
        errors="0",
        time=f"{total_time:.3f}",
    )
    for tally in report.categories:
        mine = [r for r in report.results if r.category is tally.category]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=tally.category.value,
            tests=str(tally.total),
            failures=str(tally.total - tally.passed),
            errors="0",
            skipped="0",
            time=f"{sum(r.duration for r in mine):.3f}",
        )
        for result in mine:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{name}.{tally.category.value}",
                name=_xml_text(result.name),
                time=f"{result.duration:.3f}",
            )
            if not result.ok:
                failure = ET.SubElement(
                    case, "failure", message=_xml_text(result.reason), type="CheckFailed"
                )
                failure.text = _xml_text("\n".join((result.reason, *result.details)))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def gates_junit(results: list[tuple[str, str | None]], *, suite: str = "gates") -> str:
    """Gate results ``(name, None when it holds else why not)`` as a JUnit XML document."""
    failures = sum(1 for _, why in results if why is not None)
    root = ET.Element("testsuites", name=suite, tests=str(len(results)),
                      failures=str(failures), errors="0", time="0.000")  # fmt: skip
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                         failures=str(failures), errors="0", skipped="0", time="0.000")  # fmt: skip
    for name, why in results:
        case = ET.SubElement(node, "testcase", classname=suite, name=_xml_text(name), time="0")
        if why is not None:
            failure = ET.SubElement(case, "failure", message=_xml_text(why), type="GateClosed")
            failure.text = _xml_text(why)
    ET.indent(root)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{ET.tostring(root, encoding="unicode")}\n'
