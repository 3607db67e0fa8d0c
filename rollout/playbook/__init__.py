"""Load and validate rollout playbooks; resolve every phase to its full flag state.

A playbook lists each phase as a *delta* (the flags it changes). Deploys and rollbacks must
converge hosts to a phase's *full* state, so the loader resolves it here, once: the flags'
defaults (phase 0, the baseline) merged with every delta up to and including that phase.
``Phase.delta`` keeps what the file lists; ``Phase.state`` is what hosts must end up with.

Every mistake raises :class:`~rollout.errors.PlaybookError` carrying ``file:line (key)`` and
a hint; ``key`` is the path to the offending value, e.g. ``phases[3].soak`` (phase entries
count from 1) or ``health.thresholds.error_rate.max``. The format and the table of rules are
in ``docs/playbook.md``.

The loaders layer (docs/architecture.md). One module per section of the document:

* :mod:`.reader`: reading one mapping: typed values, unknown keys (with a did-you-mean),
  failing at ``file:line (key)``; every other module reads through it;
* :mod:`.flags`: ``flags`` (the defaults) and a phase's ``set`` (its delta);
* :mod:`.metrics_source`: ``health.source``; :mod:`.secret_urls`: ``url_env``/``url_file``;
* :mod:`.health`: ``health`` and a phase's override (thresholds, ``compare``), ``judgement``;
* :mod:`.phases`: ``phases``, each resolved to its full state, with its gates;
  :mod:`.wave_sizes`: a phase's ``waves``;
* :mod:`.policy`: ``policy`` (``serial``, failures, timeouts) and ``emergency``;
* :mod:`.checks`: ``checks``, the readiness checklist;
* :mod:`.notify`: ``notify``, the webhook and its events;
* :mod:`.loader`: the entry points, the order sections are read in and what crosses them.
"""

from __future__ import annotations

from .loader import load_playbook, load_playbook_text

__all__ = ["load_playbook", "load_playbook_text"]
