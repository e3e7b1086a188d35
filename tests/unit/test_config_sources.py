"""Database sources and field rules in the config: defaults; errors name file, section, key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_engine import ConfigError, load_config
from sync_engine.config import PostgresSourceConfig, SqliteSourceConfig
from sync_engine.transforms import FieldRule, Transform

PROVIDER = """
[provider]
api_key = "k-123456"
list_id = 7
"""


def write(tmp_path: Path, source: str, mapping: str = 'email = "email"\n') -> Path:
    path = tmp_path / "sync.toml"
    path.write_text(f"[source]\n{source}\n{PROVIDER}\n[mapping]\n{mapping}", encoding="utf-8")
    return path


def test_postgres_source_from_the_environment_with_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, 'type = "postgresql"\ndsn = "${DB_URL}"\nquery = "SELECT email FROM t"'),
        env={"DB_URL": "postgresql://app:pw-123456@db:5432/crm"},
    )
    source = config.source
    assert isinstance(source, PostgresSourceConfig)
    assert source.dsn.reveal() == "postgresql://app:pw-123456@db:5432/crm"
    assert (source.chunk_size, source.connect_timeout, source.statement_timeout) == (
        5000,
        10.0,
        300.0,
    )
    assert (source.null, source.duplicates, source.date_format) == ("clear", "first", "%d.%m.%Y")
    assert "pw-123456" not in repr(config)
    assert "pw-123456" not in source.describe()
    assert source.describe() == "PostgresSourceConfig postgresql://app:***@db:5432/crm query"
    assert "pw-123456" in config.secrets()


def test_sqlite_table_source_resolves_its_path(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            'type = "sqlite"\npath = "crm.db"\ntable = "main.people"\n'
            'columns = ["email", "updated"]\nduplicates = "newest"\nnewest_by = "updated"',
        )
    )
    source = config.source
    assert isinstance(source, SqliteSourceConfig)
    assert source.path == tmp_path / "crm.db"
    assert (source.table, source.columns, source.query) == (
        "main.people",
        ("email", "updated"),
        None,
    )
    assert (source.duplicates, source.newest_by) == ("newest", "updated")


def test_mapping_table_forms_become_rules_and_the_simple_form_stays(tmp_path: Path) -> None:
    mapping = """
email = "email"
tags = { column = "labels", split = "|", transforms = ["trim", "lower"] }
[mapping.Name]
column = "first_name"
transforms = ["trim"]
default = "friend"
null = "keep"
[mapping.Born]
column = "born"
date_format = "%Y-%m-%d"
"""
    config = load_config(write(tmp_path, 'path = "c.csv"', mapping))
    assert config.mapping == {
        "email": "email",
        "tags": "labels",
        "Name": "first_name",
        "Born": "born",
    }
    assert config.rule("email") == FieldRule(column="email")
    assert config.rule("tags") == FieldRule(
        column="labels", split="|", transforms=(Transform.TRIM, Transform.LOWER)
    )
    assert config.rule("Name") == FieldRule(
        column="first_name", transforms=(Transform.TRIM,), default="friend", null="keep"
    )
    assert config.rule("Born").date_format == "%Y-%m-%d"


@pytest.mark.parametrize(
    ("source", "mapping", "message"),
    [
        ('type = "postgresql"\nquery = "SELECT 1"', None, r"\[source\] dsn is required"),
        (
            'type = "postgresql"\ndsn = "mysql://u:hunter2-pw@h/db"\nquery = "SELECT 1"',
            None,
            r"\[source\] dsn must be a postgresql:// URL .*got 'mysql://u:\*\*\*@h/db'",
        ),
        (
            'type = "postgresql"\ndsn = "postgresql://h/db"',
            None,
            r"\[source\] query: give either query = \"SELECT \.\.\.\" or table = \"name\"",
        ),
        (
            'type = "sqlite"\npath = "x.db"\nquery = "SELECT 1"\ntable = "t"',
            None,
            "give either query",
        ),
        (
            'type = "sqlite"\npath = "x.db"\nquery = "SELECT 1"\ncolumns = ["a"]',
            None,
            r"\[source\] columns goes with table",
        ),
        ('type = "sqlite"\npath = "x.db"\ntable = "a..b"', None, r"\[source\] table must be"),
        (
            'type = "sqlite"\npath = "x.db"\ntable = "t"\ncolumns = ["name"]',
            None,
            r"\[source\] columns does not include 'email', which \[mapping\] reads",
        ),
        (
            'type = "sqlite"\npath = "x.db"\ntable = "t"\nstatement_timeout = -1',
            None,
            r"\[source\] statement_timeout must be 0",
        ),
        (
            'path = "c.csv"\nduplicates = "newest"',
            None,
            r"\[source\] duplicates = \"newest\" needs",
        ),
        ('path = "c.csv"\nnewest_by = "x"', None, r"\[source\] newest_by is used only with"),
        ('path = "c.csv"\nduplicates = "latest"', None, r"\[source\] duplicates must be one of"),
        ('path = "c.csv"\nnull = "skip"', None, r"\[source\] null must be one of clear, keep"),
        ('path = "c.csv"\ntimezone = "Mars/Olympus"', None, "unknown time zone 'Mars/Olympus'"),
        ('path = "c.csv"\ndate_format = "%d.%b"', None, r"\[source\] date_format: .*%b"),
        ('path = "c.csv"\nport = 1', None, r"\[source\] port: unknown key"),
        (
            'path = "c.csv"',
            'email = "email"\nName = { column = "n", transforms = ["uper"] }',
            r"\[mapping.Name\] transforms: unknown transform 'uper'",
        ),
        (
            'path = "c.csv"',
            'email = "email"\nName = { transforms = ["trim"] }',
            r"\[mapping.Name\] column is required",
        ),
        (
            'path = "c.csv"',
            'email = "email"\nName = { column = "n", trim = true }',
            r"\[mapping.Name\] trim: unknown key",
        ),
        (
            'path = "c.csv"',
            'email = "email"\nName = { column = "n", split = "," }',
            r"\[mapping.Name\] split: splitting makes a list",
        ),
        (
            'path = "c.csv"',
            'email = { column = "e", date_format = "%d" }',
            r"\[mapping.email\] date_format: email is not a text field",
        ),
        (
            'path = "c.csv"',
            'email = "email"\nemail_list_ids = { column = "l", null = "keep" }',
            r"\[mapping.email_list_ids\] null = \"keep\" does not apply to list ids",
        ),
        (
            'path = "c.csv"',
            'email = "email"\nName = { column = "n", null = "maybe" }',
            r"\[mapping.Name\] null must be one of clear, keep",
        ),
        (
            'path = "c.csv"',
            'email = "email"\nName = { column = "n", date_format = "%Q" }',
            r"\[mapping.Name\] date_format: .*%Q is not supported",
        ),
        (
            'path = "c.csv"',
            'email = "email"\nName = 3',
            r"\[mapping\] Name must name a local column",
        ),
    ],
)
def test_errors_name_the_file_section_and_key(
    tmp_path: Path, source: str, mapping: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(write(tmp_path, source, mapping or 'email = "email"\n'))
    assert str(caught.value).startswith(str(tmp_path / "sync.toml") + ": ")
    assert "hunter2-pw" not in str(caught.value)
