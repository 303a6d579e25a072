"""The suppression list's keyed hash: one object, built from the settings' secret."""

from __future__ import annotations

from service.addresses import AddressHasher
from tests.support.world import make_settings

SECRET = "test-secret-key-that-is-long-enough-0123456789"
ADDRESS = "+12125550142"


def test_the_hasher_built_from_settings_hashes_as_one_built_from_the_same_secret() -> None:
    settings = make_settings("sqlite://", STEADY_SECRET_KEY=SECRET)
    from_settings = AddressHasher(settings.secret_key)
    assert from_settings(ADDRESS) == AddressHasher(SECRET)(ADDRESS)
    assert from_settings(ADDRESS) == from_settings(ADDRESS)  # stable: the list is looked up by it


def test_the_hash_depends_on_the_key_and_the_address() -> None:
    hasher = AddressHasher(SECRET)
    assert hasher(ADDRESS) != AddressHasher(SECRET + "x")(ADDRESS)
    assert hasher(ADDRESS) != hasher("+12125550143")
    assert ADDRESS not in hasher(ADDRESS)


def test_the_hasher_never_shows_its_key() -> None:
    hasher = AddressHasher(SECRET)
    assert SECRET not in repr(hasher)
    assert SECRET not in str(hasher)
