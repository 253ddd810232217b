"""The one exception a user's bad dataset raises."""


class DataError(ValueError):
  """A user-fixable dataset problem; the message names the path or field and the fix."""
