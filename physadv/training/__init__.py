"""Training the models physadv attacks: sign classifiers (ImageFolder) and Ultralytics detectors."""
