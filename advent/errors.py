"""The base of every error a user can fix (bad config, missing file, diverged loss).
Scripts print these as one line and exit with status 2."""


class UserError(Exception):
    pass
