"""Every engine op as a function: ``import scratchvae.functional as F; F.softplus(x)``."""

from .autograd.ops import *  # noqa: F401,F403
from .autograd.ops import __all__  # noqa: F401
