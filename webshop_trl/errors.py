"""Exceptions that name what was wrong, so a user can fix the input rather than read a traceback."""


class WebShopTrlError(Exception):
    """Base class for every error this package raises on purpose."""


class DataFileError(WebShopTrlError):
    """A data file is missing, malformed or truncated. The message names the file and the record."""


class UnknownGoalError(WebShopTrlError, KeyError):
    """A goal index or split name that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidActionError(WebShopTrlError, ValueError):
    """Raised by the environment in strict mode for an action WebShop would silently ignore."""


class SearchEngineError(WebShopTrlError):
    """The search engine could not start or answer (e.g. Java missing); the message says what to do."""


class FetchError(WebShopTrlError):
    """A data file could not be fetched or failed its checksum."""
