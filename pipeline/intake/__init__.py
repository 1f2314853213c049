"""Case material brought in from outside the centre's cameras: body-camera clips."""
