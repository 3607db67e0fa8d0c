"""Host patterns for --limit: Ansible's semantics, evaluated purely over names and groups."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from rollout.errors import InventoryError
from rollout.inventory.patterns import match_hosts, select_hosts, split_pattern
from rollout.models import Host, Inventory

HOSTS = ("web1", "web2", "web3", "db1", "db2", "lb1.example.com")
GROUPS = {
    "all": frozenset(HOSTS),
    "ungrouped": frozenset({"lb1.example.com"}),
    "web": frozenset({"web1", "web2", "web3"}),
    "db": frozenset({"db1", "db2"}),
    "prod": frozenset({"web1", "web2", "db1"}),
    "canary": frozenset({"web3"}),
}


def match(pattern: str) -> tuple[str, ...]:
    return match_hosts(pattern, HOSTS, GROUPS)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("all", HOSTS),
        ("*", HOSTS),
        ("web2", ("web2",)),
        ("db", ("db1", "db2")),
        ("web*", ("web1", "web2", "web3")),
        ("*.example.com", ("lb1.example.com",)),
        ("db?", ("db1", "db2")),
        ("db,web1", ("web1", "db1", "db2")),
        ("db:web1", ("web1", "db1", "db2")),
        ("web:!web2", ("web1", "web3")),
        ("!web", ("db1", "db2", "lb1.example.com")),
        ("web:&prod", ("web1", "web2")),
        ("all:!db:&prod", ("web1", "web2")),
        ("prod,!db1,&web", ("web1", "web2")),
        ("~(web|db)1", ("web1", "db1")),
        ("~web[23]", ("web2", "web3")),
        ("web[0]", ("web1",)),
        ("web[-1]", ("web3",)),
        ("web[0:1]", ("web1", "web2")),
        ("web[1:]", ("web2", "web3")),
        ("web[0:1],db[1]", ("web1", "web2", "db2")),
        (" web1 , db2 ", ("web1", "db2")),
    ],
)
def test_patterns_select_like_ansible_in_inventory_order(
    pattern: str, expected: tuple[str, ...]
) -> None:
    """Unions, exclusions, intersections, globs, regexes and subscripts pick these hosts."""
    assert match(pattern) == expected


def test_split_pattern_keeps_separators_inside_brackets() -> None:
    """`:` splits tokens except inside a subscript or range, and only when there is no `,`
    (Ansible's split_host_pattern: with a comma, it splits at commas alone)."""
    assert split_pattern("web[0:1]:db:!db2:&prod") == ("web[0:1]", "db", "!db2", "&prod")
    assert split_pattern("web[0:1],db:!db2:&prod") == ("web[0:1]", "db:!db2:&prod")
    assert split_pattern("web:db,canary") == ("web:db", "canary")
    assert split_pattern("web[01:03]") == ("web[01:03]",)
    assert split_pattern("h1:2222") == ("h1:2222",)
    assert split_pattern("fe80::1") == ("fe80::1",)
    assert split_pattern("web db") == ("web", "db")


@pytest.mark.parametrize("token", ["webz", "!web9", "&stage", "~^nope"])
def test_a_token_matching_nothing_is_an_error_naming_it(token: str) -> None:
    """A typo, even in an exclusion, fails instead of silently widening or narrowing the run."""
    with pytest.raises(InventoryError) as caught:
        match(f"web:{token}")
    text = str(caught.value)
    assert repr(token.lstrip("!&")) in text
    assert "canary, db, prod, ungrouped, web" in text


def test_a_pattern_that_leaves_no_host_is_an_error_listing_the_groups() -> None:
    """An intersection with nothing in common selects no host and says so."""
    with pytest.raises(InventoryError, match="'web:&db' matches no host") as caught:
        match("web:&db")
    assert "all, canary, db, prod, ungrouped, web" in str(caught.value)


@pytest.mark.parametrize("pattern", ["", " , ", ":"])
def test_an_empty_pattern_is_an_error(pattern: str) -> None:
    """An empty --limit is refused rather than read as every host."""
    with pytest.raises(InventoryError, match="is empty"):
        match(pattern)


def test_a_lone_operator_is_an_error() -> None:
    """`web:!` has nothing to exclude."""
    with pytest.raises(InventoryError, match="nothing after it"):
        match("web:!")


def test_an_invalid_regex_is_an_error() -> None:
    """A broken `~regex` token is reported, not raised as re.error."""
    with pytest.raises(InventoryError, match="not a valid regular expression"):
        match("~web(")


def test_an_out_of_range_subscript_is_an_error() -> None:
    """web[7] names a host the group does not have."""
    with pytest.raises(InventoryError, match="out of range; 'web' has 3 host"):
        match("web[7]")


def test_a_host_name_wins_over_globbing() -> None:
    """A token equal to a host name selects that host even if it contains glob characters."""
    assert match_hosts("a[1]", ("a[1]", "a1"), {"all": frozenset({"a[1]", "a1"})}) == ("a[1]",)


def _inventory() -> Inventory:
    hosts = tuple(Host(name=name, address=name) for name in HOSTS)
    return Inventory(
        path="/inv/site.yml", name="site", hosts=hosts, groups=MappingProxyType(GROUPS)
    )


def test_select_hosts_returns_host_objects_in_inventory_order() -> None:
    """select_hosts maps matched names back to the inventory's Host values."""
    inventory = _inventory()
    assert select_hosts(inventory, "db:web1") == (
        inventory.hosts[0],
        inventory.hosts[3],
        inventory.hosts[4],
    )


@pytest.mark.parametrize("pattern", [None, "all"])
def test_select_hosts_with_no_pattern_or_all_returns_every_host(pattern: str | None) -> None:
    """No --limit, or `all`, is the whole inventory."""
    inventory = _inventory()
    assert select_hosts(inventory, pattern) == inventory.hosts


def test_select_hosts_errors_name_the_inventory() -> None:
    """The error says which inventory the pattern was matched against."""
    with pytest.raises(InventoryError, match="inventory 'site'"):
        select_hosts(_inventory(), "nothing-here")
