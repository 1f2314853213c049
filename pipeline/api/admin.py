"""Admin routes: the audit trail (browse, verify the chain) and user accounts.

Every admin action is itself appended to the audit trail.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from indexer.database import DB_INT_MAX
from pipeline.api.auth import CallerDep
from pipeline.api.deps import EngineDep, MaybeStorageDep, SettingsDep
from pipeline.storage.anchors import verify_audit

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.get("/audit", summary="Audit rows, newest first (admin, legal)")
def audit_rows(
    caller: CallerDep,
    user: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    object_prefix: Annotated[str | None, Query(alias="object", max_length=500)] = None,
    before: Annotated[int | None, Query(ge=0, le=DB_INT_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    caller.audit(
        "audit_browse",
        "audit_log",
        filter_user=user,
        filter_action=action,
        filter_object=object_prefix,
        before=before,
    )
    rows = caller.security.audit.rows(
        user=user, action=action, object_prefix=object_prefix, before_seq=before, limit=limit
    )
    return {"rows": [r.to_json() for r in rows]}


@router.get("/audit/verify", summary="Check the audit trail's keyed chain and its anchors")
def audit_verify(
    caller: CallerDep, settings: SettingsDep, engine: EngineDep, storage: MaybeStorageDep
) -> dict[str, Any]:
    verdict = verify_audit(settings, engine, storage)
    report = verdict.chain
    caller.audit("audit_verify", "audit_log", ok=verdict.ok, first_broken=report.first_broken)
    newest = report.newest_anchor
    return {
        "ok": verdict.ok,
        "rows": report.rows,
        "first_broken": report.first_broken,
        "reason": report.reason,
        "key_id": report.key_id,
        "keyed_from": report.keyed_from,
        "anchors": report.anchors,
        "newest_anchor": None if newest is None else {"seq": newest.seq, "written": newest.written},
        "unanchored_rows": report.unanchored,
        "anchor_problems": verdict.anchor_problems,
    }


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    role: Literal["officer", "supervisor", "legal", "admin", "court_viewer"]
    password: str = Field(
        min_length=1, max_length=1024, description="auth.min_password_length+, not common, not the name"
    )
    officer_badge: str | None = Field(default=None, max_length=64)


@router.get("/users", summary="User accounts (admin)")
def list_users(caller: CallerDep) -> dict[str, Any]:
    return {
        "users": [
            {
                "id": who.user_id,
                "name": who.name,
                "role": who.role,
                "officer_id": who.officer_id,
                "active": active,
            }
            for who, active, _created in caller.security.users.list_users()
        ]
    }


@router.post("/users", status_code=201, summary="Create a user account (admin)")
def create_user(caller: CallerDep, body: UserIn) -> dict[str, Any]:
    who = caller.security.users.create_user(body.name, body.role, body.password, body.officer_badge)
    caller.audit("user_create", f"user:{who.name}", role=who.role)
    return {"id": who.user_id, "name": who.name, "role": who.role, "officer_id": who.officer_id}


@router.post(
    "/users/{user_id}/disable", summary="Disable an account and revoke its sessions and tokens (admin)"
)
def disable_user(caller: CallerDep, user_id: Annotated[int, Path(ge=1, le=DB_INT_MAX)]) -> dict[str, Any]:
    caller.security.users.set_active(user_id, False)
    caller.audit("user_disable", f"user_id:{user_id}")
    return {"id": user_id, "active": False}
