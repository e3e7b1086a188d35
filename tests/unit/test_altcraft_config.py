"""The Altcraft ``[provider]`` section and the rules it puts on the rest of the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync_engine import parse_config
from sync_engine.errors import ConfigError
from sync_engine.providers.altcraft import AltcraftConfig
from sync_engine.providers.altcraft._config import matching_for


def config(
    tmp_path: Path,
    provider: dict[str, Any],
    sync: dict[str, Any] | None = None,
    mapping: dict[str, str] | None = None,
) -> Any:
    source = tmp_path / "c.csv"
    source.write_text("email,name,crm\n", encoding="utf-8")
    raw = {
        "source": {"type": "csv", "path": str(source)},
        "provider": {
            "type": "altcraft",
            "base_url": "https://ac.example.com/",
            "token": "tok-123456",
            "db_id": 1,
            **provider,
        },
        "sync": sync or {},
        "mapping": mapping or {"email": "email", "first_name": "name"},
    }
    return parse_config(raw, path=tmp_path / "sync.toml")


def test_defaults_and_secrets(tmp_path: Path) -> None:
    parsed = config(tmp_path, {})
    provider = parsed.provider
    assert isinstance(provider, AltcraftConfig)
    assert provider.base_url == "https://ac.example.com"
    assert (provider.batch_size, provider.max_body_bytes) == (1000, 10 * 1024 * 1024)
    assert provider.scope() == "db/1"
    assert "tok-123456" not in repr(provider)
    assert parsed.secrets() == ["tok-123456"]
    assert matching_for(provider, parsed.sync) == "email"


def test_matching_follows_the_key(tmp_path: Path) -> None:
    parsed = config(
        tmp_path,
        {},
        sync={"key": "field", "key_field": "CRM_ID"},
        mapping={"CRM_ID": "crm", "email": "email"},
    )
    assert matching_for(parsed.provider, parsed.sync) == "custom"
    with pytest.raises(ConfigError, match="does not fit"):
        config(tmp_path, {"matching": "phone"})
    with pytest.raises(ConfigError, match="profile_id matches only on update"):
        config(tmp_path, {"matching": "profile_id"})


@pytest.mark.parametrize(
    ("provider", "sync", "message"),
    [
        ({"base_url": None}, None, "base_url is required"),
        ({"api_key": "other-123456"}, None, "token or api_key, not both"),
        ({"db_id": None}, None, "db_id is required"),
        ({"batch_size": 10_001}, None, "batch_size must be above 0 and at most 10000"),
        ({"subscribe": ["email"]}, None, "subscribe needs resource_id"),
        ({"trigger_content": {"a": 1}}, None, "applies only with trigger_id"),
        ({"trigger_id": 5, "trigger_timeout": {"weeks": 1}}, None, "days, hours, minutes"),
        ({}, {"mode": "mirror"}, 'removal = "delete"'),
        ({"export_format": "xml"}, None, "export_format must be one of csv, json"),
    ],
)
def test_errors_name_the_key(
    tmp_path: Path, provider: dict[str, Any], sync: dict[str, Any] | None, message: str
) -> None:
    settings = {k: v for k, v in provider.items() if v is not None}
    removed = [k for k, v in provider.items() if v is None]
    source = tmp_path / "c.csv"
    source.write_text("email,name\n", encoding="utf-8")
    table: dict[str, Any] = {
        "type": "altcraft",
        "base_url": "https://ac.example.com",
        "token": "tok-123456",
        "db_id": 1,
    }
    table.update(settings)
    for key in removed:
        table.pop(key)
    raw = {
        "source": {"type": "csv", "path": str(source)},
        "provider": table,
        "sync": sync or {},
        "mapping": {"email": "email", "first_name": "name"},
    }
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config(raw, path=tmp_path / "sync.toml")


def test_a_trigger_the_import_may_skip_is_pointed_out(tmp_path: Path) -> None:
    assert config(tmp_path, {"trigger_id": 5}).provider.warnings() == []
    (warning,) = config(tmp_path, {"trigger_id": 5, "skip_triggers": True}).provider.warnings()
    assert "skip_triggers" in warning
