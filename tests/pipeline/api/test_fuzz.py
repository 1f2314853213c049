"""The REST API fuzzed from its own OpenAPI schema (schemathesis, in-process over ASGI).

Every operation gets generated requests (valid and invalid per the schema) from an admin
client; each response must be no 5xx, carry a status code the operation declares, the content
type it declares and a body matching the declared schema (the one error shape for errors).
A second pass without a credential must get 401 in the error shape from every operation but
the public ones. Hypothesis runs derandomized with a bounded number of examples so the run
is repeatable and stays inside the test-time budget.

The fuzz runs on SQLite (see ``api``); what it found about out-of-range ids is checked on SQLite
and PostgreSQL (``db_url``) by ``test_ids_beyond_64_bits_are_422_on_both_databases``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks as st_checks
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from sqlalchemy import Engine

from domain.types import GapCause
from indexer.database import create_engine_for, upgrade
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.settings import ApiConfig, ExportConfig, Settings
from pipeline.storage import LocalStorage
from tests.indexer.factories import chain, gap
from tests.support.auth import add_user, bearer

pytestmark = pytest.mark.integration

ROOMS = [
    ("wait", "候问室", "waiting", [("w-a", "a", "rtsp://10.0.0.1/a")]),
    ("int-1", "讯问室1", "interrogation", [("i-a", "a", "rtsp://10.0.0.2/a")]),
]
PUBLIC = {"/healthz", "/metrics", "/api/v1/auth/token"}
# argon2id is slow on purpose (~0.3-2 s a request here): one generated example each
PASSWORD_HASHING = {"/api/v1/auth/token", "/api/v1/users"}
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]
# Small (the whole module must stay within its share of the suite's time budget): every operation
# gets its explicit examples plus a few generated requests, positive and negative. derandomize
# makes the sequence the same on every run.
FUZZ = settings(
    max_examples=3,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def build(engine: Engine, tmp_path: Path) -> FastAPI:
    """The app as ``vaudit run`` serves it (minus the recorders), with a little data to find."""
    store = SegmentStore(engine)
    store.sync_rooms(ROOMS)
    store.add_segments(chain("i-a", 3))
    store.add_gap(gap("i-a", 30, 34, GapCause.STALL))
    add_user(engine, "admin", "admin")
    add_user(engine, "revoker", "admin")
    settings_ = Settings(
        api=ApiConfig(upload_tmp=tmp_path / "upload-tmp"), export=ExportConfig(out_dir=tmp_path / "exports")
    )
    return create_app(settings_, store, engine=engine, storage=LocalStorage(tmp_path / "store"))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, dict[str, str]]]:
    """One app for the module (SQLite only: the PostgreSQL half would double the run time for the
    same routes and the same error mapping; there an out-of-range id is a DataError, mapped by
    the same transaction helper)."""
    tmp_path = tmp_path_factory.mktemp("fuzz")
    engine = create_engine_for(f"sqlite:///{tmp_path / 'index.db'}")
    upgrade(engine)
    app = build(engine, tmp_path)
    try:
        with TestClient(app) as client:  # runs startup/shutdown (the export job runner)
            headers = bearer(client, "admin")
            client.post(
                "/api/v1/cases",
                json={"case_number": "A-1", "title": "盗窃案", "charge": "盗窃"},
                headers=headers,
            )
            yield app, headers
    finally:
        engine.dispose()


def operations(app: FastAPI) -> list[Any]:
    """Every operation of the app's own OpenAPI document, as schemathesis reads it."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    ops = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an operation the fuzzer cannot read is a failure too
        ops.append(result.ok())
    return ops


def can_be_invalid(operation: dict[str, Any]) -> bool:
    """False for an operation whose only inputs are unconstrained string path parameters: every
    value of those is valid, so there is no negative case to generate."""
    if "requestBody" in operation:
        return True
    for param in operation.get("parameters", []):
        schema = param.get("schema", {})
        if param.get("in") != "path" or schema.get("type") != "string" or set(schema) - {"type", "title"}:
            return True
    return False


def fuzz(app: FastAPI, mode: GenerationMode, examples: int, check: Callable[[Any], None]) -> list[str]:
    """Run ``check`` on generated cases of every operation; one line per failing operation.

    Driven through hypothesis directly (one ``@given`` per operation) rather than schemathesis's
    pytest plugin, whose lazy loader does not run under pytest 9. Every operation is fuzzed even
    when an earlier one fails, so one run reports everything.
    """
    failures: list[str] = []
    for op in operations(app):
        if mode is GenerationMode.NEGATIVE and not can_be_invalid(op.definition.raw):
            continue  # hypothesis would spend seconds proving there is nothing to make invalid

        @settings(FUZZ, max_examples=1 if op.path in PASSWORD_HASHING else examples)
        @given(case=op.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            check(case)

        try:
            run()
        except Unsatisfiable:
            continue  # nothing to make invalid (an operation without parameters or body)
        # hypothesis re-raises the minimal failing example's error; schemathesis's FailureGroup
        # is a BaseExceptionGroup, not an Exception
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{op.method.upper()} {op.path} ({mode}): {type(exc).__name__}: {exc}"[:1500])
    return failures


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_fuzzed_as_admin(api: tuple[FastAPI, dict[str, str]], mode: GenerationMode) -> None:
    app, headers = api
    users = app.state.security.users
    revoker = users.list_users()  # another admin: revoking their tokens leaves the fuzz's own alone
    other = next(who for who, _active, _created in revoker if who.name == "revoker")

    def check(case: Any) -> None:
        mine = headers
        if case.path.startswith("/api/v1/auth/tokens") and case.method.upper() == "POST":
            mine = {"Authorization": f"Bearer {users.issue(other, 'bearer')}"}
        case.call_and_validate(headers=mine, checks=CHECKS)

    failures = fuzz(app, mode, 3, check)
    assert not failures, "\n\n".join(failures)


def test_every_operation_without_a_credential_is_401(api: tuple[FastAPI, dict[str, str]]) -> None:
    app, _ = api

    def check(case: Any) -> None:
        response = case.call()
        if case.path in PUBLIC:
            assert response.status_code < 500, (case.method, case.path, response.status_code)
            return
        assert response.status_code == 401, (case.method, case.path, response.status_code, response.text)
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"] == "unauthorized", body

    failures = fuzz(app, GenerationMode.POSITIVE, 1, check)
    assert not failures, "\n\n".join(failures)


def test_fuzz_reached_every_operation(api: tuple[FastAPI, dict[str, str]]) -> None:
    """The schema the fuzzer reads lists every API route the app serves (nothing hidden from it)."""
    app, _ = api
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    served = {
        (m, getattr(r, "path", ""))
        for r in app.routes
        if getattr(r, "include_in_schema", False) and getattr(r, "path", "").startswith("/api/")
        for m in getattr(r, "methods", ())
    }
    assert served <= documented, served - documented
    assert len(documented) >= 35


def test_ids_beyond_64_bits_are_422_on_both_databases(engine: Engine, tmp_path: Path) -> None:
    """What the fuzz found on SQLite (a 500: the driver's OverflowError), checked on PostgreSQL too
    (there a DataError): ids no BigInteger column can hold are refused as invalid, in path, query
    and body, on both index databases."""
    big = 2**70
    with TestClient(build(engine, tmp_path)) as client:
        client.headers.update(bearer(client, "admin"))
        answers = [
            client.get(f"/api/v1/cases/{big}"),
            client.get(f"/api/v1/subjects/{big}/trajectory"),
            client.get("/api/v1/cases", params={"officer_id": big}),
            client.get("/api/v1/audit", params={"before": big}),
            client.post(f"/api/v1/users/{big}/disable"),
            client.post(
                "/api/v1/events",
                json={"id": "e-big", "type": "other", "time": "2026-03-01T08:00:00Z", "subject_id": big},
            ),
            client.post(
                "/api/v1/observations",
                json={
                    "id": "o-big",
                    "subject_id": big,
                    "room_id": "wait",
                    "time": "2026-03-01T08:00:00Z",
                    "source": "wristband",
                },
            ),
        ]
        for r in answers:
            assert r.status_code == 422, (r.request.url, r.status_code, r.text)
            assert r.json()["error"]["code"] == "validation_failed"
        export = client.post("/api/v1/exports", json={"case": str(big), "subject": "1"})
        assert export.status_code in (404, 422), export.text
