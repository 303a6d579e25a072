"""Settings found wrong by the acceptance pass: a bad value is a ConfigurationError
(one clear line from every command), never a raw exception or a traceback."""

from __future__ import annotations

import pytest

from service.settings import ConfigurationError, load_settings


def test_a_time_zone_too_long_for_a_file_name_is_refused_clearly() -> None:
    with pytest.raises(ConfigurationError, match="time zone"):
        load_settings(_env_file=None, STEADY_DEFAULT_TIMEZONE="A" * 5000)


@pytest.mark.parametrize("name", ["STEADY_DATABASE_URL", "STEADY_DATABASE_REPLICA_URL"])
def test_a_database_url_sqlalchemy_cannot_read_is_refused_naming_it(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        load_settings(_env_file=None, **{name: "not a url"})


def test_real_database_urls_still_load() -> None:
    loaded = load_settings(
        _env_file=None,
        STEADY_DATABASE_URL="postgresql+psycopg://u@db:5432/steady",
        STEADY_DATABASE_REPLICA_URL="sqlite:////tmp/replica.db",
    )
    assert loaded.database_url.startswith("postgresql")
