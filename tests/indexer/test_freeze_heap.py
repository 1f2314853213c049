"""indexer.database.freeze_heap: what a server calls once after start-up (see docs/bench/index.md)."""

from __future__ import annotations

import gc

from indexer.database import freeze_heap


def test_freeze_heap_moves_live_objects_out_of_the_collectors_reach() -> None:
    try:
        freeze_heap()
        assert gc.get_freeze_count() > 0
        garbage = [[] for _ in range(10)]  # made after the freeze: still collected as usual
        del garbage
        gc.collect()
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
