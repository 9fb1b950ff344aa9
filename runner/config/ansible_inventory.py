"""An Ansible INI inventory read as Ansible reads it, for the hosts and variables of its groups (pure).

Only what turning a kolla-ansible inventory into ours needs: hosts, groups,
``[group:children]`` nesting, ``[group:vars]``, variables on host lines, and
host ranges (``control[01:03]``, ``node-[a:c]``, ``web[1:9:2]``). Variables
merge as Ansible merges them: ``[all:vars]``, then each group from the
outermost to the innermost (by depth, then by name), then the host's own line.
``group_vars/`` and ``host_vars/`` directories, YAML inventories and dynamic
inventories are not read. Values are kept as the text written, quotes removed.

A line that cannot be read is one ConfigError naming the file, the line and
what to write instead.
"""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Mapping
from dataclasses import dataclass

from runner.errors import ConfigError

ALL, UNGROUPED = "all", "ungrouped"
# A range that would make more hosts than any cluster has is a slip, not an inventory.
MAX_HOSTS_FROM_A_RANGE = 10_000

_SECTION = re.compile(r"\[([^\[\]:\s]+)(?::(vars|children))?\]")
_RANGE = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True)
class Group:
    """One group as written: its own hosts, its child groups, its variables."""

    name: str
    hosts: tuple[str, ...]
    children: tuple[str, ...]
    variables: Mapping[str, str]


@dataclass(frozen=True)
class AnsibleInventory:
    """Every host with its own line's variables, and every group, in the order they were written."""

    source: str
    hosts: Mapping[str, Mapping[str, str]]
    groups: Mapping[str, Group]

    def hosts_of(self, group: str) -> tuple[str, ...]:
        """The group's hosts as Ansible orders them: its own, then each child's in turn; each once."""
        found: list[str] = []
        self._collect(group, found, ())
        return tuple(dict.fromkeys(found))

    def _collect(self, group: str, found: list[str], path: tuple[str, ...]) -> None:
        if group in path:
            raise ConfigError(
                f"the Ansible inventory {self.source} nests group {group} inside itself",
                observed=" -> ".join((*path, group)),
                hint="remove one of the [...:children] lines that close the loop",
            )
        if group == ALL:
            found += list(self.hosts)
            return
        entry = self.groups.get(group)
        if entry is None:
            return
        found += entry.hosts
        for child in entry.children:
            self._collect(child, found, (*path, group))

    def variables(self, host: str) -> dict[str, str]:
        """The host's variables: [all:vars] < outer groups < inner groups < the host's own line."""
        depths = {name: self._depth(name, ()) for name in self.groups}
        member = [name for name in self.groups if name != ALL and host in self.hosts_of(name)]
        merged: dict[str, str] = dict(self.groups[ALL].variables) if ALL in self.groups else {}
        for name in sorted(member, key=lambda g: (depths[g], g)):
            merged.update(self.groups[name].variables)
        merged.update(self.hosts.get(host, {}))
        return merged

    def _depth(self, group: str, path: tuple[str, ...]) -> int:
        """How far below ``all`` a group is: one more than its deepest parent (top-level groups: 1)."""
        if group in path:
            self._collect(group, [], path)  # raises, naming the loop
        parents = [g.name for g in self.groups.values() if group in g.children and g.name != ALL]
        return 1 + max((self._depth(p, (*path, group)) for p in parents), default=0)


def parse_inventory(text: str, source: str) -> AnsibleInventory:
    """Read an INI inventory; ConfigError (with the line) for anything Ansible would not read either."""
    hosts: dict[str, dict[str, str]] = {}
    own: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    variables: dict[str, dict[str, str]] = {}
    group, kind = UNGROUPED, "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = f"{source} line {number}"
        if line.startswith("["):
            group, kind = _section(line, where)
            own.setdefault(group, [])
            children.setdefault(group, [])
            variables.setdefault(group, {})
        elif kind == "vars":
            key, value = _assignment(line, where)
            variables[group][key] = value
        elif kind == "children":
            if not re.fullmatch(r"[^\s\[\]:=#]+", line):
                raise ConfigError(
                    f"{where}: {line!r} is not a group name",
                    hint=f"list one group per line under [{group}:children]",
                )
            children[group].append(line)
        else:
            for host, host_variables in _host_line(line, where):
                hosts.setdefault(host, {}).update(host_variables)
                own.setdefault(group, []).append(host)
    for group_children in children.values():
        for child in group_children:
            own.setdefault(child, [])  # Ansible makes a group that is only named as a child
    groups = {
        name: Group(
            name=name,
            hosts=tuple(dict.fromkeys(own.get(name, ()))),
            children=tuple(dict.fromkeys(children.get(name, ()))),
            variables=dict(variables.get(name, {})),
        )
        for name in own
    }
    inventory = AnsibleInventory(source=source, hosts=hosts, groups=groups)
    for name in groups:
        inventory.hosts_of(name)  # a loop of children is refused here, once, naming it
    return inventory


def _section(line: str, where: str) -> tuple[str, str]:
    header = line.split("#", 1)[0].split(";", 1)[0].strip()
    match = _SECTION.fullmatch(header)
    if match is None:
        raise ConfigError(
            f"{where}: {line!r} is not a section header",
            hint="write [group], [group:vars] or [group:children]",
        )
    return match.group(1), match.group(2) or "hosts"


def _assignment(line: str, where: str) -> tuple[str, str]:
    key, equals, value = line.partition("=")
    key, value = key.strip(), value.strip()
    if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ConfigError(
            f"{where}: {line!r} is not a variable",
            hint="write one name=value per line under [group:vars]",
        )
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return key, value


def _host_line(line: str, where: str) -> list[tuple[str, dict[str, str]]]:
    """``pattern key=value ...``: each host the pattern names, with the line's variables."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise ConfigError(
            f"{where}: {line!r} cannot be split into words ({exc})",
            hint="close the quotes on the line",
        ) from exc
    if not tokens:
        return []
    pattern, *assignments = tokens
    host_variables: dict[str, str] = {}
    for token in assignments:
        key, equals, value = token.partition("=")
        if not equals or not key:
            raise ConfigError(
                f"{where}: {token!r} after host {pattern} is not a variable",
                hint="write HOST name=value name=value ... (quote a value holding spaces)",
            )
        host_variables[key] = value
    name, port = pattern, None
    match = re.fullmatch(r"([^:]+):(\d+)", pattern)
    if match is not None:  # host:port, as Ansible reads it
        name, port = match.group(1), match.group(2)
    if port is not None:
        host_variables.setdefault("ansible_port", port)
    return [(host, host_variables) for host in expand_range(name, where)]


def expand_range(pattern: str, where: str) -> list[str]:
    """``control[01:03]`` -> control01, control02, control03 (as Ansible expands host ranges)."""
    match = _RANGE.search(pattern)
    if match is None:
        if "[" in pattern or "]" in pattern:
            raise ConfigError(
                f"{where}: host {pattern!r} has an unmatched bracket",
                hint="write a range as name[01:03] or name[a:c], or remove the bracket",
            )
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    expanded = [
        head + item + rest
        for item in _range_items(match.group(1), pattern, where)
        for rest in expand_range(tail, where)
    ]
    if len(expanded) > MAX_HOSTS_FROM_A_RANGE:
        raise ConfigError(
            f"{where}: host range {pattern!r} names {len(expanded)} hosts",
            hint=f"a range may name at most {MAX_HOSTS_FROM_A_RANGE}; check its bounds",
        )
    return expanded


def _range_items(inner: str, pattern: str, where: str) -> list[str]:
    parts = inner.split(":")
    fix = "write [BEGIN:END] or [BEGIN:END:STEP], e.g. control[01:03] or node-[a:c]"
    if len(parts) not in (2, 3) or not parts[1] or (len(parts) == 3 and not parts[2].isdigit()):
        raise ConfigError(f"{where}: {pattern!r} is not a host range", hint=fix)
    begin, end = parts[0] or "0", parts[1]
    step = int(parts[2]) if len(parts) == 3 else 1
    if step < 1:
        raise ConfigError(f"{where}: host range {pattern!r} has step 0", hint=fix)
    if begin.isdigit() and end.isdigit():
        width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
        if width and len(end) != width:
            raise ConfigError(
                f"{where}: host range {pattern!r} pads its start but not its end the same",
                hint="give both bounds the same number of digits, e.g. [01:12]",
            )
        if int(begin) > int(end) or int(end) - int(begin) > MAX_HOSTS_FROM_A_RANGE * step:
            raise ConfigError(f"{where}: host range {pattern!r} is empty or too long", hint=fix)
        return [str(i).zfill(width) for i in range(int(begin), int(end) + 1, step)]
    letters = string.ascii_letters
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        if letters.index(begin) > letters.index(end):
            raise ConfigError(f"{where}: host range {pattern!r} is empty", hint=fix)
        return list(letters[letters.index(begin) : letters.index(end) + 1 : step])
    raise ConfigError(f"{where}: {pattern!r} is not a host range", hint=fix)
