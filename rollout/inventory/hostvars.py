"""A host's merged variables as rollout reads them: each rendered when first read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..errors import SourceLocation
from ..vault import Vault
from ..yamlsrc import VaultText
from .builder import Value, Vars, fail
from .references import TemplateRefused, has_template, render


class Rendered(Mapping[str, Value]):
    """A host's merged variables, each rendered when first read: inline ``!vault`` values
    decrypted (secret), ``{{ name }}`` references resolved (:mod:`.references`)."""

    _MAGIC = ("inventory_hostname", "inventory_hostname_short", "group_names")

    def __init__(self, host: str, groups: frozenset[str], raw: Vars, vault: Vault) -> None:
        self._host = host
        self._raw = raw
        self._vault = vault
        self._done: dict[str, Value] = {}
        self._busy: list[str] = []
        names = sorted(g for g in groups if g not in ("all", "ungrouped"))
        self._magic: dict[str, object] = {
            "inventory_hostname": host,
            "inventory_hostname_short": host.split(".")[0],
            "group_names": names,
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, key: str) -> Value:
        if key in self._done:
            return self._done[key]
        raw = self._raw[key]
        if key in self._busy:
            chain = " -> ".join([*self._busy[self._busy.index(key) :], key])
            fail(f"variables refer to each other in a loop: {chain}", raw.loc, "break the loop")
        self._busy.append(key)
        try:
            value, secret = self._decrypt(raw.value, raw.loc)
            if not secret and has_template(value):
                try:
                    value, secret = render(value, self._lookup)
                except TemplateRefused as exc:
                    fail(
                        f"{key} for host {self._host!r}: {exc}",
                        raw.loc,
                        "write the value itself, or a plain {{ other_variable }} reference",
                    )
        finally:
            self._busy.pop()
        done = self._done[key] = Value(value, raw.loc, raw.secret or secret)
        return done

    def _lookup(self, name: str) -> tuple[object, bool]:
        if name in self._raw:
            found = self[name]
            return found.value, found.secret
        if name in self._magic:
            return self._magic[name], False
        raise TemplateRefused(f"{{{{ {name} }}}} refers to a variable the host does not have")

    def _decrypt(self, value: object, loc: SourceLocation) -> tuple[object, bool]:
        if isinstance(value, VaultText):
            where = SourceLocation(loc.file, value.line, loc.key)
            return self._vault.decrypt(value.ciphertext, where), True
        if isinstance(value, Mapping) and _holds_vault(value):
            out: dict[object, object] = {}
            secret = False
            for k, v in value.items():
                out[k], s = self._decrypt(v, loc)
                secret = secret or s
            return out, secret
        if isinstance(value, (list, tuple)) and _holds_vault(value):
            items = [self._decrypt(v, loc) for v in value]
            return [v for v, _ in items], any(s for _, s in items)
        return value, False


def _holds_vault(value: object) -> bool:
    if isinstance(value, VaultText):
        return True
    if isinstance(value, Mapping):
        return any(_holds_vault(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_vault(v) for v in value)
    return False
