"""The offline procedures as plans: ``--cold`` from the rolling plan, ``restore`` from a backup. Pure.

Both take every node out of rotation and stop it before the database changes,
and start every node again afterwards; only what happens in between differs
(Keystone's own offline upgrade: expand, migrate and contract at once; a
restore: the dump loaded in place of the database).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from runner.plan import Plan, kept_name
from runner.steps import (
    Backup,
    Cleanup,
    Contract,
    Expand,
    KeysAgree,
    LoadBackup,
    Migrate,
    NodeIn,
    NodeOut,
    NodeStep,
    NodeUpgrade,
    OfflineMigration,
    Step,
)
from runner.steps.migration import Throwaway

COLD = "cold"
RESTORE = "restore"
OFFLINE = frozenset({COLD, RESTORE})  # every node stopped at once


def _node_fields(step: NodeUpgrade) -> dict[str, Any]:
    return {f.name: getattr(step, f.name) for f in fields(NodeStep) if f.name not in ("id", "why")}


def _out(step: NodeUpgrade, id_prefix: str) -> NodeOut:
    return NodeOut(
        **{**_node_fields(step), "skip_reason": None},  # offline: every node stops, whatever it runs
        id=f"{id_prefix}node-out:{step.node.name}",
        why=f"drain, MAINT and stop {step.node.container}: it serves nothing until it is started again",
    )


def _in(step: NodeUpgrade, id_prefix: str, why: str, **changes: Any) -> NodeIn:
    fields_ = {**_node_fields(step), "skip_reason": None, **changes}
    return NodeIn(**fields_, id=f"{id_prefix}node-in:{step.node.name}", why=why)


def cold_plan(rolling: Plan) -> Plan:
    """The rolling plan's work done offline: every node out and stopped, the backup, expand, migrate
    and contract at once, every node started on the target and put back. The outage is the price."""
    nodes = [s for s in rolling.steps if isinstance(s, NodeUpgrade)]
    first, last = rolling.steps.index(nodes[0]), rolling.steps.index(nodes[-1])
    pre, post = rolling.steps[:first], rolling.steps[last + 1 :]
    expand = next(s for s in pre if isinstance(s, Expand))
    contract = next(s for s in post if isinstance(s, Contract))
    prefix = expand.id.removesuffix("expand")  # a hop's release, or nothing
    offline = OfflineMigration(
        **{f.name: getattr(expand, f.name) for f in fields(Throwaway)},
        id=f"{prefix}offline-migration",
        why="expand, migrate and contract at once, while no node runs",
        skip_reason=contract.skip_reason,
        release=expand.release,
    )
    steps: list[Step] = [
        *(s for s in pre if isinstance(s, KeysAgree)),
        *(_out(s, prefix) for s in nodes),
        # The backup and the trust setting, now that nothing writes. The restore check of the
        # backup would lengthen the outage: the dump is read back and its rows counted instead.
        *(
            replace(s, restore_check=False) if isinstance(s, Backup) else s
            for s in pre
            if not isinstance(s, (KeysAgree, Expand, Migrate))
        ),
        offline,
        *(_in(s, prefix, f"start {s.node.container} on {s.image}, gate it, READY") for s in nodes),
        *(s for s in post if not isinstance(s, Contract)),
    ]
    return replace(rolling, steps=tuple(steps), procedure=COLD)


def restore_plan(
    template: Plan,
    *,
    backup_image: str,
    dump: str,
    sha256: str,
    images: dict[str, str],
    release: str | None,
    safety: Backup,
) -> Plan:
    """Back to a backup: every node out and stopped, the dump loaded, every node started on the image
    it ran when the backup was taken (``images``: node -> image), gated on ``release``, put back."""
    nodes = [s for s in template.steps if isinstance(s, NodeUpgrade)]
    run_id = template.run_id
    steps: list[Step] = [*(_out(s, "") for s in nodes)]
    steps.append(replace(safety, restore_check=False))  # the database as it is now: nothing is lost twice
    steps.append(
        LoadBackup(
            id="load-backup",
            why=f"replace the database with {dump}: everything written after it was taken is lost",
            image=backup_image,
            dump=dump,
            sha256=sha256,
        )
    )
    kept = []
    for step in nodes:
        kept_as = kept_name(step.node.container, run_id)
        kept.append(kept_as)
        steps.append(
            _in(
                step,
                "",
                f"start {step.node.container} on {images[step.node.name]} (the backup's), gate it, READY",
                image=images[step.node.name],
                release=release,
                kept_as=kept_as,
                config=type(step.config)(),
            )
        )
    steps.append(
        Cleanup(
            id="cleanup",
            why="remove the containers the restore replaced",
            nodes=tuple(s.node for s in nodes),
            kept_as=tuple(kept),
        )
    )
    return replace(
        template,
        steps=tuple(steps),
        procedure=RESTORE,
        target_image=", ".join(sorted(set(images.values()))),
        target_version=release,
        findings=(),
        notices=(),
    )
