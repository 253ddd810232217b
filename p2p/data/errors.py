"""The one exception a user's bad dataset raises."""

from p2p.errors import UserError


class DataError(UserError):
  """A user-fixable dataset problem; the message names the path or field and the fix."""
