"""Files rollout ships beside its code: Jinja2 templates and the reference playbook.

Found through the package (``rollout/templates`` and ``rollout/playbooks`` are symlinks into
the checkout, copies in an installed wheel), so an installed ``rollout`` works outside a
checkout. The default playbook is the working directory's ``playbooks/otp_refactor.yml`` when
there is one (the operator's copy), else the one shipped with the package.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHECKOUT", "PACKAGED_PLAYBOOK", "TEMPLATES", "default_playbook"]

_HERE = Path(__file__).resolve().parent
#: The directory that holds the package: the checkout in a checkout (site-packages in an
#: installed wheel). Paths under it are shown relative to it (the runbook's playbook path).
CHECKOUT = _HERE.parent
TEMPLATES = _HERE / "templates"
PLAYBOOK_NAME = "playbooks/otp_refactor.yml"
PACKAGED_PLAYBOOK = _HERE / PLAYBOOK_NAME


def default_playbook() -> str:
    """``playbooks/otp_refactor.yml`` of the working directory if present, else the packaged one."""
    if Path(PLAYBOOK_NAME).is_file():
        return PLAYBOOK_NAME
    return str(PACKAGED_PLAYBOOK)
