"""taskhub.sealing: Fernet at rest, key rotation, the generated development key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from taskhub.core.sealing import Sealer, SealingError, generate_key, sealer_for
from taskhub.core.settings import Settings, SettingsError, load


def settings_with(tmp_path: Path, keys: str = "") -> Settings:
    return load({"TASKHUB_DATA_DIR": str(tmp_path / "data"), "TASKHUB_ENCRYPTION_KEYS": keys})


def test_round_trip_and_no_plaintext() -> None:
    sealer = Sealer((generate_key(),), "TASKHUB_ENCRYPTION_KEYS")
    token = sealer.seal("Bearer sekrit-value")
    assert "sekrit" not in token
    assert sealer.unseal(token) == "Bearer sekrit-value"
    assert sealer.unseal_json(sealer.seal_json({"Authorization": "x"})) == {"Authorization": "x"}


def test_rotation_first_seals_all_unseal() -> None:
    old, new = generate_key(), generate_key()
    sealed_with_old = Sealer((old,), "v").seal("secret")
    rotated = Sealer((new, old), "v")
    assert rotated.unseal(sealed_with_old) == "secret"
    assert Sealer((new,), "v").unseal(rotated.seal("again")) == "again"


def test_a_wrong_key_is_a_clear_error_naming_the_variable() -> None:
    token = Sealer((generate_key(),), "TASKHUB_ENCRYPTION_KEYS").seal("hunter2")
    with pytest.raises(SealingError) as info:
        Sealer((generate_key(),), "TASKHUB_ENCRYPTION_KEYS").unseal(token)
    message = str(info.value)
    assert "TASKHUB_ENCRYPTION_KEYS" in message
    assert token not in message and "hunter2" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("bad", ["short", "é" * 44, "x" * 44])
def test_a_malformed_key_names_the_variable(bad: str) -> None:
    with pytest.raises(SealingError, match="TASKHUB_ENCRYPTION_KEYS: key 1"):
        Sealer((bad,), "TASKHUB_ENCRYPTION_KEYS")


def test_garbage_tokens_are_sealing_errors() -> None:
    sealer = Sealer((generate_key(),), "v")
    for token in ("", "not-a-token", "é"):
        with pytest.raises(SealingError):
            sealer.unseal(token)


def test_keys_from_the_variable(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    sealer = sealer_for(settings_with(tmp_path, f" {key} , {generate_key()}"))
    assert Sealer((key,), "v").unseal(sealer.seal("x")) == "x"
    assert not (tmp_path / "data" / "encryption.key").exists()


def test_without_the_variable_a_key_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)
    token = sealer_for(settings).seal("x")
    path = tmp_path / "data" / "encryption.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    assert Sealer((key,), "v").unseal(token) == "x"
    sealer_for.__globals__["_sealer"].cache_clear()
    assert sealer_for(settings).unseal(token) == "x"
    assert path.read_text().strip() == key  # reused, not regenerated


def test_an_attempt_that_cannot_unseal_is_retried_and_a_blocked_one_is_not() -> None:
    from taskhub.core.retry_policy import RetryPolicy, decide
    from taskhub.core.statuses import ExecutionStatus

    def status(kind: str) -> ExecutionStatus:
        return decide(
            attempt=1,
            http_status=None,
            error_kind=kind,
            retry_after_s=None,
            policy=RetryPolicy(),
            rand=0.5,
        ).status

    assert status("configuration") == ExecutionStatus.QUEUED  # another worker may have the key
    assert status("blocked_address") == ExecutionStatus.FAILED  # never retried


def test_processes_starting_together_agree_on_one_generated_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from taskhub.core.sealing import _key_file

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: _key_file(tmp_path / "data"), range(16)))
    assert len(keys) == 1
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["encryption.key"]


@pytest.mark.parametrize("bad", ["short", "é" * 44, "x" * 44, f"{generate_key()},oops"])
def test_settings_refuse_a_malformed_key_at_start(bad: str) -> None:
    with pytest.raises(SettingsError, match="TASKHUB_ENCRYPTION_KEYS: key"):
        load({"TASKHUB_ENCRYPTION_KEYS": bad})


def test_a_sealed_value_is_opened_once_per_process() -> None:
    sealer = Sealer((generate_key(),), "v")
    token = sealer.seal("whsec_abc")
    assert [sealer.unseal(token) for _ in range(3)] == ["whsec_abc"] * 3
    assert sealer._opened.cache_info().hits == 2
