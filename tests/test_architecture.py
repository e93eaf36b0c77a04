"""The layout's rules, as import contracts (`.importlinter`): the apps depend
downward only, the sandbox and the egress broker stand alone, the project
package holds no app code, and the service layer knows no HTTP."""

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--config", str(ROOT / ".importlinter")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_package_of_the_project_is_under_the_contracts():
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    checked = set(config["importlinter"]["root_packages"].split())
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == checked


def test_the_service_modules_import_no_django_http():
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    services = config["importlinter:contract:services-know-no-http"]["source_modules"].split()
    for module in services:
        source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
        assert "django.http" not in source and "rest_framework" not in source, module
