"""The one exception type for bad user input.

Library code raises :class:`InputError` with a message that names the offending file or value
and says what was expected; the CLI and the Snakemake scripts print that message alone (no
traceback) and exit non-zero.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user (missing folder, wrong label values, inconsistent sizes, ...)."""
