"""Operating the node: its own health alerts (not the risk alerts), structured logs, Prometheus metrics."""
