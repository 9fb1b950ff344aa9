"""A throwaway container of the target with Keystone imported once, forking keystone-manage on demand.

A ``keystone-manage`` start spends seconds of CPU importing Keystone, on the cores the serving
nodes share; a run starts it twice (expand, contract) on top of preflight's throwaway. So an
upgrade starts one warm container beside preflight, set up exactly as its migration containers
would be, and expand and contract each run in a fork of it: the import is paid once, while
preflight reads, and not at all while a node boots.

The container lives only as long as the runner that started it: its standard input is held open
by the runner, and once that ends (the run over, the runner stopped or killed) it accepts
nothing more and exits after the command it is running, which is never killed. A command it
cannot start (the container gone or paused, Keystone not importable, not ready in time) has not
run: the caller runs it in a container of its own, as without a warm one. A command whose answer
is lost once started is reported left running, as one past its timeout.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from runner.background import in_background
from runner.drivers.containers import Engine, ExecNotStarted, Finished, StillRunning
from runner.errors import RunnerError
from runner.model import BindMount
from runner.waits import WARM_KEYSTONE_EXITS, WaitTimeout, wait_until

log = logging.getLogger(__name__)

# Where, inside the container, it listens: a name of its own, should the node share its /tmp.
SOCKET_DIRECTORY = "/tmp"  # noqa: S108 - inside the container, with a fresh random name
# How long a command waits for the warm container to have imported Keystone before it runs in
# a container of its own instead. The first, preflight's check, asks while preflight loads the
# host most: the import took 1.7 s idle and 6-10 s there (2 cores, 30 requests/s).
READY_WITHIN_S = 60
# The client's exit codes that are not keystone-manage's own.
STILL_RUNNING = 124  # the command outlived its timeout: it goes on, the container with it
NOT_STARTED = 125  # nothing ran: the caller runs the command elsewhere
# The runner's own bound beyond the command's timeout: the client keeps it, unless the container
# is frozen (paused) with the client inside it.
CLIENT_GRACE_S = 15

# keystone-manage ARGV in this process (a fork of one that imported Keystone); its exit code.
RUN_MANAGE_FUNCTION = """\
def run_manage(manage, argv):
    import sys, traceback
    code = 0
    try:
        sys.argv = ['keystone-manage', *argv]
        manage.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code
"""

# The container's command. The socket is bound before the import, so an early client waits in
# the backlog; each client is told READY before it sends its command, so one that gave up while
# Keystone was importing never has its command run. Output goes to a file, not the client: a
# client that gives up (timeout) must not break the pipe of a migration mid-statement.
SERVER_SCRIPT = (
    RUN_MANAGE_FUNCTION
    + """\
import json, os, select, socket, sys, tempfile, traceback
path = sys.argv[1]
listener = socket.socket(socket.AF_UNIX)
listener.bind(path)
listener.listen(4)
try:
    from keystone.cmd import manage
except BaseException:
    traceback.print_exc()
    sys.exit(1)
print('keystone-manage ready', flush=True)
while True:
    ready = select.select([listener, 0], [], [])[0]
    if 0 in ready and not os.read(0, 4096):
        break  # the runner closed its side: it is gone or done
    if listener not in ready:
        continue
    conn = listener.accept()[0]
    try:
        conn.sendall(b'READY\\n')
        request = json.loads(conn.makefile().readline())
        argv, environment = request['argv'], request['environment']
    except (OSError, ValueError, KeyError, TypeError):
        conn.close()
        continue
    fd, output = tempfile.mkstemp(prefix='keystone-manage-', suffix='.log')
    pid = os.fork()
    if pid == 0:
        listener.close()
        conn.close()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.update(environment)  # read when the command parses its configuration
        os._exit(run_manage(manage, argv))
    try:
        conn.sendall(b'STARTED\\n')
    except OSError:
        pass
    os.close(fd)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    with open(output, 'rb') as written:
        text = written.read()
    os.unlink(output)
    try:
        conn.sendall(text + f'\\nEXIT {code}\\n'.encode())
    except OSError:
        # The client gave up waiting (the runner reported the command left running): the output
        # goes to the container's log, kept for the operator.
        sys.stdout.write(text.decode(errors='replace'))
    print('keystone-manage', *argv, 'exited', code, flush=True)
    conn.close()
"""
)

# A reading waits (bounded) for the server's socket before it runs: the image's entrypoint has
# then handed over to the server, so whatever it puts into place (keys, configuration) is there,
# as it is for a throwaway's command. The server binds it before it imports Keystone. Once one
# reading has seen it, later ones run as given: the socket stays until the server exits. (It polls
# the socket's path, bounded, as CLIENT_SCRIPT does: the image has only Python's standard library.)
AFTER_START_SCRIPT = f"""\
import os, sys, time
path, ready_by = sys.argv[1], time.monotonic() + float(sys.argv[2])
while not os.path.exists(path):
    if time.monotonic() > ready_by:
        sys.exit({NOT_STARTED})
    time.sleep(0.02)
os.execvp(sys.argv[3], sys.argv[3:])
"""

# What ``docker exec`` runs: one command through the warm container, its output and exit code
# as keystone-manage's own (or STILL_RUNNING / NOT_STARTED).
CLIENT_SCRIPT = """\
import json, socket, sys, time
path, ready_within, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
environment, argv = json.loads(sys.argv[4]), sys.argv[5:]
conn = socket.socket(socket.AF_UNIX)
received, ready_by = b'', time.monotonic() + ready_within
try:
    while True:  # the server binds its socket a moment after the container starts
        try:
            conn.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > ready_by:
                raise
            time.sleep(0.05)
    conn.settimeout(max(ready_by - time.monotonic(), 0.001))
    while not received.endswith(b'\\n'):
        chunk = conn.recv(64)
        if not chunk:
            raise OSError('the warm container closed the connection')
        received += chunk
    if received != b'READY\\n':
        raise OSError(f'unexpected greeting {received!r}')
    conn.sendall((json.dumps({'argv': argv, 'environment': environment}) + '\\n').encode())
except OSError as exc:
    print('not started:', exc or type(exc).__name__)
    sys.exit(125)
deadline, received = time.monotonic() + timeout, b''
while True:
    left = deadline - time.monotonic()
    try:
        conn.settimeout(max(left, 0.001))
        chunk = conn.recv(65536) if left > 0 else None
    except socket.timeout:
        chunk = None
    if chunk is None:
        sys.stdout.write(received.decode(errors='replace').removeprefix('STARTED\\n'))
        print(f'still running after {timeout:.0f}s')
        sys.exit(124)
    if not chunk:
        break
    received += chunk
text = received.decode(errors='replace')
if not text.startswith('STARTED\\n'):
    print('not started: the warm container closed the connection')
    sys.exit(125)
body, _, last = text[len('STARTED\\n'):].rstrip('\\n').rpartition('\\n')
if not last.startswith('EXIT '):
    print(text)
    print('the warm container ended before the command did')
    sys.exit(1)
sys.stdout.write(body + '\\n')
sys.exit(int(last.split()[1]) & 255)
"""


@dataclass(frozen=True)
class ManageSetup:
    """What a throwaway container of the target is: the warm one serves only commands whose
    container would have been set up exactly as it was."""

    engine: str
    image: str
    mounts: tuple[BindMount, ...]
    environment: tuple[tuple[str, str], ...]
    user: str | None


@dataclass
class _Started:
    setup: ManageSetup
    engine: Engine
    container_id: str
    socket_path: str
    end_input: Callable[[], None]
    left_running: bool = False
    bound: bool = False  # a reading saw the server's socket: later ones need not wait for it


class WarmKeystone:
    """The ``KeystoneManage`` port: one warm container at a time, started by ``begin``."""

    def __init__(self, engines: Mapping[str, Engine]) -> None:
        self.engines = engines
        self._lock = threading.Lock()  # ``begin`` runs on preflight's threads
        self._started: _Started | None = None

    def begin(self, setup: ManageSetup, labels: Mapping[str, str]) -> None:
        """Start the warm container for ``setup`` (one begun before is closed). Never raises: a
        container that cannot be started leaves every command to a container of its own."""
        self.close()
        engine = self.engines[setup.engine]
        socket_path = f"{SOCKET_DIRECTORY}/keystone-upgrade-{uuid.uuid4().hex}.sock"
        try:
            container_id, end_input = engine.start_attached(
                setup.image,
                ["python3", "-c", SERVER_SCRIPT, socket_path],
                mounts=setup.mounts,
                labels=labels,
                environment=dict(setup.environment),
                user=setup.user,
            )
        except RunnerError as exc:
            log.info("no warm keystone-manage container: %s", exc.what)
            return
        with self._lock:
            self._started = _Started(setup, engine, container_id, socket_path, end_input)

    def run(
        self,
        setup: ManageSetup,
        argv: Sequence[str],
        timeout_s: float,
        environment: Mapping[str, str] | None = None,
    ) -> Finished | None:
        """``keystone-manage ARGV`` forked in the warm container, with ``environment`` (no secrets:
        it is in the exec's command line) over the container's; None when it did not run there
        (none for ``setup``, or it cannot take it): the caller runs it in a container of its own.

        Past ``timeout_s`` StillRunning: the command goes on and the container exits after it.
        """
        with self._lock:
            started = self._started
        if started is None or started.setup != setup:
            return None
        client = [
            "python3",
            "-c",
            CLIENT_SCRIPT,
            started.socket_path,
            str(READY_WITHIN_S),
            str(timeout_s),
            json.dumps(dict(environment or {})),
            *argv,
        ]
        shown = " ".join(argv)
        try:
            finished: Finished | None = in_background(
                lambda: started.engine.exec_output(started.container_id, client), "warm-keystone-exec"
            )(READY_WITHIN_S + timeout_s + CLIENT_GRACE_S)
        except TimeoutError:
            finished = None  # frozen with its client inside: as one past its timeout
        except ExecNotStarted as exc:
            log.info("the warm keystone-manage container cannot take %s: %s", shown, exc.observed)
            self.close()
            return None
        except Exception as exc:
            # Its answer was lost after the command may have started: as one past its timeout,
            # it is left to finish, and resume waits for the container.
            finished = Finished(-1, f"the answer was lost: {exc}")
        if finished is not None and finished.exit_code == NOT_STARTED:
            log.info("the warm keystone-manage container did not start %s: %s", shown, finished.tail(5))
            self.close()
            return None
        if finished is None or finished.exit_code in (STILL_RUNNING, -1):
            started.left_running = True
            self.close()  # it exits once the command is over; it and its output are kept
            short = started.container_id[:12]
            raise StillRunning(
                f"keystone-manage {shown} in the warm container {short} of {setup.image} "
                f"is still running after {timeout_s:.0f}s; it was left running to finish",
                observed=f"last lines:\n{finished.tail() if finished is not None else '(no answer)'}",
                hint=f"follow it with 'docker logs -f {short}' (its output is written there once it "
                f"is over: never kill it mid-migration); once it has exited, remove it with "
                f"'docker rm {short}'",
                container_id=started.container_id,
            )
        return finished

    def read(
        self, engine: str, image: str, mounts: Sequence[BindMount], command: Sequence[str]
    ) -> Finished | None:
        """``command`` run as root in the warm container, when it runs ``image`` on ``engine`` with
        ``mounts``: a reading of what those hold (the standard library only, never keystone-manage),
        as a throwaway container set up so would read it. None when there is no such container or
        the reading could not be run there: the caller starts a container of its own.

        A process started in a running container costs the engine about half of a container
        created, started and removed, and answers in a third of the time (measured on the lab).
        """
        with self._lock:
            started = self._started
        if started is None or (started.setup.engine, started.setup.image, started.setup.mounts) != (
            engine,
            image,
            tuple(mounts),
        ):
            return None
        bound = started.bound
        after_start = ["python3", "-c", AFTER_START_SCRIPT, started.socket_path, str(READY_WITHIN_S)]
        try:
            finished = started.engine.exec_output(
                started.container_id, list(command) if bound else [*after_start, *command], user="root"
            )
        except RunnerError as exc:  # a reading changes nothing: it is read again elsewhere
            log.info("the warm keystone-manage container cannot read for %s: %s", image, exc.what)
            return None
        started.bound = bound or finished.exit_code != NOT_STARTED
        return finished

    def close(self, *, wait: bool = True) -> None:
        """End the warm container's input: it exits (after a command it is running). ``wait``: one
        that is idle is waited for (bounded) and removed, so no later preflight finds it; one left
        running is kept, with its output, for the operator."""
        with self._lock:
            started, self._started = self._started, None
        if started is None:
            return
        try:
            started.end_input()
            if wait and not started.left_running:
                wait_until(
                    WARM_KEYSTONE_EXITS,
                    lambda: started.engine.container(started.container_id),
                    lambda facts: facts is None or facts.status in ("exited", "dead"),
                )
                started.engine.remove(started.container_id)
        except (RunnerError, WaitTimeout) as exc:
            log.warning("the warm keystone-manage container %s: %s", started.container_id[:12], exc)
