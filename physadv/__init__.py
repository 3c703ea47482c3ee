"""physadv: physical-world adversarial attacks and their honest evaluation.

Importing physadv prepares an offline-safe environment for Ultralytics before anything imports it
(see :mod:`physadv.offline`).
"""

from physadv.offline import configure_offline

configure_offline()

__version__ = "0.1.0"
__all__ = ["__version__"]
