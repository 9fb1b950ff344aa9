"""A node's upgrade: out of rotation without a failed request, swapped, gated, back in.

``apply`` and ``undo`` are the same moves in opposite directions, each effect
announced in the journal before it is made and recorded after it: drain, wait
until drained, maint; stop, set aside, start the target (or bring the old one
back); the health gate, the release gate; ready, wait until UP everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from runner.background import in_background
from runner.drivers.keystone import base_url
from runner.drivers.ports import NodeRuntime
from runner.errors import DrainError, HealthError, RunnerError
from runner.journal import Event
from runner.model import NodeConfig, TargetConfig
from runner.steps.base import RunContext, Step, StepKind, Undo
from runner.steps.tokens import accepted_both_ways, warm_up
from runner.waits import NODE_HEALTHY, WaitTimeout, wait_until

T = TypeVar("T")


# How much of a failed node's own output its error keeps.
NODE_OUTPUT_LINES = 20
# A node whose MAINT is lost again each time it is set (HAProxy reloaded in a loop) fails its drain.
OUT_OF_ROTATION_ATTEMPTS = 3


@dataclass(frozen=True, kw_only=True)
class NodeStep(Step):
    """What every step on one node carries, and the moves they share: out of rotation and back,
    the swap of its container, the health and release gates, and the undo that brings the old
    container back. The rolling swap and the offline procedures' steps are each one kind of it."""

    undo_rule = Undo.REVERSIBLE
    undo_on_failure = True  # a node that fails a gate is rolled back at once, not left out of rotation

    node: NodeConfig
    image: str
    release: str | None  # the target's release: the node must say it runs this
    from_release: str | None  # what it ran when planned: the release an undo must find again
    kept_as: str  # the old node's name while it is kept for rollback
    drain_timeout_s: float
    health_timeout_s: float
    # The other nodes, the next to be swapped first: a token issued on this node must validate on
    # peers[0] and one issued there on this node before it goes back into rotation.
    peers: tuple[NodeConfig, ...] = ()
    # What the new container gets instead of, or on top of, the old one's mounts and environment.
    config: TargetConfig = field(default_factory=TargetConfig)

    @property
    def node_name(self) -> str:
        """The node this step swaps."""
        return self.node.name

    def _replace(self, context: RunContext, runtime: NodeRuntime) -> None:
        """The stopped container set aside, its replacement on ``image`` started (kept in MAINT)."""
        journal = context.journal
        journal.intend(self.id, Event.RENAMED, old_name=self.kept_as)
        journal.event(self.id, Event.RENAMED, **runtime.set_aside(self.kept_as))
        journal.intend(self.id, Event.STARTED, image=self.image)
        journal.event(self.id, Event.STARTED, **runtime.start_target(self.image, self.kept_as, self.config))
        self._keep_out(context)

    def undo(self, context: RunContext) -> None:
        """The old node back in its place, on the release it ran, and back into rotation.

        Reads how far ``apply`` got in the journal: a node never stopped only
        goes back into rotation; a swapped one is taken out (if it was back in),
        its old container restored, gated on the old release, and put back.
        """
        runtime = context.drivers.node_runtime(self.node)
        done = self._events_so_far(context)
        if Event.STOPPED in done:
            if Event.READY in done:
                self._take_out_of_rotation(context)
            # Out of rotation before its container goes; a reload may have put it back: drained again.
            self._verify_out_of_rotation(context)
            context.journal.intend(self.id, Event.RESTORED_OLD, old_name=self.kept_as)
            context.journal.event(self.id, Event.RESTORED_OLD, **runtime.restore_old(self.kept_as))
            self._gate(
                context,
                runtime,
                self.from_release,
                "its old release",
                f"read the restored container's log (docker logs {self.node.container})",
            )
        self._put_into_rotation(context)

    def observe(self, context: RunContext) -> str:
        """The node's release and its place in the load balancers now."""
        try:
            release = context.drivers.node_runtime(self.node).running_release() or "nothing (not running)"
            not_up = context.drivers.rotation.not_up(self.node.servers)
        except RunnerError as exc:
            return f"node {self.node.name}: cannot be observed ({exc.what})"
        where = f"not UP on {', '.join(map(str, not_up))}" if not_up else "UP everywhere"
        return f"node {self.node.name}: runs {release}, {where}; old copy kept as {self.kept_as}"

    def _events_so_far(self, context: RunContext) -> set[str]:
        """What apply did (an effect merely intended counts: it may have happened)."""
        record = context.journal.step(self.id)
        done = {e["event"] for e in record.events}
        if record.intended is not None:
            done.add(record.intended["event"])
        return done

    def _take_out_of_rotation(self, context: RunContext) -> None:
        rotation, journal, servers = context.drivers.rotation, context.journal, self.node.servers
        names = [str(s) for s in servers]
        journal.intend(self.id, Event.DRAIN, servers=names)
        rotation.drain(servers)
        journal.event(self.id, Event.DRAIN, servers=names)
        try:
            if reapplied := rotation.wait_drained(servers, self.drain_timeout_s):
                journal.event(self.id, Event.REAPPLIED, where=reapplied)
        except WaitTimeout as exc:
            raise DrainError(
                f"node {self.node.name} did not drain",
                observed=str(exc),
                hint="long-lived sessions hold it: raise run.drain_timeout_s or find the client holding the session",
            ) from exc
        journal.event(self.id, Event.DRAINED)
        journal.intend(self.id, Event.MAINT, servers=names)
        rotation.maint(servers)
        journal.event(self.id, Event.MAINT)

    def _verify_out_of_rotation(self, context: RunContext) -> None:
        """Before the container stops: MAINT on every socket, or drained again where it was lost.

        A reload between MAINT and here may have put the node back into rotation
        with requests on it: those must finish before the container stops.
        """
        lost = context.drivers.rotation.lost(self.node.servers, "maint")
        for _ in range(OUT_OF_ROTATION_ATTEMPTS):
            if not lost:
                return
            context.journal.event(self.id, Event.REAPPLIED, where=lost)
            self._take_out_of_rotation(context)
            lost = context.drivers.rotation.lost(self.node.servers, "maint")
        if not lost:
            return
        raise DrainError(
            f"node {self.node.name} keeps coming back into rotation",
            observed="; ".join(lost),
            hint="HAProxy forgets the runtime states on every reload: stop reloading it during the "
            "run, or keep the states across reloads (server-state-file, load-server-state-from-file)",
        )

    def _keep_out(self, context: RunContext) -> None:
        """MAINT set again wherever HAProxy forgot it (a reload or restart), journalled."""
        if reapplied := context.drivers.rotation.keep(self.node.servers, "maint"):
            context.journal.event(self.id, Event.REAPPLIED, where=reapplied)

    def _keep_out_while(self, context: RunContext, look: Callable[[], T]) -> Callable[[], T]:
        """``look``, after setting MAINT again wherever HAProxy forgot it (the node is not serving)."""

        def looked() -> T:
            self._keep_out(context)
            return look()

        return looked

    def _gate(
        self, context: RunContext, runtime: NodeRuntime, release: str | None, which: str, hint: str
    ) -> None:
        # The release is the installed package's, in the image's files, not in the node's answers
        # (an image whose own start installed another Keystone would be read too early): read
        # while it boots, it is known once the node answers, instead of a process started after
        # that. A failed gate does not wait for the reading (a daemon thread, which journals nothing).
        early = in_background(runtime.running_release, f"release of {self.node.name}")
        try:
            wait_until(
                NODE_HEALTHY.with_timeout(self.health_timeout_s),
                self._keep_out_while(context, runtime.health),
                lambda status: status == 200,
            )
        except WaitTimeout as exc:
            raise HealthError(
                f"node {self.node.name} did not become healthy on {which}",
                observed=f"{exc}{self._last_lines(runtime)}",
                hint=f"{hint}; the node stays in MAINT",
            ) from exc
        context.journal.event(self.id, Event.HEALTHY)
        running = _read_or_none(early) or runtime.running_release()  # unread while booting: again
        # An old release nobody could name (an image without the label) is not gated on.
        if release is not None and running != release:
            raise HealthError(
                f"node {self.node.name} does not run {which}",
                observed=f"the node says it runs {running}, expected {release}{self._last_lines(runtime)}",
                hint=hint,
            )
        context.journal.event(self.id, Event.VERSION, version=running)

    def _full_cpu(self, context: RunContext, runtime: NodeRuntime) -> None:
        """The replacement booted at a low CPU weight (the serving nodes kept theirs): now its own."""
        context.journal.event(self.id, Event.FULL_CPU, **runtime.full_cpu(self.kept_as))

    def _warm_up(self, context: RunContext, runtime: NodeRuntime, token: str | None) -> None:
        """Every worker's first, slowest requests, sent by the runner, not by a client."""
        url = base_url(self.node.health_url)
        warmed = warm_up(context.drivers.tokens, url, runtime.health, token)
        context.journal.event(self.id, Event.WARMED, **warmed)

    def _last_lines(self, runtime: NodeRuntime) -> str:
        """The container's last lines, for an error: a rollback removes the failed replacement."""
        try:
            tail = runtime.output_tail(NODE_OUTPUT_LINES).rstrip()
        except RunnerError:
            return ""
        return f"\nlast lines of {self.node.container}:\n{tail}" if tail else ""

    def _tokens_accepted_both_ways(self, context: RunContext) -> str | None:
        """A token from this node validates on a peer, and a peer's on this node (``GET /v3`` proves
        neither); the one this node issued.

        Skipped without probe credentials or peers.
        """
        tokens = context.drivers.tokens
        if tokens is None or not self.peers:
            return None
        peer = self.peers[0]
        token = accepted_both_ways(
            tokens,
            (self.node.name, base_url(self.node.health_url)),
            (peer.name, base_url(peer.health_url)),
            hint=f"compare the node's key repositories and [token]/[fernet_tokens] configuration with "
            f"node {peer.name}'s; the old node is kept as {self.kept_as}",
        )
        context.journal.event(self.id, Event.TOKENS, peer=peer.name)
        return token

    def _put_into_rotation(self, context: RunContext) -> None:
        names = [str(s) for s in self.node.servers]
        context.journal.intend(self.id, Event.READY, servers=names)
        context.drivers.rotation.ready(self.node.servers)
        context.journal.event(self.id, Event.READY)
        try:
            context.drivers.rotation.wait_up(self.node.servers)
        except WaitTimeout as exc:
            raise HealthError(
                f"HAProxy does not see node {self.node.name} UP",
                observed=str(exc),
                hint="the node answered directly; check the HAProxy health check path and the node's bind address",
            ) from exc
        context.journal.event(self.id, Event.UP)


@dataclass(frozen=True, kw_only=True)
class NodeUpgrade(NodeStep):
    """Swap one node to the target release behind the load balancers."""

    kind = StepKind.NODE
    # Steps with the same batch ([run] nodes_at_once) go through each phase together; None: alone.
    batch: int | None = None

    def apply(self, context: RunContext) -> None:
        """Drain, swap to the target, gate on health and release, back into rotation."""
        for phase in self.phases():
            phase(context)

    def phases(self) -> tuple[Callable[[RunContext], None], ...]:
        """``apply`` in the order a batch runs it, every node of the batch through one before the next."""
        return (self.leave_rotation, self.swap, self.gate_replacement, self.rejoin_rotation)

    def leave_rotation(self, context: RunContext) -> None:
        """Drained, then MAINT on every socket."""
        self._take_out_of_rotation(context)
        self._verify_out_of_rotation(context)

    def swap(self, context: RunContext) -> None:
        """The old container stopped and set aside, the replacement started (booting, kept in MAINT)."""
        runtime = context.drivers.node_runtime(self.node)
        # In a batch, the others drained after this one: a reload meanwhile may have put it back.
        self._verify_out_of_rotation(context)
        journal = context.journal
        journal.intend(self.id, Event.STOPPED)
        journal.event(self.id, Event.STOPPED, **runtime.stop())
        self._keep_out(context)  # a reload while it stopped: no traffic to a node that is not there
        self._replace(context, runtime)

    def gate_replacement(self, context: RunContext) -> None:
        """Healthy, on the target release, tokens both ways, warmed up, then its full CPU weight."""
        runtime = context.drivers.node_runtime(self.node)
        self._gate(
            context,
            runtime,
            self.release,
            "the target release",
            f"read the new container's last lines (above; a rollback removes it) and check the image "
            f"{self.image}; the old node is kept as {self.kept_as}",
        )
        token = self._tokens_accepted_both_ways(context)
        # Still at its boot weight: the gate's and the warm-up's requests yield to the serving nodes.
        self._warm_up(context, runtime, token)
        self._full_cpu(context, runtime)
        self._keep_out(context)

    def rejoin_rotation(self, context: RunContext) -> None:
        """READY, and UP on every socket."""
        self._put_into_rotation(context)

    def after_rollback(self, failure: RunnerError) -> RunnerError:
        """Say what failed, and that the node serves its old release again."""
        back = f"node {self.node.name} is back in rotation on {self.from_release}"
        if isinstance(failure, DrainError):
            return DrainError(
                failure.what,
                observed=failure.observed,
                hint=f"{back}; {failure.hint}, then run again",
            )
        return HealthError(
            f"node {self.node.name} failed on {self.release} and was rolled back: "
            f"the cluster is whole on {self.from_release}",
            observed=failure.render(),
            hint=f"{back}. The database stays expanded and the old release serves on it, as Keystone "
            "promises between expand and contract. The failed replacement was removed (its output is "
            "in the observed text above). If the cause was passing, 'keystone-upgrade resume' retries "
            "the run as planned; if the target image or configuration must change, fix it, run "
            "'keystone-upgrade rollback' (nodes upgraded before this one go back too), then upgrade again",
        )


def _read_or_none(reading: Callable[[], str | None]) -> str | None:
    """What a reading begun before found; None when it found nothing or failed (a container that
    was still starting): the caller reads again."""
    try:
        return reading()
    except RunnerError:
        return None
