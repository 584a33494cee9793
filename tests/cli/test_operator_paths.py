"""Issue 14: what cron, systemd and a tired operator see must be true. One test per item
(items 8 and 16 are in test_difusor_guide.py; the CLI-wide checks of 11 and 13 in
test_cli.py), through the CLI against real sshd and nginx where a server is involved.

Timer runs are real processes with stdout and stderr not a terminal, as cron and systemd
run them.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from prepush.__main__ import main
from prepush.cli.console import PublishView
from prepush.ledger import Ledger
from prepush.ops.report import LATENCY_DEFINITION
from prepush.publish.protocol_types import Event
from prepush.publish.publisher import publish
from prepush.publish.request import PublishRequest
from prepush.settings import load_settings
from tests.conftest import ProxyFactory, Workdir, interrupt
from tests.support.commands import run_json
from tests.support.prepdata import cortes_dir
from tests.support.servers import Endpoint, Nginx

CORTES = ("20210606_2320", "20210606_2340", "20210607_1320", "20210607_1440")
EASY = {"min_free_gb": 0.001, "min_throughput_mb_s": 1, "probe_size_mb": 1}


def timer(workdir: Workdir, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """prepush as cron and systemd run it: its own process, no terminal, no COLUMNS."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        [sys.executable, "-m", "prepush", "-C", str(workdir.path), *args],
        capture_output="stdout" not in kwargs,
        text=True,
        timeout=120,
        check=False,
        env=env,
        **kwargs,
    )


def served_corte(url: str) -> str:
    with urllib.request.urlopen(url + "json/main.json", timeout=5) as response:
        return str(json.loads(response.read())["corte"])


def status_of(workdir: Workdir, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, status = run_json(workdir, capsys, "status")
    assert code == 0
    return {d["difusor"]: d for d in status["difusores"]}


# --- 1. a corte that reaches no difusor -----------------------------------------------------------


def test_1_a_corte_that_reaches_nobody_exits_3_and_says_why(
    sshd_plain: Endpoint,
    sshd_chroot: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workdir.write_roster([sshd_plain, sshd_chroot])
    workdir.build(CORTES[0])
    for endpoint in (sshd_plain, sshd_chroot):
        assert main(["-C", str(workdir.path), "suspend", endpoint.name, "--motivo", "prueba"]) == 0
    code, report = run_json(workdir, capsys, "publish")
    assert code == 3
    assert report["status"] == "failed"
    assert [d["outcome"] for d in report["deliveries"]] == ["skipped_suspended"] * 2
    assert report["reason"].startswith(f"Ningún difusor recibió el corte {CORTES[0]}")
    assert "2 suspendido(s)" in report["reason"]
    # The timer is not quiet about it: cron mails it, systemd marks the unit failed.
    run = timer(workdir, "publish")
    assert run.returncode == 3
    assert "Ningún difusor recibió el corte" in run.stdout
    assert "prepush resume NOMBRE" in run.stdout
    # One difusor back: the corte reaches it, the other is skipped by decision.
    assert main(["-C", str(workdir.path), "resume", sshd_plain.name]) == 0
    code, report = run_json(workdir, capsys, "publish")
    assert code == 0
    assert report["reason"] is None


# --- 2. dry runs count toward nothing -------------------------------------------------------------


def test_2_dry_runs_count_toward_nothing_and_log_no_embargo_override(
    sshd_plain: Endpoint,
    asyncssh_difusor: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Every connection fails at once (another server's host key), as a real outage would.
    impostor = dataclasses.replace(sshd_plain, host_key_line=asyncssh_difusor.host_key_line)
    future = {"start": "2098-01-01T00:00:00", "end": "2099-12-31T23:59:00"}
    workdir.write_roster([impostor], publication=future)
    override = ("--override-embargo", "ensayo autorizado")
    for corte in CORTES:
        workdir.build(corte)
        code, report = run_json(workdir, capsys, "publish", "--dry-run", *override)
        assert code == 3
        assert report["deliveries"][0]["error_class"] == "HostKeyError"
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert ledger.consecutive_failed_cortes(impostor.name) == 0
        assert ledger.events("embargo_override") == []
        assert ledger.deliveries() == []
        publishes = [r for r in ledger.runs() if r.command == "publish"]
        assert [r.options["dry_run"] for r in publishes] == [True] * 4
        assert [d.kind for d in ledger.deliveries(dry_runs=True)] == ["dry_run"] * 4
    code, _ = run_json(workdir, capsys, "publish", *override)
    assert code == 3
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert ledger.consecutive_failed_cortes(impostor.name) == 1
        assert ledger.active_suspension(impostor.name) is None
        assert len(ledger.events("embargo_override")) == 1
    code, report = run_json(workdir, capsys, "report")
    (summary,) = report["difusores"]
    assert summary["cortes_failed"] == 1
    (incident,) = [i for i in report["incidents"] if i["kind"] == "delivery"]
    assert incident["cortes"] == [CORTES[-1]]
    # The publish outside the window is an incident too (issue 29, item 13).
    (override,) = [i for i in report["incidents"] if i["kind"] == "embargo_override"]
    assert "ensayo autorizado" in override["cause"]


# --- 3. what this machine lacks for a difusor, before contacting it ------------------------
# (Issue 29 made these per difusor: a secret missing for one fails that one alone; the
# roster's structure still stops every command at load. tests/cli/test_slips.py, item 3.)


def test_3_what_this_machine_lacks_is_found_before_any_connection(
    workdir: Workdir, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREP_PASS_NO_DEFINIDA", raising=False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOKbsJ9IkKY3a0yWxP4PzqzM2a0o2C8b6bC3sD9b0aBc"
    roster = workdir.path / "difusores.yaml"
    roster.write_text(
        f"""\
election:
  process: Prueba
  timezone: America/Merida
  publication: {{start: 2021-06-06T19:00:00, end: 2099-12-31T23:59:00}}
  signing_key: {workdir.signing_key}
  rowless_actas: {{DIP_LOC: 10}}
difusores:
  - name: medio-uno
    host: 127.0.0.1
    port: {port}
    user: prep
    key_file: claves/no-existe.pem
    known_hosts: claves/no-existe.known_hosts
  - name: universidad-dos
    host: 127.0.0.1
    port: {port}
    user: prep
    password_env: PREP_PASS_NO_DEFINIDA
    host_key: "{host_key}"
""",
        encoding="utf-8",
    )
    # Commands that do not connect need no secrets.
    workdir.build(CORTES[0])
    assert run_json(workdir, capsys, "status")[0] == 0
    for command in (
        ["publish"],
        ["publish", "--dry-run"],
        ["check"],
        ["rollback", "--to", CORTES[0]],
    ):
        capsys.readouterr()
        assert main(["-C", str(workdir.path), *command]) == 3, command
        captured = capsys.readouterr()
        said = captured.out + captured.err
        assert f"{roster}:12:15: difusores[medio-uno].key_file: la llave privada" in said
        assert f"{roster}:13:18: difusores[medio-uno].known_hosts: el archivo known_hosts" in said
        assert (
            f"{roster}:18:19: difusores[universidad-dos].password_env: la variable de entorno"
            " PREP_PASS_NO_DEFINIDA no está definida"
        ) in said
        assert "no se intentó la conexión con este difusor" in said
        assert "Verifique la red" not in said
    listener.settimeout(0.3)
    with pytest.raises(TimeoutError):
        listener.accept()  # nobody was contacted
    listener.close()
    assert run_json(workdir, capsys, "report")[0] == 0


def test_3_the_example_roster_names_only_files_the_first_night_creates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREP_PASS_UNIVERSIDAD02", "secreto")
    assert main(["-C", str(tmp_path), "init"]) == 0  # creates claves/firma.pem too
    assert main(["-C", str(tmp_path), "keygen", "--out", "claves/prepush.pem"]) == 0
    assert (tmp_path / "claves" / "firma.pem").is_file()
    settings = load_settings(tmp_path)
    assert all(d.known_hosts is None for d in settings.roster.difusores)
    assert [settings.credential_problems(d) for d in settings.roster.difusores] == [[], []]


# --- 4. a no-op publish changes no delivery figure ------------------------------------------------


def test_4_a_publish_with_nothing_new_changes_no_delivery_figure(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([sshd_plain])
    workdir.build(CORTES[0])
    assert run_json(workdir, capsys, "publish")[0] == 0
    before = status_of(workdir, capsys)[sshd_plain.name]
    _, report_before = run_json(workdir, capsys, "report")
    assert before["latency_s"] is not None
    for _ in range(2):
        code, noop = run_json(workdir, capsys, "publish")
        assert code == 0
        assert noop["deliveries"][0]["outcome"] == "up_to_date"
    after = status_of(workdir, capsys)[sshd_plain.name]
    assert after == before
    _, report_after = run_json(workdir, capsys, "report")
    assert report_after["difusores"] == report_before["difusores"]


# --- 5. a rollback holds until resume-latest ------------------------------------------------------


def test_5_a_rollback_is_what_status_shows_and_holds_until_resume_latest(
    sshd_plain: Endpoint,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    capsys: pytest.CaptureFixture[str],
) -> None:
    web = nginx_factory(sshd_plain.local_root)
    difusor = dataclasses.replace(sshd_plain, url=web.url)
    workdir.write_roster([difusor])
    for corte in CORTES[:3]:
        workdir.build(corte)
        assert run_json(workdir, capsys, "publish")[0] == 0
    assert run_json(workdir, capsys, "rollback", "--to", CORTES[1])[0] == 0
    assert served_corte(web.url) == CORTES[1]
    shown = status_of(workdir, capsys)[difusor.name]
    assert shown["serving_corte"] == CORTES[1]
    assert shown["held_corte"] == CORTES[1]
    assert shown["cortes_behind"] == 1
    code, seen = run_json(workdir, capsys, "verify")
    assert code == 0
    assert seen["results"][0]["corte"] == CORTES[1]
    assert seen["results"][0]["status"] == "pass", "a rollback is not a stale cache"
    # The timer does not undo it, and says why it publishes nothing.
    run = timer(workdir, "publish")
    assert run.returncode == 3
    assert "resume-latest" in run.stdout
    assert served_corte(web.url) == CORTES[1]
    # Nor does a newer corte.
    workdir.build(CORTES[3])
    assert timer(workdir, "publish").returncode == 3
    assert served_corte(web.url) == CORTES[1]
    human = timer(workdir, "status")
    assert f"sirve {CORTES[1]}" in human.stdout
    assert f"retenido en {CORTES[1]}" in human.stdout
    # resume-latest releases it; the next publish sends the newest corte.
    code, released = run_json(workdir, capsys, "resume-latest")
    assert code == 0
    assert released["released"] == [{"difusor": difusor.name, "held_corte": CORTES[1]}]
    assert timer(workdir, "publish").returncode == 0
    assert served_corte(web.url) == CORTES[3]
    shown = status_of(workdir, capsys)[difusor.name]
    assert shown["serving_corte"] == CORTES[3]
    assert shown["held_corte"] is None


# --- 6. after the window --------------------------------------------------------------------------


def test_6_after_the_window_a_timer_run_is_quiet_and_a_new_oficial_corte_is_refused(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([sshd_plain])
    workdir.build(CORTES[0])
    assert run_json(workdir, capsys, "publish")[0] == 0
    closed = {"start": "2021-06-06T19:00:00", "end": "2021-06-08T00:00:00"}
    workdir.write_roster([sshd_plain], publication=closed)
    run = timer(workdir, "publish")
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    code, report = run_json(workdir, capsys, "publish")
    assert code == 0
    assert report["deliveries"] == []
    assert "Fuera de la ventana" in report["note"]
    workdir.build(CORTES[1])
    run = timer(workdir, "publish")
    assert run.returncode == 2
    assert "es oficial y la publicación terminó" in run.stderr
    assert "--override-embargo" in run.stderr


# --- 7. latency once per corte and difusor --------------------------------------------------------


def test_7_latency_is_counted_once_per_corte_and_difusor(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([sshd_plain])
    for corte in CORTES[:2]:
        workdir.build(corte)
        assert run_json(workdir, capsys, "publish")[0] == 0
    with Ledger(workdir.path / "prepush.db") as ledger:
        first = [ledger.first_delivery(sshd_plain.name, c) for c in CORTES[:2]]
    latencies = [row.latency_s for row in first if row is not None]
    assert len(latencies) == 2
    time.sleep(1.5)  # so that a re-flip would look slower than any first delivery
    assert run_json(workdir, capsys, "rollback", "--to", CORTES[0])[0] == 0
    assert run_json(workdir, capsys, "resume-latest")[0] == 0
    code, again = run_json(workdir, capsys, "publish")
    assert code == 0
    assert again["deliveries"][0]["outcome"] == "delivered"  # CORTES[1] flipped back
    code, report = run_json(workdir, capsys, "report")
    (summary,) = report["difusores"]
    assert summary["cortes_delivered"] == 2
    assert summary["latency_s"]["max"] == pytest.approx(max(latencies))
    assert report["latency_definition"] == LATENCY_DEFINITION
    assert "una vez por corte y difusor" in LATENCY_DEFINITION
    shown = status_of(workdir, capsys)[sshd_plain.name]
    assert shown["latency_s"] == pytest.approx(latencies[1])
    markdown = timer(workdir, "report", "--format", "md").stdout
    assert "una vez por corte y difusor" in markdown


# --- 9. logs: quiet without -v, one line per event ------------------------------------------------


def test_9_logs_are_quiet_without_v_and_each_retry_is_said_once(
    asyncssh_difusor: Endpoint,
    fault_proxy: ProxyFactory,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    capsys: pytest.CaptureFixture[str],
) -> None:
    web = nginx_factory(asyncssh_difusor.local_root)
    proxy, proxied = fault_proxy(asyncssh_difusor)
    workdir.write_roster([dataclasses.replace(proxied, url=web.url)], requirements=EASY)
    workdir.build(CORTES[0])
    proxy.faults.reset_after_bytes = 20_000
    proxy.faults.resets_left = 1
    run = timer(workdir, "publish")
    assert run.returncode == 0, run.stdout + run.stderr
    said = [line for line in (run.stdout + run.stderr).splitlines() if "intento 1" in line]
    assert len(said) == 1, run.stdout + run.stderr
    assert "Reintento en" in said[0]
    stamp = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} ")
    assert all(stamp.match(line) for line in run.stderr.splitlines()), run.stderr
    for command in ("verify", "check"):
        run = timer(workdir, command)
        output = run.stdout + run.stderr
        assert "HTTP Request" not in output, command
        assert len(output.splitlines()) < 20, output
    verbose = subprocess.run(
        [sys.executable, "-m", "prepush", "-v", "-C", str(workdir.path), "verify"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "HTTP Request" in verbose.stderr


# --- 10. off a terminal, full-width lines ---------------------------------------------------------


def test_10_redirected_output_keeps_a_200_character_name_and_the_corte_whole(
    sshd_plain: Endpoint, workdir: Workdir, tmp_path: Path
) -> None:
    name = ("medio-" + "informativo-" * 20)[:200]
    assert len(name) == 200
    difusor = dataclasses.replace(sshd_plain, name=name)
    workdir.write_roster([difusor])
    workdir.build(CORTES[0])
    for command in ("publish", "status", "report"):
        target = tmp_path / f"{command}.txt"
        with target.open("w") as stream:
            assert timer(workdir, command, stdout=stream, stderr=subprocess.PIPE).returncode == 0
        text = target.read_text()
        assert name in text, (command, text)
        assert CORTES[0] in text, (command, text)
        assert "…" not in text, (command, text)


# --- 11. messages, never tracebacks ---------------------------------------------------------------


def test_11_bad_input_gets_a_message_and_no_traceback(
    sshd_plain: Endpoint, workdir: Workdir, tmp_path: Path
) -> None:
    workdir.write_roster([sshd_plain])
    site = tmp_path / "sitio"
    site.mkdir()
    cases = [
        (("build", "--site", str(site), "--corte", "20211399_2599"), "no es un corte"),
        (("report", "--chart", "/nonexistent/dir/x.html"), "/nonexistent/dir no existe"),
        (("report", "-o", "/nonexistent/x.md"), "/nonexistent no existe"),
    ]
    for args, expected in cases:
        run = timer(workdir, *args)
        assert run.returncode == 2, args
        assert expected in run.stderr, (args, run.stderr)
        assert "Traceback" not in run.stdout + run.stderr
    workdir.write_roster([sshd_plain], signing_key="claves/no-existe.pem")
    inputs = [str(p) for p in sorted(cortes_dir().glob(f"{CORTES[0]}_PREP_*"))]
    run = timer(workdir, "build", *inputs)
    assert run.returncode == 2
    assert "claves/no-existe.pem (election.signing_key del padrón) no existe" in run.stderr
    assert "Errno" not in run.stderr
    roster = workdir.path / "difusores.yaml"
    text = roster.read_text(encoding="utf-8")
    lines = text.splitlines()
    lines.insert(1, "  # Elección de Campeche")
    roster.write_bytes("\n".join(lines).encode("latin-1"))
    run = timer(workdir, "status")
    assert run.returncode == 2
    assert f"{roster}:2:11: el archivo no está en UTF-8 (byte 0xf3)" in run.stderr
    assert "Traceback" not in run.stderr


# --- 12. Spanish, click's too ---------------------------------------------------------------------


def test_12_spanish_everywhere_the_prompt_included(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    roster = workdir.write_roster([sshd_plain], requirements=EASY)
    data = yaml.safe_load(roster.read_text())
    del data["difusores"][0]["host_key"]
    roster.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    refused = timer(workdir, "check", "--learn-host-keys", input="x\nn\n")
    assert "¿Fijar esta llave en el padrón? [s/N]" in refused.stderr
    assert "Responda s (sí) o n (no)." in refused.stderr
    assert "host_key" not in roster.read_text()
    accepted = timer(workdir, "check", "--learn-host-keys", input="s\n")
    assert f"Llave fijada para {sshd_plain.name}." in accepted.stdout
    assert sshd_plain.host_key_line in roster.read_text()
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr

    run = timer(workdir, "suspend", sshd_plain.name)
    assert "Falta la opción '--motivo'." in run.stderr
    assert "Uso: prepush suspend [OPCIONES] NOMBRE" in run.stderr
    run = timer(workdir, "verify-package", "/nonexistent")
    assert "Valor inválido para 'DIRECTORIO': Directorio '/nonexistent' no existe." in run.stderr
    run = timer(workdir, "status")
    assert "sin paquetes aún" in run.stdout
    assert "None" not in run.stdout
    # A refused connection, said in Spanish: no "[Errno 111]".
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    workdir.write_roster([dataclasses.replace(sshd_plain, port=port)], requirements=EASY)
    code, report = run_json(workdir, capsys, "check")
    assert code == 3
    tcp = report["difusores"][0]["checks"][0]
    assert "conexión rechazada" in tcp["detail"]
    assert "Errno" not in json.dumps(report)


# --- 13. one CSV table per document ---------------------------------------------------------------


def test_13_csv_is_one_table_per_stream_or_file(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    workdir.write_roster([sshd_plain])
    workdir.build(CORTES[0])
    assert run_json(workdir, capsys, "publish")[0] == 0
    stdout = timer(workdir, "report", "--format", "csv").stdout
    assert stdout.splitlines()[0].startswith("difusor,cortes_entregados")
    assert "" not in stdout.splitlines()
    assert len(stdout.splitlines()) == 2
    incidents = timer(workdir, "report", "--format", "csv", "--tabla", "incidencias").stdout
    assert incidents.splitlines() == ["tipo,difusor,inicio,fin,duracion_s,causa,cortes"]
    target = tmp_path / "informe.csv"
    run = timer(workdir, "report", "-o", str(target))
    assert run.returncode == 0
    assert target.read_text() == stdout
    assert (tmp_path / "informe-incidencias.csv").read_text() == incidents
    assert f"Reporte escrito en {target}" in run.stderr


# --- 14. the chart --------------------------------------------------------------------------------


def test_14_chart_labels_fit_png_is_refused_and_the_path_is_said(
    sshd_plain: Endpoint,
    workdir: Workdir,
    browser: object,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    workdir.write_roster([dataclasses.replace(sshd_plain, name="medio-con-un-nombre-largo")])
    for corte in CORTES[:3]:
        workdir.build(corte)
        assert timer(workdir, "publish").returncode == 0
    refused = timer(workdir, "report", "--chart", str(tmp_path / "latencia.png"))
    assert refused.returncode == 2
    assert ".svg o en .html" in refused.stderr
    assert not (tmp_path / "latencia.png").exists()
    for suffix in ("svg", "html"):
        chart = tmp_path / f"latencia.{suffix}"
        run = timer(workdir, "report", "--chart", str(chart))
        assert run.returncode == 0
        assert f"Gráfica de latencia escrita en {chart}" in run.stderr
        browser.get(chart.as_uri())  # type: ignore[attr-defined]
        svg = browser.find_element(By.TAG_NAME, "svg")  # type: ignore[attr-defined]
        outside = browser.execute_script(  # type: ignore[attr-defined]
            """
            const svg = arguments[0];
            const box = svg.viewBox.baseVal;
            const cut = [];
            for (const text of svg.querySelectorAll('text')) {
                const r = text.getBoundingClientRect();
                const s = svg.getBoundingClientRect();
                const scale = s.width / box.width;
                if (r.left < s.left - 0.5 || r.right > s.right + 0.5 ||
                    r.top < s.top - 0.5 || r.bottom > s.bottom + 0.5) {
                    cut.push(text.textContent);
                }
            }
            return cut;
            """,
            svg,
        )
        assert outside == [], (suffix, outside)
        assert "medio-con-un-nombre-largo" in chart.read_text()


# --- 15. the small things -------------------------------------------------------------------------


def test_15_ctrl_c_exits_130(asyncssh_difusor: Endpoint, workdir: Workdir) -> None:
    workdir.write_roster([asyncssh_difusor])
    workdir.build(CORTES[0])
    child = workdir.watch()
    deadline = time.monotonic() + 30
    while not (asyncssh_difusor.local_root / "json" / "main.json").exists():
        assert time.monotonic() < deadline, "the watch never published"
        time.sleep(0.1)
    time.sleep(0.5)
    err = interrupt(child)
    assert child.returncode == 130
    assert "Interrumpido por el operador." in err
    assert "Traceback" not in err


def wait_for_stderr(
    child: subprocess.Popen[str], text: str, *, times: int, within: float = 120
) -> str:
    """What ``child`` said on stderr until it said ``text`` ``times`` times. Read from the
    pipe itself, so that interrupt() still gets the rest; ``within`` only bounds a failure."""
    assert child.stderr is not None
    fd = child.stderr.fileno()
    said = b""
    deadline = time.monotonic() + within
    while said.decode(errors="replace").count(text) < times:
        left = deadline - time.monotonic()
        assert left > 0, f"never said {text!r} {times} times: {said[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"ended without saying {text!r} {times} times: {said[-2000:]!r}"
            said += chunk
    return said.decode()


def test_15_watch_waits_out_another_prepush_holding_the_run_and_goes_on(
    asyncssh_difusor: Endpoint, workdir: Workdir
) -> None:
    """A manual publish or a rollback holding the run lock longer than run_lock_wait_seconds
    does not end the night's --watch: the corte is published once the other run ends."""
    import fcntl

    from prepush.publish.publisher import RUN_LOCK_FILE

    workdir.write_roster([asyncssh_difusor])
    workdir.build(CORTES[0])
    held = os.open(workdir.path / RUN_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    child = workdir.watch()
    said = ""
    try:
        # Two whole waits of run_lock_wait_seconds, each given up with its warning.
        said = wait_for_stderr(child, "Otra ejecución de prepush está en curso", times=2)
        assert child.poll() is None, "--watch goes on while another run holds the lock"
        assert not (asyncssh_difusor.local_root / "json" / "main.json").exists()
        os.close(held)
        deadline = time.monotonic() + 30
        while not (asyncssh_difusor.local_root / "json" / "main.json").exists():
            assert time.monotonic() < deadline, "the corte was published after the other run"
            time.sleep(0.1)
    finally:
        err = said + interrupt(child)
    assert child.returncode == 130
    assert "Otra ejecución de prepush está en curso" in err
    assert "Traceback" not in err


def test_15_the_live_view_ends_on_the_summarys_figures(
    sshd_plain: Endpoint, workdir: Workdir
) -> None:
    from rich.console import Console

    workdir.write_roster([sshd_plain])
    for corte in CORTES[:2]:
        workdir.build(corte)
        settings = load_settings(workdir.path)
        view = PublishView(Console(file=io.StringIO(), force_terminal=True), [])
        finals: list[Event] = []

        def sink(event: Event, view: PublishView = view, finals: list[Event] = finals) -> None:
            view(event)
            if event.stage == "delivered":
                finals.append(event)

        request = PublishRequest(settings=settings, difusores=settings.roster.difusores)
        with view.running():
            report = publish(request, sink)
        (delivery,) = report.deliveries
        row = view.rows[sshd_plain.name]
        written = delivery.files_uploaded + delivery.files_rebuilt + delivery.files_linked
        assert (row.files_done, row.files_total) == (written, written)
        assert row.bytes_done == delivery.bytes_sent
        assert len(finals) == 1


def test_15_keygen_empty_roster_and_errors_by_name(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    signing = timer(workdir, "keygen", "--out", "claves/firma.pem")
    assert signing.returncode == 0
    assert "authorized_keys" not in signing.stdout
    assert "election.signing_key" in signing.stdout
    access = timer(workdir, "keygen", "--out", "claves/acceso.pem")
    assert "authorized_keys" in access.stdout
    roster = workdir.path / "difusores.yaml"
    roster.write_text(
        "election:\n  process: Prueba\n"
        "  publication: {start: 2027-06-06T20:00:00, end: 2027-06-07T20:00:00}\n"
        "difusores: []\n"
    )
    run = timer(workdir, "status")
    assert run.returncode == 2
    assert f"{roster}:4:12: difusores: el padrón no tiene difusores" in run.stderr
    roster.write_text(
        "election:\n  process: Prueba\n"
        "  publication: {start: 2027-06-06T20:00:00, end: 2027-06-07T20:00:00}\n"
        "difusores:\n"
        "  - {name: medio-uno, host: a.example, user: prep, key_file: k, host_key: nada}\n"
        "  - name: universidad-dos\n    host: b.example\n    port: 70000\n"
    )
    run = timer(workdir, "status")
    assert "difusores[medio-uno].host_key" in run.stderr
    assert "difusores[universidad-dos].port" in run.stderr
    assert "difusores.1" not in run.stderr
