"""Fakes at the lowest seam: a scripted transport and fake nodes that answer what the console
sends exactly as a release host does, so commands -> executor -> console run in unit tests.

``transport``: :class:`ScriptedTransport` (``rollout.transport.base.Transport`` over a handler,
as httpx's ``MockTransport``). ``node``: :class:`FakeNode` (one host: the fleet-state script
and the release's ``rpc`` over the console templates) and :class:`FakeFleet` (the nodes, their
transport, and a command context over them).
"""

from .node import FakeFleet, FakeNode, Lease
from .transport import Request, ScriptedSession, ScriptedTransport

__all__ = ["FakeFleet", "FakeNode", "Lease", "Request", "ScriptedSession", "ScriptedTransport"]
