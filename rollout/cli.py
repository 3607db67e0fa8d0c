"""The CLI's seams: the task class that adds the shared options, the engine's entry and exit,
and the ``rollout`` console command.

``invoke deploy --phase 3`` in a checkout and ``rollout deploy --phase 3`` after
``pip install .`` run the same task functions: ``rollout/_tasks.py`` is a symlink to the
checkout's ``tasks.py`` (a wheel carries a copy), so the two can never drift apart.

A task is ``@command(TARGET, OUTPUT, ...)`` over ``def body(c, flags, own options...)``:
:class:`RolloutTask` extends Invoke's ``Task`` as Fabric's does, adding the groups' arguments
(:mod:`rollout.options`) to the body's own and handing their values to the body as one
:class:`~rollout.options.Flags`. :func:`engine` and :func:`ledger_only` load what a command
needs and turn every :class:`~rollout.errors.RolloutError` into ``invoke.Exit`` with its stable
exit code (and, with ``--json``, one ``error`` line on stdout).
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.parser.argument import Argument
from invoke.program import Program
from invoke.tasks import Task, task

from . import __version__
from .options import Flags, Group, help_text, short_flag

if TYPE_CHECKING:
    from .commands.context import Context, LedgerContext, Options

__all__ = ["RolloutTask", "command", "engine", "ledger_only", "main", "program"]


class RolloutTask(Task):  # type: ignore[type-arg]
    """An Invoke task whose shared options come from groups, not from its signature.

    The body is ``def body(c, flags: Flags, ...own options)``; with no groups it is an
    ordinary ``def body(c, ...)``. Short flags are only the shared ones of
    :data:`rollout.options.SHORT_FLAGS`: Invoke's automatic ones are off, so ``-h`` is help.
    """

    def __init__(self, body: Callable[..., Any], *, options: tuple[Group, ...] = (),
                 **kwargs: Any) -> None:  # fmt: skip
        self.groups = options
        self.shared = frozenset(name for group in options for name in group.flags)
        helps = dict(kwargs.pop("help", None) or {})
        #: Help overrides for shared options (e.g. advance's --junit says what it writes).
        self.shared_help = {k: helps.pop(k) for k in list(helps) if k in self.shared}
        kwargs["auto_shortflags"] = False
        super().__init__(body, help=helps, **kwargs)
        own = set(self.argspec(body).parameters)
        clash = own & self.shared
        if clash:
            raise ValueError(f"task {self.name}: {sorted(clash)} are shared options already")

    def argspec(self, body: Callable[..., Any]) -> inspect.Signature:
        """The body's own options: without the context, and without ``flags`` if it has groups."""
        sig = super().argspec(body)
        if not self.groups:
            return sig
        params = list(sig.parameters.values())
        if not params or params[0].name != "flags":
            raise TypeError(f"{body.__name__}: a task with option groups takes (c, flags, ...)")
        return sig.replace(parameters=params[1:])

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        """The body's own arguments, then every shared option of the task's groups."""
        saved = dict(self.help)  # Invoke consumes the help dict; keep it for the next call
        try:
            args: list[Argument] = super().get_arguments(ignore_unknown_help)
        finally:
            self.help = saved
        for group in self.groups:
            for name in group.flags:
                if any(a.name == name for a in args):
                    continue  # in two groups
                args.append(_argument(name, self.shared_help.get(name, help_text(name))))
        return args

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if any(kwargs.get(name) in HELP_TOKENS for name in self.positional):
            return self.print_help()  # Invoke's parser took `deploy -h` for the phase
        refuse_core_flags(sys.argv, self.name)
        if not self.groups:
            return super().__call__(*args, **kwargs)
        given = {k: kwargs.pop(k) for k in list(kwargs) if k in self.shared}
        return super().__call__(args[0], Flags.of(given, self.shared), *args[1:], **kwargs)

    def print_help(self) -> None:
        """Print this task's ``--help`` (what ``invoke --help TASK`` prints)."""
        alone = Collection(self)  # the task's path (ledger.copy) is its collection's business
        Program(namespace=alone).run(["invoke", "--help", *alone.task_names], exit=False)


#: What a positional argument's place may hold when the operator asked for help instead.
HELP_TOKENS = ("-h", "--help")

#: What an old short flag meant in this tool before the options were declared once; the same
#: letter after a task name is now one of Invoke's own flags (``rollback -e`` would echo).
OLD_MEANINGS = {
    "echo": "if you meant --emergency or --ledger, spell it out",
    "debug": "if you meant --dest or --ledger, spell it out",
    "warn-only": "if you meant --wait, spell it out",
    "collection": "if you meant --lock-timeout, --count or --check, spell it out",
    "search-root": "if you meant --reason or --run, spell it out",
    "config": "if you meant --force, spell it out",
    "dry": "Invoke's dry run does not reach this tool: `invoke plan` shows what would change",
}

#: The names a process has when it is the CLI (``python -m invoke`` runs ``invoke/__main__.py``).
CLI_NAMES = frozenset({"invoke", "inv", "rollout"})


def refuse_core_flags(argv: list[str], task: str) -> None:
    """Refuse a run whose command line has one of Invoke's own flags after a task name.

    Invoke reads its core flags anywhere on the line, so an old habit such as
    ``invoke rollback -e --to 1`` (``-e`` was ``--emergency``) would run an ordinary rollback
    with ``--echo``. Before any task runs, such a line is a usage error (exit 2) that names
    the flag, what Invoke takes it for, and what was probably meant. Only a CLI process's
    own ``argv`` is read (a test that runs ``Program`` in-process sets ``sys.argv``).
    """
    if not argv or not _is_cli(argv[0]) or not _may_name_core_flag(argv[2:]):
        return
    found = misplaced_core_flags(tuple(argv))
    if not found:
        return
    from .errors import UsageError

    lines = []
    for name in found:
        meant = OLD_MEANINGS.get(name)
        was = f" ({meant})" if meant else ""
        lines.append(f"`--{name}`{was}")
    with exits("--json" in argv or "-j" in argv):
        raise UsageError(
            f"{task}: nothing was run: Invoke's own option {', '.join(lines)} was given after "
            "the task name, where Invoke takes it for itself and the task never sees it",
            hint="spell the task's option out, or put Invoke's own options before the task "
            "name (`invoke --echo rollback ...`)",
        )


def _may_name_core_flag(tokens: list[str]) -> bool:
    """Whether a token could be one of Invoke's own flags (the cheap test before a parse)."""
    program = Program()
    names = {n for arg in (*program.core_args(), *program.task_args()) for n in arg.names}
    for token in tokens:
        if token.startswith("--") and token[2:].split("=", 1)[0] in names:
            return True
        if token.startswith("-") and not token.startswith("--") and set(token[1:]) & names:
            return True
    return False


def _is_cli(arg0: str) -> bool:
    from pathlib import Path

    path = Path(arg0)
    return path.name in CLI_NAMES or (path.name == "__main__.py" and path.parent.name in CLI_NAMES)


@functools.lru_cache(maxsize=4)
def misplaced_core_flags(argv: tuple[str, ...]) -> tuple[str, ...]:
    """The core flags (other than help) that ``argv`` gives after a task name, as Invoke
    itself parses the line (``Program.core_via_tasks``); empty when it does not parse."""
    from invoke.exceptions import ParseError
    from invoke.parser import Parser

    from . import _tasks

    collection = Collection.from_module(_tasks)
    initial = Program().initial_context  # as `invoke` has them: with --collection and --search-root
    try:
        core = Parser(initial=initial, ignore_unknown=True).parse_argv(list(argv[1:]))
        contexts = collection.to_contexts(ignore_unknown_help=True)
        via = Parser(initial=initial, contexts=contexts).parse_argv(core.unparsed)[0]
    except ParseError:
        return ()
    seen = {arg.name for arg in via.args.values() if arg.got_value}
    return tuple(sorted(seen - {"help", "complete"}))  # shell completion passes --complete


def _argument(name: str, help: str) -> Argument:
    from .options import FIELDS

    default = FIELDS[name].default
    short = short_flag(name)
    dashed = name.replace("_", "-")
    return Argument(
        names=(dashed, short) if short else (dashed,),
        kind=bool if isinstance(default, bool) else str,
        default=default,
        help=help,
        attr_name=name if dashed != name else None,
    )


def command(*groups: Group, **kwargs: Any) -> Callable[[Callable[..., Any]], RolloutTask]:
    """``@task`` for a :class:`RolloutTask` taking ``groups`` (kwargs as Invoke's ``@task``)."""
    made: Callable[[Callable[..., Any]], RolloutTask] = task(
        klass=RolloutTask, options=groups, **kwargs
    )
    return made


# -- entering the engine ---------------------------------------------------------------------


def confirm() -> Callable[[str], bool] | None:
    """Ask on the terminal; None (a risky step refuses) when stdin is not one."""
    if not sys.stdin.isatty():
        return None

    def ask(question: str) -> bool:
        answer = input(f"{question} Type 'yes' to continue: ")
        return answer.strip().lower() == "yes"

    return ask


@contextmanager
def exits(as_json: bool) -> Iterator[None]:
    """Turn engine errors into ``invoke.Exit`` with their stable codes (and a JSON line)."""
    from .errors import RolloutError

    try:
        yield
    except RolloutError as exc:
        if as_json:
            from .report import error_line

            print(error_line(exc), flush=True)
        raise Exit(f"error: {exc}", code=int(exc.exit_code)) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=130) from None


@contextmanager
def engine(flags: Flags, **own: Any) -> Iterator[Context]:
    """The playbook, inventory, hosts and ledger, loaded and validated; errors mapped.

    ``own`` are a task's own options that the engine reads from ``Options`` (deploy's wait).
    """
    from .commands.context import load_context
    from .report import Reporter

    with exits(flags.json):
        ctx = load_context(_options(flags, own), Reporter(as_json=flags.json),
                           confirm=confirm())  # fmt: skip
        ctx.cancel.install()
        yield ctx


@contextmanager
def ledger_only(flags: Flags) -> Iterator[LedgerContext]:
    """The inventory and ledger only: a broken playbook does not stop history or unlock."""
    from .commands.context import load_ledger_context
    from .report import Reporter

    with exits(flags.json):
        yield load_ledger_context(flags.options(), Reporter(as_json=flags.json))


def _options(flags: Flags, own: dict[str, Any]) -> Options:
    import dataclasses

    return dataclasses.replace(flags.options(), **own)


# -- the console command -----------------------------------------------------------------------


def program() -> Program:
    """An Invoke program named ``rollout`` over the tasks of ``tasks.py``."""
    from . import _tasks

    return Program(
        namespace=Collection.from_module(_tasks),
        name="rollout",
        binary="rollout",
        version=__version__,
    )


def main() -> None:
    """Entry point of the ``rollout`` console script."""
    program().run()
