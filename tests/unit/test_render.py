"""The lab's rendered configuration, and the committed copy docker compose users run."""

from __future__ import annotations

from pathlib import Path

from runner.lab.render import haproxy_cfg, rendered_files
from runner.lab.settings import LabPorts, LabSecrets, LabSettings

COMPOSE_CONFIG = Path(__file__).resolve().parents[2] / "compose" / "config"


def _defaults() -> LabSettings:
    return LabSettings(
        project="kudemo",
        keystone_version="28.1.0",
        ports=LabPorts(),
        secrets=LabSecrets.demo_defaults(),
        config_dir=COMPOSE_CONFIG,
        state_dir=COMPOSE_CONFIG.parent / "state",
    )


def test_committed_compose_config_is_the_rendering_of_the_defaults() -> None:
    for relative, content in rendered_files(_defaults()).items():
        committed = (COMPOSE_CONFIG / relative).read_text()
        assert committed == content, f"compose/config/{relative} is stale: run keystone-upgrade lab render"


def test_haproxy_routes_to_every_node_checks_v3_and_names_the_server() -> None:
    settings = _defaults()
    cfg = haproxy_cfg(settings)
    for name, port in zip(settings.node_names(), settings.ports.nodes, strict=True):
        assert f"server {name} 127.0.0.1:{port} check" in cfg
    assert "option httpchk GET /v3" in cfg
    assert "X-Served-By %[srv_name]" in cfg
    assert "level admin" in cfg
    assert "load-server-state-from-file global" in cfg
    assert f"bind 127.0.0.1:{settings.ports.lb}" in cfg


def test_generated_secrets_differ_and_never_show_in_repr() -> None:
    first, second = LabSecrets.generate(), LabSecrets.generate()
    assert first != second
    assert first.admin_password not in repr(first)
