"""The built site in Debian's headless Chromium (driven by chromedriver; nothing downloaded).

Screenshots are saved under test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from prepush.sim.fleet import WebServer
from tests.conftest import CHROMEDRIVER, CHROMIUM, Workdir

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="requiere chromium y chromium-driver de Debian; 'make test' los instala",
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, WebServer]]:
    root = tmp_path / "sitio"
    root.mkdir()
    server = WebServer(root)
    server.start()
    yield root, server
    server.stop()


def publish_locally(package: Path, root: Path) -> None:
    """What prepush does on a difusor, in the same order: immutable files, then entries."""
    entries = ("index.html", "json/main.json")
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package).as_posix()
        if path.is_file() and relative not in entries and not relative.startswith(".prepush/"):
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, root / relative)
    for entry in entries:
        (root / entry).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package / entry, root / entry)


def wait_text(driver: object, css: str, text: str, timeout: float = 15) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d: object) -> str | bool:
        content: str = d.find_element(By.CSS_SELECTOR, css).text  # type: ignore[attr-defined]
        return content if text in content else False

    return WebDriverWait(driver, timeout).until(found)  # type: ignore[arg-type,no-any-return]


def shot(driver: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))  # type: ignore[attr-defined]


def test_the_site_shows_the_corte_flips_and_drills_down(
    browser: object, site: tuple[Path, WebServer], workdir: Workdir
) -> None:
    from selenium.webdriver.common.by import By

    root, server = site
    workdir.write_roster([])
    publish_locally(workdir.build("20210606_2340"), root)
    browser.get(server.url)  # type: ignore[attr-defined]
    wait_text(browser, "#corte", "06/06/2021 23:40 (UTC-05:00)")
    cards = wait_text(browser, "#elections", "GUBERNATURA")
    assert "2.2689%" in cards  # porcentaje_actas_contabilizadas of GOB in main.json
    assert "Actas contabilizadas: 27 de 1,190" in cards
    assert not browser.find_element(By.ID, "simulacro-banner").is_displayed()  # type: ignore[attr-defined]
    shot(browser, "inicio-escritorio")
    browser.get(server.url + "#gob")  # type: ignore[attr-defined]
    wait_text(browser, "#app", "Distrito local")
    browser.get(server.url + "#gob/distrito/001")  # type: ignore[attr-defined]
    group = wait_text(browser, "#app", "Sección")
    assert "040" in group  # casilla keys
    shot(browser, "distrito-escritorio")
    publish_locally(workdir.build("20210607_2000"), root)
    browser.get(server.url)  # type: ignore[attr-defined]
    wait_text(browser, "#corte", "07/06/2021 20:00 (UTC-05:00)")
    assert "88.2352%" in wait_text(browser, "#elections", "GUBERNATURA")
    browser.set_window_size(360, 780)  # type: ignore[attr-defined]
    shot(browser, "inicio-telefono")


def test_the_site_shows_the_prep_figures_as_printed_and_marks_computed_ones(
    browser: object, site: tuple[Path, WebServer], workdir: Workdir
) -> None:
    import json

    from selenium.webdriver.common.by import By

    root, server = site
    workdir.write_roster([])
    # The pre-election corte prints no votes nor participation: computed, and marked.
    publish_locally(workdir.build("20210601_1852"), root)
    browser.get(server.url)  # type: ignore[attr-defined]
    wait_text(browser, "#corte", "01/06/2021 18:52")
    gob = wait_text(browser, '#elections [data-code="GOB"]', "GUBERNATURA")
    assert "Participación ciudadana: 0%*" in gob
    assert "Total de votos: 0*" in gob
    assert "Actas contabilizadas: 0 de 1,190" in gob  # printed: no mark
    assert "* Calculado por prepush con las actas del CSV" in gob
    # The final corte: DIP_LOC as the PREP printed it, not as its rows add up.
    package = workdir.build("20210607_2000")
    publish_locally(package, root)
    browser.get(server.url)  # type: ignore[attr-defined]
    wait_text(browser, "#corte", "07/06/2021 20:00")
    dip_loc = wait_text(browser, '#elections [data-code="DIP_LOC"]', "DIPUTACIONES")
    assert "88.3333%" in dip_loc
    assert "Actas contabilizadas: 1,060 de 1,200" in dip_loc
    assert "Actas capturadas: 1,100 (91.6666%)" in dip_loc
    assert "Participación ciudadana: 62.9104%" in dip_loc
    assert "Total de votos: 372,947" in dip_loc
    assert "*" not in dip_loc
    zip_sha256 = json.loads((package / "json/main.json").read_bytes())["zip_sha256"]
    shown = browser.find_element(By.ID, "zip-sha256")  # type: ignore[attr-defined]
    assert shown.is_displayed()
    assert shown.text == zip_sha256
    browser.get(server.url + "#dip_loc")  # type: ignore[attr-defined]
    assert "Actas contabilizadas: 1,060 (88.3333%)" in wait_text(browser, "#app", "Distrito")
    shot(browser, "cifras-del-prep")


def test_the_site_works_inside_an_iframe(
    browser: object, site: tuple[Path, WebServer], workdir: Workdir, tmp_path: Path
) -> None:
    root, server = site
    workdir.write_roster([])
    publish_locally(workdir.build("20210606_2320"), root)
    portal_root = tmp_path / "portal"
    portal_root.mkdir()
    (portal_root / "index.html").write_text(
        '<!doctype html><html lang="es"><body><h1>Portal del medio</h1>'
        f'<iframe id="prep" src="{server.url}" width="900" height="700"></iframe></body></html>'
    )
    portal = WebServer(portal_root)
    portal.start()
    try:
        browser.get(portal.url)  # type: ignore[attr-defined]
        browser.switch_to.frame("prep")  # type: ignore[attr-defined]
        wait_text(browser, "#corte", "06/06/2021 23:20")
        assert "GUBERNATURA" in wait_text(browser, "#elections", "GUBERNATURA")
        browser.switch_to.default_content()  # type: ignore[attr-defined]
        shot(browser, "iframe")
    finally:
        portal.stop()


def test_a_simulacro_package_shows_the_banner(
    browser: object, site: tuple[Path, WebServer], workdir: Workdir
) -> None:
    from selenium.webdriver.common.by import By

    root, server = site
    workdir.write_roster([])
    publish_locally(workdir.build("20210606_2320", "--simulacro"), root)
    browser.get(server.url)  # type: ignore[attr-defined]
    wait_text(browser, "#corte", "06/06/2021 23:20")
    banner = browser.find_element(By.ID, "simulacro-banner")  # type: ignore[attr-defined]
    assert banner.is_displayed()
    assert "SIMULACRO" in banner.text
    shot(browser, "simulacro")


def test_an_unreachable_main_json_says_so(browser: object, site: tuple[Path, WebServer]) -> None:
    root, server = site
    (root / "index.html").write_text(
        (Path(__file__).resolve().parents[1] / "prepush/build/site/index.html")
        .read_text()
        .replace("{{APP_JS}}", "app.js")
        .replace("{{APP_CSS}}", "app.css")
        .replace("{{PROCESS}}", "Prueba")
    )
    shutil.copyfile(
        Path(__file__).resolve().parents[1] / "prepush/build/site/app.js", root / "app.js"
    )
    browser.get(server.url)  # type: ignore[attr-defined]
    assert "No se pudieron cargar los resultados" in wait_text(browser, "#app", "No se pudieron")


def test_the_interrupted_notice_is_shown(
    browser: object, site: tuple[Path, WebServer], workdir: Workdir
) -> None:
    import json

    from selenium.webdriver.common.by import By

    root, server = site
    workdir.write_roster([])
    publish_locally(workdir.build("20210606_2320"), root)
    main = json.loads((root / "json/main.json").read_bytes())
    main["aviso"] = "Actualización interrumpida: prueba"
    (root / "json/main.json").write_text(json.dumps(main))
    browser.get(server.url)  # type: ignore[attr-defined]
    wait_text(browser, "#corte", "06/06/2021 23:20")
    aviso = browser.find_element(By.ID, "aviso")  # type: ignore[attr-defined]
    assert aviso.is_displayed()
    assert aviso.text == "Actualización interrumpida: prueba"
