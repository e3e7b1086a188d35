"""The eSputnik [provider] section and the rules check-config applies to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_engine import ConfigError, load_config
from sync_engine.providers._esputnik_config import ESputnikConfig


def config_file(tmp_path: Path, provider: str, *, sync: str = "", mapping: str = "") -> Path:
    (tmp_path / "c.csv").write_text("email,name\n", encoding="utf-8")
    lines = [
        "[source]",
        'type = "csv"',
        'path = "c.csv"',
        "[provider]",
        provider,
        'api_key = "k-12345"',
        "[sync]",
        sync,
        "[mapping]",
        mapping or 'email = "email"',
    ]
    path = tmp_path / "sync.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("kind", "host"), [("esputnik", "https://esputnik.com"), ("yespo", "https://yespo.io")]
)
def test_hosts_and_documented_defaults(tmp_path: Path, kind: str, host: str) -> None:
    config = load_config(config_file(tmp_path, f'type = "{kind}"'))
    provider = config.provider
    assert isinstance(provider, ESputnikConfig)
    assert (provider.kind, provider.base_url) == (kind, host)
    assert (provider.batch_size, provider.rate_limit, provider.search_rate_limit) == (3000, 200, 50)
    assert provider.page_size == 500
    assert not provider.restore_deleted
    assert provider.warnings()  # not marked opted in: warned
    assert "k-12345" not in repr(provider)


@pytest.mark.parametrize(
    ("provider", "sync", "mapping", "message"),
    [
        ('type = "esputnik"\nbatch_size = 3001', "", "", "at most 3000"),
        ('type = "esputnik"\nevent_key = "new key"', "", "", "event_key"),
        ('type = "esputnik"', 'mode = "mirror"', "", "group is required"),
        ('type = "esputnik"', "", 'email = "email"\nNick = "name"', "not an eSputnik field"),
        ('type = "esputnik"', "", 'email = "email"\ntown = "name"', "does not return it"),
        (
            'type = "esputnik"\ngroup = "G"',
            "",
            'email = "email"\nexternalCustomerId = "name"',
            "ignoring dedupeOn",
        ),
        (
            'type = "esputnik"\ngroup = "G"',
            'key = "field"\nkey_field = "lastName"',
            'email = "email"\nlastName = "name"',
            "externalCustomerId or a custom field",
        ),
        (
            'type = "esputnik"',
            'key = "field"\nkey_field = "field_5"\nmode = "mirror"\nremoval = "delete"',
            'field_5 = "email"',
            "cannot search by a custom field",
        ),
    ],
)
def test_config_errors_name_the_rule(
    tmp_path: Path, provider: str, sync: str, mapping: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config_file(tmp_path, provider, sync=sync, mapping=mapping))
