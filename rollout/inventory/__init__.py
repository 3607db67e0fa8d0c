"""Ansible-style inventories: loaded into :class:`~rollout.models.Inventory`, hosts selected.

The loaders layer (docs/architecture.md). One module per source format and step, in the order
:func:`load_inventory` runs them:

* :mod:`.sources`: the file, or a directory walked as Ansible walks it; YAML or INI each;
* :mod:`.yaml_source`, :mod:`.ini_source`: the two formats, into one :mod:`.builder`;
* :mod:`.ranges`: host entries (``web[01:10]``, ``name:port``);
* :mod:`.groups`: Ansible's implicit groups, cycles, depth, priority and host order;
* :mod:`.vars_files`: ``group_vars/`` and ``host_vars/``;
* :mod:`.hostvars` and :mod:`.references`: each merged value rendered (``!vault``,
  ``{{ name }}``) when first read;
* :mod:`.host_fields`: merged variables onto a Host, each field checked;
* :mod:`.loader`: the merge order, the fleet's name, the entry point;
* :mod:`.patterns`: host patterns (``--limit``) over a loaded inventory.
"""

from __future__ import annotations

from .builder import FLEET_VAR
from .loader import load_inventory
from .patterns import select_hosts

__all__ = ["FLEET_VAR", "load_inventory", "select_hosts"]
