"""docs/difusores.md, the guide each difusor gets, followed to the letter (items 8 and 16).

sshd (chroot + internal-sftp, the guide's authorized_keys line) and nginx are started from
the guide's own snippets (tests/support/servers.py); the roster is the guide's self-check roster.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from prepush.sim.sshd import HARDENING
from tests.conftest import Workdir
from tests.support.commands import run_json
from tests.support.guide import snippet
from tests.support.servers import Endpoint, Nginx

EASY = {"min_free_gb": 0.001, "min_throughput_mb_s": 1, "probe_size_mb": 1}
CORTE = "20210606_2320"


def guide_roster(workdir: Workdir, endpoint: Endpoint, url: str) -> None:
    """The guide's self-check roster, pointed at this machine's difusor."""
    text = snippet(
        "roster",
        {
            "host: sftp.medio.example": f"host: {endpoint.host}",
            "port: 22": f"port: {endpoint.port}",
            "user: prep": f"user: {endpoint.user}",
            "url: https://prep.medio.example/": f"url: {url}",
            "key_file: prueba.pem": f"key_file: {endpoint.key_file}",
            "min_free_gb: 20": f"min_free_gb: {EASY['min_free_gb']}",
            "min_throughput_mb_s: 40": f"min_throughput_mb_s: {EASY['min_throughput_mb_s']}",
        },
    )
    text = re.sub(r'host_key: "[^"]*"', f'host_key: "{endpoint.host_key_line}"', text)
    text = text.replace(
        "requirements:\n", f"requirements:\n  probe_size_mb: {EASY['probe_size_mb']}\n"
    )
    # The tests publish Campeche's cortes: its DIP_LOC counts 10 actas without a row.
    text = text.replace(
        "election:\n",
        f"election:\n  signing_key: {workdir.signing_key}\n  rowless_actas: {{DIP_LOC: 10}}\n",
        1,
    )
    (workdir.path / "difusores.yaml").write_text(text, encoding="utf-8")


def checks_of(report: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    (difusor,) = report["difusores"]
    return {c["name"]: c for c in difusor["checks"]}


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_check_passes_before_the_first_publish_on_a_difusor_set_up_by_the_guide(
    sshd_chroot: Endpoint,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Item 8: no json/main.json yet, and check passes on its own probe file."""
    web = nginx_factory(sshd_chroot.local_root)
    guide_roster(workdir, sshd_chroot, web.url)
    code, report = run_json(workdir, capsys, "check")
    checks = checks_of(report)
    assert code == 0, [c for c in checks.values() if c["status"] != "pass"]
    assert all(c["status"] == "pass" for c in checks.values()), checks
    assert "archivo de prueba" in checks["http"]["detail"]
    assert "archivo de prueba" in checks["cache_control"]["detail"]
    assert checks["private_dir"]["status"] == "pass"
    # The probes are gone; nothing of the check is left for the public.
    assert list((sshd_chroot.local_root / "json").iterdir()) == []
    assert not list((sshd_chroot.local_root / ".prepush").glob("check-*"))

    # After the first publish, Cache-Control is checked on the real json/main.json.
    workdir.build(CORTE)
    assert run_json(workdir, capsys, "publish")[0] == 0
    code, report = run_json(workdir, capsys, "check")
    checks = checks_of(report)
    assert code == 0
    assert checks["cache_control"]["detail"].startswith("json/main.json")


def test_the_guide_keeps_prepush_state_private_and_check_warns_when_it_is_served(
    sshd_chroot: Endpoint,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Item 16: .prepush/ is denied by the guide; check warns on a server that serves it."""
    guarded = nginx_factory(sshd_chroot.local_root)
    guide_roster(workdir, sshd_chroot, guarded.url)
    workdir.build(CORTE)
    assert run_json(workdir, capsys, "publish")[0] == 0
    assert (sshd_chroot.local_root / ".prepush" / "state.json").is_file()
    assert http_status(guarded.url + ".prepush/state.json") == 403
    assert http_status(guarded.url + "json/main.json") == 200

    open_server = nginx_factory(sshd_chroot.local_root, deny_prepush=False)
    assert http_status(open_server.url + ".prepush/state.json") == 200
    guide_roster(workdir, sshd_chroot, open_server.url)
    code, report = run_json(workdir, capsys, "check")
    private = checks_of(report)["private_dir"]
    assert private["status"] == "warn"
    assert ".prepush/state.json" in private["detail"]
    assert "docs/difusores.md" in private["detail"]
    assert code == 0, "a warning does not fail the difusor"


def test_check_fails_before_the_first_publish_without_the_cache_control_rule(
    sshd_chroot: Endpoint,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    capsys: pytest.CaptureFixture[str],
) -> None:
    web = nginx_factory(sshd_chroot.local_root, cache_rule=False)
    guide_roster(workdir, sshd_chroot, web.url)
    code, report = run_json(workdir, capsys, "check")
    cache = checks_of(report)["cache_control"]
    assert code == 3
    assert cache["status"] == "fail"
    assert "no-cache, no-store, must-revalidate" in cache["detail"]


def test_check_fails_when_the_url_does_not_serve_the_remote_directory(
    sshd_chroot: Endpoint,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    elsewhere = tmp_path / "otro-sitio"
    elsewhere.mkdir()
    web = nginx_factory(elsewhere)
    guide_roster(workdir, sshd_chroot, web.url)
    code, report = run_json(workdir, capsys, "check")
    http = checks_of(report)["http"]
    assert code == 3
    assert http["status"] == "fail"
    assert "respondió 404" in http["detail"]
    assert "remote_dir" in http["detail"]


def test_simulate_sshd_uses_the_guides_hardening() -> None:
    """prepush simulate --sshd and the bench configure sshd as the guide says."""

    def lines(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if line.strip()]

    from_guide = snippet(
        "sshd_config",
        {
            "Match User prep\n": "Match User {user}\n",
            "/srv/prep-jaula": "{jail}",
            "/etc/ssh/llaves_autorizadas/%u": "{authorized_keys}",
        },
    )
    assert lines(from_guide) == lines(HARDENING)


def test_the_apache_snippet_has_the_same_two_rules() -> None:
    """Apache is not installed here: its snippet is checked by its form (see the guide)."""
    apache = snippet("apache")
    opened = re.findall(r"^\s*<([A-Za-z]+)[ >]", apache, re.MULTILINE)
    closed = re.findall(r"^\s*</([A-Za-z]+)>", apache, re.MULTILINE)
    assert sorted(opened) == sorted(closed)
    assert 'Header always set Cache-Control "no-cache, no-store, must-revalidate"' in apache
    assert re.search(r'<DirectoryMatch "/\\\.prepush">\s*Require all denied', apache)
    for entry in ("index\\.html", "main\\.json", "prepush-check-"):
        assert entry in apache
    nginx = snippet("nginx")
    assert "json/prepush-check-[^/]+\\.json" in nginx
    assert "/srv/prep-jaula/www" in apache
