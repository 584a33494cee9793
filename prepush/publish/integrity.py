"""Before the first byte goes out: the package is exactly what the institute signed.

``publish`` checks the manifest's Ed25519 signature against the roster's
``election.signing_key`` and every file's sha256, reading each file once through the
package's cache (the bytes it hashes are the bytes the upload sends). Any difference refuses
the corte for every difusor: nothing is written anywhere, the refusal goes to the ledger, and
the error names each file. A roster without a signing key, or an unsigned package, is refused
the same way: nothing unsigned leaves the institute.
"""

from __future__ import annotations

import logging

from prepush.exceptions import IntegrityError, PackageError
from prepush.ledger import PACKAGE_REFUSED, Ledger
from prepush.package import Package, load_public_key
from prepush.settings import Settings

log = logging.getLogger("prepush")

NO_KEY = (
    "election.signing_key: el padrón no nombra la llave con que se firman los paquetes; sin"
    " ella prepush no puede comprobar que el paquete sea el del instituto"
)


def refuse_unless_intact(
    package: Package, settings: Settings, ledger: Ledger, command: str
) -> None:
    """Raise :class:`IntegrityError` (exit 2), recorded in the ledger as a refused run,
    unless ``package`` is exactly what the roster's signing key signed."""
    problems = package_problems(package, settings)
    if not problems:
        return
    error = IntegrityError(package.corte, problems, _fix(package, settings))
    run_id = ledger.start_run(command, package.corte, {"refused": True})
    ledger.record_event(run_id, None, PACKAGE_REFUSED, _summary(problems))
    ledger.finish_run(run_id, "refused", note=str(error))
    raise error


def intact_or_recorded(package: Package, settings: Settings, ledger: Ledger, run_id: int) -> bool:
    """Whether a package that appeared during a run may be sent instead of the run's own;
    a refusal is recorded in the run and the run keeps its verified package."""
    problems = package_problems(package, settings)
    if not problems:
        return True
    message = _summary(problems)
    log.error("El corte %s no se publica: %s", package.corte, message)
    ledger.record_event(run_id, None, PACKAGE_REFUSED, f"corte {package.corte}: {message}")
    return False


def package_problems(package: Package, settings: Settings) -> list[str]:
    key_path = settings.signing_key_path
    if key_path is None:
        return [NO_KEY]
    try:
        trusted = load_public_key(key_path)
    except PackageError as exc:
        return [f"election.signing_key: {exc}"]
    return package.verify_for_sending(trusted)


def _fix(package: Package, settings: Settings) -> str:
    if settings.signing_key_path is None:
        return (
            "Genere la llave con 'prepush keygen --out claves/firma.pem', escríbala en"
            " election.signing_key del padrón y vuelva a construir el paquete con 'prepush"
            " build' para que quede firmado."
        )
    return (
        f"Si el paquete se alteró o se dañó, muévalo fuera de paquetes/ ({package.path}) y"
        " vuelva a construirlo con 'prepush build' desde los archivos del PREP; si se firmó con"
        " otra llave, constrúyalo con la de election.signing_key. Si la alteración no la hizo"
        " nadie del instituto, trátelo como un incidente de seguridad."
    )


def _summary(problems: list[str]) -> str:
    shown = "; ".join(problems[:10])
    more = f" (y {len(problems) - 10} más)" if len(problems) > 10 else ""
    return f"{shown}{more}"
