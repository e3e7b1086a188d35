"""Config loading: validation names file and key; secrets are masked and interpolated."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_engine import (
    ConfigError,
    CsvSourceConfig,
    JsonlSourceConfig,
    UniSenderConfig,
    load_config,
    parse_config,
)

MINIMAL = """
[source]
path = "contacts.csv"

[provider]
api_key = "${UNI_KEY}"
list_id = 7

[mapping]
email = "Email"
Name = "first_name"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    """Defaults follow the provider's documented limits; paths resolve beside the file."""
    config = load_config(write(tmp_path, MINIMAL), env={"UNI_KEY": "k-123456"})
    assert isinstance(config.source, CsvSourceConfig)
    assert config.source.path == tmp_path / "contacts.csv"
    assert isinstance(config.provider, UniSenderConfig)
    assert config.provider.batch_size == 500
    assert config.provider.rate_limit == 1200
    assert config.provider.export_rate_limit == 20
    assert config.provider.timeout == 30.0
    assert config.provider.base_url == "https://api.unisender.com"
    assert config.sync.mode == "upsert"
    assert config.sync.max_delete_share == 0.10
    assert config.provider.api_key.reveal() == "k-123456"


def test_selzy_uses_its_own_host(tmp_path: Path) -> None:
    """One provider class, two base URLs."""
    text = MINIMAL.replace("[provider]\n", '[provider]\ntype = "selzy"\n')
    config = load_config(write(tmp_path, text), env={"UNI_KEY": "k-123456"})
    assert config.provider.base_url == "https://api.selzy.com"


def test_secret_never_shows_in_repr_or_str(tmp_path: Path) -> None:
    """The config's repr, and the key's str/format, print a mask."""
    config = load_config(write(tmp_path, MINIMAL), env={"UNI_KEY": "supersecret-key"})
    assert "supersecret-key" not in repr(config)
    assert "supersecret-key" not in str(config.provider.api_key)
    assert "supersecret-key" not in f"{config.provider.api_key}"


def test_missing_env_var_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(
        ConfigError, match=r"sync.toml: \[provider\] api_key: environment variable UNI_KEY"
    ):
        load_config(path, env={})


def test_env_default_is_used(tmp_path: Path) -> None:
    text = MINIMAL.replace("${UNI_KEY}", "${UNI_KEY:-fallback-key}")
    assert load_config(write(tmp_path, text), env={}).provider.api_key.reveal() == "fallback-key"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("list_id = 7", "list_id = 7\nbatch_size = 900"),
            r"\[provider\] batch_size must be above 0 and at most 500",
        ),
        (("list_id = 7", "list_id = 7\nbatchsize = 5"), r"\[provider\] batchsize: unknown key"),
        (("[mapping]", '[sync]\nmode = "mirrors"\n[mapping]'), r"\[sync\] mode must be one of"),
        (("[mapping]", '[sync]\nkey = "phone"\n[mapping]'), r"needs \[mapping\] phone"),
        (
            ('Name = "first_name"', 'email_status = "status"'),
            r"email_status: this field is the provider's",
        ),
        (("[mapping]", '[sync]\ndefault_region = "XX"\n[mapping]'), r"unknown region 'XX'"),
        (
            ("[mapping]", "[sync]\nmax_delete_share = 2\n[mapping]"),
            r"max_delete_share must be between 0 and 1",
        ),
        (
            ("list_id = 7", "list_id = 7\noverwrite_lists = true"),
            r"overwrite_lists = true replaces every list",
        ),
        (('Name = "first_name"', '"bad name" = "x"'), r"provider field names use Latin letters"),
        (
            ("list_id = 7", 'list_id = 7\nbase_url = "ftp://x"'),
            r"base_url must be an http\(s\) URL",
        ),
    ],
)
def test_invalid_values_are_named(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    """Each invalid setting is reported with the file, the section and the key."""
    text = MINIMAL.replace(*change)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(write(tmp_path, text), env={"UNI_KEY": "k-123456"})
    assert "sync.toml" in str(caught.value)


def test_mirror_exclude_needs_a_list(tmp_path: Path) -> None:
    text = MINIMAL.replace("list_id = 7\n", "").replace(
        "[mapping]", '[sync]\nmode = "mirror"\n[mapping]'
    )
    with pytest.raises(ConfigError, match="list_id is required"):
        load_config(write(tmp_path, text), env={"UNI_KEY": "k-123456"})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[source\n"))


def test_parse_config_accepts_a_mapping() -> None:
    """Library users can build a config without a file."""
    config = parse_config(
        {
            "source": {"type": "jsonl", "path": "/data/x.jsonl"},
            "provider": {"api_key": "abcd-efgh", "list_id": 1},
            "mapping": {"email": "email"},
        }
    )
    assert isinstance(config.source, JsonlSourceConfig)
    assert config.source.path == Path("/data/x.jsonl")
    assert config.label == "<config>"


def test_key_field_needs_a_mapped_field_and_a_provider_that_matches_by_it(tmp_path: Path) -> None:
    """``key = "field"`` names its field; UniSender (email/phone only) refuses it clearly."""
    text = MINIMAL + '\n[sync]\nkey = "field"\n'
    with pytest.raises(ConfigError, match=r"\[sync\] key = \"field\" needs key_field"):
        load_config(write(tmp_path, text), env={"UNI_KEY": "k"})
    text = MINIMAL + '\n[sync]\nkey = "field"\nkey_field = "customer_id"\n'
    with pytest.raises(
        ConfigError, match=r"key_field = 'customer_id' needs \[mapping\] customer_id"
    ):
        load_config(write(tmp_path, text), env={"UNI_KEY": "k"})
    text = MINIMAL + '\n[sync]\nkey = "field"\nkey_field = "Name"\n'
    with pytest.raises(ConfigError, match="unisender imports match contacts by email or phone"):
        load_config(write(tmp_path, text), env={"UNI_KEY": "k"})
    text = MINIMAL + '\n[sync]\nkey_field = "Name"\n'
    with pytest.raises(ConfigError, match=r"key_field applies only with key = \"field\""):
        load_config(write(tmp_path, text), env={"UNI_KEY": "k"})


def test_unknown_provider_type_lists_the_known_ones(tmp_path: Path) -> None:
    text = MINIMAL.replace("[provider]\n", '[provider]\ntype = "mailchimp"\n')
    with pytest.raises(ConfigError, match=r"\[provider\] type must be one of .*altcraft"):
        load_config(write(tmp_path, text), env={"UNI_KEY": "k"})
