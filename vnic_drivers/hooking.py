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


# A device XML is a few KB and VDSM's capabilities some tens of KB: anything near this is
# not what VDSM hands over, and reading it whole would cost memory and seconds.
MAX_FILE_SIZE = 1 << 20
# VDSM's capabilities nest a few levels, the privileged arguments one: json's decoder
# recurses per level (a RecursionError deep down), so deeper input is refused first.
MAX_JSON_DEPTH = 64
_NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}


def read_bytes(path, limit=MAX_FILE_SIZE):
    """The content of *path*, which must be a regular file of at most *limit* bytes.

    Opened without blocking (a FIFO has no writer to wait for) and checked on the open
    descriptor, so what is checked is what is read. Anything else is a one-line error.
    """
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as err:
        raise HookError("cannot read %s: %s" % (path, err.strerror)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise InputError("%s is %s, not a regular file: VDSM hands over a regular "
                             "temp file; check what ran this hook" % (path, _file_kind(mode)))
        with os.fdopen(fd, "rb") as stream:
            data = stream.read(limit + 1)
    except OSError as err:
        raise HookError("cannot read %s: %s" % (path, err.strerror)) from None
    if len(data) > limit:
        raise InputError("%s is larger than %d bytes: not what VDSM hands over; refused"
                         % (path, limit))
    return data


def _file_kind(mode):
    import stat

    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def load_json(data, what, max_depth=MAX_JSON_DEPTH):
    """*data* (bytes or str) decoded as JSON, nesting at most *max_depth* levels deep.

    The depth is bounded before decoding: brackets outside strings are counted with
    regular expressions (C speed), so hostile input never reaches the recursive
    decoder. Malformed or too deep: one-line InputError naming *what*.
    """
    import itertools
    import json
    import re

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as err:
        raise InputError("%s are not JSON: %s" % (what, err)) from None
    # Strings first (an unterminated one runs to the end: linear, whatever the input),
    # then every character but the brackets; what remains is the nesting as json sees it.
    strings = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
    brackets = re.sub(r"[^\[\]{}]+", "", strings.sub("", text))
    if brackets and max(itertools.accumulate(map(_NESTING.__getitem__, brackets))) > max_depth:
        raise InputError("%s nest deeper than %d levels: not what VDSM or the hook sends; "
                         "refused" % (what, max_depth))
    try:
        return json.loads(text)
    except ValueError as err:
        raise InputError("%s are not JSON: %s" % (what, err)) from None
    except RecursionError:  # not expected after the count above; still one line
        raise InputError("%s nest too deep: refused" % what) from None


def write_bytes_atomically(path, data):
    """Replace *path* with *data* so a reader sees the old or the new file, never a part.

    The new content goes to a new file in the same directory, keeps the original's mode,
    and is renamed over the original. No fsync: VDSM reads the file back as soon as the
    hooks are done, and a crash before that ends the VM start anyway.
    """
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError as err:
        raise HookError("cannot write %s: %s" % (path, err.strerror)) from None
    try:
        replace_file(path, data, mode)
    except OSError as err:
        raise HookError("cannot write %s: %s" % (path, err.strerror)) from None


def replace_file(path, data, mode):
    """Write *data* to a new file beside *path*, with *mode*, and rename it over *path*.

    The new file is made with O_EXCL and O_NOFOLLOW under a name of this process's own
    (not :mod:`tempfile`: its import costs a hook more than the whole write). OSError as
    raised; nothing is left behind on failure.
    """
    directory, name = os.path.split(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in range(100):
        temp_path = os.path.join(directory, ".%s.%d-%d.tmp" % (name, os.getpid(), attempt))
        try:
            fd = os.open(temp_path, flags, 0o600)
            break
        except FileExistsError:  # left by a process that died with the same pid
            continue
    else:
        raise FileExistsError(17, "no free temporary name beside it")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.chmod(temp_path, mode)
        os.replace(temp_path, path)
    except BaseException:
        try:
            os.unlink(temp_path)
        except OSError:
            pass
        raise
