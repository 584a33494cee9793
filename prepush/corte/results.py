"""The results documents of a corte, by logical name (see docs/package-format.md).

One summary per election, its index of secciones (which distrito or municipio holds each:
the same all night) and, per distrito or municipio, two documents: its catálogo (the
secciones and casillas, with their lista nominal and the candidaturas that run there: the
same all night, sent once) and its results (the actas published so far, their figures by
column and by candidatura). No document carries the corte id or time, so a distrito whose
actas did not change keeps the same bytes, hence the same object.

The results list the actas in the order the PREP published them (verification time, then
clave), and put them first in the document. An acta never changes once published, so the
next corte's document is this one's with the new actas added after the last one and a new
tail of totals: prepush rebuilds it on the difusor from the previous one plus those bytes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prepush.corte.candidaturas import Contender, Contests, contests_of, percentages, tally
from prepush.corte.model import Acta, Election
from prepush.corte.reconcile import Reconciliation

Document = dict[str, Any]


def results_documents(reconciliations: Sequence[Reconciliation]) -> dict[str, Document]:
    documents: dict[str, Document] = {}
    for reconciliation in reconciliations:
        election = reconciliation.election
        slug = election.code.lower()
        contests = contests_of(election)
        # By the acta object: the same casilla key can be in two municipios.
        groups = _by_group(election.actas)
        results = {
            gid: _results(election, actas, contests.of_group(gid)) for gid, actas in groups.items()
        }
        for gid, actas in groups.items():
            base = f"{slug}/{election.group_kind}/{gid}"
            documents[f"{base}.json"] = results[gid]
            documents[f"{base}/catalogo.json"] = _catalogue(
                election, gid, actas, contests.of_group(gid)
            )
        documents[f"{slug}/resumen.json"] = _resumen(reconciliation, contests, groups, results)
        documents[f"{slug}/secciones.json"] = _secciones(election, groups)
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


def main_elections(
    reconciliations: Sequence[Reconciliation], objects: dict[str, str]
) -> list[dict[str, Any]]:
    """Each election's summary for json/main.json, and where its resumen is: an election's
    page needs no index, one round trip less on a slow phone."""
    elections = []
    for r in reconciliations:
        resumen = f"{r.election.code.lower()}/resumen.json"
        elections.append(
            {
                "code": r.election.code,
                "name": r.election.name,
                "resumen": resumen,
                "resumen_object": objects[resumen],
                **summaries(r),
            }
        )
    return elections


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


def _catalogue(
    election: Election, group_id: str, actas: Sequence[Acta], contenders: Sequence[Contender]
) -> Document:
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
    return {
        "code": election.code,
        "group_kind": election.group_kind,
        "id": group_id,
        "name": actas[0].group_name,
        "columns": list(election.vote_columns),
        "candidaturas": [c.as_json() for c in contenders],
        "secciones": [
            {"seccion": seccion, "casillas": secciones[seccion]} for seccion in sorted(secciones)
        ],
    }


def _secciones(election: Election, groups: dict[str, list[Acta]]) -> Document:
    """Which distrito or municipio holds each sección: *consulta tu casilla*."""
    holders: dict[str, list[str]] = defaultdict(list)
    for gid, actas in groups.items():
        for seccion in sorted({a.seccion for a in actas}):
            holders[seccion].append(gid)
    return {
        "group_kind": election.group_kind,
        "group_label": election.group_label,
        "groups": {gid: actas[0].group_name for gid, actas in groups.items()},
        "secciones": {seccion: holders[seccion] for seccion in sorted(holders)},
    }


def publication_order(acta: Acta) -> tuple[bool, str, str]:
    """Published first comes first; actas without a time go last, by clave."""
    return (not acta.published, acta.published, acta.clave)


def _results(
    election: Election,
    actas: Sequence[Acta],
    contenders: Sequence[Contender],
) -> Document:
    totals = _totals(actas, len(election.vote_columns))
    published = sorted((a for a in actas if a.captured), key=publication_order)
    # "actas" sorts before every other key: the list comes first, the totals after it.
    return {
        "actas": [_acta(a) for a in published],
        "contabilizadas": sum(1 for a in actas if a.counted),
        "esperadas": len(actas),
        "lista_nominal": sum(a.lista_nominal for a in actas if a.counted),
        "percentages": percentages(totals),
        "por_candidatura": _tally(contenders, election, totals),
        "total": sum(totals),
        "totals": totals,
    }


def _tally(
    contenders: Sequence[Contender], election: Election, totals: Sequence[int]
) -> Document | None:
    return tally(contenders, election.vote_columns, totals) if contenders else None


def _acta(acta: Acta) -> Document:
    return {
        "clave": acta.clave,
        "contabilizada": acta.contabilizada,
        "observaciones": acta.observaciones,
        "votes": list(acta.votes) if acta.votes is not None else None,
        "total": acta.total,
        **acta.image.as_json(),
    }


def _resumen(
    reconciliation: Reconciliation,
    contests: Contests,
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
        # "election": one contest (its candidaturas here); "group": each distrito or
        # municipio is a contest (its candidaturas in its catálogo); "none": no file.
        "contest": contests.scope,
        "candidaturas": [c.as_json() for c in contests.of_election],
        # Each combination column and its parties, so that the site labels it as one.
        "combinations": {
            column: sorted(parties, key=election.vote_columns.index)
            for column, parties in contests.combinations.items()
        },
        **summaries(reconciliation),
        # The differences between preamble and rows that the data explains, each named with
        # its evidence. Only what follows from the input: the package stays deterministic.
        "explained_differences": [f.as_json() for f in reconciliation.of_kind("explained")],
        "totals": totals,
        "total": sum(totals),
        "percentages": percentages(totals),
        "por_candidatura": _tally(contests.of_election, election, totals),
        "leads": _leads(contests, groups, results) if contests.scope == "group" else [],
        "groups": [
            {
                "id": gid,
                "name": actas[0].group_name,
                "actas": results[gid]["esperadas"],
                "contabilizadas": results[gid]["contabilizadas"],
                "totals": results[gid]["totals"],
                "total": results[gid]["total"],
                "lista_nominal": results[gid]["lista_nominal"],
                "leader": _leader(contests.of_group(gid), results[gid]),
            }
            for gid, actas in groups.items()
        ],
    }


def _leader(contenders: Sequence[Contender], results: Document) -> Document | None:
    """Who leads in a distrito or municipio: key, name, parties, votes and percentage."""
    figures = results["por_candidatura"]
    if figures is None or figures["leader"] is None:
        return None
    contender = next(c for c in contenders if c.key == figures["leader"])
    row = next(r for r in figures["candidaturas"] if r["key"] == contender.key)
    return {
        "key": contender.key,
        "name": contender.name,
        "parties": list(contender.parties),
        "votes": row["votes"],
        "percentage": row["percentage"],
    }


def _leads(
    contests: Contests, groups: dict[str, list[Acta]], results: dict[str, Document]
) -> list[Document]:
    """How many contests each candidatura (the same party or coalition across contests)
    leads, most first; contests without a leader (a tie, no votes yet) are not counted."""
    count: dict[str, int] = defaultdict(int)
    parties: dict[str, list[str]] = {}
    for gid in groups:
        for contender in contests.of_group(gid):
            parties.setdefault(contender.key, list(contender.parties))
        figures = results[gid]["por_candidatura"]
        if figures is not None and figures["leader"] is not None:
            count[figures["leader"]] += 1
    ranked = sorted(parties, key=lambda key: (-count[key], key))
    return [{"key": key, "parties": parties[key], "contests": count[key]} for key in ranked]
