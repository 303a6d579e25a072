"""The trained crisis model kept on disk, so that only a machine's first process trains it.

Training takes several seconds of CPU (``crisis_model``); every web process needs the
model before it can read a text, and a host runs several. The first process to train
writes the fitted numbers (vocabularies, IDF weights, coefficients: arrays and strings
in one ``.npz``, never a pickle) to the cache folder; later processes load them in a
fraction of a second. The file's name is a hash of everything the model is made from
(the corpora, the table, this folder's code, the scikit-learn and NumPy versions), so a
changed corpus or rule makes a new file and a stale one is never read. A cache that
cannot be read or written is not an error: the process trains, as it would without one.

The folder is ``STEADY_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/steady``, else
``~/.cache/steady``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sklearn
import structlog

from service.replies.crisis_model import (
    CORPORA,
    CORPUS_DIR,
    Model,
    char_vectorizer,
    word_vectorizer,
)

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
# What the model is made from, besides the corpora: normalisation, the table's guards and
# the model's code.
SOURCES = ("crisis.py", "crisis_model.py", "crisis_table.py", "crisis_text.py", "crisis_table.txt")


def cache_dir() -> Path:
    if explicit := os.environ.get("STEADY_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "steady"


def model_key() -> str:
    digest = hashlib.sha256()
    for path in [*(HERE / name for name in SOURCES), *(CORPUS_DIR / name for name in CORPORA)]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(f"sklearn {sklearn.__version__} numpy {np.__version__}".encode())
    return digest.hexdigest()[:24]


def save(model: Model, path: Path) -> None:
    """Write atomically: a process loading meanwhile sees the old file or the whole new one."""
    arrays = {"names": np.array(model.names), "weights": model.weights, "bias": model.bias}
    for prefix, block in (("chars", model.chars), ("words", model.words)):
        vocabulary = block.vectorizer.vocabulary_
        terms = sorted(vocabulary, key=vocabulary.__getitem__)
        arrays[f"{prefix}_terms"] = np.array(terms)
        arrays[f"{prefix}_idf"] = block.vectorizer.idf_
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".crisis-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, allow_pickle=False, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: Path) -> Model:
    with np.load(path, allow_pickle=False) as data:
        vectorizers = []
        for prefix, vectorizer in (("chars", char_vectorizer()), ("words", word_vectorizer())):
            terms = [str(term) for term in data[f"{prefix}_terms"]]
            vectorizer.vocabulary_ = {term: index for index, term in enumerate(terms)}
            vectorizer.idf_ = data[f"{prefix}_idf"]
            vectorizers.append(vectorizer)
        names = tuple(str(name) for name in data["names"])
        return Model(names, vectorizers[0], vectorizers[1], data["weights"], data["bias"])


def cached_model(train: Callable[[], Model]) -> Model:
    """The model from the cache if it holds this very model, else trained (and saved)."""
    path = cache_dir() / f"crisis-model-{model_key()}.npz"
    try:
        model = load(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        log.warning("crisis_model_cache_unreadable", error=type(exc).__name__)
    else:
        log.info("crisis_model_loaded", source="cache")
        return model
    model = train()
    try:
        save(model, path)
    except OSError as exc:
        log.info("crisis_model_not_cached", error=type(exc).__name__)
    return model
