"""Docker engines: facts about node containers and images, throwaway containers, the swap.

One ``DockerEngine`` per endpoint (the local engine, or unix://, tcp://, ssh://).
Library errors become RunnerErrors here, at the boundary.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.tls
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from runner.drivers.containers import (
    PURPOSE_LABEL,
    RUN_ID_LABEL,
    RUNNER_LABEL,
    ContainerFacts,
    ExecNotStarted,
    Finished,
    ImageFacts,
    StillRunning,
)
from runner.drivers.docker_blueprint import ContainerBlueprint
from runner.errors import DockerError
from runner.model import KEYSTONE_VERSION_LABEL, LOCAL_ENGINE, BindMount
from runner.waits import CONTAINER_EXITED, WaitPolicy, WaitTimeout, wait_until

log = logging.getLogger(__name__)

THROWAWAY_CPU_SHARES = 256
# How long an engine loading an image may stay silent (it unpacks and registers every layer first).
IMAGE_LOAD_TIMEOUT_S = 1800


def _bind_mounts(inspect: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(m["Destination"]): str(m["Source"])
        for m in inspect.get("Mounts") or []
        if m.get("Type") == "bind"
    }


class DockerEngine:
    """One Docker engine, reached through the docker SDK."""

    def __init__(self, endpoint: str = LOCAL_ENGINE, tls_dir: str | None = None):
        self.endpoint = endpoint
        # A tcp:// engine's TLS: the directory of ca.pem, cert.pem and key.pem, as DOCKER_CERT_PATH.
        self.tls_dir = tls_dir
        self._client: docker.DockerClient | None = None
        self._cgroup_version: int | None = None
        # The CPU the throwaways are kept to ("" once asked: none), see _throwaway_cpus.
        self._throwaway_cpu: str | None = None

    def _tls(self) -> docker.tls.TLSConfig | None:
        """Mutual TLS from ``tls_dir``: the engine's certificate must chain to its ca.pem."""
        if self.tls_dir is None:
            return None
        directory = Path(self.tls_dir)
        return docker.tls.TLSConfig(
            client_cert=(str(directory / "cert.pem"), str(directory / "key.pem")),
            ca_cert=str(directory / "ca.pem"),
            verify=True,
        )

    @property
    def client(self) -> docker.DockerClient:
        """The SDK client, made on first use: an engine that does not answer is a fact for
        preflight to report with everything else, not a crash when the inventory is read."""
        if self._client is None:
            try:
                if self.endpoint == LOCAL_ENGINE:
                    self._client = docker.from_env(timeout=60)
                else:
                    self._client = docker.DockerClient(
                        base_url=self.endpoint, timeout=60, use_ssh_client=True, tls=self._tls() or False
                    )
            except DockerException as exc:
                raise DockerError(
                    f"cannot reach the Docker engine {self.endpoint}",
                    observed=str(exc),
                    hint="check that the engine runs and that this user may use it",
                ) from exc
        return self._client

    def _fail(self, what: str, exc: Exception, hint: str = "check the engine's state") -> DockerError:
        detail = exc.explanation if isinstance(exc, APIError) else str(exc)
        return DockerError(f"{what} on engine {self.endpoint}", observed=str(detail), hint=hint)

    def ping(self) -> None:
        """Raise DockerError unless the engine answers."""
        try:
            self.client.ping()
        except DockerException as exc:
            raise self._fail("no answer", exc, "start the engine or fix the node's docker endpoint") from exc

    def cgroup_version(self) -> int:
        """The engine's cgroup version (1 or 2), as it reports it (asked once)."""
        if self._cgroup_version is None:
            try:
                self._cgroup_version = int(self.client.info().get("CgroupVersion") or 1)
            except (DockerException, ValueError) as exc:
                raise self._fail("cannot read its cgroup version", exc) from exc
        return self._cgroup_version

    def _throwaway_cpus(self) -> str | None:
        """The one CPU of the engine's host the throwaways run on, its last: importing Keystone,
        dumping and restoring take one core at most, and the nodes on that host keep the others
        (measured on the lab's 2 cores: fewer slow requests while preflight runs). None on a host
        with one CPU, or an engine that does not say how many it has."""
        if self._throwaway_cpu is None:
            try:
                cpus = int(self.client.info().get("NCPU") or 1)
            except (DockerException, ValueError):
                cpus = 1
            self._throwaway_cpu = str(cpus - 1) if cpus > 1 else ""
        return self._throwaway_cpu or None

    def container(self, name: str) -> ContainerFacts | None:
        """The container's facts, or None when there is no such container."""
        try:
            inspect = self.client.api.inspect_container(name)
        except NotFound:
            return None
        except DockerException as exc:
            raise self._fail(f"cannot inspect container {name}", exc) from exc
        labels = inspect["Config"].get("Labels") or {}
        return ContainerFacts(
            id=inspect["Id"],
            name=str(inspect["Name"]).lstrip("/"),
            status=inspect["State"]["Status"],
            image_id=inspect["Image"],
            image_reference=inspect["Config"]["Image"],
            keystone_version=labels.get(KEYSTONE_VERSION_LABEL),
            mounts=_bind_mounts(inspect),
            inspect=inspect,
        )

    def image(self, reference: str) -> ImageFacts | None:
        """The image's facts, or None when the engine does not have it."""
        try:
            inspect = self.client.api.inspect_image(reference)
        except ImageNotFound:
            return None
        except DockerException as exc:
            raise self._fail(f"cannot inspect image {reference}", exc) from exc
        labels = (inspect.get("Config") or {}).get("Labels") or {}
        return ImageFacts(
            id=inspect["Id"],
            reference=reference,
            keystone_version=labels.get(KEYSTONE_VERSION_LABEL),
            inspect=inspect,
        )

    def pull(self, reference: str) -> bool:
        """Try to pull an image; True when it is there afterwards."""
        try:
            self.client.images.pull(reference)
        except DockerException as exc:
            log.info("pull of %s on %s failed: %s", reference, self.endpoint, exc)
            return False
        return True

    def save_image(self, reference: str) -> Iterator[bytes]:
        """The image as `docker save` writes it (tagged ``reference``), in chunks as the engine sends them."""
        chunks = None
        try:
            chunks = self.client.api.get_image(reference)
            yield from chunks
        except (DockerException, OSError) as exc:  # requests' errors are OSErrors
            raise self._fail(f"cannot read image {reference}", exc) from exc
        finally:
            if chunks is not None:
                chunks.close()  # a load that stopped half-way ends the engine's stream too

    def load_image(self, archive: Iterable[bytes]) -> None:
        """`docker load` of ``archive``, streamed to the engine as it is read."""
        api = self.client.api
        usual_timeout = api.timeout
        # The engine answers once every layer is registered, after the whole archive arrived:
        # silence for longer than the usual 60 s is the engine at work, not an engine gone.
        api.timeout = IMAGE_LOAD_TIMEOUT_S
        try:
            # quiet: progress the engine wrote while the runner is still sending could fill
            # the connection and stall both sides.
            for message in api.load_image(archive, quiet=True):
                if message.get("error") or message.get("errorDetail"):
                    detail = message.get("error") or message["errorDetail"].get("message")
                    raise DockerError(
                        f"loading an image failed on engine {self.endpoint}",
                        observed=str(detail),
                        hint="check the engine's disk space and log",
                    )
        except (DockerException, OSError) as exc:
            raise self._fail("loading an image failed", exc, "check the engine's disk space and log") from exc
        finally:
            api.timeout = usual_timeout

    def run_once(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[BindMount],
        labels: Mapping[str, str],
        environment: Mapping[str, str] | None = None,
        user: str | None = None,
        entrypoint: Sequence[str] | None = None,
        policy: WaitPolicy = CONTAINER_EXITED,
        stdin_secret: str | None = None,
        tmpfs: Sequence[str] = (),
        keep_on_timeout: bool = False,
    ) -> Finished:
        """Run a throwaway container on host networking until it exits, then remove it.

        ``entrypoint`` replaces the image's (for client images whose own
        entrypoint starts a server). ``stdin_secret`` goes to the container
        through a pipe (its stdin, then EOF), so a password never sits in a file
        on the host, an argument or an environment; ``tmpfs`` directories are
        where the command may keep it: in memory, gone with the container.
        ``keep_on_timeout`` (migrations): a container that outlives ``policy``
        is left running and reported (StillRunning), not removed.
        """
        api = self.client.api
        container_id = self._create_throwaway(
            image,
            command,
            mounts=mounts,
            labels=labels,
            environment=environment,
            user=user,
            entrypoint=entrypoint,
            stdin_open=stdin_secret is not None,
            tmpfs=tmpfs,
        )
        leave_running = False
        try:
            api.start(container_id)
            if stdin_secret is not None:
                self._send_stdin(container_id, stdin_secret)

            def status() -> str:
                return str(api.inspect_container(container_id)["State"]["Status"])

            try:
                wait_until(policy, status, lambda s: s in ("exited", "dead"))
            except WaitTimeout as exc:
                # Decided first: whatever fails next, a migration is never removed (killed) here.
                leave_running = keep_on_timeout
                output = self._logs_or_nothing(container_id)
                if not keep_on_timeout:
                    raise DockerError(
                        f"throwaway container of {image} ({' '.join(command)}) did not finish",
                        observed=f"{exc}\n{Finished(-1, output).tail()}",
                        hint="look at the run's log; the container was removed",
                    ) from exc
                # Never killed: a migration stopped mid-statement can leave the schema half-changed.
                raise StillRunning(
                    f"throwaway container {container_id[:12]} of {image} ({' '.join(command)}) "
                    f"is still running after {policy.timeout_s:.0f}s; it was left running to finish",
                    observed=f"last lines:\n{Finished(-1, output).tail()}",
                    hint=f"follow it with 'docker logs -f {container_id[:12]}'; once it has exited, "
                    f"read its output and remove it with 'docker rm {container_id[:12]}'",
                    container_id=container_id,
                ) from exc
            exit_code = int(api.inspect_container(container_id)["State"]["ExitCode"])
            output = bytes(api.logs(container_id)).decode(errors="replace")
            return Finished(exit_code, output)
        except DockerException as exc:
            raise self._fail(f"throwaway container of {image} failed", exc) from exc
        except Exception:
            raise
        except BaseException:
            # Stopped at once (a second signal): a migration is never killed mid-statement.
            leave_running = True
            log.warning(
                "left throwaway container %s (%s) running to finish; remove it once it has exited",
                container_id[:12],
                " ".join(command),
            )
            raise
        finally:
            if not leave_running:
                try:
                    api.remove_container(container_id, force=True)
                except DockerException as exc:
                    log.warning("could not remove throwaway container %s: %s", container_id[:12], exc)

    def _create_throwaway(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[BindMount],
        labels: Mapping[str, str],
        environment: Mapping[str, str] | None,
        user: str | None,
        entrypoint: Sequence[str] | None,
        stdin_open: bool,
        tmpfs: Sequence[str],
        memory_dirs: Mapping[str, int] | None = None,
    ) -> str:
        """Create (not start) a throwaway container on host networking; its id.

        ``tmpfs``: small directories in memory (secrets); ``memory_dirs``: directories in the
        engine host's memory up to a size each (a scratch server's data).
        """
        api = self.client.api
        in_memory = {
            **dict.fromkeys(tmpfs, "size=64k,mode=0700"),
            **{path: f"size={size},mode=0700" for path, size in (memory_dirs or {}).items()},
        }

        def create(cpus: str | None) -> str:
            created = api.create_container(
                image,
                command=list(command),
                entrypoint=list(entrypoint) if entrypoint is not None else None,
                environment=dict(environment or {}),
                user=user or "",
                labels={RUNNER_LABEL: "1", **labels},
                # StdinOnce: the container's stdin ends when the runner closes its side.
                stdin_open=stdin_open,
                # No health check of the image's own: a throwaway serves nothing, and each check
                # is a process started in it (about 0.2 s of CPU here) beside the nodes, for as
                # long as a migration or the warm container lives.
                healthcheck={"test": ["NONE"]},
                host_config=api.create_host_config(
                    network_mode="host",
                    # A quarter of a serving container's CPU weight: on a busy host the
                    # nodes answering requests win over migrations and checks.
                    cpu_shares=THROWAWAY_CPU_SHARES,
                    cpuset_cpus=cpus,
                    # A list, not a mapping by source: a node may mount one directory or volume twice.
                    binds=[str(m) for m in mounts],
                    tmpfs=in_memory,
                ),
            )
            return str(created["Id"])

        cpus = self._throwaway_cpus()
        try:
            try:
                return create(cpus)
            except APIError as exc:
                if cpus is None or "cpu" not in str(exc.explanation or "").lower():
                    raise
                # The engine's own cgroup lacks that CPU: its throwaways run on any CPU from now on.
                self._throwaway_cpu = ""
                return create(None)
        except DockerException as exc:
            raise self._fail(f"cannot create a throwaway container of {image}", exc) from exc

    def start_detached(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[BindMount],
        labels: Mapping[str, str],
        entrypoint: Sequence[str] | None = None,
        stdin_secret: str | None = None,
        tmpfs: Sequence[str] = (),
        memory_dirs: Mapping[str, int] | None = None,
    ) -> str:
        """Start a throwaway server (a scratch database) and hand it ``stdin_secret``; its id.

        The caller removes it (``remove``); one that cannot be started is removed here.
        """
        container_id = self._create_throwaway(
            image,
            command,
            mounts=mounts,
            labels=labels,
            environment=None,
            user=None,
            entrypoint=entrypoint,
            stdin_open=stdin_secret is not None,
            tmpfs=tmpfs,
            memory_dirs=memory_dirs,
        )
        try:
            self.client.api.start(container_id)
            if stdin_secret is not None:
                self._send_stdin(container_id, stdin_secret)
        except BaseException:
            with contextlib.suppress(DockerException):
                self.client.api.remove_container(container_id, force=True)
            raise
        return container_id

    def start_attached(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[BindMount],
        labels: Mapping[str, str],
        environment: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> tuple[str, Callable[[], None]]:
        """Start a throwaway whose input the runner holds open; its id, and what ends that input.

        Its input ends (StdinOnce) when the runner closes its side or is gone (killed); the caller
        removes it once it has exited.
        """
        container_id = self._create_throwaway(
            image,
            command,
            mounts=mounts,
            labels=labels,
            environment=environment,
            user=user,
            entrypoint=None,
            stdin_open=True,
            tmpfs=(),
        )
        try:
            # Attached before it starts: a runner killed in between leaves no container whose input
            # nobody will ever end (StdinOnce ends it when the attached client is gone).
            attached = self.client.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
            self.client.api.start(container_id)
        except BaseException as exc:
            with contextlib.suppress(DockerException):
                self.client.api.remove_container(container_id, force=True)
            if isinstance(exc, DockerException | OSError):
                raise self._fail(f"cannot start a throwaway container of {image}", exc) from exc
            raise
        raw = getattr(attached, "_sock", attached)

        def end_input() -> None:
            try:
                self._end_input(raw)
            except OSError:
                pass  # the connection is gone already: so is the container's input
            finally:
                raw.close()
                attached.close()

        return container_id, end_input

    def _send_stdin(self, container_id: str, text: str) -> None:
        """Write ``text`` to the container's stdin and close it (the command reads until EOF)."""
        try:
            attached = self.client.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
            raw = getattr(attached, "_sock", attached)  # the SDK wraps the socket in a SocketIO
            try:
                raw.sendall(text.encode())
                # EOF now: close() alone ends nothing while the SDK's SocketIO still holds the
                # socket (until the garbage collector gets to it), and the command waits for EOF.
                self._end_input(raw)
            finally:
                raw.close()
                attached.close()
        except (DockerException, OSError) as exc:
            raise self._fail("cannot hand the throwaway container its input", exc) from exc

    @staticmethod
    def _end_input(raw: Any) -> None:
        """Half-close the attach connection: the container's stdin sees EOF."""
        try:
            raw.shutdown(socket.SHUT_WR)
        except OSError:
            # docker-py's SSHSocket (ssh:// through the ssh client) is not itself connected:
            # the ssh process's stdin pipe is what carries the input.
            proc = getattr(raw, "proc", None)
            if proc is None or proc.stdin is None:
                raise
            proc.stdin.close()

    def _logs_or_nothing(self, container_id: str) -> str:
        """The container's output so far; empty when the engine cannot give it now."""
        try:
            return bytes(self.client.api.logs(container_id)).decode(errors="replace")
        except (DockerException, OSError):
            return ""

    def running_throwaways(self) -> list[str]:
        """Throwaway containers of this runner still alive (running or paused): "ID (purpose, image, run RUN)"."""
        try:
            running = self.client.containers.list(
                filters={"label": RUNNER_LABEL, "status": ["running", "paused"]}
            )
        except DockerException as exc:
            raise self._fail("cannot list containers", exc) from exc
        return [
            f"{c.id[:12]} ({c.labels.get(PURPOSE_LABEL, '?')}, {c.attrs['Config']['Image']}, "
            f"run {c.labels.get(RUN_ID_LABEL, '?')})"
            for c in running
        ]

    def exec_output(self, container: str, command: Sequence[str], *, user: str | None = None) -> Finished:
        """Run a command inside a running container (as ``user``; None: the container's own):
        ExecNotStarted when it could not be started (nothing ran); any other DockerError may come
        once it has run or while it still runs."""
        api, shown = self.client.api, " ".join(command)
        shown = shown if len(shown) <= 120 else f"{command[0]} ... {' '.join(command[-2:])}"
        try:
            exec_id = api.exec_create(container, list(command), user=user or "")["Id"]
        except DockerException as exc:
            detail = exc.explanation if isinstance(exc, APIError) else str(exc)
            raise ExecNotStarted(
                f"cannot run {shown} in {container} on engine {self.endpoint}",
                observed=str(detail),
                hint="check the engine's state",
            ) from exc
        try:
            output = bytes(api.exec_start(exec_id)).decode(errors="replace")
            exit_code = api.exec_inspect(exec_id)["ExitCode"]
        except (DockerException, OSError) as exc:
            raise self._fail(f"lost the answer of {shown} in {container}", exc) from exc
        if exit_code is None:  # the answer's stream ended before the command did
            raise DockerError(
                f"lost the answer of {shown} in {container} on engine {self.endpoint}",
                observed=f"no exit code yet; output so far:\n{Finished(-1, output).tail()}",
                hint="check the engine's state",
            )
        return Finished(int(exit_code), output)

    def output_tail(self, container: str, lines: int) -> str:
        """The last lines a container wrote (stdout and stderr); empty when it cannot be read now."""
        try:
            return bytes(self.client.api.logs(container, tail=lines)).decode(errors="replace")
        except (DockerException, OSError):
            return ""

    def stop(self, container: str, timeout_s: int) -> None:
        """Stop a container, SIGKILL after ``timeout_s``."""
        try:
            self.client.api.stop(container, timeout=timeout_s)
        except DockerException as exc:
            raise self._fail(f"cannot stop {container}", exc) from exc

    def rename(self, container: str, new_name: str) -> None:
        """Rename a container (the old node is kept under another name for rollback)."""
        try:
            self.client.api.rename(container, new_name)
        except DockerException as exc:
            raise self._fail(f"cannot rename {container} to {new_name}", exc) from exc

    def create_and_start(self, blueprint: ContainerBlueprint) -> str:
        """Create the container the blueprint describes, start it, return its id."""
        api = self.client.api
        try:
            # The body is passed as the API takes it: the old container's HostConfig verbatim.
            created = api.create_container_from_config(blueprint.create_body(), name=blueprint.name)
            api.start(created["Id"])
        except DockerException as exc:
            raise self._fail(f"cannot create and start {blueprint.name} from {blueprint.image}", exc) from exc
        return str(created["Id"])

    def create(self, blueprint: ContainerBlueprint) -> str:
        """Create the container the blueprint describes, not started (a systemd unit starts it); its id."""
        try:
            created = self.client.api.create_container_from_config(
                blueprint.create_body(), name=blueprint.name
            )
        except DockerException as exc:
            raise self._fail(f"cannot create {blueprint.name} from {blueprint.image}", exc) from exc
        return str(created["Id"])

    def start(self, container: str) -> None:
        """Start an existing container."""
        try:
            self.client.api.start(container)
        except DockerException as exc:
            raise self._fail(f"cannot start {container}", exc) from exc

    def set_cpu_shares(self, container: str, shares: int) -> None:
        """Change a running container's CPU weight (cgroup cpu shares; 1024 is Docker's default)."""
        try:
            self.client.api.update_container(container, cpu_shares=shares)
        except DockerException as exc:
            raise self._fail(f"cannot set the CPU weight of {container}", exc) from exc

    def remove(self, container: str) -> None:
        """Remove a container, running or not."""
        try:
            self.client.api.remove_container(container, force=True)
        except NotFound:
            return
        except DockerException as exc:
            raise self._fail(f"cannot remove {container}", exc) from exc
