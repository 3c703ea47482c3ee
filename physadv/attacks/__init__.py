"""Attacks that make printable artefacts: RP2 stickers on signs, person-hiding patches."""
