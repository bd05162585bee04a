"""Atomic file writes for checkpoints (no dependency on the rest of folk)."""
import os
import uuid

import torch


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


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` that never leaves a partially written ``path``.

    The data go to a hidden temporary file in the same directory
    (``.NAME.<pid>.<random>.tmp``), which is flushed, fsynced and renamed
    over ``path`` with :func:`os.replace`. If anything fails (or the process
    dies) before the rename, ``path`` keeps its previous content; on an
    exception the temporary file is removed. A process killed with SIGKILL
    may leave the temporary file behind (``SafeCheckpointHook`` removes
    such files when training starts again).
    """
    path = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory,
                       f'.{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        # 'xb' creates the file with the default (umask) permissions.
        with open(tmp, 'xb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)
