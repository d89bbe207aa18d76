"""Start TensorFlow without its start-up lines on the terminal.

TensorFlow's C++ code writes lines such as "oneDNN custom operations are on", "Could not find
cuda drivers" and "failed call to cuInit" straight to the process' stderr before its logging is
set up, so TF_CPP_MIN_LOG_LEVEL cannot silence them. They are not about the run. Here stderr's
file descriptor points at a temporary file while TensorFlow is imported and finds its devices;
afterwards every line that is not such a log line is written to the real stderr, and if the
start fails, everything is. No TensorFlow at import: this module is what imports it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

# "I0000 00:00:1796605981.829667   21822 port.cc:153] ..." (absl's format) and its preamble.
STARTUP_LINE = re.compile(rb"^([IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w.]+:\d+\] |WARNING: All log "
                          rb"messages before absl::InitializeLog\(\) is called)")


def quiet_logs(environment=None) -> dict:
    """`environment` (by default this process' own, os.environ) with TensorFlow's C++ log
    level at 2 (errors only: no info or warning lines) unless it sets one: the one place kexp
    picks the level, for itself, the trainings it starts and the bench scripts. Returns
    `environment`."""
    environment = os.environ if environment is None else environment
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return environment


def start_tensorflow() -> None:
    """Import TensorFlow and let it find its devices, its start-up lines left out."""
    quiet_logs()
    if "tensorflow" in sys.modules:
        return
    with _stderr_caught() as caught:
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe logs here, not at import
    kept = b"".join(line for line in caught if not STARTUP_LINE.match(line))
    if kept:
        sys.stderr.write(kept.decode(errors="replace"))
        sys.stderr.flush()


@contextlib.contextmanager
def _stderr_caught():
    """File descriptor 2 into a temporary file for the block; its lines are yielded as a list
    filled when the block ends. A failing block gets every line back on stderr first."""
    lines: list[bytes] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield lines
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            os.write(2, caught.read())
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        lines.extend(caught.readlines())
