"""The benchmark's Markdown: one table per dataset, the targets with their measured ratios,
the per-byte limit, shaped links and scale."""

from __future__ import annotations

import statistics
from typing import Any

SFTP_TOOLS = ("lftp", "rclone")
DATASETS = ("campeche", "large", "site-medium", "site-heavy", "site-large")


def _measures(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in document.get("measures", []) if m.get("samples")]


def _find(measures: list[dict[str, Any]], dataset: str, push: str, tool: str) -> dict | None:
    return next(
        (m for m in measures if (m["dataset"], m["push"], m["tool"]) == (dataset, push, tool)),
        None,
    )


def _ratio(a: dict | None, b: dict | None) -> float | None:
    if a is None or b is None:
        return None
    return a["wall_s"] / b["wall_s"]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def dataset_table(document: dict[str, Any], dataset: str) -> list[str]:
    measures = [m for m in _measures(document) if m["dataset"] == dataset]
    failed = [m for m in document.get("measures", []) if m["dataset"] == dataset and m["failed"]]
    if not measures and not failed:
        return []
    lines = [
        f"### {dataset}",
        "",
        "| envío | modo | herramienta | s (mediana) | MB/s | archivos/s | CPU s | CPU s por"
        " difusor | RSS máx MB | main.json al final | prepush ÷ esta |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for m in sorted(measures, key=lambda m: (m["push"], m["mode"], m["wall_s"])):
        mine_tool = "prepush-watch" if m["mode"] == "conexiones abiertas" else "prepush"
        mine = _find(measures, dataset, m["push"], mine_tool)
        rate = m["bytes"] * m["difusores"] / 1e6 / m["wall_s"]
        files = m["files"] * m["difusores"] / m["wall_s"]
        lines.append(
            f"| {m['push']} | {m['mode']} | {m['tool']} | {m['wall_s']:.2f} | {rate:.1f}"
            f" | {files:.0f} | {m['cpu_s']:.2f} | {m['cpu_s'] / m['difusores']:.3f}"
            f" | {m['peak_rss_mb']:.0f}"
            f" | {'sí' if m['main_json_last'] else 'no'} | {_fmt(_ratio(mine, m))} |"
        )
    for m in failed:
        lines.append(
            f"| {m['push']} | {m['mode']} | {m['tool']} | **falló**: {m['failed'][:160]} |"
        )
    sizes = {m["push"]: (m["bytes"], m["files"]) for m in measures}
    lines.append("")
    lines.append(
        "Tamaños por difusor: "
        + "; ".join(
            f"{push} {b / 1e6:.1f} MB en {f} archivos" for push, (b, f) in sorted(sizes.items())
        )
        + "."
    )
    for tool in ("prepush", "prepush-watch"):
        m = _find(measures, dataset, "siguiente", tool)
        if m and m["samples"][0].get("sent_bytes") is not None and m["bytes"]:
            sent = sum(s["sent_bytes"] for s in m["samples"]) / len(m["samples"]) / m["difusores"]
            meta = sum(s["meta_bytes"] for s in m["samples"]) / len(m["samples"]) / m["difusores"]
            reqs = sum(s["requests"] for s in m["samples"]) / len(m["samples"]) / m["difusores"]
            lines.append(
                f"{tool}, siguiente corte, por difusor: {sent / 1e6:.2f} MB de archivos"
                f" ({sent / m['bytes']:.2f}× lo cambiado) + {meta / 1e3:.0f} KB de"
                f" estado y candado; {reqs:.0f} peticiones SFTP."
            )
    return [*lines, ""]


def best_other(document: dict[str, Any]) -> list[str]:
    """Per dataset and push: prepush against the fastest other tool, in each way of running."""
    measures = _measures(document)
    lines = [
        "### prepush frente a la mejor otra herramienta",
        "",
        "| conjunto | envío | prepush (una orden por corte) | mejor otra | prepush ÷ mejor"
        " | prepush --watch | mejor otra con conexiones abiertas | --watch ÷ mejor |",
        "|---|---|---:|---|---:|---:|---|---:|",
    ]
    for dataset in DATASETS:
        for push in ("completo", "siguiente"):
            once = _find(measures, dataset, push, "prepush")
            watch = _find(measures, dataset, push, "prepush-watch")
            others = [m for m in measures if (m["dataset"], m["push"]) == (dataset, push)]
            one_shot = [
                m for m in others if m["mode"] == "una orden por corte" and m["tool"] != "prepush"
            ]
            kept = [
                m
                for m in others
                if m["mode"] == "conexiones abiertas" and m["tool"] != "prepush-watch"
            ]
            if not once and not watch:
                continue
            best = min(one_shot, key=lambda m: m["wall_s"], default=None)
            best_kept = min(kept, key=lambda m: m["wall_s"], default=None)
            lines.append(
                f"| {dataset} | {push} | {_fmt(once and once['wall_s'])}"
                f" | {best['tool'] + ' ' + _fmt(best['wall_s']) if best else '—'}"
                f" | {_fmt(_ratio(once, best))} | {_fmt(watch and watch['wall_s'])}"
                f" | {best_kept['tool'] + ' ' + _fmt(best_kept['wall_s']) if best_kept else '—'}"
                f" | {_fmt(_ratio(watch, best_kept))} |"
            )
    return [*lines, ""]


def _best_sftp(measures: list[dict[str, Any]], dataset: str, push: str) -> dict | None:
    found = [_find(measures, dataset, push, t) for t in SFTP_TOOLS]
    found = [m for m in found if m]
    return min(found, key=lambda m: m["wall_s"]) if found else None


Row = tuple[str, str, float | None, float]


def _package_targets(measures: list[dict[str, Any]], dataset: str) -> list[Row]:
    rows: list[Row] = []
    for push, rsync_limit, sftp_limit in (("siguiente", 0.5, 0.2), ("completo", 1.0, 0.3)):
        once = _find(measures, dataset, push, "prepush")
        watch = _find(measures, dataset, push, "prepush-watch")
        rsync = _find(measures, dataset, push, "rsync")
        rsync_cm = _find(measures, dataset, push, "rsync-cm")
        sftp = _best_sftp(measures, dataset, push)
        vs_rsync = f"{dataset}, {push} ≤ {rsync_limit}× rsync"
        vs_sftp = f"{dataset}, {push} ≤ {sftp_limit}× la mejor SFTP"
        rows += [
            (vs_rsync, "una orden por corte", _ratio(once, rsync), rsync_limit),
            (
                vs_rsync,
                "conexiones abiertas (rsync con ControlMaster)",
                _ratio(watch, rsync_cm),
                rsync_limit,
            ),
            (vs_rsync, "--watch contra rsync por corte", _ratio(watch, rsync), rsync_limit),
            (vs_sftp, "una orden por corte", _ratio(once, sftp), sftp_limit),
            (vs_sftp, "--watch", _ratio(watch, sftp), sftp_limit),
        ]
    for tool in ("prepush", "prepush-watch"):
        m = _find(measures, dataset, "siguiente", tool)
        if m and m["bytes"] and m["samples"][0].get("sent_bytes") is not None:
            # Everything written to the difusor: the files and prepush's own state and lock.
            sent = statistics.mean([s["sent_bytes"] + s["meta_bytes"] for s in m["samples"]])
            target = (
                f"{dataset}, siguiente: bytes enviados, con estado y candado, ≤ 1.05× lo cambiado"
            )
            rows.append((target, tool, sent / m["difusores"] / m["bytes"], 1.05))
    return rows


def _site_targets(measures: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for push, rsync_limit, sftp_limit in (("completo", 1.3, 0.5), ("siguiente", 0.8, None)):
        once = _find(measures, "site-medium", push, "prepush")
        watch = _find(measures, "site-medium", push, "prepush-watch")
        rsync = _find(measures, "site-medium", push, "rsync")
        rsync_cm = _find(measures, "site-medium", push, "rsync-cm")
        target = f"--site 3,000 archivos, {push} ≤ {rsync_limit}× rsync"
        rows.append((target, "una orden por corte", _ratio(once, rsync), rsync_limit))
        rows.append((target, "conexiones abiertas", _ratio(watch, rsync_cm), rsync_limit))
        if sftp_limit:
            sftp = _best_sftp(measures, "site-medium", push)
            target = f"--site 3,000 archivos, {push} ≤ {sftp_limit}× la mejor SFTP"
            rows.append((target, "una orden por corte", _ratio(once, sftp), sftp_limit))
    return rows


def _resource_targets(document: dict[str, Any], measures: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for dataset in ("campeche", "large", "site-medium"):
        once = _find(measures, dataset, "completo", "prepush")
        rsync = _find(measures, dataset, "completo", "rsync")
        if once and rsync:
            target = f"CPU, {dataset} completo ≤ 1.5× rsync + ssh"
            rows.append((target, "una orden por corte", once["cpu_s"] / rsync["cpu_s"], 1.5))
    for row in document.get("scale", []):
        if row["difusores"] == 100:
            rows.append(
                (
                    "100 difusores: RSS máx < 500 MB",
                    "una orden por corte",
                    row["completo_rss_mb"],
                    500,
                )
            )
            rows.append(("100 difusores: RSS máx < 500 MB", "--watch", row["watch_rss_mb"], 500))
    for row in document.get("shaped", []):
        if row["tool"].startswith("prepush") and row["dataset"] == "large":
            target = f"{row['rate_mbit']:g} Mbit/s, large {row['push']}: ≤ 1.2× bytes ÷ tasa"
            rows.append((target, row["tool"], row["ratio"], 1.2))
    return rows


def _median_wall(rows: list[dict[str, Any]], tool: str, cpus_one: bool) -> float | None:
    walls = [r["wall_s"] for r in rows if r["tool"] == tool and (r["cpus"] == "0") == cpus_one]
    return statistics.median(walls) if walls else None


def speedups(document: dict[str, Any]) -> dict[str, float]:
    """Both cores against one, per tool, on the bytes-heavy full push."""
    rows = document.get("scaling", [])
    found = {}
    for tool in ("prepush", "rsync"):
        one, all_ = _median_wall(rows, tool, True), _median_wall(rows, tool, False)
        if one and all_:
            found[tool] = one / all_
    return found


def _core_targets(document: dict[str, Any], measures: list[dict[str, Any]]) -> list[Row]:
    """Issue 18: every core, and the CPU per byte."""
    rows: list[Row] = []
    for push, limit in (("completo", 0.9), ("siguiente", 0.4)):
        once = _find(measures, "site-heavy", push, "prepush")
        rsync = _find(measures, "site-heavy", push, "rsync")
        watch = _find(measures, "site-heavy", push, "prepush-watch")
        rsync_cm = _find(measures, "site-heavy", push, "rsync-cm")
        target = f"bytes pesados (66 MB), {push} ≤ {limit}× rsync"
        rows.append((target, "una orden por corte", _ratio(once, rsync), limit))
        rows.append((target, "conexiones abiertas", _ratio(watch, rsync_cm), limit))
    for dataset in ("large", "site-heavy"):
        once = _find(measures, dataset, "completo", "prepush")
        rsync = _find(measures, dataset, "completo", "rsync")
        if once and rsync:
            target = f"CPU, {dataset} completo ≤ 1.2× rsync + ssh (todos los procesos)"
            rows.append((target, "una orden por corte", once["cpu_s"] / rsync["cpu_s"], 1.2))
    limit = document.get("limit")
    if limit:
        transfer = limit.get("prepush_transfer_mb_s", 0.0)
        # A ratio of at least 0.9: as a target "≤", its inverse.
        rows.append(
            (
                "un flujo, un archivo: sftp ÷ prepush ≤ 1/0.9",
                "transferencia",
                limit["sftp_mb_s"] / transfer if transfer else None,
                1 / 0.9,
            )
        )
    scaled = speedups(document).get("prepush")
    if scaled:
        rows.append(
            (
                "núcleos: 1 CPU ÷ todos ≥ 1.6 (como ≤: todos ÷ 1 CPU ≤ 0.625)",
                "prepush",
                1 / scaled,
                1 / 1.6,
            )
        )
    for row in document.get("scale", []):
        if row["difusores"] == 100 and "watch_rss_total_mb" in row:
            rows.append(
                (
                    f"100 difusores, {row.get('dataset', '')} siguiente con --watch: RSS de todos los procesos < 500 MB",
                    "--watch",
                    row["watch_rss_total_mb"],
                    500,
                )
            )
    return rows


def targets(document: dict[str, Any]) -> list[str]:
    measures = _measures(document)
    rows = [
        *_package_targets(measures, "campeche"),
        *_package_targets(measures, "large"),
        *_site_targets(measures),
        *_resource_targets(document, measures),
        *_core_targets(document, measures),
    ]
    lines = ["### Metas", "", "| meta | cómo | medido | ¿cumple? |", "|---|---|---:|---|"]
    for target, how, value, limit in rows:
        if value is None:
            continue
        verdict = "sí" if value <= limit else "**no**"
        lines.append(f"| {target} | {how} | {_fmt(value)} | {verdict} |")
    return [*lines, ""]


RSYNC_MINE = ("prepush-rsync", "prepush-rsync-watch")
RSYNC_PLAIN = ("rsync-a", "rsync-a-nodelay")


def rsync_section(document: dict[str, Any]) -> list[str]:
    """The rsync transport against plain rsync -a of the same trees to the same daemons."""
    measures = [m for m in document.get("rsync_measures", []) if m.get("samples")]
    if not measures:
        return []
    lines = [
        "### Transporte rsync frente a rsync -a (mismos demonios rsync)",
        "",
        "| conjunto | envío | herramienta | modo | s (mediana) | CPU s | main.json al final"
        " | peticiones (rsync) por difusor |",
        "|---|---|---|---|---:|---:|---|---:|",
    ]
    for m in sorted(measures, key=lambda m: (m["dataset"], m["push"], m["wall_s"])):
        requests = "—"
        if m["samples"][0].get("requests") is not None:
            per = statistics.mean(s["requests"] for s in m["samples"]) / m["difusores"]
            requests = f"{per:.0f}"
        lines.append(
            f"| {m['dataset']} | {m['push']} | {m['tool']} | {m['mode']} | {m['wall_s']:.2f}"
            f" | {m['cpu_s']:.2f} | {'sí' if m['main_json_last'] else 'no'} | {requests} |"
        )
    lines += ["", "| meta | cómo | medido | ¿cumple? |", "|---|---|---:|---|"]
    datasets = sorted({m["dataset"] for m in measures})
    for dataset in datasets:
        for push, limit in (("siguiente", 1.0), ("completo", 1.1)):
            for mine in RSYNC_MINE:
                for plain in RSYNC_PLAIN:
                    ratio = _ratio(
                        _find(measures, dataset, push, mine), _find(measures, dataset, push, plain)
                    )
                    if ratio is None:
                        continue
                    verdict = "sí" if ratio <= limit else "**no**"
                    lines.append(
                        f"| {dataset}, {push} ≤ {limit}× rsync -a | {mine} ÷ {plain}"
                        f" | {_fmt(ratio)} | {verdict} |"
                    )
    return [*lines, ""]


def _scaling_lines(document: dict[str, Any]) -> list[str]:
    rows = document.get("scaling")
    if not rows:
        return []
    lines = [
        "### Núcleos (site-heavy completo, el publicador en un CPU o en todos)",
        "",
        "| herramienta | 1 CPU s | todos s | aceleración |",
        "|---|---:|---:|---:|",
    ]
    for tool, speedup in speedups(document).items():
        one, all_ = _median_wall(rows, tool, True), _median_wall(rows, tool, False)
        lines.append(f"| {tool} | {_fmt(one)} | {_fmt(all_)} | {speedup:.2f}× |")
    return [*lines, ""]


def _profile_lines(document: dict[str, Any]) -> list[str]:
    found = document.get("profile")
    if not found:
        return []
    lines = [
        "### Perfil (cProfile, site-heavy completo, un proceso)",
        "",
        f"{found['total_s']:.2f} s de CPU de Python medidos en {found['wall_s']:.2f} s.",
        "",
        "| dónde | llamadas | s propios | % | s acumulados |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in found["top"][:15]:
        share = 100 * row["tottime"] / found["total_s"] if found["total_s"] else 0
        lines.append(
            f"| `{row['where']}` | {row['calls']} | {row['tottime']:.2f} | {share:.0f}"
            f" | {row['cumtime']:.2f} |"
        )
    return [*lines, ""]


def markdown(document: dict[str, Any]) -> str:
    lines = [
        f"## Corrida {document['when']}",
        "",
        f"{document.get('cpu', '')}; {document['difusores']} difusores OpenSSH en 127.0.0.1"
        f" (raíz web en tmpfs); mediana de {document['repeat']} repeticiones;"
        f" rclone con --transfers {document.get('rclone_transfers')}"
        f" (probados: {document.get('rclone_transfers_tried', {})});"
        f" prepush con publish.workers {document.get('workers') or 'del padrón (uno por núcleo)'};"
        f" {document.get('minutes', 0):.0f} minutos en total.",
        "",
    ]
    if document.get("tools_missing"):
        lines += [f"Herramientas no instaladas: {', '.join(document['tools_missing'])}.", ""]
    for dataset in DATASETS:
        lines += dataset_table(document, dataset)
    lines += best_other(document)
    lines += targets(document)
    lines += rsync_section(document)
    limit = document.get("limit")
    if limit:
        lines += [
            "### Límite por byte",
            "",
            f"Un archivo de {limit['mb']:.0f} MB a un difusor por un solo flujo: OpenSSH sftp"
            f" {limit['sftp_mb_s']:.0f} MB/s; prepush {limit['prepush_mb_s']:.0f} MB/s"
            f" ({limit['prepush_mb_s'] / limit['sftp_mb_s']:.2f}× de OpenSSH) contando el"
            " arranque, la conexión y la bitácora, y"
            f" {limit.get('prepush_transfer_mb_s', 0):.0f} MB/s"
            f" ({limit.get('prepush_transfer_mb_s', 0) / limit['sftp_mb_s']:.2f}×) de la"
            " conexión al cambio de main.json, según la bitácora.",
            "",
        ]
    shaped_rows = document.get("shaped")
    if shaped_rows:
        lines += [
            "### Enlaces limitados (netns + tc tbf)",
            "",
            "| conjunto | envío | herramienta | MB por difusor | s | límite bytes ÷ tasa (s) | s ÷ límite |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for row in shaped_rows:
            lines.append(
                f"| {row['dataset']} | {row['push']} | {row['tool']} | {row['bytes'] / 1e6:.2f}"
                f" | {row['wall_s']:.2f} | {row['bound_s']:.2f} | {_fmt(row['ratio'])} |"
            )
        lines.append("")
    lines += _scaling_lines(document)
    lines += _profile_lines(document)
    scale_rows = document.get("scale")
    if scale_rows:
        lines += [
            f"### Escala ({scale_rows[0].get('dataset', 'campeche')}, sshd reales)",
            "",
            "| difusores | completo s | CPU s | RSS todos MB | siguiente s | --watch siguiente s"
            " | --watch RSS todos MB |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in scale_rows:
            lines.append(
                f"| {row['difusores']} | {row['completo_s']:.2f} | {row['completo_cpu_s']:.2f}"
                f" | {row.get('completo_rss_total_mb', row['completo_rss_mb']):.0f}"
                f" | {row['siguiente_s']:.2f} | {row['watch_siguiente_s']:.2f}"
                f" | {row.get('watch_rss_total_mb', row['watch_rss_mb']):.0f} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"
