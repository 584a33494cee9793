"""The results documents of a corte, by logical name (see docs/package-format.md).

One summary per election and one document per distrito or municipio, holding its secciones
and casillas: few files, drill-down to the casilla. No document carries the corte id or time,
so a distrito whose actas did not change keeps the same bytes, hence the same object.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prepush.prep import Acta, Candidatura, Election, Summary

Document = dict[str, Any]


def results_documents(
    elections: Sequence[Election], summaries: Sequence[Summary]
) -> dict[str, Document]:
    documents: dict[str, Document] = {}
    for election, summary in zip(elections, summaries, strict=True):
        slug = election.code.lower()
        groups = _by_group(election.actas)
        group_docs = [_group_document(election, gid, actas) for gid, actas in groups.items()]
        for doc in group_docs:
            documents[f"{slug}/{election.group_kind}/{doc['id']}.json"] = doc
        documents[f"{slug}/resumen.json"] = _resumen(election, summary, group_docs)
    return documents


def main_elections(
    elections: Sequence[Election], summaries: Sequence[Summary]
) -> list[dict[str, Any]]:
    return [
        {
            "code": e.code,
            "name": e.name,
            "summary": s.as_json(),
            "resumen": f"{e.code.lower()}/resumen.json",
        }
        for e, s in zip(elections, summaries, strict=True)
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


def _group_document(election: Election, group_id: str, actas: Sequence[Acta]) -> Document:
    width = len(election.vote_columns)
    totals = _totals(actas, width)
    secciones: dict[str, list[Document]] = defaultdict(list)
    for acta in actas:
        secciones[acta.seccion].append(_casilla(acta))
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
        "totals": totals,
        "total": sum(totals),
        "actas": len(actas),
        "contabilizadas": sum(1 for a in actas if a.counted),
        "lista_nominal": sum(a.lista_nominal for a in actas if a.counted),
        "secciones": [
            {"seccion": seccion, "casillas": secciones[seccion]} for seccion in sorted(secciones)
        ],
    }


def _casilla(acta: Acta) -> Document:
    return {
        "clave": acta.clave,
        "tipo": acta.tipo,
        "id": acta.id_casilla,
        "ext": acta.ext,
        "lista_nominal": acta.lista_nominal,
        "contabilizada": acta.contabilizada,
        "observaciones": acta.observaciones,
        "votes": list(acta.votes) if acta.votes is not None else None,
        "total": acta.total,
    }


def _resumen(election: Election, summary: Summary, groups: Sequence[Document]) -> Document:
    width = len(election.vote_columns)
    totals = _totals(election.actas, width)
    return {
        "code": election.code,
        "name": election.name,
        "group_kind": election.group_kind,
        "group_label": election.group_label,
        "columns": list(election.vote_columns),
        "candidaturas": _candidaturas(election.candidaturas, None),
        "summary": summary.as_json(),
        "totals": totals,
        "total": sum(totals),
        "groups": [
            {
                "id": g["id"],
                "name": g["name"],
                "actas": g["actas"],
                "contabilizadas": g["contabilizadas"],
                "totals": g["totals"],
                "total": g["total"],
                "lista_nominal": g["lista_nominal"],
            }
            for g in groups
        ],
    }
