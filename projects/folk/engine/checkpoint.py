"""Checkpoint files: safe loading, atomic writing, integrity, resume choice.

Everything FOLK does with checkpoint files lives here:

- **loading**: :func:`safe_torch_load` and :func:`safe_load_url` unpickle
  with ``weights_only=True`` and an allow-list of the plain types MMEngine
  writes (:func:`safe_checkpoint_globals`); anything else is refused with
  an error that names the file;
- **writing**: :func:`atomic_torch_save` and :func:`atomic_write_text`
  write a temporary file in the same directory, fsync it and rename it over
  the target, so a file under its final name is always complete;
- **integrity**: :func:`verify_checkpoint` checks the CRC of every record;
- **resuming**: :func:`find_resumable_checkpoint` picks the newest intact
  checkpoint of a work directory.

:mod:`folk.compat` routes MMEngine's own checkpoint I/O through these
functions; :class:`folk.engine.SafeCheckpointHook` uses them in the Runner.
"""
import errno
import fcntl
import importlib
import os
import os.path as osp
import pickle
import re
import shutil
import uuid
import zipfile
from typing import IO, Callable, List, Optional, Tuple

import torch

# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def safe_checkpoint_globals() -> List[object]:
    """The non-tensor types that MMEngine writes into checkpoints.

    These are plain data containers (``HistoryBuffer`` of the message hub,
    numpy arrays, scalars and dtypes); none of them runs code when it is
    unpickled.

    Returns:
        list: Classes and functions for
        :func:`torch.serialization.add_safe_globals`.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer

    allowed: List[object] = [HistoryBuffer, np.ndarray, np.dtype]
    # numpy arrays and scalars are rebuilt through these two functions; their
    # module moved from ``numpy.core`` to ``numpy._core`` in numpy 2.
    for mod_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:  # pragma: no cover - depends on numpy version
            continue
        allowed += [mod._reconstruct, mod.scalar]
    # numpy 2 pickles dtypes by their concrete class (e.g. Float64DType).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return allowed


def history_buffer_getattr(obj, name: str):
    """Restricted ``getattr`` for unpickling MMEngine's message hub.

    ``HistoryBuffer.__getstate__`` pickles its ``statistics_methods`` as
    ``getattr(HistoryBuffer, 'min')`` etc. Only those lookups are allowed;
    any other ``getattr`` in a checkpoint is refused.

    Raises:
        pickle.UnpicklingError: For any other lookup.
    """
    from mmengine.logging import HistoryBuffer
    if ((obj is HistoryBuffer or isinstance(obj, HistoryBuffer))
            and name in _HISTORY_BUFFER_METHODS):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({type(obj).__name__}, {name!r}) in a checkpoint')


def allow_safe_globals() -> None:
    """Add :func:`safe_checkpoint_globals` to torch's weights-only
    allow-list (idempotent; a no-op before torch 2.4)."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch >= 2.4
        add(safe_checkpoint_globals())
        # Replaces builtins.getattr for weights_only unpickling only.
        add([(history_buffer_getattr, 'builtins.getattr')])


def _load_error_summary(err: BaseException) -> str:
    """One line of a ``torch.load`` error: the refused global if any.

    torch's weights-only error starts with advice to retry with
    ``weights_only=False``, which we never want to repeat; the line that
    names the refused global is more useful.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    # torch's own advice lines, never repeated to the user
    lines = [
        line for line in lines if 'weights_only' not in line.lower()
        or 'unsupported global' in line.lower()
    ] or lines
    pick = lines[0] if lines else ''
    for line in lines:
        low = line.lower()
        if 'unsupported global' in low or 'weightsunpickler error' in low:
            pick = line
            break
    if pick.lower().startswith('please file an issue'):
        # torch asks to report unknown opcodes: the bytes are not a pickle
        pick = 'the data are not a pickle written by torch.save'
    return f'{type(err).__name__}: {pick.rstrip(".")}'


# torch's legacy (non-zip) format starts with a protocol-2 pickle
_LEGACY_MAGIC = b'\x80\x02'
_POINTER_MAX_BYTES = 4096


def read_pointer(path: str) -> Optional[str]:
    """The checkpoint path written in an MMEngine ``last_checkpoint`` file.

    Args:
        path (str): A file that may be a ``last_checkpoint`` pointer.

    Returns:
        str | None: The path it names, or ``None`` if the file is not a
        short UTF-8 text of one line.
    """
    try:
        if osp.getsize(path) > _POINTER_MAX_BYTES:
            return None
        with open(path, 'rb') as f:
            text = f.read().decode('utf-8').strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text or '\n' in text or '\x00' in text:
        return None
    return text


def not_a_checkpoint_reason(path: str) -> Optional[str]:
    """Why ``path`` cannot be a PyTorch checkpoint, judged from its bytes.

    Nothing is unpickled. A ``last_checkpoint`` pointer (a text file naming
    a checkpoint) is recognised and the file it names is given.

    Args:
        path (str): An existing file.

    Returns:
        str | None: The reason, or ``None`` if it looks like a zip-format or
        legacy-format PyTorch file.
    """
    if zipfile.is_zipfile(path):
        return None
    with open(path, 'rb') as f:
        head = f.read(2)
    if head in (_LEGACY_MAGIC, b'PK'):  # PK: a zip cut short, see torch
        return None
    target = read_pointer(path)
    if target is not None:
        return (f"it is a text file naming {target!r} (MMEngine's "
                "'last_checkpoint' pointer?): pass the checkpoint it names, "
                f'{target}')
    return ('it is not a PyTorch checkpoint (neither a zip archive nor '
            "torch's legacy format; truncated at the start, or another "
            'kind of file)')


def _unsafe_error(source: str, err: BaseException) -> RuntimeError:
    return RuntimeError(
        f'cannot load checkpoint {source!r} safely: '
        f'{_load_error_summary(err)}. The file may be truncated, not a '
        'PyTorch checkpoint, or contain pickled objects that are not '
        'allowed (weights_only=True).')


def safe_torch_load(path: str,
                    map_location='cpu',
                    mmap: bool = False,
                    verify: bool = False):
    """Load a checkpoint with ``weights_only=True`` and a clear error.

    Args:
        path (str): Checkpoint file.
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.
        mmap (bool): Memory-map the tensor data instead of reading it
            (zip-format files only; legacy files are read). Reading only
            the ``meta`` of a large checkpoint is then cheap. Defaults to
            False.
        verify (bool): Check the CRC of every record first
            (:func:`verify_checkpoint`; ``torch.load`` does not check the
            CRCs of tensor data, so flipped bytes would load silently).
            Defaults to False.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        RuntimeError: If the file is truncated, corrupt (with ``verify``),
            not a checkpoint, or contains a pickled object outside the
            allow-list.
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    reason = not_a_checkpoint_reason(path)
    if reason is not None:
        raise RuntimeError(f'cannot load checkpoint {path!r}: {reason}.')
    if verify:
        reason = verify_checkpoint(path)
        if reason is not None:
            raise RuntimeError(
                f'cannot load checkpoint {path!r}: {reason}. The file is '
                'damaged; use an older checkpoint of the run.')
    allow_safe_globals()
    mmap = mmap and zipfile.is_zipfile(path)
    try:
        return torch.load(
            path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise _unsafe_error(path, err) from err


def safe_load_url(url: str,
                  model_dir: Optional[str] = None,
                  map_location=None,
                  progress: bool = True,
                  check_hash: bool = False,
                  file_name: Optional[str] = None,
                  weights_only: bool = True) -> dict:
    """:func:`torch.hub.load_state_dict_from_url` with ``weights_only=True``.

    torch.hub's default is ``weights_only=False``; MMEngine's ``http(s)://``
    loader calls it without the argument. Same arguments as torch.hub's.

    Raises:
        ValueError: If ``weights_only=False`` is asked for.
        RuntimeError: If the downloaded file cannot be loaded safely.
    """
    if not weights_only:
        raise ValueError('folk refuses to unpickle downloaded checkpoints '
                         'with weights_only=False (arbitrary code execution)')
    allow_safe_globals()
    try:
        return torch.hub.load_state_dict_from_url(
            url,
            model_dir=model_dir,
            map_location=map_location,
            progress=progress,
            check_hash=check_hash,
            file_name=file_name,
            weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the URL
        if isinstance(err, (OSError, ValueError)) and not isinstance(
                err, pickle.UnpicklingError):
            raise  # download / hash errors keep their type
        raise _unsafe_error(url, err) from err


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
# .NAME.<pid>.<8 hex>.tmp, see _atomic_write
_TEMP_FILE_RE = re.compile(r'^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$')


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return False
    return True


def is_temporary_file(name: str) -> bool:
    """Whether ``name`` is the temporary file of an interrupted atomic
    write (left behind only by a process killed with SIGKILL).

    The name holds the writer's pid: the file of a process that is still
    running on this host (another run's save in progress) is not one.
    """
    match = _TEMP_FILE_RE.match(osp.basename(name))
    if match is None:
        return False
    pid = int(match.group(1))
    return pid == os.getpid() or not _pid_running(pid)


def _fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str, binary: bool, write: Callable[[IO],
                                                           None]) -> None:
    """Write ``path`` through a temporary file and :func:`os.replace`.

    The data go to ``.NAME.<pid>.<random>.tmp`` in the same directory,
    which is flushed, fsynced and renamed over ``path``. If anything fails
    (or the process dies) before the rename, ``path`` keeps its previous
    content; on an exception the temporary file is removed.
    """
    path = osp.abspath(os.fspath(path))
    directory, name = osp.split(path)
    os.makedirs(directory, exist_ok=True)
    tmp = osp.join(directory,
                   f'.{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        # 'x' creates the file with the default (umask) permissions.
        with open(tmp, 'xb' if binary else 'x') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if osp.exists(tmp):
            os.remove(tmp)
        cause = _os_error_in_chain(err) if isinstance(err, Exception) else None
        if cause is not None and cause is not err:
            # e.g. torch's "enforce fail ... unexpected pos" after ENOSPC
            raise _save_error(path, cause) from err
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise _save_error(path, err) from err
        raise
    _fsync_dir(directory)


def _os_error_in_chain(err: BaseException) -> Optional[OSError]:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _save_error(path: str, err: OSError) -> OSError:
    directory = osp.dirname(path)
    try:
        free = f'{shutil.disk_usage(directory).free / 2**20:.0f} MiB free'
    except OSError:
        free = 'free space unknown'
    hint = ''
    if err.errno == errno.ENOSPC:
        hint = (' SafeCheckpointHook deletes an outdated checkpoint only '
                'after the new one is written: the work dir needs room for '
                'max_keep_ckpts + 1 checkpoints.')
    return type(err)(err.errno, f'cannot write {path}: {err.strerror or err} '
                     f'({free} in {directory}).{hint}')


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` that never leaves a partially written ``path``.

    A process killed with SIGKILL may leave the temporary file behind
    (:func:`is_temporary_file`; ``SafeCheckpointHook`` removes such files
    when training starts again).

    Args:
        obj: What to save.
        path (str): Target file; its directory is created if needed.
    """
    _atomic_write(path, True, lambda f: torch.save(obj, f))


def atomic_write_text(path: str, text: str) -> None:
    """Replace the text file ``path`` atomically (e.g. ``last_checkpoint``).

    Args:
        path (str): Target file; its directory is created if needed.
        text (str): New content.
    """
    _atomic_write(path, False, lambda f: f.write(text))


# ---------------------------------------------------------------------------
# Integrity
# ---------------------------------------------------------------------------
def verify_checkpoint(path: str) -> Optional[str]:
    """Check that a checkpoint file is complete and uncorrupted.

    ``torch.save`` writes a zip archive with a CRC-32 for every record. The
    archive's directory (at its end) must be readable and every record must
    match its CRC, which detects truncated files, files cut short by a full
    disk and flipped bytes (``torch.load`` itself does not check the CRCs of
    tensor data). The check streams the file; nothing is unpickled.

    Files in torch's legacy (non-zip) format cannot be checked this way and
    are accepted if :func:`safe_torch_load` can load them.

    Args:
        path (str): Checkpoint file.

    Returns:
        str | None: ``None`` if the file is intact, otherwise the reason.
    """
    if not osp.isfile(path):
        return 'file not found'
    if osp.getsize(path) == 0:
        return 'empty file'
    if not zipfile.is_zipfile(path):
        try:
            safe_torch_load(path)
        except Exception as err:  # noqa: BLE001 - reported to the caller
            return ('not a complete zip-format PyTorch checkpoint (truncated?)'
                    f' and not loadable: {err}')
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return f'unreadable zip archive: {err}'
    if bad is not None:
        return f'CRC mismatch in record {bad!r} (corrupt data)'
    return None


# ---------------------------------------------------------------------------
# Resuming
# ---------------------------------------------------------------------------
_CKPT_RE = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def _step(name: str) -> Optional[Tuple[str, int]]:
    match = _CKPT_RE.match(name)
    return (match.group(1), int(match.group(2))) if match else None


def runner_checkpoint_problem(path: str) -> Optional[str]:
    """Why an intact file cannot be resumed by MMEngine's Runner.

    ``Runner.resume`` needs a dict with ``meta`` (a dict) and
    ``state_dict``. Only the pickled part is read (``mmap``).

    Args:
        path (str): A file that passed :func:`verify_checkpoint`.

    Returns:
        str | None: The reason, or ``None`` for a Runner checkpoint.
    """
    try:
        ckpt = safe_torch_load(path, mmap=True)
    except Exception as err:  # noqa: BLE001 - reported to the caller
        return str(err)
    if not isinstance(ckpt, dict):
        return f'holds a {type(ckpt).__name__}, not a Runner checkpoint'
    missing = [k for k in ('meta', 'state_dict') if k not in ckpt]
    if missing or not isinstance(ckpt['meta'], dict):
        return ('not a Runner checkpoint (no ' +
                ' / '.join(repr(k) for k in missing or ['meta']) + ')')
    return None


def _checkpoint_files(directory: str) -> List[Tuple[Tuple[str, int], str]]:
    out = []
    if osp.isdir(directory):
        for name in os.listdir(directory):
            step = _step(name)
            if step is not None:
                out.append((step, osp.join(directory, name)))
    return out


def find_resumable_checkpoint(work_dir: str,
                              warn: Callable[[str],
                                             None] = print) -> Optional[str]:
    """The checkpoint that auto-resume should use.

    MMEngine auto-resumes (``resume=True`` with ``load_from=None``, i.e.
    ``tools/train.py --resume auto``) from the file named in
    ``work_dir/last_checkpoint``; if that file is truncated or corrupt the
    run cannot restart. The candidates here are:

    1. the file named in ``last_checkpoint``;
    2. a file of the same name in ``work_dir`` (the work dir was moved: the
       pointer still names the old place);
    3. the older ``iter_*.pth`` / ``epoch_*.pth`` files of the pointer's
       directory (or of ``work_dir``), newest first.

    Without a usable pointer (missing, empty, not text) every
    ``iter_*.pth`` / ``epoch_*.pth`` of ``work_dir`` is a candidate: a
    missing pointer next to checkpoints never starts the run over. The
    first candidate that passes :func:`verify_checkpoint` and holds a Runner
    checkpoint (:func:`runner_checkpoint_problem`) is returned; each skipped
    file is reported through ``warn`` with the reason.

    Args:
        work_dir (str): The run's work directory.
        warn (callable): Receives one message per skipped file.

    Returns:
        str | None: The checkpoint, or ``None`` when the work dir holds
        neither ``last_checkpoint`` nor a checkpoint file (a fresh run).

    Raises:
        RuntimeError: If there are candidates but none is intact (starting
            from scratch silently would discard the run).
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    latest = ''
    if osp.isfile(pointer):
        text = read_pointer(pointer)
        if text is None and osp.getsize(pointer) > 0:
            warn(f'auto-resume: {pointer} does not hold a file name (binary '
                 'or damaged data); ignoring it and trying every checkpoint '
                 f'in {work_dir}')
        latest = text or ''
    elif _checkpoint_files(work_dir):
        warn(f'auto-resume: {pointer} is missing, but {work_dir} holds '
             'checkpoints: resuming the newest intact one (to start a new '
             'run, use another --work-dir)')
    else:
        return None

    ckpt_dir = osp.dirname(latest) if latest else work_dir
    if not osp.isdir(ckpt_dir):
        ckpt_dir = work_dir
    latest_step = _step(osp.basename(latest)) if latest else None
    first = [latest] if latest else []
    moved = osp.join(work_dir, osp.basename(latest)) if latest else ''
    if (latest_step is not None and not osp.isfile(latest)
            and osp.abspath(moved) != osp.abspath(latest)):
        first.append(moved)

    others = []
    for step, path in _checkpoint_files(ckpt_dir):
        if any(osp.abspath(path) == osp.abspath(p) for p in first):
            continue
        if latest_step is not None and (step[0] != latest_step[0]
                                        or step[1] >= latest_step[1]):
            continue
        others.append((step[1], step[0], path))
    candidates = first + [path for *_, path in sorted(others, reverse=True)]

    skipped = []
    for path in candidates:
        reason = verify_checkpoint(path)
        if reason is None:
            reason = runner_checkpoint_problem(path)
        if reason is None:
            return path
        skipped.append(f'{path} ({reason})')
        warn(f'auto-resume: skipping checkpoint {path}: {reason}; trying the '
             'previous one')
    raise RuntimeError(
        f'auto-resume: no intact checkpoint was found in {ckpt_dir}: ' +
        ('; '.join(skipped) or 'no checkpoint files') +
        '. Nothing was deleted. Pass --resume PATH to a checkpoint of the '
        'run, or start a new run in another --work-dir.')


# ---------------------------------------------------------------------------
# One run per work directory
# ---------------------------------------------------------------------------
class WorkDirLock:
    """An exclusive lock on a work directory, held for a whole run.

    Two runs in one work dir write the same checkpoint, pointer and log
    files, and one run's clean-up of temporary files may delete the other's
    save in progress. The lock is a POSIX record lock (``fcntl.lockf``)
    on ``work_dir/.lock``, which holds the owner's pid. It belongs to the
    process (DataLoader workers forked from it do not hold it) and the
    kernel releases it when the process ends, however it ends (a SIGKILL
    leaves no stale lock).

    Args:
        work_dir (str): The run's work directory (created if needed).

    Raises:
        RuntimeError: From :meth:`acquire`, if another process holds it.
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, '.lock')
        self._fd: Optional[int] = None

    def acquire(self) -> 'WorkDirLock':
        os.makedirs(self.work_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            try:
                owner = os.pread(fd, 64, 0).decode(errors='replace').strip()
            finally:
                os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise RuntimeError(
                f'another run (pid {owner or "unknown"}) is using the work '
                f'dir {self.work_dir} ({self.path} is locked). Two runs in '
                'one work dir overwrite each other\'s checkpoints and logs: '
                'wait for it to end, stop it, or use another --work-dir.'
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'{os.getpid()}\n'.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = [
    'allow_safe_globals', 'atomic_torch_save', 'atomic_write_text',
    'find_resumable_checkpoint', 'history_buffer_getattr', 'is_temporary_file',
    'not_a_checkpoint_reason', 'read_pointer', 'runner_checkpoint_problem',
    'safe_checkpoint_globals', 'safe_load_url', 'safe_torch_load',
    'verify_checkpoint', 'WorkDirLock'
]
