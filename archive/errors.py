"""Exception types. Each message should tell a volunteer what is wrong and what to do."""


class TestigoError(Exception):
    """Base class: any error testigo reports to a user."""


class DefinitionError(TestigoError):
    """The election definition under datasets/ is missing or malformed."""


class PayloadError(TestigoError):
    """A QR text or transcribed row does not follow the election's grammar.

    ``code`` is a short stable key (e.g. ``wrong_count_number``) stored with the outcome, so
    failures can be counted and filtered; the message is for people.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class ValidationError(PayloadError):
    """A reading parses but breaks a rule of the election (unknown mesa, sums, electors)."""


class TranscriptionError(TestigoError):
    """A volunteer's transcription cannot be saved as typed (a rule broken, a photo not in the queue).

    ``code`` is stable; ``es`` is the message in Spanish (the volunteers' language; the exception
    text is English); ``field`` names the form field to correct, when there is one.
    """

    def __init__(self, code: str, message: str, es: str | None = None, field: str | None = None):
        super().__init__(message)
        self.code, self.es, self.field = code, es or message, field


class RejectedFile(TestigoError):
    """An input file that is not an image testigo accepts (type, size, corruption, path)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class WorkdirError(TestigoError):
    """The workdir is missing, not a testigo workdir, or from an incompatible version."""


class BundleError(TestigoError):
    """A bundle cannot be built (bad workdir state, unusable output folder, cache damage)."""


class OutputNotEmpty(BundleError):
    """The output folder holds files that are not a previous bundle; we never delete those."""


class WorkdirInconsistent(BundleError):
    """The workdir's state breaks an invariant the bundle relies on (missing object, two counted actas)."""


class AuditError(TestigoError):
    """A bundle cannot be audited (it does not verify, or it was built before the audit existed)."""
