"""What physadv assumes about people and cameras when a photo or a recording does not say (kept free of
torch: settings classes read these as their defaults)."""

PERSON_HEIGHT_M = 1.75  # a person's height when only their box is known (adult mean, both sexes)
DEFAULT_HFOV_DEG = 60.0  # a photo's horizontal field of view when nobody says (a phone's main camera ~65°)
