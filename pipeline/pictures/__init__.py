"""What a camera's picture shows: keyframe checks (black, frozen, covered, moved) and the watcher that runs them."""
