"""Session memory: a person's labelled drawings change their next answers at once.

``adapt`` is the algorithm (numpy only); ``store`` keeps the entries in the database.
"""

from digits.memory.adapt import Adapted, Entry, Rules, StatusRule, adapt

__all__ = ["Adapted", "Entry", "Rules", "StatusRule", "adapt"]
