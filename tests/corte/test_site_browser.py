"""The public site in Debian's headless Chromium, as a reader gets it from a difusor.

Every site here is published with ``prepush publish`` to a real OpenSSH sshd and served by
Debian's nginx with the guide's server block: never a copied tree. The figures on the page
are checked against tests/support/votes_oracle.py, which reads the PREP's CSVs with its own code.
One Chromium and one published Campeche corte are shared by the module's tests; tests that
need another state publish to a site of their own on the same sshd.

Screenshots go to test-artifacts/, the axe-core reports to test-artifacts/axe/.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prepush.__main__ import main
from prepush.corte.builder import PAGE_BUDGET_BYTES
from tests.conftest import Workdir, chromium
from tests.support import votes_oracle as oracle
from tests.support.prepdata import prep_data_dir
from tests.support.servers import Endpoint, Nginx, SshdServer, nginx_available

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
AXE = REPO / "tests/axe/node_modules/axe-core/axe.min.js"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self';"
    " base-uri 'none'; form-action 'none'"
)
IMAGES = "https://prep.ieec.example.mx/actas/{clave_acta}.jpg"
# What the page must do after a flip: show the new corte within this many seconds.
REFRESH_LIMIT_S = 30


@dataclass(frozen=True)
class Dataset:
    """A real PREP corte with a candidaturas file, and the elections that have one."""

    folder: str
    corte: str
    timezone: str
    rowless_actas: dict[str, int]
    elections: tuple[str, ...]
    process: str = "Proceso Electoral"

    def inputs(self) -> list[Path]:
        base = prep_data_dir() / self.folder
        return sorted(p for p in base.glob(f"{self.corte}_PREP_*") if p.is_dir())

    def election_dir(self, code: str) -> Path:
        return next(
            d
            for d in self.inputs()
            if any(
                f"_{code}_" in p.name.upper()
                for p in d.glob("*.csv")
                if "CANDIDATURA" not in p.name.upper()
            )
        )


CAMPECHE = Dataset(
    "campeche_2021/cortes",
    "20210607_1320",
    "America/Merida",
    {"DIP_LOC": 10},
    ("GOB", "DIP_LOC", "AYUN", "JUNTAS"),
    "Proceso Electoral Local 2020-2021 Campeche",
)
# Every shared dataset with a candidaturas file.
DATASETS = (
    CAMPECHE,
    Dataset("oaxaca_2022", "20220606_1500", "America/Mexico_City", {}, ("GUB",)),
    Dataset("quintana_roo_2019", "20190603_0547", "America/Cancun", {}, ("DIP_LOC",)),
)


def campeche_inputs(corte: str) -> list[Path]:
    return dataclasses.replace(CAMPECHE, corte=corte).inputs()


# --- sites published with prepush to sshd, served by nginx --------------------------------


@dataclass
class Site:
    workdir: Workdir
    root: Path
    url: str

    def build(self, inputs: Sequence[Path], *options: str) -> None:
        assert main(["-C", str(self.workdir.path), "build", *options, *map(str, inputs)]) == 0

    def publish_built(self, corte: str | None = None) -> None:
        """``prepush publish``: the newest package built, or ``corte``."""
        chosen = [corte] if corte else []
        assert main(["-C", str(self.workdir.path), "publish", *chosen]) == 0

    def publish(self, inputs: Sequence[Path], *options: str) -> None:
        self.build(inputs, *options)
        self.publish_built()


SiteFactory = Callable[..., Site]


@pytest.fixture(scope="module")
def sites(
    _sshd_plain_server: tuple[SshdServer, Endpoint],
    client_key: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SiteFactory]:
    """A site of its own per call: a directory of the shared sshd, its own nginx, its own
    work directory and roster (``election`` settings as keyword arguments)."""
    if not nginx_available():
        pytest.skip("requiere nginx (Debian) y ser root; 'make test' lo instala")
    server = _sshd_plain_server[1]
    started: list[Nginx] = []

    def make(name: str, **election: Any) -> Site:
        root = server.local_root / f"{name}-{uuid.uuid4().hex[:8]}"
        root.mkdir()
        owner = server.local_root.stat()
        os.chown(root, owner.st_uid, owner.st_gid)
        web = Nginx(root).start()
        started.append(web)
        difusor = dataclasses.replace(
            server,
            name=name,
            remote_dir=f"{server.remote_dir.rstrip('/')}/{root.name}",
            local_root=root,
            url=web.url,
        )
        workdir = Workdir(tmp_path_factory.mktemp(name), client_key)
        settings = {"process": CAMPECHE.process, "acta_image_url": IMAGES, **election}
        workdir.write_roster([difusor], **settings)
        return Site(workdir, root, web.url)

    yield make
    with ThreadPoolExecutor() as pool:  # each waits for its graceful stop: all at once
        list(pool.map(Nginx.stop, started))


@pytest.fixture(scope="module")
def dataset_sites(sites: SiteFactory) -> Callable[[Dataset], Site]:
    """Each dataset published once for the module."""
    made: dict[str, Site] = {}

    def get(dataset: Dataset) -> Site:
        if dataset.folder not in made:
            site = sites(
                dataset.folder.split("/")[0],
                process=dataset.process,
                timezone=dataset.timezone,
                rowless_actas=dataset.rowless_actas,
            )
            site.publish(dataset.inputs())
            made[dataset.folder] = site
        return made[dataset.folder]

    return get


@pytest.fixture(scope="module")
def campeche(dataset_sites: Callable[[Dataset], Site]) -> Site:
    return dataset_sites(CAMPECHE)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = chromium(tmp_path_factory.mktemp("chromium") / "perfil")
    yield driver
    driver.quit()


@pytest.fixture
def browser_page(page: Any) -> Iterator[Any]:
    """The shared Chromium at desktop size, back at desktop size after the test."""
    page.set_window_size(1280, 900)
    yield page
    page.switch_to.default_content()
    page.set_window_size(1280, 900)


# --- reading the page ---------------------------------------------------------------------


def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 15) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def shown(driver: Any, route: str, corte: str | None = None) -> None:
    """Wait until the page shows ``route`` (of ``corte``, if given)."""

    def ready(d: Any) -> bool:
        app = d.execute_script(
            "var a = document.getElementById('app');"
            " return [a.getAttribute('data-route'), a.getAttribute('data-corte')];"
        )
        return bool(app[0] == route and app[1] and (corte is None or app[1] == corte))

    wait(driver, ready)


def open_page(driver: Any, site: Site, route: str = "") -> None:
    driver.get(site.url + ("#" + route if route else ""))
    shown(driver, route)


def go(driver: Any, route: str) -> None:
    """Navigate inside the open page, as a link does."""
    driver.execute_script("location.hash = arguments[0];", route)
    shown(driver, route)


def text(driver: Any, css: str) -> str:
    """The text a reader sees in ``css``, read in one step (the page may repaint meanwhile)."""
    found = driver.execute_script(
        "var e = document.querySelector(arguments[0]); return e ? e.innerText : null;", css
    )
    assert found is not None, f"no hay {css} en la página"
    return str(found)


ROWS = """
return Array.from(document.querySelectorAll('#app table.votes tbody tr[data-key]')).map(
    function (tr) {
        var cells = tr.querySelectorAll('td.n');
        return [tr.querySelector('.who').textContent, cells[0].textContent, cells[1].textContent,
                !!tr.querySelector('.lead')];
    });
"""

TABLE = """
var rowCss = arguments[0], attr = arguments[1], cellCss = arguments[2];
return Array.from(document.querySelectorAll(rowCss)).map(function (tr) {
    return [attr ? tr.getAttribute(attr) : null].concat(cellCss.map(function (css) {
        var cell = tr.querySelector(css);
        return cell ? cell.textContent : null;
    }));
});
"""


def table_rows(driver: Any, rows: str, attribute: str, *cells: str) -> list[list[str]]:
    """Each row of ``rows``: its ``attribute``, then the text of each of ``cells``."""
    return list(driver.execute_script(TABLE, rows, attribute, list(cells)))


def candidaturas_shown(driver: Any) -> list[tuple[str, int, str, bool]]:
    """(name, votes, percentage, leads) of each candidatura row, in the page's order."""
    rows = driver.execute_script(ROWS)
    return [(name, number(votes), percentage, lead) for name, votes, percentage, lead in rows]


def total_shown(driver: Any) -> int:
    return number(
        driver.execute_script(
            "return document.querySelector('#app table.votes tfoot td.n').textContent"
        )
    )


def number(shown_text: str) -> int:
    assert shown_text.replace(",", "").isdigit(), shown_text
    return int(shown_text.replace(",", ""))


def truncated(votes: int, total: int) -> str:
    """The PREP's percentage as the page prints it: truncated, 4 decimals."""
    scaled = votes * 1_000_000 // total if total else 0
    return f"{scaled // 10_000}.{scaled % 10_000:04d}%"


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def corte_label(corte: str) -> str:
    return f"{corte[6:8]}/{corte[4:6]}/{corte[:4]} {corte[9:11]}:{corte[11:13]}"


def preamble(csv_path: Path) -> dict[str, str]:
    """The PREP's 13 printed figures, read here from the CSV."""
    lines = oracle.text_of(csv_path).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("ACTAS_ESPERADAS"))
    return dict(zip(lines[at].split(","), lines[at + 1].split(","), strict=True))


def results_csv(folder: Path) -> Path:
    return next(p for p in folder.glob("*.csv") if "CANDIDATURA" not in p.name.upper())


# --- votes by candidatura: every one, against the CSV ---------------------------------------


def check_contest(driver: Any, expected: oracle.Contest, where: str) -> None:
    rows = candidaturas_shown(driver)
    assert sorted((name, votes) for name, votes, _, _ in rows) == sorted(expected.candidaturas), (
        where
    )
    total = expected.total
    assert total_shown(driver) == total, where
    for name, votes, percentage, _ in rows:
        assert percentage == truncated(votes, total), (where, name)
    ranked = [votes for _, votes, _, _ in rows]
    assert ranked == sorted(ranked, reverse=True), where
    leaders = [name for name, _, _, lead in rows if lead]
    if ranked and ranked[0] > 0 and ranked[:2].count(ranked[0]) == 1:
        assert leaders == [rows[0][0]], where
    else:
        assert leaders == [], where


@pytest.mark.parametrize("dataset", DATASETS, ids=[d.folder.split("/")[0] for d in DATASETS])
def test_every_candidatura_on_the_page_equals_an_independent_count_from_the_csv(
    dataset: Dataset, dataset_sites: Callable[[Dataset], Site], browser_page: Any
) -> None:
    site = dataset_sites(dataset)
    checked = 0
    for code in dataset.elections:
        expected = oracle.contests(dataset.election_dir(code))
        slug = code.lower()
        open_page(browser_page, site, slug)
        if set(expected) == {"0"}:
            check_contest(browser_page, expected["0"], slug)
            checked += 1
            continue
        # One contest per distrito or municipio, reached by the page's own links.
        links = browser_page.execute_script(
            "return Array.from(document.querySelectorAll('#groups tbody a'))"
            ".map(function (a) { return a.getAttribute('href').slice(1); });"
        )
        assert {str(int(link.rsplit("/", 1)[1])) for link in links} == set(expected), slug
        for link in links:
            go(browser_page, link)
            check_contest(browser_page, expected[str(int(link.rsplit("/", 1)[1]))], link)
            checked += 1
    assert checked >= len(dataset.elections)


def test_campeche_gob_names_layda_sansores_first_with_108862(
    campeche: Site, browser_page: Any
) -> None:
    open_page(browser_page, campeche, "gob")
    rows = candidaturas_shown(browser_page)
    assert rows[0] == ("LAYDA ELENA SANSORES SAN ROMAN", 108862, "33.1046%", True)
    assert rows[1][:2] == ("ELISEO FERNANDEZ MONTUFAR", 104178)
    assert rows[2][:2] == ("CHRISTIAN MISHEL CASTRO BELLO", 101468)
    first = text(browser_page, "#app table.votes tbody tr")
    assert "Coalición PT-MOR" in first
    shot(browser_page, "gob-por-candidatura")
    # The second view: by party and combination, never a candidate's name on a part.
    go(browser_page, "gob/partidos")
    by_column = table_rows(browser_page, "#app table.votes tbody tr", "data-column", "th", "td.n")
    labels = {column: label for column, label, _ in by_column}
    votes = {column: number(v) for column, _, v in by_column}
    assert (votes["PT"], votes["MOR"], votes["C_PT_MOR"]) == (4490, 102873, 1499)
    assert labels["C_PT_MOR"].startswith("Combinación PT-MOR")
    assert labels["C_PAN_PRI"].startswith("Combinación PAN-PRI")
    party_table = text(browser_page, "#app table.votes")
    for name in ("LAYDA", "CASTRO BELLO", "FERNANDEZ MONTUFAR"):
        assert name not in party_table
    shot(browser_page, "gob-por-partido")


def test_an_election_of_many_contests_says_how_many_each_candidatura_leads(
    campeche: Site, browser_page: Any
) -> None:
    for code in ("DIP_LOC", "AYUN", "JUNTAS"):
        expected = oracle.contests(CAMPECHE.election_dir(code))
        leaders: dict[str, int] = {}
        for contest in expected.values():
            ranked = sorted(contest.candidaturas, key=lambda c: -c[1])
            if ranked and ranked[0][1] > 0 and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
                leaders[ranked[0][0]] = leaders.get(ranked[0][0], 0) + 1
        open_page(browser_page, campeche, code.lower())
        counts = table_rows(browser_page, "#leads tbody tr", "", "th", "td")
        shown_total = sum(number(n) for _, label, n in counts if not label.startswith("Sin quien"))
        assert shown_total == sum(leaders.values()), code
        # Each contest's leader in the list of contests is the oracle's.
        named = table_rows(browser_page, "#groups tbody tr", "data-group", "td")
        for group, leader in named:
            ranked = sorted(expected[str(int(group))].candidaturas, key=lambda c: -c[1])
            if leader != "—":
                assert leader.startswith(ranked[0][0]), (code, group)
    shot(browser_page, "dip-loc-contiendas")


# --- down to the casilla ------------------------------------------------------------------


def csv_rows(folder: Path) -> tuple[list[str], list[list[str]]]:
    header, rows = oracle.table(oracle.text_of(results_csv(folder)), "CLAVE_CASILLA")
    return header, rows


def test_each_casilla_shows_its_acta_its_status_and_its_image(
    campeche: Site, browser_page: Any
) -> None:
    header, rows = csv_rows(CAMPECHE.election_dir("GOB"))
    col = {name: i for i, name in enumerate(header)}
    votes = header[header.index("TOTAL_VOTOS_SACADOS") + 1 : header.index("TOTAL_VOTOS_ASENTADO")]
    counted = next(r for r in rows if r[col["CONTABILIZADA"]] == "1" and r[col["SHA"]])
    not_counted = next(r for r in rows if r[col["CONTABILIZADA"]] == "0" and r[col["SHA"]])
    missing = next(r for r in rows if r[0] not in ("-", "") and r[col["CONTABILIZADA"]] == "")
    for row in (counted, not_counted, missing):
        route = f"gob/distrito/{row[col['ID_DISTRITO_LOCAL']]}/casilla/{row[0]}"
        open_page(browser_page, campeche, route)
        card = text(browser_page, f'#app [data-clave="{row[0]}"]')
        if row is missing:
            assert "Acta aún no recibida por el PREP" in card
            assert "SHA-256" not in card
            continue
        assert row[col["SHA"]] in card
        assert f"Cómo se digitalizó (DIGITALIZACION)\n{row[col['DIGITALIZACION']]}" in card
        assert f"Dónde se digitalizó (ORIGEN)\n{row[col['ORIGEN']]}" in card
        link = browser_page.execute_script("return document.querySelector('#app a.imagen').href")
        assert link == IMAGES.replace("{clave_acta}", row[col["CLAVE_ACTA"]])
        figures = table_rows(browser_page, "#app table.acta-votos tbody tr", "data-column", "td")
        assert [c for c, _ in figures] == votes
        shown_votes = {c: number(v) for c, v in figures}
        for column in votes:
            cell = row[col[column]].strip()
            assert shown_votes[column] == (int(cell) if cell.isdigit() else 0), (row[0], column)
        if row is counted:
            assert "Contabilizada" in card
        else:
            assert f"No contabilizada: {row[col['OBSERVACIONES']]}" in card
    shot(browser_page, "casilla")


def test_consulta_tu_casilla_by_seccion_finds_it_in_every_election(
    campeche: Site, browser_page: Any
) -> None:
    expected = set()
    for code in CAMPECHE.elections:
        header, rows = csv_rows(CAMPECHE.election_dir(code))
        group = next(g for g in oracle.GROUPS if g in header)
        for row in rows:
            if row[header.index("SECCION")].lstrip("'") == "0333":
                expected.add((code.lower(), row[header.index(group)]))
    assert len(expected) == 4  # sección 0333 is split between two municipios
    open_page(browser_page, campeche, "consulta/333")
    links = browser_page.execute_script(
        "return Array.from(document.querySelectorAll('#app .consulta-resultados a'))"
        ".map(function (a) { return a.getAttribute('href').slice(1); });"
    )
    assert {(link.split("/")[0], link.split("/")[2]) for link in links} == expected
    go(browser_page, links[0])
    assert "Sección 0333" in text(browser_page, "#app h2")
    go(browser_page, "consulta/99999")
    assert "No hay casillas de la sección 99999" in text(browser_page, "#app")
    # A sección that is not in that distrito: said, with the way back, not retried.
    go(browser_page, "gob/distrito/007/seccion/9999")
    said = text(browser_page, "#app [role=alert]")
    assert "la sección 9999 no está en Distrito local 007. TENABO" in said
    assert "reintentará" not in said
    assert "Volver al inicio" in said


# --- the page's own refresh: one corte at a time ---------------------------------------------


OBSERVER = """
window.__vistas = [];
function vista() {
    var app = document.getElementById('app'), corte = document.getElementById('corte');
    var rows = Array.from(app.querySelectorAll('table.votes tbody tr[data-key]')).map(
        function (tr) {
            return [tr.querySelector('.who').textContent, tr.querySelector('td.n').textContent];
        });
    var total = app.querySelector('table.votes tfoot td.n');
    window.__vistas.push({header: corte.getAttribute('data-corte'), label: corte.textContent,
                          app: app.getAttribute('data-corte'), rows: rows,
                          total: total ? total.textContent : null});
}
vista();
new MutationObserver(vista).observe(document.documentElement,
    {subtree: true, childList: true, characterData: true, attributes: true});
"""


def test_an_open_page_shows_each_corte_whole_while_publish_flips_three(
    sites: SiteFactory, browser_page: Any
) -> None:
    """Every state the DOM passes through is recorded (a MutationObserver): in each one the
    corte in the header and the figures are of the same corte, and the figures are that
    corte's, counted from its CSV."""
    cortes = ("20210606_2240", "20210606_2320", "20210606_2340", "20210607_1320")
    expected = {
        corte: oracle.contests(dataclasses.replace(CAMPECHE, corte=corte).election_dir("GOB"))["0"]
        for corte in cortes
    }
    site = sites("vivo")
    for corte in cortes:  # built beforehand: the flips follow each other closely
        site.build(campeche_inputs(corte))
    site.publish_built(cortes[0])
    open_page(browser_page, site, "gob")
    browser_page.execute_script(OBSERVER)
    # A keyboard reader on a link: a new corte must not take their place away.
    browser_page.execute_script(
        "document.querySelector('#groups a[href=\"#gob/distrito/007\"]').focus();"
    )
    delays = []
    for corte in cortes[1:]:
        site.publish_built(corte)
        flipped = time.monotonic()
        wait(
            browser_page,
            lambda d, c=corte: (
                d.execute_script("return document.getElementById('app').getAttribute('data-corte')")
                == c
            ),
            timeout=REFRESH_LIMIT_S,
        )
        delays.append(time.monotonic() - flipped)
    vistas = browser_page.execute_script("return window.__vistas")
    seen = []
    for vista in vistas:
        corte = vista["header"]
        assert vista["app"] == corte, vista
        assert corte_label(corte) in vista["label"], vista
        want = expected[corte]
        rows = sorted((name, number(votes)) for name, votes in vista["rows"])
        assert rows == sorted(want.candidaturas), (corte, rows)
        assert number(vista["total"]) == want.total
        if not seen or seen[-1] != corte:
            seen.append(corte)
    assert seen == list(cortes), seen
    assert max(delays) < REFRESH_LIMIT_S
    assert active(browser_page)["href"] == "#gob/distrito/007"
    print(f"segundos desde cada cambio de corte hasta verlo en la página: {delays}")


# --- what the home page says, as the PREP printed it ------------------------------------------


def test_the_home_page_shows_the_corte_and_each_elections_printed_figures(
    campeche: Site, browser_page: Any
) -> None:
    open_page(browser_page, campeche)
    assert "07/06/2021 13:20 (UTC-05:00)" in text(browser_page, "#corte")
    for code in CAMPECHE.elections:
        printed = preamble(results_csv(CAMPECHE.election_dir(code)))
        card = text(browser_page, f'#elections [data-code="{code}"]')
        assert f"{printed['PORCENTAJE_ACTAS_CONTABILIZADAS']}%" in card, code
        counted = f"{int(printed['ACTAS_CONTABILIZADAS']):,}"
        assert f"Actas contabilizadas: {counted} de {int(printed['ACTAS_ESPERADAS']):,}" in card
    legend = text(browser_page, ".legend")
    assert "no son oficiales" in legend
    assert not browser_page.find_element("id", "simulacro-banner").is_displayed()
    main_json = json.loads((campeche.root / "json/main.json").read_bytes())
    assert text(browser_page, "#zip-sha256") == main_json["zip_sha256"]
    shot(browser_page, "inicio-escritorio")


def test_the_pre_election_corte_marks_computed_figures_and_the_final_shows_the_printed(
    sites: SiteFactory, browser_page: Any
) -> None:
    site = sites("previo")
    # The pre-election corte prints no votes nor participation: computed, and marked.
    site.publish(campeche_inputs("20210601_1852"))
    open_page(browser_page, site)
    gob = text(browser_page, '#elections [data-code="GOB"]')
    assert "Participación ciudadana: 0%*" in gob
    assert "Total de votos: 0*" in gob
    assert "Actas contabilizadas: 0 de 1,190" in gob  # printed: no mark
    assert "* Calculado por prepush con las actas del CSV" in gob
    # The final corte: DIP_LOC as the PREP printed it, not as its rows add up.
    site.publish(campeche_inputs("20210607_2000"))
    open_page(browser_page, site)
    shown(browser_page, "", "20210607_2000")
    dip_loc = text(browser_page, '#elections [data-code="DIP_LOC"]')
    assert "88.3333%" in dip_loc
    assert "Actas contabilizadas: 1,060 de 1,200" in dip_loc
    assert "Actas capturadas: 1,100 (91.6666%)" in dip_loc
    assert "Participación ciudadana: 62.9104%" in dip_loc
    assert "Total de votos: 372,947" in dip_loc
    assert "*" not in dip_loc
    go(browser_page, "dip_loc")
    assert "Actas contabilizadas: 1,060 de 1,200 (88.3333%)" in text(browser_page, "#app")
    shot(browser_page, "cifras-del-prep")


def test_the_site_works_inside_an_iframe(campeche: Site, browser_page: Any, tmp_path: Path) -> None:
    portal_root = tmp_path / "portal"
    portal_root.mkdir()
    (portal_root / "index.html").write_text(
        '<!doctype html><html lang="es"><body><h1>Portal del medio</h1>'
        f'<iframe id="prep" title="PREP" src="{campeche.url}#gob" width="900" height="700">'
        "</iframe></body></html>"
    )
    browser_page.get((portal_root / "index.html").as_uri())
    browser_page.switch_to.frame("prep")
    shown(browser_page, "gob", CAMPECHE.corte)
    assert candidaturas_shown(browser_page)[0][:2] == ("LAYDA ELENA SANSORES SAN ROMAN", 108862)
    browser_page.switch_to.default_content()
    shot(browser_page, "iframe")


def test_a_simulacro_package_shows_the_banner(sites: SiteFactory, browser_page: Any) -> None:
    site = sites("simulacro")
    site.publish(campeche_inputs("20210606_2320"), "--simulacro")
    open_page(browser_page, site)
    banner = browser_page.find_element("id", "simulacro-banner")
    assert banner.is_displayed()
    assert "SIMULACRO" in banner.text
    report = axe(browser_page, "simulacro")
    assert serious(report) == []
    shot(browser_page, "simulacro")


def test_an_unreachable_main_json_says_so_and_the_interrupted_notice_is_shown(
    sites: SiteFactory, browser_page: Any
) -> None:
    site = sites("sin-main")
    site.publish(campeche_inputs("20210606_2320"))
    main_json = site.root / "json/main.json"
    saved = main_json.read_bytes()
    main_json.unlink()
    browser_page.get(site.url)
    wait(browser_page, lambda d: "No se pudieron cargar" in text(d, "#app"))
    main = json.loads(saved)
    main["aviso"] = "Actualización interrumpida: prueba"
    main_json.write_text(json.dumps(main))
    open_page(browser_page, site)
    aviso = browser_page.find_element("id", "aviso")
    assert aviso.is_displayed()
    assert aviso.text == "Actualización interrumpida: prueba"


# --- light, and for everyone: budget, axe-core, keyboard, phone, CSP --------------------------


def test_the_page_stays_within_its_budget(campeche: Site) -> None:
    """HTML + JS + CSS, gzip -9, as published: what a phone downloads before any figure."""
    main_json = json.loads((campeche.root / "json/main.json").read_bytes())
    page = [campeche.root / "index.html", *(campeche.root / "assets").iterdir()]
    weight = sum(len(gzip.compress(p.read_bytes(), 9)) for p in page)
    assert len(page) == 3
    assert weight <= PAGE_BUDGET_BYTES, weight
    # The home page needs main.json only; an election's page its resumen, named there.
    assert all(e["resumen_object"].startswith("json/o/") for e in main_json["elections"])


PAGES = {
    "inicio": "",
    "eleccion-candidaturas": "gob",
    "eleccion-partidos": "gob/partidos",
    "eleccion-contiendas": "dip_loc",
    "contienda": "dip_loc/distrito/001",
    "contienda-partidos": "ayun/municipio/005/partidos",
    "seccion": "gob/distrito/007/seccion/0003",
    "casilla": "gob/distrito/007/casilla/040003B0100",
    "consulta": "consulta/333",
}


def axe(driver: Any, name: str) -> dict[str, Any]:
    """axe-core's WCAG 2.1 A and AA rules on the page as it is; the report is saved."""
    if not AXE.exists():
        pytest.skip("requiere axe-core (tests/axe, npm ci); 'make test' lo instala")
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    raw = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        " axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a',"
        " 'wcag21aa']}}).then(function (r) { done(JSON.stringify(r)); },"
        " function (e) { done(JSON.stringify({error: String(e)})); });"
    )
    report: dict[str, Any] = json.loads(raw)
    assert "error" not in report, report
    folder = ARTIFACTS / "axe"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return report


def serious(report: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [
        (v["id"], v["impact"], len(v["nodes"]))
        for v in report["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_every_page_type_has_no_serious_or_critical_wcag_violation(
    campeche: Site, browser_page: Any
) -> None:
    found = {}
    for name, route in PAGES.items():
        open_page(browser_page, campeche, route)
        report = axe(browser_page, name)
        assert report["passes"], name  # the rules ran
        found[name] = serious(report)
    assert found == {name: [] for name in PAGES}, found


def active(driver: Any) -> dict[str, str]:
    return dict(
        driver.execute_script(
            "var a = document.activeElement; return {tag: a.tagName, id: a.id || '',"
            " href: a.getAttribute('href') || '', outline: getComputedStyle(a).outlineStyle};"
        )
    )


def press(driver: Any, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def tab_to(driver: Any, found: Callable[[dict[str, str]], bool], limit: int = 40) -> dict[str, str]:
    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        press(driver, Keys.TAB)
        now = active(driver)
        if found(now):
            return now
    raise AssertionError(f"no se llegó con Tab al elemento buscado (último: {active(driver)})")


def test_keyboard_only_from_the_home_page_to_a_casilla(campeche: Site, browser_page: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser_page, campeche)
    skip = tab_to(browser_page, lambda a: a["id"] == "saltar", limit=1)
    assert skip["outline"] != "none"  # the focus is visible
    press(browser_page, Keys.ENTER)
    assert active(browser_page)["id"] == "app"
    link = tab_to(browser_page, lambda a: a["href"] == "#gob")
    assert link["outline"] != "none"
    press(browser_page, Keys.ENTER)
    shown(browser_page, "gob")
    assert active(browser_page)["tag"] == "H2"  # the new view's heading has the focus
    tab_to(browser_page, lambda a: a["href"] == "#gob/partidos")
    press(browser_page, Keys.ENTER)
    shown(browser_page, "gob/partidos")
    open_page(browser_page, campeche)
    tab_to(browser_page, lambda a: a["id"] == "seccion")
    press(browser_page, "333", Keys.ENTER)
    shown(browser_page, "consulta/333")
    tab_to(browser_page, lambda a: "/seccion/0333" in a["href"])
    press(browser_page, Keys.ENTER)
    wait(browser_page, lambda d: "Sección 0333" in text(d, "#app h2"))
    assert "Casilla" in text(browser_page, "#app")


def test_on_a_phone_no_page_is_wider_than_the_screen(campeche: Site, browser_page: Any) -> None:
    browser_page.set_window_size(360, 780)
    wider = {}
    for name, route in PAGES.items():
        open_page(browser_page, campeche, route)
        width = browser_page.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];"
        )
        if width[0] > width[1]:
            wider[name] = width
        shot(browser_page, f"telefono-{name}")
    assert wider == {}


def test_the_page_allows_only_the_packages_own_files(campeche: Site, browser_page: Any) -> None:
    open_page(browser_page, campeche, "gob")
    policy = browser_page.execute_script(
        "return document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]').content"
    )
    assert policy == CSP
    loaded = browser_page.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })"
    )
    assert loaded
    assert all(url.startswith(campeche.url) for url in loaded), loaded
    # An inline script (what an injected one would be) is refused by the policy.
    browser_page.execute_script(
        "window.__violations = [];"
        " document.addEventListener('securitypolicyviolation', function (e) {"
        "   window.__violations.push(e.effectiveDirective); });"
        " var s = document.createElement('script'); s.textContent = 'window.__inline = 1;';"
        " document.head.appendChild(s);"
    )
    wait(browser_page, lambda d: d.execute_script("return window.__violations.length") > 0)
    assert browser_page.execute_script("return window.__inline === undefined")
    assert "script-src-elem" in browser_page.execute_script("return window.__violations")


def printed_preamble(csv_path: Path) -> list[tuple[str, str]]:
    """The preamble's figures as the PREP printed them, read here without prepush: the line
    of names that starts with ACTAS_ESPERADAS and the next line with content."""
    lines = [line for line in csv_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    index = next(i for i, line in enumerate(lines) if line.startswith("ACTAS_ESPERADAS"))
    names, values = lines[index].split(","), lines[index + 1].split(",")
    return [(n.strip(), v.strip().lstrip("'")) for n, v in zip(names, values, strict=True)]


def test_every_printed_figure_is_on_the_page_as_printed_under_its_name_or_the_preps(
    sites: SiteFactory, browser_page: Any, tmp_path: Path
) -> None:
    """Coahuila 2023 as published (no candidaturas file: built with --allow-mismatch), and with
    one figure renamed to a header prepush does not know: each figure shows verbatim, the
    unknown one under the PREP's own header."""
    source = prep_data_dir() / "coahuila_2023" / "COAH_GUB_2023.csv"
    renamed = tmp_path / "20230605_1315_PREP_GUB_COAH" / "COAH_GUB_2023.csv"
    renamed.parent.mkdir()
    renamed.write_bytes(
        source.read_bytes().replace(b"TOTAL_VOTOS_S_CS", b"VOTOS_SIN_ESPECIALES", 1)
    )
    site = sites(
        "coahuila", process="Proceso Electoral Local 2023 Coahuila", timezone="America/Monterrey"
    )
    site.publish([renamed.parent], "--allow-mismatch")
    open_page(browser_page, site, "gub")
    shown_rows = browser_page.execute_script(
        "return Array.from(document.querySelectorAll('#preambulo tbody tr')).map("
        "function (tr) { return [tr.getAttribute('data-key'), tr.querySelector('th').textContent,"
        " tr.querySelector('td').textContent]; });"
    )
    expected = printed_preamble(renamed)
    assert len(shown_rows) == len(expected)
    for (key, label, value), (header, printed) in zip(shown_rows, expected, strict=True):
        digits = f"{int(printed):,}" if printed.isdigit() else printed
        assert value == digits + ("%" if header.startswith("PORCENTAJE") else ""), header
        if header == "VOTOS_SIN_ESPECIALES":
            assert (key, label) == ("VOTOS_SIN_ESPECIALES", "VOTOS_SIN_ESPECIALES")
        else:
            assert key == header.lower()
