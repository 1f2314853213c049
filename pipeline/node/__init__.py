"""One running node: the centre runtime that composes the stages, fleet recorder nodes, the demo."""
