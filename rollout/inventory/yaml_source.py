"""Ansible's YAML inventory: ``all: {hosts, vars, children}``, groups nested under
``children``.
"""

from __future__ import annotations

import difflib

from ..errors import InputError, InventoryError, SourceLocation
from ..yamlsrc import Node, load_text
from .builder import Builder, fail, set_var, show
from .ranges import host_names

_STRUCTURE_KEYS = ("hosts", "vars", "children")


def parse_yaml(text: str, file: str, builder: Builder) -> None:
    try:
        data = load_text(text, file)
    except InventoryError:
        raise
    except InputError as exc:
        message = exc.message.removeprefix(f"{exc.location}: ") if exc.location else exc.message
        hint = exc.hint or "fix the YAML at that line (indentation, brackets, quotes)"
        raise InventoryError(message, location=exc.location, hint=hint) from None
    if data is None:
        return
    if not isinstance(data, Node):
        fail(
            "a YAML inventory must be a mapping of group names",
            SourceLocation(file, getattr(data, "line", 1)),
            "start the file with `all:` and put hosts:, vars: and children: under it",
        )
    if "plugin" in data and not isinstance(data["plugin"], (Node, type(None))):
        fail(
            "inventory plugins (plugin: ...) are not supported",
            data.loc("plugin"),
            "export the hosts to a static YAML or INI inventory",
        )
    for name in data:
        if name in _STRUCTURE_KEYS:
            fail(
                f"{name!r} at the top level: the top level lists groups",
                data.loc(name),
                f"start the file with `all:` and indent {name}: under it",
            )
        builder.group(name, data.loc(name))
        _yaml_group(builder, name, data[name], data.loc(name), name)


def _yaml_group(builder: Builder, name: str, body: object, loc: SourceLocation, path: str) -> None:
    if body is None:
        return
    if not isinstance(body, Node):
        fail(
            f"group {name!r} must be a mapping with hosts:, vars: or children:, got {show(body)}",
            loc,
            "write `web: {hosts: {web1: null}}` or leave the group empty (`web:`)",
        )
    for key in body:
        if key not in _STRUCTURE_KEYS:
            close = difflib.get_close_matches(key, _STRUCTURE_KEYS, n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"a group holds only hosts:, vars: and children:; move {key!r} under one"
            )
            fail(f"unexpected key {key!r} in group {name!r}", body.loc(key, f"{path}.{key}"), hint)
    hosts = body.get("hosts")
    if hosts is not None:
        hosts_loc = body.loc("hosts", f"{path}.hosts")
        if not isinstance(hosts, Node):
            fail(
                f"hosts of group {name!r} must be a mapping of host names, got {show(hosts)}",
                hosts_loc,
                "write each host as a key: `hosts: {web1: null, web2: {ansible_port: 2222}}`",
            )
        for token in hosts:
            host_loc = hosts.loc(token, f"{path}.hosts.{token}")
            names, port = host_names(token, host_loc)
            hvars = hosts[token]
            if hvars is not None and not isinstance(hvars, Node):
                fail(
                    f"host {token!r} must map to its variables or be empty, got {show(hvars)}",
                    host_loc,
                    f"write `{token}: {{ansible_host: ...}}` or `{token}:` with nothing after it",
                )
            for hname in names:
                host = builder.add_host(hname, host_loc, name, port)
                if isinstance(hvars, Node):
                    for key, value in hvars.items():
                        set_var(host.vars, str(key), value, hvars.loc(key))
    group_vars = body.get("vars")
    if group_vars is not None:
        if not isinstance(group_vars, Node):
            fail(
                f"vars of group {name!r} must be a mapping, got {show(group_vars)}",
                body.loc("vars", f"{path}.vars"),
                "write `vars: {ansible_user: deploy}`",
            )
        for key, value in group_vars.items():
            set_var(builder.groups[name].vars, str(key), value, group_vars.loc(key))
    children = body.get("children")
    if children is not None:
        if not isinstance(children, Node):
            fail(
                f"children of group {name!r} must be a mapping of group names, "
                f"got {show(children)}",
                body.loc("children", f"{path}.children"),
                "write `children: {web: null, db: null}` or nest each group's hosts: under it",
            )
        for child in children:
            child_loc = children.loc(child, f"{path}.children.{child}")
            builder.add_child(name, child, child_loc)
            _yaml_group(builder, child, children[child], child_loc, f"{path}.children.{child}")
