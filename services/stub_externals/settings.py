"""Stub settings, built once at start-up from ``STUBS_*`` environment variables."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from libs.kit.settings import SettingsReader, read_settings

ENV_PREFIX = "STUBS_"


class StubSettings(msgspec.Struct, frozen=True):
    # Where the fake CRM, CMS, CSS and SMS gateway listen (one server).
    host: str = "127.0.0.1"
    port: int = 8010
    # Empty means "accept unsigned calls" for that system.
    crm_secret: str = ""
    cms_secret: str = ""
    css_secret: str = ""
    # The local SMTP server that accepts and shows the customer notifications' mail (GET /_mail).
    smtp_enabled: bool = True
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025

    # Log lines at this level and above, as JSON on stderr.
    log_level: str = "INFO"

    def secrets(self) -> dict[str, str]:
        """Secrets by system code, only for systems that verify signatures."""
        by_code = {"CRM": self.crm_secret, "CMS": self.cms_secret, "CSS": self.css_secret}
        return {code: secret for code, secret in by_code.items() if secret}


def settings_from_env(environ: Mapping[str, str]) -> StubSettings:
    return read_settings(build_settings, environ, ENV_PREFIX)


def build_settings(reader: SettingsReader) -> StubSettings:
    return reader.load(StubSettings)
