"""The Omniglot release of Lake et al. (Science 2015), read in memory from its official zip files (or the same
layout unpacked), and the one-shot data source built on it (spec E.1).

Files (any subset; `load_omniglot` reads what it finds):

* images_background.zip, images_background_small1.zip, images_background_small2.zip:
  `<set>/<alphabet>/characterNN/*.png`, 105 x 105 1-bit drawings: the background (training) alphabets.
* images_evaluation.zip: the same layout for the 20 evaluation alphabets (novel characters).
* all_runs.zip: the 20 official 20-way one-shot runs, `runNN/training/classKK.png` (one drawing of each of 20
  novel characters), `runNN/test/itemKK.png` and `runNN/class_labels.txt` (which test item is which class).

The runs come in pairs: runs 2j-1 and 2j hold the SAME 20 characters, class KK of one being class KK of the other
(drawn by other people), one alphabet per pair. (Seen by eye on the montage of all runs and measured: the mean
image correlation of class KK of run 2j-1 with class KK of run 2j exceeds its correlation with the pair's other
classes in all 10 pairs, and not between runs of different pairs; `tests/test_oneshot_data.py` checks it on the
real files.) A test pair of "two characters from two runs" can therefore hold one character twice. The data source
merges each pair of twin classes into one character with 4 drawings ("runs01+02/class05"), so a test episode
never pairs a character with itself; the 10 run pairs are the 10 alphabets.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from attnpaths._src.checks import as_count

OMNIGLOT_SIZE = 105
BACKGROUND_SETS = ("images_background", "images_background_small1", "images_background_small2")
EVALUATION_SETS = ("images_evaluation",)
RUNS_SET = "all_runs"
EXPECTED_FILES = (", ".join(f"{n}.zip" for n in BACKGROUND_SETS + EVALUATION_SETS) + f", {RUNS_SET}.zip "
                  "(or the same names unpacked as folders)")


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Float image -> (size, size) float64: area averaging when shrinking, bilinear when enlarging."""
    from PIL import Image

    if img.shape == (size, size):
        return img.astype(np.float64)
    pil = Image.fromarray(np.asarray(img, dtype=np.float32), mode="F")
    method = Image.Resampling.BOX if size < min(img.shape) else Image.Resampling.BILINEAR
    return np.asarray(pil.resize((size, size), resample=method), dtype=np.float64)


class OmniglotData(NamedTuple):
    """Omniglot images, each (n, S, S) float64 in [0, 1] with strokes bright (1 - the PNG's value).

    background: "Alphabet/characterNN" -> drawings of the background (training) characters; the two small
      background sets are merged (Greek and Latin appear in both; a drawing's file name identifies it).
    evaluation: the same for images_evaluation (empty when that file is absent).
    runs: "runNN/classKK" -> (2, S, S): the run's training drawing training/classKK.png and the matching test
      drawing (from class_labels.txt). Empty when all_runs is absent.
    sources: the files / folders that were read.
    """

    background: dict
    evaluation: dict
    runs: dict
    sources: tuple

    def run_groups(self) -> list[list[str]]:
        """Class keys grouped by run (the 20 characters of a run are distinct characters)."""
        groups: dict[str, list[str]] = {}
        for key in sorted(self.runs):
            groups.setdefault(key.split("/")[0], []).append(key)
        return list(groups.values())


class _Source:
    """A zip file or a folder, listed as relative POSIX paths of its PNG / TXT members."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            self._zip = None
            self.names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        else:
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile as err:
                raise ValueError(f"{path} is not a readable zip file ({err})") from None
            self.names = sorted(n for n in self._zip.namelist() if not n.endswith("/"))

    def read(self, name: str) -> bytes:
        if self._zip is None:
            return (self.path / name).read_bytes()
        return self._zip.read(name)

    def close(self):
        if self._zip is not None:
            self._zip.close()


def _find(data_dir: Path, name: str) -> Path | None:
    for cand in (data_dir / f"{name}.zip", data_dir / name):
        if cand.exists():
            return cand
    return None


def _decode_png(raw: bytes, where: str, image_size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            arr = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    except Exception as err:  # PIL raises several types for corrupt files
        raise ValueError(f"cannot decode PNG {where}: {err}") from None
    if arr.shape != (OMNIGLOT_SIZE, OMNIGLOT_SIZE):
        raise ValueError(f"Omniglot image {where} has size {arr.shape[1]}x{arr.shape[0]}; expected "
                         f"{OMNIGLOT_SIZE}x{OMNIGLOT_SIZE}")
    return resize(1.0 - arr, image_size)


def _read_alphabets(src: _Source, name: str, image_size: int, into: dict[str, dict[str, np.ndarray]]):
    """Read <name>/<alphabet>/<character>/<file>.png (the top folder is optional) into key -> {file: image}."""
    pngs = [n for n in src.names if n.lower().endswith(".png")]
    if not pngs:
        raise ValueError(f"{src.path}: found no PNG images; expected {name}/<alphabet>/<characterNN>/*.png")
    for n in pngs:
        parts = n.split("/")
        if parts[0] == name:
            parts = parts[1:]
        if len(parts) != 3:
            raise ValueError(f"{src.path}: unexpected layout, found {n!r}; expected "
                             f"{name}/<alphabet>/<characterNN>/<file>.png")
        alphabet, char, fname = parts
        drawings = into.setdefault(f"{alphabet}/{char}", {})
        if fname not in drawings:  # the same drawing in two background sets is read once
            drawings[fname] = _decode_png(src.read(n), f"{src.path}:{n}", image_size)


_LABEL_LINE = re.compile(r"^\s*(?:run\d+/)?(test/item\d+\.png)\s+(?:run\d+/)?(training/class\d+\.png)\s*$")


def _read_runs(src: _Source, image_size: int) -> dict[str, np.ndarray]:
    """runNN/class_labels.txt + runNN/{training,test}/*.png -> "runNN/classKK" -> (2, S, S)."""
    names = set(src.names)
    label_files = sorted(n for n in names if n.split("/")[-1] == "class_labels.txt")
    if not label_files:
        raise ValueError(f"{src.path}: found no runNN/class_labels.txt among {len(names)} files; expected "
                         "runNN/class_labels.txt, runNN/training/classKK.png, runNN/test/itemKK.png")
    runs = {}
    for lf in label_files:
        prefix = lf[: -len("class_labels.txt")]
        run = prefix.rstrip("/").split("/")[-1]
        if not re.fullmatch(r"run\d+", run):
            raise ValueError(f"{src.path}: unexpected layout, found {lf!r}; expected runNN/class_labels.txt")
        for line_no, line in enumerate(src.read(lf).decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            m = _LABEL_LINE.match(line)
            if m is None:
                raise ValueError(f"{src.path}:{lf} line {line_no}: expected '[runNN/]test/itemKK.png "
                                 f"[runNN/]training/classJJ.png'; found {line.strip()!r}")
            test_name, train_name = prefix + m.group(1), prefix + m.group(2)
            for n in (test_name, train_name):
                if n not in names:
                    raise ValueError(f"{src.path}: {lf} names {n!r}, which is missing")
            key = f"{run}/{m.group(2).split('/')[-1][:-4]}"
            if key in runs:
                raise ValueError(f"{src.path}:{lf}: {m.group(2)} is listed twice")
            runs[key] = np.stack([_decode_png(src.read(train_name), f"{src.path}:{train_name}", image_size),
                                  _decode_png(src.read(test_name), f"{src.path}:{test_name}", image_size)])
    return runs


def load_omniglot(data_dir, image_size: int = 16) -> OmniglotData:
    """Read the Omniglot images found in data_dir (in memory; nothing is extracted).

    Looks for images_background.zip, images_background_small1.zip, images_background_small2.zip,
    images_evaluation.zip and all_runs.zip, or folders of the same names (reads whichever are present).

    Raises:
      FileNotFoundError: data_dir is missing or holds none of the expected files.
      ValueError: a file has an unexpected layout or an image is not 105 x 105.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"Omniglot folder {data_dir} does not exist; expected a folder with "
                                f"{EXPECTED_FILES}")
    as_count("image_size", image_size)
    found = {name: _find(data_dir, name) for name in BACKGROUND_SETS + EVALUATION_SETS + (RUNS_SET,)}
    if not any(found.values()):
        present = sorted(p.name for p in data_dir.iterdir())[:20]
        raise FileNotFoundError(f"{data_dir} holds none of the Omniglot files; expected {EXPECTED_FILES}; "
                                f"found {present}")
    background: dict[str, dict[str, np.ndarray]] = {}
    evaluation: dict[str, dict[str, np.ndarray]] = {}
    runs: dict[str, np.ndarray] = {}
    sources = []
    for name, path in found.items():
        if path is None:
            continue
        src = _Source(path)
        try:
            if name == RUNS_SET:
                runs = _read_runs(src, image_size)
            else:
                _read_alphabets(src, name, image_size, background if name in BACKGROUND_SETS else evaluation)
        finally:
            src.close()
        sources.append(str(path))

    def stack(d):
        return {k: np.stack([v[f] for f in sorted(v)]) for k, v in sorted(d.items())}

    return OmniglotData(stack(background), stack(evaluation), runs, tuple(sources))


def default_omniglot_dir() -> Path | None:
    """The project's shared data folder `<workspace>/shared/data/omniglot` if it exists (looked up next to the
    repository holding this package and next to the current directory), else None."""
    here = Path(__file__).resolve()
    candidates = [p / "shared" / "data" / "omniglot" for p in list(here.parents)[3:7]]
    candidates += [Path.cwd() / "shared" / "data" / "omniglot", Path.cwd().parent / "shared" / "data" / "omniglot"]
    for c in candidates:
        if c.is_dir():
            return c
    return None


# ----------------------------------------------------------------------------------------------------------------
# the twin runs of all_runs
# ----------------------------------------------------------------------------------------------------------------

def _run_number(key: str) -> int:
    return int(key.split("/")[0][3:])


def twin_runs(runs: dict) -> list[tuple[str, str]]:
    """The run pairs (run 2j-1, run 2j) that hold the same characters: [("run01", "run02"), ...]."""
    names = sorted({k.split("/")[0] for k in runs}, key=lambda r: int(r[3:]))
    numbers = {int(r[3:]) for r in names}
    return [(f"run{n:02d}", f"run{n + 1:02d}") for n in sorted(numbers) if n % 2 == 1 and n + 1 in numbers]


def merge_run_twins(runs: dict) -> tuple[dict, list[list[str]]]:
    """Merge class KK of run 2j-1 with class KK of run 2j (the same character) into "runsAA+BB/classKK" with
    all their drawings stacked. Classes of unpaired runs are kept as they are.

    Returns (characters: key -> (n, S, S), groups: one list of keys per run pair / unpaired run, i.e. per
    alphabet).
    """
    chars: dict[str, np.ndarray] = {}
    groups: list[list[str]] = []
    paired = set()
    for a, b in twin_runs(runs):
        group = []
        for key_a in sorted(k for k in runs if k.startswith(a + "/")):
            cls = key_a.split("/")[1]
            key_b = f"{b}/{cls}"
            if key_b not in runs:
                continue
            key = f"runs{a[3:]}+{b[3:]}/{cls}"
            chars[key] = np.concatenate([runs[key_a], runs[key_b]])
            paired |= {key_a, key_b}
            group.append(key)
        groups.append(group)
    by_run: dict[str, list[str]] = {}
    for key in sorted(k for k in runs if k not in paired):
        chars[key] = runs[key]
        by_run.setdefault(key.split("/")[0], []).append(key)
    return chars, groups + list(by_run.values())


def twin_rank(runs: dict, first: str, second: str) -> float:
    """How far down its ranking class KK of `second` sits among the classes of `second` most similar to class KK
    of `first`: the mean over KK of the number of classes of `second` that are more similar (0: the same-numbered
    class is always the most similar; (n - 1) / 2 = 9.5 for 20 classes by chance). Similarity: correlation of the
    drawings blurred by a Gaussian of 1 pixel, summed over the drawings of both classes. On the real runs it is
    1.8-5.2 for the ten pairs (2j-1, 2j) and 6.8-10.8 for other run pairs: the evidence for `twin_runs`."""
    from scipy.ndimage import gaussian_filter

    def vectors(run, drawing):
        keys = sorted(k for k in runs if k.startswith(run + "/"))
        v = np.stack([gaussian_filter(runs[k][drawing], 1.0).ravel() for k in keys])
        v = v - v.mean(axis=1, keepdims=True)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    n_a, n_b = len(runs[next(k for k in runs if k.startswith(first + "/"))]), \
        len(runs[next(k for k in runs if k.startswith(second + "/"))])
    S = sum(vectors(first, i) @ vectors(second, j).T for i in range(n_a) for j in range(n_b))
    return float(np.mean([(S[k] > S[k, k]).sum() for k in range(S.shape[0])]))
