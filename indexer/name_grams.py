"""The subject-name search's index: one- and two-character pieces ("grams") of every name.

People search by a given name or a surname alike ("小明", "王"), so the search is a substring match,
which no B-tree serves: SQLite scanned all subjects (16-20 ms at 100,000 subjects, docs/bench/index.md),
and PostgreSQL's trigram index needs three characters where Chinese names are often two. Every
substring of two or more characters contains the name's bigrams, so the subjects holding the
query's first and last bigram (one character: its unigram) are a small superset of the matches,
read through the ``(gram, subject_id)`` primary key; ``LIKE`` then checks only those, so each
database keeps its own ``LIKE`` semantics (SQLite folds ASCII case, PostgreSQL does not).

Grams are taken from ``str.lower()`` of the name and of the query, computed here in Python for the
store, the rebuild and revision 0008 alike (SQL ``lower()`` folds only ASCII on SQLite).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from indexer.models import Base

T = Base.metadata.tables
SUBJECTS, GRAMS = T["subjects"], T["subject_name_grams"]


def name_grams(name: str) -> set[str]:
    """Every character and every pair of adjacent characters of the lower-cased name."""
    folded = name.lower()
    grams = set(folded)
    grams.update(folded[i : i + 2] for i in range(len(folded) - 1))
    return grams


def query_grams(query: str) -> list[str]:
    """The grams a name containing ``query`` must hold: its unigram, or its first and last bigram."""
    folded = query.lower()
    if len(folded) < 2:
        return [folded] if folded else []
    first, last = folded[:2], folded[-2:]
    return [first] if first == last else [first, last]


def gram_rows(subjects: Iterable[tuple[int, str]]) -> Iterator[dict[str, object]]:
    for subject_id, name in subjects:
        for gram in sorted(name_grams(name)):
            yield {"gram": gram, "subject_id": subject_id}


def add_grams(s: Session, subjects: Iterable[tuple[int, str]]) -> int:
    """Insert the grams of (subject id, name) pairs in the caller's transaction; returns the row count."""
    rows = list(gram_rows(subjects))
    if rows:
        s.execute(GRAMS.insert(), rows)  # executemany: SQLAlchemy batches it ("insertmanyvalues")
    return len(rows)


def rebuild_grams(s: Session, batch: int = 20_000) -> int:
    """Recompute the table from ``subjects`` (after a bulk load that bypassed the store)."""
    s.execute(GRAMS.delete())
    total, after = 0, -1
    while True:
        chunk = s.execute(
            select(SUBJECTS.c.id, SUBJECTS.c.name)
            .where(SUBJECTS.c.id > after)
            .order_by(SUBJECTS.c.id)
            .limit(batch)
        ).all()
        if not chunk:
            return total
        total += add_grams(s, ((int(i), n) for i, n in chunk))
        after = int(chunk[-1][0])


# The two aliases a lookup needs, made once (an alias builds proxies of every column).
_FIRST, _LAST = GRAMS.alias("g0"), GRAMS.alias("g1")


def candidate_subjects(query: str) -> Select[tuple[int]] | None:
    """Ids of the subjects whose names hold every gram of ``query`` (None: an empty query): one
    primary-key range, and for a second gram one primary-key probe per candidate."""
    grams = query_grams(query)
    if not grams:
        return None
    stmt = select(_FIRST.c.subject_id).where(_FIRST.c.gram == grams[0])
    if len(grams) > 1:
        stmt = stmt.join(_LAST, _LAST.c.subject_id == _FIRST.c.subject_id).where(_LAST.c.gram == grams[1])
    return stmt
