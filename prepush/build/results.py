"""The results documents of a corte, by logical name (see docs/package-format.md).

One summary per election and, per distrito or municipio, two documents: its catálogo (the
secciones and casillas, with their lista nominal: the same all night, sent once) and its
results (the actas published so far). No document carries the corte id or time, so a
distrito whose actas did not change keeps the same bytes, hence the same object.

The results list the actas in the order the PREP published them (verification time, then
clave), and put them first in the document. An acta never changes once published, so the
next corte's document is this one's with the new actas added after the last one and a new
tail of totals: prepush rebuilds it on the difusor from the previous one plus those bytes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prepush.build.prep import Acta, Candidatura, Election
from prepush.build.reconcile import Reconciliation

Document = dict[str, Any]


def results_documents(reconciliations: Sequence[Reconciliation]) -> dict[str, Document]:
    documents: dict[str, Document] = {}
    for reconciliation in reconciliations:
        election = reconciliation.election
        slug = election.code.lower()
        groups = _by_group(election.actas)
        results = {gid: _results(election, actas) for gid, actas in groups.items()}
        for gid, actas in groups.items():
            base = f"{slug}/{election.group_kind}/{gid}"
            documents[f"{base}.json"] = results[gid]
            documents[f"{base}/catalogo.json"] = _catalogue(election, gid, actas)
        documents[f"{slug}/resumen.json"] = _resumen(reconciliation, groups, results)
    return documents


def summaries(reconciliation: Reconciliation) -> Document:
    """The PREP's figures as printed (what the site shows), the rows' beside them (the
    cross-check), which shown figures came from the rows (the preamble left them empty), the
    preamble's order, each figure's header as printed, and why the rows could not check one."""
    return {
        "summary": reconciliation.shown,
        "summary_order": list(reconciliation.shown),
        "summary_rows": reconciliation.rows.as_json(),
        "summary_from_rows": list(reconciliation.from_rows),
        "summary_headers": reconciliation.headers,
        "summary_unchecked": reconciliation.unchecked,
    }


def main_elections(reconciliations: Sequence[Reconciliation]) -> list[dict[str, Any]]:
    return [
        {
            "code": r.election.code,
            "name": r.election.name,
            "resumen": f"{r.election.code.lower()}/resumen.json",
            **summaries(r),
        }
        for r in reconciliations
    ]


def _by_group(actas: Sequence[Acta]) -> dict[str, list[Acta]]:
    groups: dict[str, list[Acta]] = defaultdict(list)
    for acta in actas:
        groups[acta.group_id or "0"].append(acta)
    return {gid: groups[gid] for gid in sorted(groups, key=_group_sort_key)}


def _group_sort_key(group_id: str) -> tuple[int, str]:
    return (int(group_id), group_id) if group_id.isdigit() else (1 << 30, group_id)


def _totals(actas: Sequence[Acta], width: int) -> list[int]:
    totals = [0] * width
    for acta in actas:
        if acta.counted and acta.votes is not None:
            for i, votes in enumerate(acta.votes):
                totals[i] += votes
    return totals


def _candidaturas(candidaturas: Sequence[Candidatura], group: int | None) -> list[Document]:
    return [
        {"party": c.party, "name": c.name, "suplente": c.suplente}
        for c in candidaturas
        if c.group == group
    ]


def _catalogue(election: Election, group_id: str, actas: Sequence[Acta]) -> Document:
    secciones: dict[str, list[Document]] = defaultdict(list)
    for acta in actas:
        secciones[acta.seccion].append(
            {
                "clave": acta.clave,
                "tipo": acta.tipo,
                "id": acta.id_casilla,
                "ext": acta.ext,
                "lista_nominal": acta.lista_nominal,
            }
        )
    group_number = int(group_id) if group_id.isdigit() else None
    return {
        "code": election.code,
        "group_kind": election.group_kind,
        "id": group_id,
        "name": actas[0].group_name,
        "columns": list(election.vote_columns),
        "candidaturas": _candidaturas(election.candidaturas, group_number)
        if group_number is not None
        else [],
        "secciones": [
            {"seccion": seccion, "casillas": secciones[seccion]} for seccion in sorted(secciones)
        ],
    }


def publication_order(acta: Acta) -> tuple[bool, str, str]:
    """Published first comes first; actas without a time go last, by clave."""
    return (not acta.published, acta.published, acta.clave)


def _results(election: Election, actas: Sequence[Acta]) -> Document:
    totals = _totals(actas, len(election.vote_columns))
    published = sorted((a for a in actas if a.captured), key=publication_order)
    # "actas" sorts before every other key: the list comes first, the totals after it.
    return {
        "actas": [_acta(a) for a in published],
        "contabilizadas": sum(1 for a in actas if a.counted),
        "esperadas": len(actas),
        "lista_nominal": sum(a.lista_nominal for a in actas if a.counted),
        "total": sum(totals),
        "totals": totals,
    }


def _acta(acta: Acta) -> Document:
    return {
        "clave": acta.clave,
        "contabilizada": acta.contabilizada,
        "observaciones": acta.observaciones,
        "votes": list(acta.votes) if acta.votes is not None else None,
        "total": acta.total,
    }


def _resumen(
    reconciliation: Reconciliation,
    groups: dict[str, list[Acta]],
    results: dict[str, Document],
) -> Document:
    election = reconciliation.election
    width = len(election.vote_columns)
    totals = _totals(election.actas, width)
    return {
        "code": election.code,
        "name": election.name,
        "group_kind": election.group_kind,
        "group_label": election.group_label,
        "columns": list(election.vote_columns),
        "candidaturas": _candidaturas(election.candidaturas, None),
        **summaries(reconciliation),
        # The differences between preamble and rows that the data explains, each named with
        # its evidence. Only what follows from the input: the package stays deterministic.
        "explained_differences": [f.as_json() for f in reconciliation.of_kind("explained")],
        "totals": totals,
        "total": sum(totals),
        "groups": [
            {
                "id": gid,
                "name": actas[0].group_name,
                "actas": results[gid]["esperadas"],
                "contabilizadas": results[gid]["contabilizadas"],
                "totals": results[gid]["totals"],
                "total": results[gid]["total"],
                "lista_nominal": results[gid]["lista_nominal"],
            }
            for gid, actas in groups.items()
        ],
    }
