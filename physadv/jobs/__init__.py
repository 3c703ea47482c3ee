"""End-to-end jobs: the only code that strings the rooms together, writes files and reports.

Each job (sticker, patch, replay, defend, demo) takes a typed configuration, runs the rooms below it
(models, scene, eot, attacks, printing, defenses, training, harness, report) and writes its outputs;
the CLI is a thin layer on top.
"""
