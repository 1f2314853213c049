"""Camera leases on SQLite and PostgreSQL: fair share, renewal, expiry takeover, release."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from indexer.leases import ChainHint, LeaseManager, fair_share
from indexer.segment_store import SegmentStore

CAMS = [f"c{i}" for i in range(6)]


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def _setup(engine: Engine) -> None:
    SegmentStore(engine).sync_rooms([("r", "room", "waiting", [(c, c, f"rtsp://h/{c}") for c in CAMS])])


def test_fair_share() -> None:
    assert fair_share(6, 3) == 2
    assert fair_share(7, 3) == 3
    assert fair_share(6, 0) == 6
    assert fair_share(0, 2) == 0


def test_balance_expiry_takeover_and_release(engine: Engine) -> None:
    _setup(engine)
    clock = FakeClock()
    nodes = [LeaseManager(engine, f"n{i}", ttl_seconds=5, clock=clock) for i in range(3)]
    nodes[0].ensure(CAMS)
    for node in nodes:
        node.tick(CAMS, acquire=False)  # all announce themselves first
    results = [node.tick(CAMS) for node in nodes]
    assert [len(r.held) for r in results] == [2, 2, 2]
    assert all(not a.failover for r in results for a in r.acquired)
    assert set().union(*(set(r.held) for r in results)) == set(CAMS)

    clock.t += 3
    for node in nodes[1:]:  # n0 stops renewing (it died)
        node.tick(CAMS)
    clock.t += 3  # n0's heartbeat and leases expired
    r1 = nodes[1].tick(CAMS)
    r2 = nodes[2].tick(CAMS)
    assert r1.live_nodes == 2 and r1.cap == 3
    assert len(r1.held) == 3 and len(r2.held) == 3
    taken = [a for a in (*r1.acquired, *r2.acquired)]
    assert sorted(a.camera_id for a in taken) == sorted(results[0].held)
    assert all(a.failover and a.previous_node == "n0" for a in taken)

    # n0 comes back: its leases were taken, the others have more than the share now
    back = nodes[0].tick(CAMS)
    assert back.lost == tuple(sorted(results[0].held)) and back.held == ()
    r1 = nodes[1].tick(CAMS)
    assert r1.cap == 2 and len(r1.excess) == 1
    hint = ChainHint(seq=41, sha256="ab" * 32, end_us=1_799_999_999_000_001)
    assert nodes[1].release(r1.excess, {r1.excess[0]: hint}) == 1
    again = nodes[0].tick(CAMS)
    assert [a.camera_id for a in again.acquired] == list(r1.excess)
    assert again.acquired[0].previous_node == "n1"  # a released lease remembers who gave it back
    assert again.acquired[0].released == hint  # and the chain the releasing node left

    nodes[2].leave()
    assert "n2" not in nodes[0].live_nodes()
    assert all(owner != "n2" for owner in nodes[0].assignments().values())


def test_concurrent_nodes_never_share_a_camera(engine: Engine) -> None:
    _setup(engine)
    nodes = [LeaseManager(engine, f"p{i}", ttl_seconds=30) for i in range(3)]
    nodes[0].ensure(CAMS)
    for node in nodes:
        node.tick(CAMS, acquire=False)
    held: dict[str, tuple[str, ...]] = {}
    errors: list[BaseException] = []

    def run(node: LeaseManager) -> None:
        try:
            for _ in range(5):
                held[node.node_id] = node.tick(CAMS).held
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    owned = [c for cams in held.values() for c in cams]
    assert len(owned) == len(set(owned)) == len(CAMS)
    assert sorted(len(v) for v in held.values()) == [2, 2, 2]
