"""The connection string: every form psycopg accepts is masked, checked without echoing it."""

from __future__ import annotations

import psycopg
import pytest

from oncepipe.conninfo import check_dsn, connection_problem, dsn_secrets, mask_dsn, redact
from oncepipe.errors import ConfigError, DatabaseUnavailableError
from oncepipe.settings import load_settings

SECRET = "Zq8-s3cretpw"  # noqa: S105 - a distinctive fake password to search for

# (connection string, what `oncepipe config` shows)
FORMS = [
    (f"postgresql://app:{SECRET}@db:5432/app", "postgresql://app:***@db:5432/app"),
    (
        f"postgres://app:{SECRET}@db/app?sslmode=require",
        "postgres://app:***@db/app?sslmode=require",
    ),
    (f"postgresql://app@db/app?password={SECRET}", "postgresql://app@db/app?password=***"),
    (f"postgresql://app:p%40{SECRET}@db/app", "postgresql://app:***@db/app"),
    (f"host=db user=app password={SECRET} dbname=app", None),
    (f"host=db user=app password='{SECRET} with spaces' dbname=app", None),
    (f"host=db sslpassword={SECRET} dbname=app", None),
]


@pytest.mark.parametrize(("dsn", "shown"), FORMS)
def test_every_form_is_masked(dsn: str, shown: str | None) -> None:
    masked = mask_dsn(dsn)
    assert SECRET not in masked
    assert "***" in masked
    if shown is not None:
        assert masked == shown
    else:  # the key=value form stays that form, with the same parameters
        params = psycopg.conninfo.conninfo_to_dict(masked)
        assert params["host"] == "db"
        assert "***" in {params.get("password"), params.get("sslpassword")}


@pytest.mark.parametrize(("dsn", "_shown"), FORMS)
def test_printed_settings_hold_no_secret(
    dsn: str, _shown: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONCEPIPE_DATABASE_URL", dsn)
    settings = load_settings()
    assert SECRET not in str(settings.masked())
    assert SECRET not in repr(settings)
    assert redact(f"oops {dsn}", settings.secrets()).count(SECRET) == 0


@pytest.mark.parametrize(
    ("dsn", "names"),
    [
        (f"app:{SECRET} at somewhere", "not a valid PostgreSQL connection string"),
        (f"host=db password={SECRET} dbname", "not a valid PostgreSQL connection string"),
        (f"host=db password={SECRET} port=notaport", "port"),
        (f"postgresql://app:{SECRET}@db:notaport/app", "port"),
        (f"postgresql://app:{SECRET}@db:70000/app", "port"),
        (f"postgresql://app:{SECRET}@db/app?sslmode=bogus", "sslmode"),
        (f"host=db password={SECRET} connect_timeout=soon", "connect_timeout"),
        (f"host=db password={SECRET} target_session_attrs=any-old", "target_session_attrs"),
    ],
)
def test_a_string_that_can_never_connect_is_refused_without_being_quoted(
    dsn: str, names: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=names) as caught:
        check_dsn(dsn)
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    monkeypatch.setenv("ONCEPIPE_DATABASE_URL", dsn)
    with pytest.raises(ConfigError, match="ONCEPIPE_DATABASE_URL") as loaded:
        load_settings()
    assert SECRET not in str(loaded.value)


def test_an_unparseable_string_is_a_secret_as_a_whole() -> None:
    dsn = f"app:{SECRET} at somewhere"
    assert SECRET not in redact(f'missing "=" after "app:{SECRET}"', dsn_secrets(dsn))


def test_a_url_encoded_password_is_redacted_in_both_spellings() -> None:
    secrets = dsn_secrets("postgresql://app:p%40ss%2Fword@db/app")
    assert redact("p@ss/word and p%40ss%2Fword", secrets) == "*** and ***"


def _refused(message: str) -> psycopg.OperationalError:
    return psycopg.OperationalError(message)


@pytest.mark.parametrize(
    "message",
    [
        'connection failed: FATAL:  role "nobody" does not exist',
        'connection failed: FATAL:  password authentication failed for user "app"',
        'connection failed: FATAL:  database "nope" does not exist',
        'connection failed: FATAL:  no pg_hba.conf entry for host "10.0.0.1"',
        'connection is bad: invalid sslmode value: "bogus"',
    ],
)
def test_a_login_that_can_never_succeed_is_configuration(message: str) -> None:
    assert isinstance(connection_problem(_refused(message)), ConfigError)


@pytest.mark.parametrize(
    "message",
    [
        "connection failed: connection to server at 127.0.0.1, port 1 failed: Connection refused",
        "connection failed: FATAL:  the database system is starting up",
        "connection timeout expired",
    ],
)
def test_an_outage_is_waited_out(message: str) -> None:
    problem = connection_problem(_refused(message))
    assert isinstance(problem, DatabaseUnavailableError)
    assert not isinstance(problem, ConfigError)


def test_redacting_an_unparseable_string_keeps_the_words_of_our_own_message() -> None:
    secrets = dsn_secrets(f"host=db password={SECRET} dbname")
    assert redact("use postgresql://user:password@host:port/dbname", secrets).endswith("dbname")
    assert SECRET not in redact(f"near password={SECRET}", secrets)
