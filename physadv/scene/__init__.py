"""The embedded world: traffic signs, persons, backgrounds, a pinhole camera and scene specs."""
