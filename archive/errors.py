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


class SheetUnreadable(TestigoError):
    """A file named as a sheet cannot be read at all (a damaged gzip, no header line)."""

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


# --- one line for a failure ------------------------------------------------------------------------

_LOCKED = ("the workdir is busy: another testigo command (an ingest, a build or the transcription server) "
           "is writing to it and did not let go in time; wait for it to finish and run this again "
           "(nothing was lost: what was recorded stays, the rest is done on the next run)")
_FULL = ("the disk is full{where}; free some space (or move the workdir to a bigger disk) and run the "
         "same command again: what was already recorded is kept, the rest is done on the next run")
_READONLY = ("cannot write{where}: the folder is read-only or not yours; run testigo as the user who owns "
             "the workdir, or copy it somewhere writable")
_DAMAGED = ("a testigo database is damaged or not a database ({e}); restore the workdir's state.db from a "
            "backup, or ingest the sources again into a fresh workdir")


def one_line(e: BaseException) -> str:
    """What happened and what to do, in one line, for any failure a command can meet (the CLI
    prints it instead of a traceback; ``testigo --debug`` shows the traceback)."""
    import errno
    import sqlite3
    if isinstance(e, TestigoError):
        return str(e)
    if isinstance(e, sqlite3.Error):
        text = str(e).lower()
        if "locked" in text or "busy" in text:
            return _LOCKED
        if "full" in text:
            return _FULL.format(where="")
        if "readonly" in text or "read-only" in text:
            return _READONLY.format(where=" to the workdir's database")
        if "malformed" in text or "not a database" in text:
            return _DAMAGED.format(e=e)
        if "unable to open" in text:
            return ("cannot open the workdir's database (state.db): the folder may be missing, read-only or "
                    "not yours; check the --workdir path and its permissions")
        if "disk i/o" in text:
            return ("the workdir's database could not be read or written (disk I/O error): the disk may be "
                    "full, removed or failing; check it and run again")
        return f"the workdir's database failed ({e}); run again, and if it repeats, restore state.db from a backup"
    if isinstance(e, OSError):
        where = f" to {e.filename}" if e.filename else ""
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return _FULL.format(where=f" (writing {e.filename})" if e.filename else "")
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return _READONLY.format(where=where)
        if e.errno == errno.ENOENT:
            return f"{e.filename or 'a file'}: no such file or folder; check the path (was it moved while testigo ran?)"
        return f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}; check the disk and the path, then run again"
    if isinstance(e, MemoryError):
        return "out of memory; close other programs (or use a machine with more memory) and run again"
    return (f"unexpected failure ({type(e).__name__}: {str(e)[:200]}): a bug in testigo; run the same command with "
            "`testigo --debug ...` and report the traceback it prints")
