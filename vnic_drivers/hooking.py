"""VDSM's side of the hook contract: the files it hands over, the environment, exit codes.

VDSM writes the device XML to a temp file named by ``$_hook_domxml`` (``$_hook_json`` for
JSON hook points such as ``after_get_caps``), runs every script, then re-reads the file.
Custom properties arrive as environment variables (VM properties override device ones).
"""

import os

from .errors import HookError, InputError

DOMXML_ENV = "_hook_domxml"
JSON_ENV = "_hook_json"

EXIT_OK = 0
EXIT_FAILED = 1  # VDSM logs it and runs the next script
EXIT_FAILED_STOP = 2  # VDSM logs it and stops running this hook point's scripts


def hook_file(variable=DOMXML_ENV):
    """The path VDSM gave in *variable*, or a one-line error saying it is missing."""
    path = os.environ.get(variable)
    if not path:
        raise InputError(
            "environment variable %s is not set: run this hook from VDSM or "
            "'quantum-vnic simulate'" % variable
        )
    return path


def read_bytes(path):
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as err:
        raise HookError("cannot read %s: %s" % (path, err.strerror)) from None


def write_bytes_atomically(path, data):
    """Replace *path* with *data* so a reader sees the old or the new file, never a part.

    The new content goes to a temp file in the same directory, is flushed to disk, keeps
    the original's mode, and is renamed over the original.
    """
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
        fd, temp_path = tempfile.mkstemp(prefix=".quantum-vnic-", dir=directory)
    except OSError as err:
        raise HookError("cannot write %s: %s" % (path, err.strerror)) from None
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_path, mode)
        os.replace(temp_path, path)
    except OSError as err:
        try:
            os.unlink(temp_path)
        except OSError:
            pass
        raise HookError("cannot write %s: %s" % (path, err.strerror)) from None
