"""Embedded profile for a developer's machine (`make run`)."""

from .base import *
from .base import env

DEBUG = env.bool("DEBUG", default=True)
# Email verification stays mandatory (codes arrive on the console email backend).
