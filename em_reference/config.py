"""The one place where mixbench sets JAX's numerical precision.

Importing any of the three packages (``em_reference``, ``models``, ``experiments``) imports this
module first, which turns on ``jax_enable_x64`` so that every array is float64 unless a caller
asks for float32 explicitly (the estimators take ``dtype="float32"``). Set the environment
variable ``MIXBENCH_X64=0`` before the first import to leave JAX's default (float32) in place.
"""

import os

import jax

X64_ENABLED = os.environ.get("MIXBENCH_X64", "1") != "0"
jax.config.update("jax_enable_x64", X64_ENABLED)
