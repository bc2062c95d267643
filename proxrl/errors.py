"""Errors raised while training (user-facing configuration errors live in ``proxrl.config``)."""


class NonFiniteError(FloatingPointError):
    """A loss, gradient or observation became NaN or infinite; the message says which and at what step."""
