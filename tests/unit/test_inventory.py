"""Loading Ansible-style inventories: formats, variable precedence, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollout.errors import InventoryError
from rollout.inventory import load_inventory, select_hosts
from rollout.models import Host, Inventory, Secret
from rollout.vault import Vault

DATA = Path(__file__).resolve().parents[1] / "data" / "inventory"


def load(relative: str) -> Inventory:
    """Load with the test data's vault password (tests/data/inventory/operator is vaulted)."""
    return load_inventory(
        DATA / relative, vault=Vault(str(DATA / "operator" / "vault-password.txt"))
    )


def hosts_by_name(inventory: Inventory) -> dict[str, Host]:
    return {host.name: host for host in inventory.hosts}


# --- formats ---------------------------------------------------------------------------------


def test_yaml_and_ini_forms_of_one_inventory_give_equal_hosts() -> None:
    """site.yml and site.ini describe the same fleet and load to identical Host values."""
    assert load("same/site.yml").hosts == load("same/site.ini").hosts


def test_yaml_and_ini_forms_of_one_inventory_give_equal_groups() -> None:
    """Both forms resolve children the same way, including the implicit all and ungrouped."""
    assert dict(load("same/site.yml").groups) == dict(load("same/site.ini").groups)


def test_hosts_keep_the_order_they_first_appear_in() -> None:
    """Host order is Ansible's (ansible-core 2.19's answer for this file): ungrouped hosts
    first, then each group's hosts breadth first, ranges expanded in place."""
    names = [host.name for host in load("same/site.ini").hosts]
    assert names == [
        "bastion.example.com",
        "stage1",
        "web01.example.com",
        "web02.example.com",
        "web03.example.com",
        "db-a",
        "db-b",
    ]


def test_inventory_name_is_the_path_from_the_project_root_and_path_is_absolute() -> None:
    """The ledger key is the path from the project root (issue 11: no longer the stem, which two
    fleets could share); the old stem is kept to spot older records; the path is resolved."""
    inventory = load_inventory(Path("tests/data/inventory/same/site.yml"))
    assert inventory.name == "tests/data/inventory/same/site.yml"
    assert inventory.legacy_name == "site"
    assert inventory.path == str(DATA / "same" / "site.yml")


def test_groups_resolve_children_and_include_all_and_ungrouped() -> None:
    """A parent group holds its children's hosts; hosts in no group land in ungrouped."""
    groups = load("same/site.yml").groups
    assert groups["prod"] == groups["web"] | groups["db"]
    assert groups["ungrouped"] == frozenset({"bastion.example.com"})
    assert groups["all"] == frozenset(host.name for host in load("same/site.yml").hosts)


def test_host_groups_list_every_group_including_parents_and_all() -> None:
    """Host.groups holds direct groups, their ancestors and all."""
    hosts = hosts_by_name(load("same/site.yml"))
    assert hosts["web01.example.com"].groups == frozenset({"all", "prod", "web"})
    assert hosts["bastion.example.com"].groups == frozenset({"all", "ungrouped"})


def test_connection_variables_map_onto_the_host() -> None:
    """ansible_host/port/user and our variables become Host fields; local paths are resolved."""
    db_a = hosts_by_name(load("same/site.yml"))["db-a"]
    assert db_a.address == "10.0.2.10"
    assert db_a.port == 2222
    assert db_a.user == "deploy"
    assert db_a.key_file == str(DATA / "same" / "keys" / "deploy_ed25519")
    assert db_a.known_hosts_file == str(DATA / "same" / "known_hosts")
    assert db_a.release_bin == "/srv/foundation/current/bin/foundation"
    assert db_a.release_env == (
        ("RELEASE_COOKIE", Secret("cookie-from-all")),
        ("RELEASE_NODE", Secret("foundation")),
    )


def test_name_colon_port_sets_the_port() -> None:
    """`db-b:2200` is host db-b on port 2200, as in Ansible."""
    assert hosts_by_name(load("same/site.ini"))["db-b"].port == 2200


def test_state_paths_restart_command_and_service_are_read() -> None:
    """Lists and strings of our own variables come through from INI literals and YAML."""
    hosts = hosts_by_name(load("same/site.ini"))
    assert hosts["stage1"].state_paths == ("/var/lib/foundation", "/srv/foundation/state")
    assert hosts["stage1"].restart_command == "sudo systemctl restart foundation"
    assert hosts["web02.example.com"].service == "foundation@blue"


def test_unset_variables_keep_the_host_defaults() -> None:
    """A host with no connection variables connects by name on port 22 to the default release."""
    bastion = hosts_by_name(load("same/site.yml"))["bastion.example.com"]
    assert (bastion.address, bastion.port) == ("bastion.example.com", 22)
    assert bastion.release_bin == "/opt/foundation/bin/foundation"
    assert bastion.service == "foundation"
    assert bastion.restart_command is None
    assert bastion.state_paths == ()


def test_release_env_values_are_secrets_that_print_masked() -> None:
    """release_env values are Secret: str() hides them, reveal() gives them back."""
    name, value = load("same/site.yml").hosts[0].release_env[0]
    assert (name, str(value), value.reveal()) == ("RELEASE_COOKIE", "********", "cookie-from-all")


def test_host_ranges_expand_numbers_padding_letters_steps_and_several_ranges() -> None:
    """web[01:03], app[8:11], node[0:6:3], db-[a:c] and rack[1:2]-u[a:b] expand as in Ansible."""
    inventory = load("ranges.ini")
    assert [host.name for host in inventory.hosts] == [
        "web01.example.com", "web02.example.com", "web03.example.com",
        "app8", "app9", "app10", "app11",
        "node0", "node3", "node6",
        "db-a", "db-b", "db-c",
        "rack1-ua", "rack1-ub", "rack2-ua", "rack2-ub",
    ]  # fmt: skip
    assert inventory.groups["stepped"] == frozenset({"node0", "node3", "node6"})


def test_directory_inventory_reads_its_files_in_sorted_order() -> None:
    """A directory loads every inventory file in it, *.ini included and docs skipped, as
    ansible-core 2.19 does (its answer: this order)."""
    inventory = load("directory")
    assert inventory.name == "tests/data/inventory/directory"
    assert [host.name for host in inventory.hosts] == ["web1", "web2", "web3", "never-read", "db1"]
    assert inventory.groups["web"] == frozenset({"web1", "web2", "web3", "never-read"})
    assert hosts_by_name(inventory)["web3"].service == "foundation@web"


def test_yaml_content_is_detected_in_a_file_without_extension(tmp_path: Path) -> None:
    """A YAML inventory named `hosts` (no extension) is read as YAML, not INI."""
    source = tmp_path / "hosts"
    source.write_text("all:\n  hosts:\n    web1:\n      ansible_port: 2022\n", encoding="utf-8")
    assert load_inventory(source).hosts[0].port == 2022


def test_select_hosts_is_available_from_the_inventory_module() -> None:
    """Callers get load_inventory and select_hosts from one place."""
    assert [h.name for h in select_hosts(load("same/site.yml"), "db")] == ["db-a", "db-b"]


# --- precedence ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def precedence() -> dict[str, Host]:
    return hosts_by_name(load("precedence/inventory.yml"))


def test_child_group_vars_beat_all_vars(precedence: dict[str, Host]) -> None:
    """A var set inline on all loses to the same var set inline on a group."""
    assert precedence["web2"].service == "web-inline"
    assert precedence["edge1"].service == "all-inline"


def test_deeper_group_beats_its_parent(precedence: dict[str, Host]) -> None:
    """web (a child of prod) wins over prod, which wins over all."""
    assert precedence["web1"].restart_command == "web-inline"


def test_same_depth_groups_merge_alphabetically_last_wins(precedence: dict[str, Host]) -> None:
    """north, prod and south are all depth 1: south, last by name, wins."""
    assert precedence["web2"].release_bin == "/opt/south/bin/foundation"
    assert precedence["web1"].release_bin == "/opt/prod/bin/foundation"


def test_ansible_group_priority_beats_the_alphabet(precedence: dict[str, Host]) -> None:
    """east has ansible_group_priority 5, so it beats west at the same depth."""
    assert precedence["edge1"].restart_command == "east-inline"


def test_group_vars_file_beats_the_groups_inline_vars(precedence: dict[str, Host]) -> None:
    """group_vars/web.yml overrides web's vars: in the inventory."""
    assert precedence["web1"].user == "web-file"


def test_group_vars_all_file_beats_child_inline_vars_as_ansible_does(
    precedence: dict[str, Host],
) -> None:
    """Ansible ranks every group_vars file above every inline group var, even all's file."""
    assert precedence["web1"].port == 2200


def test_group_vars_directory_files_merge_in_sorted_order(precedence: dict[str, Host]) -> None:
    """group_vars/prod/20-more.yaml is read after 10-base.yml and overrides it; *.md is skipped."""
    assert precedence["web1"].known_hosts_file == str(DATA / "precedence" / "prod-20.known_hosts")
    assert precedence["edge1"].known_hosts_file == str(DATA / "precedence" / "all.known_hosts")


def test_inline_host_vars_beat_group_vars_files(precedence: dict[str, Host]) -> None:
    """A host's own inline var wins over group_vars files."""
    assert precedence["web2"].user == "web2-inline"


def test_host_vars_file_beats_inline_host_vars(precedence: dict[str, Host]) -> None:
    """host_vars/web1.yml overrides web1's inline vars."""
    assert precedence["web1"].service == "web1-file"


def test_group_vars_for_groups_not_in_the_inventory_are_ignored(
    precedence: dict[str, Host],
) -> None:
    """group_vars/unknown_group.yml (a shared vars dir) neither applies nor fails validation."""
    assert precedence["edge1"].release_bin == "/opt/foundation/bin/foundation"


# --- an operator's real Ansible inventory ----------------------------------------------------


def test_operator_ansible_inventory_loads_with_its_other_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An INI inventory full of Ansible-only vars, a vault file and shared group_vars loads."""
    monkeypatch.setenv("HOME", "/home/operator")
    inventory = load("operator/production")
    hosts = hosts_by_name(inventory)
    assert inventory.name == "tests/data/inventory/operator/production"
    assert len(inventory.hosts) == 8
    web3 = hosts["web-03.prod.example.com"]
    assert (web3.address, web3.port) == ("10.20.0.13", 2222)
    assert web3.release_bin == "/opt/foundation/releases/current/bin/foundation"
    assert web3.key_file == "/home/operator/.ssh/ops_ed25519"
    assert web3.known_hosts_file == str(DATA / "known_hosts" / "production")
    assert dict(web3.release_env)["RELEASE_COOKIE"].reveal() == "prod-cookie-7f3a"
    assert hosts["pg-primary.prod.example.com"].release_env == ()
    assert (
        inventory.groups["foundation"]
        == inventory.groups["webservers"] | inventory.groups["workers"]
    )


def test_old_ansible_ssh_names_are_accepted_and_win_as_in_ansible() -> None:
    """ansible_ssh_user (inline) beats ansible_user (group_vars/all), as in Ansible's ssh plugin."""
    assert {host.user for host in load("operator/production").hosts} == {"ops"}


# --- bad input -------------------------------------------------------------------------------

# (data file, line, key, phrase the message must contain)
HOSTILE = [
    ("hostile_ansible_host.yml", 4, "ansible_host", "not a hostname or IP address"),
    ("hostile_ansible_host.ini", 2, "ansible_host", "not a hostname or IP address"),
    ("dash_ansible_host.yml", 4, "ansible_host", "not a hostname or IP address"),
    ("hostile_release_bin.yml", 5, "release_bin", "must be an absolute path"),
    ("hostile_release_bin.ini", 5, "release_bin", "must be an absolute path"),
    ("dotdot_release_bin.yml", 4, "release_bin", "no '..' segment"),
    ("hostile_user.ini", 1, "ansible_user", "not a user name"),
    ("hostile_service.yml", 4, "service", "not a systemd unit name"),
    ("known_hosts_newline.yml", 4, "known_hosts_file", "control character or newline"),
    ("vars_file/group_vars/web.yml", 3, "ansible_host", "not a hostname or IP address"),
    ("host_name_newline.yml", 3, "all.hosts.web1\n", "host name 'web1\\n' is not allowed"),
    ("env_name_newline.yml", 5, "release_env.RELEASE_COOKIE\n", "not an environment variable"),
    ("state_paths_newline.yml", 5, "state_paths[0]", "must be an absolute path"),
]

MALFORMED = [
    ("host_typo.yml", 4, "all.children.web.host", "did you mean 'hosts'?"),
    ("child_typo.yml", 2, "all.child", "did you mean 'children'?"),
    ("var_typo.yml", 4, "all.var", "did you mean 'vars'?"),
    ("var_name_typo.yml", 4, "relese_bin", "did you mean 'release_bin'?"),
    ("section_type.ini", 4, "[web:child]", "did you mean [web:children]?"),
    ("relative_release_bin.yml", 4, "release_bin", "must be an absolute path"),
    ("port_range.yml", 4, "ansible_port", "integer 1..65535"),
    ("port_text.ini", 2, "ansible_port", "integer 1..65535"),
    ("port_suffix.ini", 2, "web1:ssh", "expected a port number"),
    ("state_paths_relative.yml", 6, "state_paths[1]", "must be an absolute path"),
    ("state_paths_string.yml", 4, "state_paths", "must be a list"),
    ("env_name.yml", 7, "release_env.release-node", "not an environment variable name"),
    ("env_value_number.yml", 5, "release_env.RELEASE_COOKIE", "must be a quoted string"),
    ("env_not_mapping.ini", 2, "release_env", "must be a mapping"),
    ("host_name.yml", 4, "all.hosts.web 2", "host name 'web 2' is not allowed"),
    ("group_name.yml", 3, "all.children.web.prod", "group name 'web.prod' is not allowed"),
    ("cycle.yml", 10, "all.children.app.children.web", "cycle: web -> app -> web"),
    ("cycle.ini", 5, "web", "cycle: web -> app -> web"),
    ("all_as_child.yml", 5, "web.children.all", "'all' cannot be a child"),
    ("hosts_list.yml", 4, "all.children.web.hosts", "must be a mapping of host names"),
    ("host_scalar.yml", 3, "all.hosts.web1", "must map to its variables"),
    ("top_level_hosts.yml", 2, "hosts", "the top level lists groups"),
    ("undefined_child.ini", 6, "dbservers", "has no [dbservers] section"),
    ("vars_undefined_group.ini", 4, "[webservers:vars]", "no [webservers] or"),
    ("vars_line.ini", 5, "ansible_user: deploy", "expected key=value"),
    ("host_var_token.ini", 2, "ansible_user", "expected key=value"),
    ("unclosed_quote.ini", 2, "web1", "No closing quotation"),
    ("range_backwards.ini", 2, "web[09:01]", "begin is after end"),
    ("range_mixed.ini", 2, "web[1:c]", "two numbers or two letters"),
    ("bad_range_step.ini", 2, "web[1:10:0]", "step must be a positive integer"),
    ("range_huge.ini", 2, "web[0:99999999999999999999]", "is too large"),
    ("section_header.ini", 1, "[web servers]", "invalid section header"),
    ("duplicate_key.yml", 5, "ansible_port", "duplicate key"),
    ("group_priority.yml", 5, "ansible_group_priority", "must be an integer"),
    ("plugin.yml", 1, "plugin", "inventory plugins"),
    ("not_yaml.yml", 4, None, "not valid YAML"),
    ("inline_vault.yml", 4, "ansible_host", "!vault value is encrypted"),
    ("host_and_group.yml", 3, "all.hosts.web", "both a host and a group"),
    ("script.py", 1, None, "dynamic inventory scripts are not supported"),
    ("vars_file_list/group_vars/all.yml", 1, None, "a vars file must be a mapping"),
]


def _error_for(relative: str) -> tuple[Path, InventoryError]:
    """Load the inventory a bad data file belongs to; return the file and the error."""
    path = DATA / "bad" / relative
    inventory_path = path.parents[1] / "inventory.yml" if "_vars/" in relative else path
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory_path)
    return path, caught.value


def _assert_names_file_line_key(
    relative: str, line: int, key: str | None, phrase: str
) -> InventoryError:
    path, error = _error_for(relative)
    text = str(error)
    assert error.location is not None
    assert (error.location.file, error.location.line, error.location.key) == (str(path), line, key)
    assert f"{path}:{line}" in text
    if key is not None:
        assert f"({key})" in text
    assert phrase in text
    assert error.hint, "every inventory error says what to do next"
    return error


@pytest.mark.parametrize(("relative", "line", "key", "phrase"), HOSTILE)
def test_hostile_values_are_refused_with_file_line_and_key(
    relative: str, line: int, key: str, phrase: str
) -> None:
    """Shell metacharacters, option-like values and path tricks never reach a Host."""
    _assert_names_file_line_key(relative, line, key, phrase)


@pytest.mark.parametrize(("relative", "line", "key", "phrase"), MALFORMED)
def test_malformed_inventories_are_refused_with_file_line_and_key(
    relative: str, line: int, key: str | None, phrase: str
) -> None:
    """Each bad-input data file fails with its file, line, key and a hint."""
    _assert_names_file_line_key(relative, line, key, phrase)


def test_secret_values_are_never_echoed_in_errors() -> None:
    """A bad release_env value is described, not printed."""
    error = _assert_names_file_line_key(
        "env_value_newline.yml", 5, "release_env.RELEASE_COOKIE", "control character or newline"
    )
    assert "s3cret" not in str(error)


def test_every_bad_data_file_has_a_test_case() -> None:
    """A new bad-input file without an expectation is a forgotten test."""
    listed = {case[0] for case in HOSTILE + MALFORMED} | {"env_value_newline.yml", "no_hosts.yml"}
    on_disk = {
        str(path.relative_to(DATA / "bad"))
        for path in (DATA / "bad").rglob("*")
        if path.is_file() and path.name != "inventory.yml"
    }
    assert on_disk == listed


def test_an_inventory_without_hosts_is_refused() -> None:
    """An inventory that defines no host is a mistake, not an empty rollout."""
    with pytest.raises(InventoryError, match="defines no hosts"):
        load_inventory(DATA / "bad" / "no_hosts.yml")


def test_a_missing_inventory_names_the_path() -> None:
    """A wrong -i path says which path does not exist."""
    with pytest.raises(InventoryError, match="nope.yml.*no such inventory"):
        load_inventory(DATA / "nope.yml")


@pytest.mark.parametrize("bad", ["sh /x\u202e.sh", "a\u2028b", "zero\u200bwidth"])
def test_bidi_and_format_characters_are_refused(tmp_path: Path, bad: str) -> None:
    """restart_command and release_env values refuse bidi, zero-width and separator characters."""
    for field in (f"restart_command: {json.dumps(bad)}",
                  f"release_env: {{RELEASE_COOKIE: {json.dumps(bad)}}}"):  # fmt: skip
        path = tmp_path / "inv.yml"
        path.write_text(f"all:\n  hosts:\n    h1:\n      {field}\n")
        with pytest.raises(InventoryError, match="bidi"):
            load_inventory(path)
