"""Refuse to start a centre with the demo's passwords (docker-compose.yml service "secrets-check").

Runs before every other service; exit status 1 names each problem. Standard library only: it runs
in the project's image without the project. With VAUDIT_DEPLOY_MODE=demo (deploy/demo.env) it only
warns: the demo's passwords are public.
"""

from __future__ import annotations

import os
import re
import sys

# Passwords this repository or the images' documentation have ever shown: public knowledge.
KNOWN = frozenset(
    {
        "vaudit",
        "vaudit-secret",
        "vaudit-demo",
        "vaudit-demo-secret",
        "minioadmin",
        "postgres",
        "password",
        "changeme",
        "secret",
    }
)
MIN_LENGTH = 16
URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")  # unreserved in a URL: no escaping in the database URL
PASSWORDS = ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD")


def problems(env: dict[str, str]) -> list[str]:
    out = []
    for name in (*PASSWORDS, "MINIO_ROOT_USER"):
        if not env.get(name):
            out.append(f"{name} is not set")
    for name in PASSWORDS:
        value = env.get(name, "")
        if not value:
            continue
        if value.lower() in KNOWN:
            out.append(f"{name} is a published default password: choose your own")
        if len(value) < MIN_LENGTH:
            out.append(f"{name} has {len(value)} characters: at least {MIN_LENGTH}")
    database = env.get("POSTGRES_PASSWORD", "")
    if database and not URL_SAFE.fullmatch(database):
        out.append("POSTGRES_PASSWORD goes into the database URL: use only A-Z a-z 0-9 . _ ~ -")
    if env.get("MINIO_ROOT_PASSWORD") and env.get("MINIO_ROOT_PASSWORD") == env.get("MINIO_ROOT_USER"):
        out.append("MINIO_ROOT_PASSWORD must not be MINIO_ROOT_USER")
    return out


def main() -> int:
    env = dict(os.environ)
    found = problems(env)
    if env.get("VAUDIT_DEPLOY_MODE") == "demo":
        print("secrets-check: demo mode; these passwords are public, never use them on a network")
        return 0
    for line in found:
        print(f"secrets-check: {line}", file=sys.stderr)
    if found:
        print("secrets-check: refusing to start (docs/guide/deploy.md, 'Passwords and TLS')", file=sys.stderr)
        return 1
    print("secrets-check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
