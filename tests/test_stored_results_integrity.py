"""Damaged stored results heal (issue 24, item 3): a flipped byte, a truncation or an edit in
``out/state`` is found by its checksum, the damaged model or comparison is moved aside with one
warning and computed again, and ``--render-only`` (which computes nothing) says so in one line.

One real build (two tiny random-init models and a comparison, through the command line) is made
once; every test works on its own copy of it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_hostile_inputs import _pages, error_line, project, run_cli

from atlas.pipeline import model_run, state
from atlas.pipeline.state import StateStore

SUFFIX = ".corrupt"
COMPARISON = "\n[[comparisons]]\ntitle = \"A and B\"\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """A built project (no site) and its clean pages."""
    tmp = tmp_path_factory.mktemp("stored")
    config = project(tmp, models=["Tiny A", "Tiny B"])
    config.write_text(config.read_text() + COMPARISON)
    assert run_cli(config, "--no-site") == 0
    return tmp, _pages(tmp / "site_src")


def _copy(built, tmp_path: Path) -> Path:
    """A copy of the built project without its pages; returns its config."""
    shutil.copytree(built[0], tmp_path / "p")
    shutil.rmtree(tmp_path / "p" / "site_src")
    return tmp_path / "p" / "configs" / "tiny.toml"


def _flip(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_number(path: Path) -> None:
    """Valid JSON, one number changed: the kind of edit nothing but a checksum sees."""
    text = path.read_text()
    edited = re.sub(r'("(?:value|seed)": )-?[0-9.e-]+', r"\g<1>7.25", text, count=1)
    assert edited != text
    path.write_text(edited)


DAMAGE = {"flip": _flip, "truncate": _truncate, "edit": _edit_number}
# (folder under out/state, file, damage)
CASES = {
    "model labels flipped": ("models/tiny-a", "labels.npz", "flip"),
    "model labels truncated": ("models/tiny-a", "labels.npz", "truncate"),
    "model pictures flipped": ("models/tiny-b", "pictures.npz", "flip"),
    "model result edited": ("models/tiny-a", "result.json", "edit"),
    "comparison labels flipped": ("comparisons/a-and-b", "labels.npz", "flip"),
}
ATLAS_CASES = {  # the last build as a whole, read by --render-only alone
    "atlas.json edited": ("", "atlas.json", "edit"),
    "photos.npz truncated": ("", "photos.npz", "truncate"),
}


def _damaged_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]


@pytest.fixture
def nothing_computed(monkeypatch):
    def refuse(self):
        raise AssertionError(f"{self.loaded.spec.slug} was computed")

    monkeypatch.setattr(model_run.ModelRun, "run", refuse)


@pytest.mark.parametrize("case", CASES)
def test_damaged_results_are_moved_aside_and_computed_again(built, tmp_path, caplog, case):
    where, name, how = CASES[case]
    config = _copy(built, tmp_path)
    root = config.parents[1] / "out" / "state"
    folder = root / where
    DAMAGE[how](folder / name)
    untouched = {p: p.stat().st_mtime_ns for p in root.glob("*/*/key.txt") if p.parent != folder}
    with caplog.at_level(logging.WARNING, logger="atlas"):
        assert run_cli(config, "--no-site") == 0
    (line,) = _damaged_warnings(caplog)
    assert f"'{folder.name}' damaged ({name}: checksum mismatch)" in line and line.endswith("computing it again")
    assert (folder.parent / (folder.name + SUFFIX) / name).is_file()  # moved aside, then computed again
    assert (folder / name).is_file() and (folder / "key.txt").is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in untouched.items())  # nothing else recomputed
    assert _pages(config.parents[1] / "site_src") == built[1]


@pytest.mark.parametrize("case", [*CASES, *ATLAS_CASES])
def test_render_only_names_the_damage_in_one_line(built, tmp_path, capsys, caplog, nothing_computed, case):
    where, name, how = (CASES | ATLAS_CASES)[case]
    config = _copy(built, tmp_path)
    folder = config.parents[1] / "out" / "state" / where
    DAMAGE[how](folder / name)
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="atlas"):
        assert run_cli(config, "--no-site", "--render-only") == 2
    line = error_line(capsys)
    assert f"damaged ({name}: checksum mismatch)" in line
    assert f"python scripts/build_atlas.py --config {config}" in line
    assert _damaged_warnings(caplog) == []  # the error line is the only word on it
    if where:
        assert f"'{folder.name}'" in line and (folder.parent / (folder.name + SUFFIX) / name).is_file()
        assert not folder.exists()


def test_undamaged_store_is_checksummed_and_renders_without_computing(built, tmp_path, caplog, nothing_computed):
    """The control: every stored file is listed with its SHA-256, and --render-only renders the
    same pages from them, computing nothing and moving nothing."""
    config = _copy(built, tmp_path)
    root = config.parents[1] / "out" / "state"
    manifests = [root / "atlas.sha256", *root.glob("*/*/key.txt")]
    assert len(manifests) == 4
    for manifest in manifests:
        listed = {}
        for line in manifest.read_text().splitlines()[manifest.name == "key.txt":]:
            digest, name = line.split("  ")
            listed[name] = digest
        stored = {p.name for p in manifest.parent.iterdir() if p.is_file() and p != manifest}
        assert set(listed) == stored
        assert all(hashlib.sha256((manifest.parent / n).read_bytes()).hexdigest() == d for n, d in listed.items())
    with caplog.at_level(logging.WARNING, logger="atlas"):
        assert run_cli(config, "--no-site", "--render-only") == 0
    assert _damaged_warnings(caplog) == [] and not list(root.rglob(f"*{SUFFIX}"))
    assert _pages(config.parents[1] / "site_src") == built[1]


def _store(built, tmp_path) -> tuple[StateStore, object]:
    """A fresh store and a real model result to save in it."""
    model = StateStore(built[0] / "out" / "state").load_model("tiny-a")
    assert model is not None
    return StateStore(tmp_path / "state"), model


def test_store_moves_a_damaged_model_aside(built, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="atlas")
    store, model = _store(built, tmp_path)
    folder = store.root / "models" / "tiny-a"
    aside = folder.with_name("tiny-a" + SUFFIX)
    store.save_model("k1", model)
    assert store.load_model("tiny-a", "k1") is not None
    for damage in (_flip, _truncate):  # a second damaged copy replaces the first
        store.save_model("k1", model)
        damage(folder / "labels.npz")
        bad = (folder / "labels.npz").read_bytes()
        caplog.clear()
        assert store.load_model("tiny-a", "k1") is None
        (line,) = _damaged_warnings(caplog)
        assert "model 'tiny-a' damaged (labels.npz: checksum mismatch)" in line and str(aside) in line
        assert not folder.exists() and (aside / "labels.npz").read_bytes() == bad
        assert store.load_model("tiny-a", "k1") is None  # now simply not stored
    assert [p.name for p in (store.root / "models").iterdir()] == ["tiny-a" + SUFFIX]

    # not current (another key, or an earlier format without checksums) is neither damage nor moved
    store.save_model("k1", model)
    _flip(folder / "labels.npz")
    caplog.clear()
    assert store.load_model("tiny-a", "k2") is None
    (folder / "key.txt").write_text("k1")
    assert store.load_model("tiny-a", "k1") is None and store.load_model("tiny-a") is None
    assert _damaged_warnings(caplog) == [] and folder.is_dir()


def test_a_save_cut_short_by_a_full_disk_never_reads_as_stored(built, tmp_path, monkeypatch, caplog):
    """A full disk part-way through a save: no mix of two saves is ever read, nothing is reported
    as damaged, other models keep their results, and the save works once there is space."""
    store, model = _store(built, tmp_path)
    other = StateStore(built[0] / "out" / "state").load_model("tiny-b")
    store.save_model("k1", model)
    store.save_model("k-other", other)
    changed = StateStore(built[0] / "out" / "state").load_model("tiny-a")
    changed.label_maps = {k: (v + 1) % 2 for k, v in changed.label_maps.items()}
    real = state.atomic_write

    def full_disk(path, data, **kw):
        if Path(path).name == "pictures.npz":  # after the label maps, before the manifest
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, **kw)

    monkeypatch.setattr(state, "atomic_write", full_disk)
    with pytest.raises(OSError):
        store.save_model("k2", changed)
    with caplog.at_level(logging.WARNING, logger="atlas"):
        for key in ("k1", "k2", None):
            got = store.load_model("tiny-a", key)
            assert got is None or all(np.array_equal(got.label_maps[k], v) for k, v in model.label_maps.items())
    assert _damaged_warnings(caplog) == [] and not list(store.root.rglob(f"*{SUFFIX}"))
    assert store.load_model("tiny-b", "k-other") is not None
    monkeypatch.setattr(state, "atomic_write", real)
    store.save_model("k2", changed)
    got = store.load_model("tiny-a", "k2")
    assert all(np.array_equal(got.label_maps[k], v) for k, v in changed.label_maps.items())


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_rewording_a_sentence_keeps_stored_results(tmp_path):
    """The code fingerprint covers computation only: a changed sentence in the modules that write
    words (highlights, Methods, the measures' titles and definitions) or in the site keeps it, and
    so does a reworded docstring or comment of a measure; a changed line of a measure, or a changed
    value range in the registry, does not."""
    from atlas.measures import locality
    from atlas.pipeline import state
    from atlas.site.measure_words import WORDS

    package = tmp_path / "atlas"
    shutil.copytree(Path(state.__file__).resolve().parents[1], package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = state.package_fingerprint(package)
    assert before == state.code_fingerprint()
    for words in ("pipeline/methods.py", "site/methods.py", "site/highlights.py", "site/wording.py",
                  "site/figure_words.py", "pipeline/executors.py"):  # (executors: how jobs run, not what)
        (package / words).write_text((package / words).read_text() + "\n# reworded\n")
    _edit(package / "site" / "measure_words.py", WORDS["locality_d1"].title, "Locality, reworded")
    measure = package / "measures" / "locality.py"
    _edit(measure, locality.similarity_structure.__doc__.split("\n")[0], "Reworded, over\n    two lines.")
    _edit(measure, "\nimport", "\n# a new comment\n\nimport")
    assert state.package_fingerprint(package) == before
    _edit(package / "measures" / "registry.py", '"locality_d1", (-2.0, 2.0)', '"locality_d1", (-1.0, 1.0)')
    registry_changed = state.package_fingerprint(package)
    assert registry_changed != before  # a changed value range changes the stored intervals
    measure.write_text(measure.read_text() + "\nX = 1\n")
    assert state.package_fingerprint(package) != registry_changed


def test_the_model_key_follows_timm_but_not_the_opt_in_flag(monkeypatch):
    """opt_in only says whether a build includes the model: toggling it keeps the stored results.
    timm builds the model and runs its forward pass: another version makes them stale."""
    import timm

    from atlas.config import parse_config
    from atlas.pipeline import state
    from atlas.pipeline.resolutions import ResolutionRun

    cfg = parse_config('[[backbones]]\ndisplay_name = "m"\ntimm_name = "vit_small_patch16_224"\n'
                       'weights = "random"\ntraining = "random"')
    spec = cfg.backbones[0]
    run = ResolutionRun(label="224", requested=(224, 224), size=(224, 224), run_id=spec.slug, main=True)

    def key(s):
        return state.model_key(cfg, s, "w", [], "", run)

    before = key(spec)
    assert key(spec.model_copy(update={"opt_in": True})) == before
    monkeypatch.setattr(timm, "__version__", timm.__version__ + ".post1")
    assert key(spec) != before


def test_an_unreadable_file_is_not_damage(built, tmp_path, monkeypatch):
    """An I/O error while reading (permissions, a flaky disk) propagates; the folder is neither
    called damaged nor moved aside (moving it would throw away good results)."""
    store, model = _store(built, tmp_path)
    store.save_model("k", model)
    real = Path.read_bytes

    def flaky(self):
        if self.name == "labels.npz":
            raise OSError(errno.EIO, "Input/output error", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", flaky)
    with pytest.raises(OSError, match="Input/output error"):
        store.load_model("tiny-a", "k")
    monkeypatch.setattr(Path, "read_bytes", real)
    folder = tmp_path / "state" / "models" / "tiny-a"
    assert folder.is_dir() and not folder.with_name("tiny-a" + state.DAMAGED_SUFFIX).exists()
    assert store.load_model("tiny-a", "k") is not None
