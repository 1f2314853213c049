"""Court discs on request: the export service and its jobs (the disc itself is the exporter package's)."""
