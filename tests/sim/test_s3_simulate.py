"""simulate with S3 difusores in the fleet: buckets on a local endpoint (moto, over HTTP),
each behind its own fault proxy, beside in-process SFTP difusores."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from prepush.__main__ import main
from prepush.exceptions import ConfigError
from prepush.sim.s3local import moto_available
from prepush.sim.scenario import parse_fault
from prepush.sim.simulate import SimulateOptions, simulate

pytestmark = pytest.mark.skipif(not moto_available(), reason="requiere moto[server]")


def test_a_night_with_sftp_and_s3_difusores_ends_as_expected(tmp_path: Path) -> None:
    lines: list[str] = []
    result = simulate(
        SimulateOptions(
            workdir=tmp_path,
            difusores=4,
            cortes=4,
            seconds_per_corte=0.5,
            s3=2,
            faults=[
                parse_fault("difusor04:down@2-4"),
                parse_fault("difusor03:latency@*=20ms"),
            ],
        ),
        lambda _e: None,
        lines.append,
    )
    assert result.ok, result.problems
    assert result.suspended == {"difusor04"} == result.expected_suspended
    assert "/difusor03/" in result.sites["difusor03"]
    delivered = {d.difusor: d.outcome for d in result.cortes[-1].report.deliveries}
    assert delivered == {
        "difusor01": "delivered",
        "difusor02": "delivered",
        "difusor03": "delivered",
        "difusor04": "failed",  # its third failed corte in a row: suspended after it
    }
    roster = (tmp_path / "simulacro" / "difusores.yaml").read_text()
    assert "transport: s3" in roster
    assert "secret" not in roster.split("secret_access_key_env")[0].lower()


def test_s3_difusores_take_network_faults_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"admiten fallas del servidor: difusor02 \(full\)"):
        simulate(
            SimulateOptions(
                workdir=tmp_path,
                difusores=2,
                cortes=2,
                s3=1,
                faults=[parse_fault("difusor02:full@2")],
            ),
            lambda _e: None,
            lambda _line: None,
        )


def test_cli_simulate_with_s3_serves_each_bucket_as_a_site(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "-C",
            str(tmp_path),
            "simulate",
            "--json",
            "--difusores",
            "2",
            "--s3",
            "1",
            "--cortes",
            "2",
            "--seconds-per-corte",
            "0.5",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out["problems"]
    assert out["sites"]["difusor02"].endswith("/difusor02/")
    # The endpoint is gone with the night.
    with pytest.raises(httpx.HTTPError):
        httpx.get(out["sites"]["difusor02"] + "json/main.json", timeout=2)
