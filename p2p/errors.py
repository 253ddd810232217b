"""The base of every expected failure: p2p's commands print its message in one line, exit 2."""


class UserError(ValueError):
  """A failure the user can fix (bad input, flag, config or run folder); the message says how."""
