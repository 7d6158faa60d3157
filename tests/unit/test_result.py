from __future__ import annotations

import pytest

from qxdb import ConflictError, Error, NotFoundError, Result


def test_success_and_failure_hold_exactly_one_side() -> None:
    ok: Result[int] = Result.success(3)
    bad: Result[int] = Result.failure(NotFoundError("missing", code="user.not_found"))
    assert ok.is_success and not ok.is_failure
    assert bad.is_failure and not bad.is_success
    assert ok.value == 3
    assert ok.error is None
    assert bad.error is not None
    assert bad.error.code == "user.not_found"
    with pytest.raises(NotFoundError):
        _ = bad.value
    with pytest.raises(TypeError):
        Result()  # neither side
    with pytest.raises(TypeError):
        Result.failure("not an Error")  # type: ignore[arg-type]


def test_from_optional() -> None:
    missing = NotFoundError("nope")
    assert Result.from_optional(None, missing).error is missing
    assert Result.from_optional(0, missing).value == 0  # falsy values are still values


def test_map_bind_short_circuit_on_failure() -> None:
    calls: list[int] = []

    def double(x: int) -> int:
        calls.append(x)
        return x * 2

    assert Result.success(2).map(double).value == 4
    failed: Result[int] = Result.failure(ConflictError("stale"))
    assert failed.map(double).is_failure
    assert Result.success(2).bind(lambda x: Result.success(str(x))).value == "2"
    assert failed.bind(lambda x: Result.success(str(x))).error == ConflictError("stale")
    assert calls == [2]


def test_unwrap_or_and_unwrap_or_raise_and_match() -> None:
    failed: Result[int] = Result.failure(ConflictError("stale", details={"version": 3}))
    assert failed.unwrap_or(7) == 7
    assert Result.success(1).unwrap_or(7) == 1
    with pytest.raises(ConflictError) as info:
        failed.unwrap_or_raise()
    assert info.value.details == {"version": 3}
    with pytest.raises(RuntimeError, match="boom"):
        failed.unwrap_or_raise(lambda e: RuntimeError(f"boom: {e.code}"))
    assert failed.match(lambda v: f"ok {v}", lambda e: f"err {e.code}") == "err conflict"
    assert Result.success(5).match(lambda v: f"ok {v}", lambda e: "err") == "ok 5"


def test_truthiness_is_refused_to_prevent_silent_bugs() -> None:
    with pytest.raises(TypeError):
        bool(Result.success(1))


def test_error_tree() -> None:
    from qxdb.errors import CursorError, InvalidQueryError, ValidationError

    assert issubclass(ValidationError, ValueError)
    assert issubclass(CursorError, ValidationError)
    assert issubclass(InvalidQueryError, ValueError)
    err = CursorError("tampered", "signature does not match")
    assert err.reason == "tampered"
    assert err.code == "cursor.tampered"
    assert isinstance(err, Error)
    assert NotFoundError("x").to_dict()["type"] == "NotFoundError"
