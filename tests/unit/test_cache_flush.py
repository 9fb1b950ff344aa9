"""[cache]: the inventory table, the flush step's place in the plan, the notice, and the flush itself.

The memcached client is tried here against a one-connection TCP server on
127.0.0.1 written in the test; against the project's real memcached image it
is tests/integration/test_cache_flush.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.config import load_inventory
from runner.drivers.memcached import MemcachedClient
from runner.errors import CacheError, ConfigError, ExitCode
from runner.executor import Executor
from runner.facts import DatabaseFacts
from runner.journal import Event, Journal, StepStatus
from runner.keystone_conf import cache_backend, mounted_cache_backend, mounted_keystone_conf
from runner.model import BindMount, CacheConfig, Inventory
from runner.plan import Plan, build_plan
from runner.steps import FlushCache, RunContext, step_from_dict
from runner.waits import WaitPolicy
from tests.unit.fakes import Calls, fake_cluster
from tests.unit.test_config import GOOD
from tests.unit.test_plan import NEW_HEADS, OLD_HEADS, _facts, _inventory, _node

SERVERS = ("127.0.0.1:11211", "[::1]:11212")
FLUSH = CacheConfig(memcached=SERVERS, flush_after_upgrade=True)


# -- the inventory ---------------------------------------------------------------------------------


def _load(tmp_path: Path, cache: str, monkeypatch: pytest.MonkeyPatch) -> Inventory:
    monkeypatch.setenv("KU_TEST_DB_PASSWORD", "secret")
    path = tmp_path / "inventory.toml"
    path.write_text(GOOD + cache)
    return load_inventory(path)


def _problems(tmp_path: Path, cache: str, monkeypatch: pytest.MonkeyPatch) -> str:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, cache, monkeypatch)
    assert raised.value.exit_code is ExitCode.CONFIG
    return raised.value.render()


def test_without_a_cache_table_nothing_is_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _load(tmp_path, "", monkeypatch).cache is None


def test_the_cache_table_loads_and_flushing_is_off_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _load(
        tmp_path,
        '\n[cache]\nmemcached = ["127.0.0.1:11211", "[::1]:11212"]\nflush_after_upgrade = true\n',
        monkeypatch,
    )
    assert asked.cache == FLUSH
    listed = _load(tmp_path, '\n[cache]\nmemcached = ["mc-1.example:11211"]\n', monkeypatch)
    assert listed.cache == CacheConfig(memcached=("mc-1.example:11211",), flush_after_upgrade=False)


@pytest.mark.parametrize(
    ("cache", "expected"),
    [
        ("\n[cache]\nflush_after_upgrade = true\n", "'memcached' must be a non-empty array"),
        ("\n[cache]\nmemcached = []\n", "'memcached' must be a non-empty array"),
        ('\n[cache]\nmemcached = "127.0.0.1:11211"\n', "found string '127.0.0.1:11211'"),
        ('\n[cache]\nmemcached = ["127.0.0.1"]\n', "memcached server #1 is not HOST:PORT"),
        ('\n[cache]\nmemcached = ["127.0.0.1:0"]\n', "memcached server #1 is not HOST:PORT"),
        ('\n[cache]\nmemcached = ["127.0.0.1:70000"]\n', "memcached server #1 is not HOST:PORT"),
        ('\n[cache]\nmemcached = ["::1:11211"]\n', "memcached server #1 is not HOST:PORT"),
        ('\n[cache]\nmemcached = ["[nope]:11211"]\n', "memcached server #1 is not HOST:PORT"),
        ('\n[cache]\nmemcached = ["mc 1:11211"]\n', "memcached server #1 is not HOST:PORT"),
        ('\n[cache]\nmemcached = [""]\n', "memcached server #1 is not HOST:PORT"),
        ('\n[cache]\nmemcached = ["a:1\\n"]\n', "memcached server #1 holds control characters"),
        ("\n[cache]\nmemcached = [11211]\n", "memcached server #1 is not a string"),
        ('\n[cache]\nmemcached = ["a:1", "a:1"]\n', "memcached server a:1 appears twice"),
        ('\n[cache]\nmemcached = ["a:1"]\nflush_after_upgrade = "yes"\n', "must be true or false"),
        ('\n[cache]\nmemcached = ["a:1"]\nflush_after_upgrade = 1\n', "must be true or false"),
        ('\n[cache]\nmemcached = ["a:1"]\nflush = true\n', "unknown key 'flush'"),
        ('\n[[cache]]\nmemcached = ["a:1"]\n', "[cache]: must be a table"),
    ],
)
def test_a_wrong_cache_table_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: str, expected: str
) -> None:
    assert expected in _problems(tmp_path, cache, monkeypatch)


def test_cache_is_a_table_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KU_TEST_DB_PASSWORD", "secret")
    path = tmp_path / "inventory.toml"
    path.write_text("cache = true\n" + GOOD)
    with pytest.raises(ConfigError, match=r"\[cache\]: must be a table"):
        load_inventory(path)


def test_every_wrong_server_is_reported_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _problems(
        tmp_path,
        '\n[cache]\nmemcached = ["127.0.0.1", 5, "ok:1"]\nflush_after_upgrade = "no"\n',
        monkeypatch,
    )
    assert "has 3 problem(s)" in shown
    assert "server #1 is not HOST:PORT" in shown
    assert "server #2 is not a string" in shown
    assert "'flush_after_upgrade' must be true or false" in shown


# -- the plan --------------------------------------------------------------------------------------


def _plan(cache: CacheConfig | None, **facts: object) -> Plan:
    inventory = dataclasses.replace(_inventory(), cache=cache)
    return build_plan(inventory, _facts(inventory, **facts), run_id="r")


def test_the_flush_comes_after_contract_and_before_cleanup() -> None:
    plan = _plan(FLUSH)
    ids = [s.id for s in plan.steps]
    assert ids[ids.index("contract") + 1 :] == ["flush-cache", "cleanup"]
    flush = plan.step("flush-cache")
    assert isinstance(flush, FlushCache)
    assert not flush.skipped
    assert flush.servers == SERVERS
    # The plan is data: the journal's copy of the step is the step.
    assert step_from_dict(flush.to_dict()) == flush
    assert Plan.from_dict(plan.to_dict()).to_dict() == plan.to_dict()


def test_the_flush_is_skipped_with_its_reason_unless_asked() -> None:
    for cache in (None, dataclasses.replace(FLUSH, flush_after_upgrade=False)):
        flush = _plan(cache).step("flush-cache")
        assert flush.skip_reason is not None
        assert flush.skip_reason.startswith("not asked for")
        assert "flush_after_upgrade = true" in flush.skip_reason


def test_nothing_upgraded_means_nothing_to_flush() -> None:
    inventory = dataclasses.replace(_inventory(), cache=FLUSH)
    done = _facts(
        inventory,
        nodes=tuple(_node(n, "29.1.0") for n in inventory.nodes),
        database=DatabaseFacts(None, NEW_HEADS),
    )
    flush = build_plan(inventory, done, run_id="r").step("flush-cache")
    assert flush.skip_reason == "nothing is upgraded: the cache holds nothing the old release wrote"


# -- the notice ------------------------------------------------------------------------------------


def test_a_cache_keystone_uses_and_no_flush_asked_is_a_notice_not_a_refusal() -> None:
    for cache in (None, dataclasses.replace(FLUSH, flush_after_upgrade=False)):
        plan = _plan(cache, cache_backend="oslo_cache.memcache_pool")
        assert not plan.refused
        (notice,) = plan.notices
        assert "oslo_cache.memcache_pool" in notice
        assert "stale" in notice or "old release wrote" in notice
        assert "flush_after_upgrade = true" in notice


def test_no_notice_when_the_flush_is_asked_or_keystone_caches_nothing() -> None:
    assert _plan(FLUSH, cache_backend="oslo_cache.memcache_pool").notices == ()
    assert _plan(None, cache_backend=None).notices == ()


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ("[cache]\nenabled = true\nbackend = oslo_cache.memcache_pool\n", "oslo_cache.memcache_pool"),
        ("[cache]\nenabled = True\n", "enabled"),
        ("[cache]\nbackend = dogpile.cache.pymemcache\n", "dogpile.cache.pymemcache"),
        ("[cache]\nenabled = false\nbackend = oslo_cache.memcache_pool\n", None),
        ("[cache]\nbackend = dogpile.cache.null\n", None),
        ("[cache]\nenabled = perhaps\n", None),
        ("[DEFAULT]\ndebug = false\n", None),
        ("not an ini file", None),
        ("", None),
    ],
)
def test_keystone_conf_says_whether_keystone_caches(conf: str, expected: str | None) -> None:
    assert cache_backend(conf) == expected


def test_keystone_conf_is_read_from_the_host_file_the_inventory_mounts(tmp_path: Path) -> None:
    conf = tmp_path / "keystone.conf"
    conf.write_text("[cache]\nenabled = true\nbackend = oslo_cache.memcache_pool\n")
    mounts = (
        BindMount("/srv/fernet-keys", "/etc/keystone/fernet-keys", False),
        BindMount(str(conf), "/etc/keystone/keystone.conf", True),
    )
    assert mounted_keystone_conf(mounts) == conf
    assert mounted_cache_backend(mounts) == "oslo_cache.memcache_pool"
    # No such mount, a named volume, a file that is gone: nothing is known, nothing is said.
    assert mounted_cache_backend(mounts[:1]) is None
    assert mounted_cache_backend((BindMount("keystone_conf", "/etc/keystone/keystone.conf", True),)) is None
    assert (
        mounted_cache_backend((BindMount(str(tmp_path / "gone"), "/etc/keystone/keystone.conf", True),))
        is None
    )


# -- the step --------------------------------------------------------------------------------------


class FakeCache:
    """memcached servers that flush, except those listed as silent."""

    def __init__(self, calls: Calls, silent: tuple[str, ...] = ()) -> None:
        self.calls = calls
        self.silent = silent

    def flush_all(self, server: str) -> None:
        self.calls.append(f"flush {server}")
        if server in self.silent:
            raise CacheError(f"memcached {server} did not answer flush_all", observed="connection refused")


def _flush_run(tmp_path: Path, silent: tuple[str, ...] = ()) -> tuple[Calls, Journal, Executor]:
    inventory = dataclasses.replace(
        _inventory(), state_dir=tmp_path, backup_dir=tmp_path / "backups", cache=FLUSH
    )
    plan = build_plan(inventory, _facts(inventory), run_id="run1")
    cluster = fake_cluster(
        inventory.nodes, OLD_HEADS, {"--expand": frozenset({"e-new", "c-old"}), "--contract": NEW_HEADS}
    )
    drivers = dataclasses.replace(cluster.drivers(), cache=FakeCache(cluster.calls, silent))
    journal = Journal.start(tmp_path, plan.to_dict(), "inventory.toml")
    return cluster.calls, journal, Executor(plan, RunContext(drivers, journal, tmp_path / "runs"))


def test_every_server_is_flushed_after_contract_and_journalled(tmp_path: Path) -> None:
    calls, journal, executor = _flush_run(tmp_path)
    executor.run()
    contract = max(i for i, c in enumerate(calls) if c.endswith("--contract"))
    flushes = [i for i, c in enumerate(calls) if c.startswith("flush ")]
    assert [calls[i] for i in flushes] == [f"flush {s}" for s in SERVERS]
    assert contract < flushes[0]
    assert flushes[-1] < calls.index("discard-old k1")
    record = journal.step("flush-cache")
    assert record.status is StepStatus.DONE
    assert [(e["event"], e["server"]) for e in record.events] == [(Event.FLUSHED.value, s) for s in SERVERS]
    assert record.intended is None


def test_a_server_that_does_not_answer_stops_the_run_naming_it(tmp_path: Path) -> None:
    calls, journal, executor = _flush_run(tmp_path, silent=(SERVERS[0],))
    with pytest.raises(CacheError) as raised:
        executor.run()
    assert raised.value.exit_code is ExitCode.CACHE
    shown = raised.value.render()
    assert f"memcached {SERVERS[0]} did not answer" in shown
    assert "1 of 2" in shown
    assert "keystone-upgrade resume" in shown
    # The one after it was flushed all the same; cleanup waits for the resume.
    assert f"flush {SERVERS[1]}" in calls
    assert [e["server"] for e in journal.events_of("flush-cache", Event.FLUSHED)] == [SERVERS[1]]
    assert journal.step("flush-cache").status is StepStatus.FAILED
    assert journal.step("cleanup").status is StepStatus.PENDING


def test_a_run_without_a_cache_driver_says_so(tmp_path: Path) -> None:
    _, _, executor = _flush_run(tmp_path)
    drivers = dataclasses.replace(executor.context.drivers, cache=None)
    step = executor.plan.step("flush-cache")
    with pytest.raises(CacheError, match="no memcached client"):
        step.apply(dataclasses.replace(executor.context, drivers=drivers))


# -- the memcached client, against a one-connection server on 127.0.0.1 --------------------------------


QUICK = WaitPolicy("memcached answers flush_all (test)", timeout_s=0.5, interval_s=0.05)


class LineServer:
    """A TCP server on 127.0.0.1: each connection gets the next answer (None: no answer, held open)."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = answers
        self.received: list[bytes] = []
        self.held: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(5)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        for answer in self.answers:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.received.append(connection.recv(1024))
            if answer is None:
                self.held.append(connection)  # read, never answered: the client's own timeout ends it
                continue
            with connection:
                connection.sendall(answer)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept that waits for a client
        self.listener.close()
        self.thread.join(timeout=5)
        for connection in self.held:
            connection.close()


@pytest.fixture
def line_server() -> Iterator[type[LineServer]]:
    """Make LineServers; every one is closed when the test ends."""
    made: list[LineServer] = []

    class Closing(LineServer):
        def __init__(self, answers: list[bytes | None]) -> None:
            super().__init__(answers)
            made.append(self)

    yield Closing
    for server in made:
        server.close()


def test_flush_all_is_sent_and_ok_is_the_only_good_answer(line_server: type[LineServer]) -> None:
    server = line_server([b"OK\r\n"])
    MemcachedClient(timeout_s=1, answers=QUICK).flush_all(server.address)
    assert server.received == [b"flush_all\r\n"]
    refusing = line_server([b"CLIENT_ERROR flush_all not allowed\r\n"])
    with pytest.raises(CacheError) as raised:
        MemcachedClient(timeout_s=1, answers=QUICK).flush_all(refusing.address)
    assert f"memcached {refusing.address} refused flush_all" in raised.value.render()
    assert "CLIENT_ERROR flush_all not allowed" in raised.value.render()


def test_a_server_restarting_gets_a_moment(line_server: type[LineServer]) -> None:
    # The first connection is closed without an answer (memcached going down), the second answers.
    server = line_server([b"", b"OK\r\n"])
    MemcachedClient(timeout_s=1, answers=QUICK).flush_all(server.address)
    assert server.received == [b"flush_all\r\n", b"flush_all\r\n"]


def test_a_server_that_does_not_answer_is_named_within_its_bound(line_server: type[LineServer]) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    nobody = f"127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    silent = line_server([None] * 20)
    for server in (nobody, silent.address):
        with pytest.raises(CacheError) as raised:
            MemcachedClient(timeout_s=0.1, answers=QUICK).flush_all(server)
        shown = raised.value.render()
        assert f"memcached {server} did not answer flush_all" in shown
        assert "observed:" in shown
        assert f"check that memcached listens on {server}" in shown
