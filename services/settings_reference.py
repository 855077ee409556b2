"""Generate docs/settings.md, the settings reference, from the services' settings structs.

python -m services.settings_reference           # write docs/settings.md
python -m services.settings_reference --check   # exit 1 if the committed file differs (a unit test runs it)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from libs.devstack import settings as devstack
from libs.kit.settings import settings_sections
from libs.kit.settings_reference import ServiceSettings, render_reference
from services.profile import settings as profile
from services.stub_externals import settings as stubs
from services.sync_connector import settings as connector

REFERENCE_FILE = Path(__file__).resolve().parents[1] / "docs" / "settings.md"

HEADER = """\
# Settings reference

Generated from the settings structs by `python -m services.settings_reference` (do not edit by
hand; `--check`, run by `tests/unit/test_settings_reference.py`, fails when it is out of date).

Every process reads its settings once at start-up from environment variables and passes them down.
Values are written as text: numbers and strings as they are, booleans `true` or `false`, lists and
objects as JSON (`CONNECTOR_SYSTEMS='["CRM"]'`). A value that does not fit its type stops the process
with an error naming the variable; a variable with a service's prefix that no setting reads (a
misspelt name) is named in a warning at start-up. "unset" means the setting is off until given.
"""


def services() -> list[ServiceSettings]:
    return [
        ServiceSettings(
            "Profile service, relay and their CLIs (`PROFILE_`)",
            "Read by `python -m services.profile` (serve, relay, migrate, maintenance, the admin commands).",
            settings_sections(profile.build_settings, profile.ENV_PREFIX),
        ),
        ServiceSettings(
            "Sync-connector and its CLIs (`CONNECTOR_`)",
            "Read by `python -m services.sync_connector` (serve, migrate, maintenance, admin commands). "
            "`CONNECTOR_ADMIN_TOKEN` holds the admin CLI's bearer token (not a setting).",
            settings_sections(connector.build_settings, connector.ENV_PREFIX),
        ),
        ServiceSettings(
            "Stub external systems (`STUBS_`)",
            "The fake CRM, CMS, CSS, SMS gateway and SMTP server of `make run`, the tests and compose's demo.",
            settings_sections(stubs.build_settings, stubs.ENV_PREFIX),
        ),
        ServiceSettings(
            "`make run` (`DEV_`)",
            "Read by `python -m libs.devstack.run`: where the local system keeps its data and its ports.",
            settings_sections(devstack.build_settings, devstack.ENV_PREFIX),
        ),
    ]


def rendered() -> str:
    return render_reference(HEADER, services())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.settings_reference", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/settings.md is not up to date")
    args = parser.parse_args(argv)
    text = rendered()
    current = REFERENCE_FILE.read_text(encoding="utf-8") if REFERENCE_FILE.is_file() else None
    if args.check:
        if current != text:
            print(f"out of date: {REFERENCE_FILE} (run: python -m services.settings_reference)", file=sys.stderr)
            return 1
        return 0
    if current != text:
        REFERENCE_FILE.parent.mkdir(exist_ok=True)
        REFERENCE_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {REFERENCE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
