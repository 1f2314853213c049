"""Footage to people: playback of any range, live keyframes and live video."""
