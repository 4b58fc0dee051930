"""Embedded profile for a developer's machine (`make run`)."""

from .base import *
from .base import env

# Off unless a developer opts in (`DEBUG=1 make run`): the embedded profile must be safe
# to run for a small team on a LAN.
DEBUG = env.bool("DEBUG", default=False)
# Email verification stays mandatory (codes arrive on the console email backend).
