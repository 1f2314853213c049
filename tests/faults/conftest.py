"""The fault suite (issue 8): each case injects one real fault under a running recorder or
pipeline and checks, with :func:`tests.support.loss.assert_loss_bounded`, that nothing recorded is
lost beyond the 1 s recovery point and that every lost interval is a gap with the right cause.

Every module here sets ``pytestmark = pytest.mark.faults`` (``pytest -m faults`` runs only the
suite; ``make test`` runs it with the rest)."""

from tests.support.recording import cameras, sink

__all__ = ["cameras", "sink"]
