"""The benchmark suite: the tool against the raw OpenSSH floor and ansible-playbook.

Run ``bash bench/run.sh`` (or ``--quick``) from the repository root; BENCHMARKS.md explains
what is measured and holds the latest figures. Modules: :mod:`.suite` (the run),
:mod:`.jobs` (the remote commands every contender shares), :mod:`.contenders`,
:mod:`.fanout` and :mod:`.ansible` (the other two ways), :mod:`.measure` (timing and memory),
:mod:`.fleet` (host and ledger state between runs), :mod:`.report` (Markdown),
:mod:`.sampler` and :mod:`.patched` (where the tool's time goes, and proposed fixes measured
in-process), :mod:`.erlcall`, and :mod:`.erlstudy` (the erl_call prototype).
"""
