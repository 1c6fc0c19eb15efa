"""A rebuild with nothing changed creates no model and renders nothing; any change renders again."""

from __future__ import annotations

import pytest

import atlas.features.backbones as backbones
import atlas.pipeline.build as build
from atlas import cli
from test_hostile_inputs import project, run_cli


def _site_files(root):
    return {p: p.stat().st_mtime_ns for p in (root / "site").rglob("*") if p.is_file()}


@pytest.mark.slow
def test_unchanged_rebuild_loads_no_model_and_keeps_the_site(tmp_path, monkeypatch, capsys):
    config = project(tmp_path, images=["p0.png", "p1.png", "p2.png", "p3.png"])
    assert run_cli(config) == 0
    before = _site_files(tmp_path)

    def no_load(*args, **kwargs):
        raise AssertionError("a model was created for an unchanged rebuild")

    monkeypatch.setattr(build, "load_backbone", no_load)
    capsys.readouterr()
    assert run_cli(config) == 0  # right after the computing build: every model reused, nothing rendered
    assert "atlas unchanged" in capsys.readouterr().out
    assert _site_files(tmp_path) == before  # not one file written again
    # a later day (today, not the pinned date), nothing changed: the date alone renders nothing
    assert cli.main(["--config", str(config), "--docs-dir", str(tmp_path / "site_src"),
                     "--site-dir", str(tmp_path / "site"), "-q"]) == 0
    assert "atlas unchanged" in capsys.readouterr().out
    assert _site_files(tmp_path) == before

    # control: another site URL changes every page's citations: rendered again, still no model
    assert run_cli(config, "--site-url", "https://example.org/atlas/") == 0
    assert "atlas built" in capsys.readouterr().out
    assert "https://example.org/atlas/" in (tmp_path / "site" / "index.html").read_text()
    # control: a date the user asks for is a change: rendered again, and shown
    assert run_cli(config, "--site-url", "https://example.org/atlas/", "--build-date", "2026-01-02") == 0
    assert "atlas built" in capsys.readouterr().out
    assert "Built 2026-01-02" in (tmp_path / "site_src" / "build-report.md").read_text()
    # control: a changed seed changes the random weights' identity: the model is created again
    config.write_text(config.read_text().replace("seed = 0", "seed = 1"))
    with pytest.raises(AssertionError, match="a model was created"):
        run_cli(config)


def test_random_weights_identity_follows_the_recipe():
    spec = backbones.Backbone(display_name="a", timm_name="vit_small_patch16_224", weights="random",
                              training="random", overrides={"depth": 2, "embed_dim": 32, "num_heads": 2})
    other = spec.model_copy(update={"overrides": {"depth": 3, "embed_dim": 32, "num_heads": 2}})
    assert backbones.weights_identity(spec, 0) == backbones.weights_identity(spec, 0)
    assert len({backbones.weights_identity(spec, 0), backbones.weights_identity(spec, 1),
                backbones.weights_identity(other, 0)}) == 3
    loaded = backbones.load_backbone(spec, (32, 32), seed=0)
    assert loaded.weights_hash == backbones.weights_identity(spec, 0)
