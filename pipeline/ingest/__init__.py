"""From the recorders' spool to storage and the index: the verifying uploader and the spool's watch."""
