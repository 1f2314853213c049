"""Risk alerts of a case-handling centre: rules over the live stream of events, readings,
recorder health and picture checks (docs/design/alerts.md)."""
