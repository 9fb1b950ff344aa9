"""Whether an HAProxy configuration keeps runtime states across a reload, and the notice when it does not."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from runner.facts import haproxy_configs_losing_states, keeps_states_across_reloads
from runner.lab.render import haproxy_cfg
from runner.plan import build_plan
from tests.unit.test_plan import _facts, _inventory
from tests.unit.test_render import _defaults

KOLLA_LIKE = """\
global
    stats socket /var/lib/kolla/haproxy/haproxy.sock group kolla mode 660 level admin
defaults
    mode http
listen keystone_internal
    bind 10.0.0.10:5000
    server ctl1 10.0.0.11:5000 check inter 2000 rise 2 fall 5
"""


def test_the_labs_configuration_keeps_states_and_a_kolla_like_one_does_not() -> None:
    assert keeps_states_across_reloads(haproxy_cfg(_defaults()))
    assert not keeps_states_across_reloads(KOLLA_LIKE)
    # Both directives are needed; "none" loads nothing; a comment is not a directive.
    assert not keeps_states_across_reloads("global\n    server-state-file /s\n")
    assert not keeps_states_across_reloads(
        "global\n    server-state-file /s\ndefaults\n    load-server-state-from-file none\n"
    )
    assert not keeps_states_across_reloads(
        "global\n  # server-state-file /s\ndefaults\n  load-server-state-from-file global\n"
    )


def test_a_configuration_that_forgets_states_is_a_notice_not_a_refusal(tmp_path: Path) -> None:
    kolla = tmp_path / "haproxy.cfg"
    kolla.write_text(KOLLA_LIKE)
    lab = tmp_path / "lab.cfg"
    lab.write_text(haproxy_cfg(_defaults()))
    losing = haproxy_configs_losing_states((str(kolla), str(lab), str(tmp_path / "gone.cfg")))
    assert losing == (str(kolla), str(tmp_path / "gone.cfg"))
    inventory = _inventory()
    plan = build_plan(
        inventory, replace(_facts(inventory), haproxy_configs_losing_states=losing[:1]), run_id="r"
    )
    assert not plan.refused
    (notice,) = plan.notices
    assert str(kolla) in notice
    assert "server-state-file" in notice
    assert plan.to_dict()["notices"] == [notice]
