"""Ansible-style inventories: loaded into :class:`~rollout.models.Inventory`, hosts selected."""

from __future__ import annotations

from .loader import FLEET_VAR, load_inventory
from .patterns import select_hosts

__all__ = ["FLEET_VAR", "load_inventory", "select_hosts"]
