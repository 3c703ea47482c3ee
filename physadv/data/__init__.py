"""Reading what users bring: images, YOLO labels, image folders and ground-truth files, each through
one checked path (bad lines and files are named, never silently dropped)."""
