"""Keeping the camera recorders running: worker threads in this process, or recorder child processes."""
