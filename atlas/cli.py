"""Command line: ``python scripts/build_atlas.py`` (also installed as ``build-atlas``)."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from pathlib import Path

DESCRIPTION = """\
Build the SSL ViT Atlas: run every backbone of a config over its image set, cluster patch tokens,
keys, queries and values jointly over all images, measure positional bias, locality and boundary
artifacts, evaluate against human masks when a labelled dataset is present, and publish it all as a
static MkDocs site (site/index.html).

Features live only while their analyses run (a forward pass per chunk of blocks within
[features] memory_gb); what is stored are the results: label maps, pictures and numbers, checksummed,
under build/<config>/state. Incremental: a model whose inputs are unchanged is not run again, so
adding a model to a config and re-running computes only that model and the comparisons with it,
and --render-only redraws every page from the stored results. [features] cache = true adds an
opt-in feature cache for iterating on analyses.
"""

EPILOG = """\
examples:
  python scripts/build_atlas.py --config configs/demo.toml    offline demo (random-init baselines)
  python scripts/build_atlas.py                               the real SSL zoo (needs the weights)
  python scripts/build_atlas.py --config configs/zoo.toml --download-only
                                 fetch its manifest images (sha256-checked) and weights; no build
  python scripts/build_atlas.py --models dinov2-vit-s-14,mae-vit-b-16
  python scripts/build_atlas.py --config configs/demo.toml --serve
  python scripts/build_atlas.py --config configs/demo.toml --render-only   pages again from stored results
  python scripts/build_atlas.py --executor slurm --partition gpu --gpus-per-job 1   one Slurm job per model
  python scripts/build_atlas.py --executor local --workers 4    4 processes here (one GPU each when present)

weights: pretrained entries load through timm from the Hugging Face cache ($HF_HOME; set
HF_HUB_OFFLINE=1 to never touch the network); a local file works with
weights = "checkpoint" and checkpoint = "path/to/model.safetensors" (or a .pth, read with
weights_only=True).
"""


def _iso_date(text: str) -> str:
    """``--build-date``: a calendar date, written the ISO way (it goes into citations)."""
    import datetime

    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: give it as YYYY-MM-DD") from None


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(prog="build_atlas.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(root / "configs" / "zoo.toml"),
                   help="atlas config (TOML); default: configs/zoo.toml, the real SSL zoo")
    p.add_argument("--models", default="", help="comma-separated slugs or display names: build only these "
                                                "(also the way to build opt-in entries such as the 7B model)")
    p.add_argument("--docs-dir", default=str(root / "site_src"), help="MkDocs docs dir to render into (default: site_src)")
    p.add_argument("--site-dir", default=str(root / "site"), help="where the static site is written (default: site). "
                   "mkdocs empties this folder first, so it must be new, empty or an earlier atlas site, and must not "
                   "hold the config, docs, output, cache or image folders")
    p.add_argument("--force", action="store_true", help="replace the contents of a non-empty --site-dir that no atlas "
                   "build wrote (its files are deleted); folders the build needs, the home folder and folders inside "
                   "the atlas's own are refused even so")
    p.add_argument("--site-url", default=None, help="where the site will be published, e.g. "
                   "https://example.org/atlas/ (overrides [atlas] site_url): required for a publishable build, "
                   "it gives every page an absolute citation URL, a canonical link and a sitemap entry")
    p.add_argument("--no-site", action="store_true", help="compute and render pages, but skip `mkdocs build`")
    p.add_argument("--render-only", action="store_true", help="compute nothing: render the pages and the site again "
                                                              "from the config's stored results (build/<config>/state)")
    p.add_argument("--serve", action="store_true", help="after the build, serve the site with live reload "
                                                        "(mkdocs serve on 127.0.0.1:8000)")
    p.add_argument("--check-weights", action="store_true", help="only report which models' weights are missing")
    p.add_argument("--download-only", action="store_true", help="only download, then exit without building: the "
                   "config's manifest images into [images] download_dir (checked against their sha256; see README, "
                   "Curated image sets), then its pretrained weights into the HF / torch hub caches (needs internet)")
    g = p.add_argument_group("versioned publishing (see README, Citing)")
    g.add_argument("--publish", metavar="DIR", default=None, help="after the build, copy the site into DIR/VERSION/ "
                   "in mike's layout (versions.json, alias redirects), ready to push to GitHub Pages or any static "
                   "host; every citation names the version's URL (site URL + VERSION/), which keeps serving it. "
                   "Published versions are never touched, except one named with --replace")
    g.add_argument("--version", dest="publish_version", metavar="VERSION", default=None,
                   help="the version to publish (letters, digits, '.', '_', '+', '-'), e.g. 2026.12")
    g.add_argument("--alias", default=None, help="an alias that moves to this version, e.g. latest (its pages "
                                                 "redirect to this version's; the site root redirects to it)")
    g.add_argument("--replace", action="store_true", help="overwrite VERSION when it is already published")
    g.add_argument("--doi", default=None, help="the DOI of this version (e.g. 10.5281/zenodo.1234567, from Zenodo; "
                   "overrides [atlas] doi): in every BibTeX entry, CITATION.cff, .zenodo.json and the JSON-LD")
    g = p.add_argument_group("where the models are computed (one job per model; see README, Run on a cluster)")
    g.add_argument("--executor", default="serial", help="serial (default: one model after the other in this "
                   "process), local (separate processes on this machine) or slurm (jobs submitted with submitit); "
                   "rerunning resumes, computing only models whose results are missing or stale")
    g.add_argument("--workers", type=int, default=None, help="local: jobs at a time (default: one per GPU, else 1)")
    g.add_argument("--partition", default=None, help="slurm partition (overrides [executor] partition)")
    g.add_argument("--gpus-per-job", type=int, default=None, help="GPUs of each slurm job")
    g.add_argument("--cpus-per-job", type=int, default=None, help="CPU cores of each job")
    g.add_argument("--mem-gb", type=float, default=None, help="memory of each slurm job, in GB")
    g.add_argument("--time-min", type=int, default=None, help="time limit of each job, in minutes")
    p.add_argument("--build-date", default=None, metavar="YYYY-MM-DD", type=_iso_date,
                   help="date the pages and citations give (default: today; a rebuild with nothing "
                        "changed keeps the pages, and the date, of the build that rendered them)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    args = p.parse_args(argv)
    # "~" expanded once here, so the folder the site guard checks is the one mkdocs empties
    args.site_dir, args.docs_dir = str(Path(args.site_dir).expanduser()), str(Path(args.docs_dir).expanduser())

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("timm").setLevel(logging.WARNING)

    from .config import ConfigError, load_config, normalise_doi, normalise_site_url
    from .files import check_writable
    from .pipeline import BuildError
    from .pipeline.executors import check_executor
    from .pipeline.state import load_stored_atlas
    from .site.mkdocs import SiteBuildError, SiteDirError
    from .site.publish import PublishError

    try:
        args.site_url = normalise_site_url(args.site_url) if args.site_url is not None else None
    except ValueError as exc:
        print(f"error: --site-url: {exc}", file=sys.stderr)
        return 2
    try:
        args.doi = normalise_doi(args.doi) if args.doi is not None else None
    except ValueError as exc:
        print(f"error: --doi: {exc}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        if args.publish is not None:
            _check_publish(args, cfg)
        if args.executor != "serial":
            check_executor(args.executor)
        if not (args.check_weights or args.download_only):  # before any computing
            if not args.no_site:
                _check_site_dir(args, cfg, root)
            check_writable({"docs dir": args.docs_dir} | ({} if args.no_site else {"site dir": args.site_dir}))
        if args.render_only:  # no model, no torch: the stored records alone
            results = load_stored_atlas(cfg)
            return _publish(args, root, results)
        images_code = 0
        if args.download_only:  # manifest images first (no torch needed), then the weights below
            images_code = _download_images(cfg, quiet=args.quiet)
            if images_code == 130:
                return images_code
            if not any(b.weights == "pretrained" for b in cfg.backbones):
                print("no pretrained weights to download (every backbone is random-init or a local checkpoint)")
                return images_code
    except (ConfigError, BuildError, SiteDirError, SiteBuildError, PublishError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        return _os_error(exc)

    from .features.backbones import (UnknownModelError, UnsafeCheckpointError, WeightsUnavailableError,
                                     download_weights, missing_weights, weights_help, weights_unavailable_message)
    from .features.cache import CacheTooSmall, NonFiniteFeatures
    from .features.stream import FeatureBudgetError

    try:
        models = [m.strip() for m in args.models.split(",") if m.strip()] or None
        backbones = cfg.select_backbones(models)
        if args.download_only:
            done = download_weights(backbones)
            print(f"downloaded weights for {len(done)} model(s): {', '.join(done) or 'none needed'}")
            return images_code
        if args.check_weights:
            missing = missing_weights(backbones)
            for b, why in missing:
                print(f"missing: {b.display_name} [{b.timm_name}]: {why}")
            print(f"{len(missing)} model(s) without weights" + (f". {weights_help()}" if missing else ""))
            return 1 if missing else 0
        # answered from the local caches before the analysis modules (scikit-learn, ...) are imported
        missing_text = weights_unavailable_message(backbones)
        if missing_text:
            raise BuildError(missing_text)
        from .pipeline.build import FAILED_PREFIX, build_atlas, failed_models
        from .pipeline.executors import ModelJobs, executor_settings

        jobs = None
        if args.executor != "serial":
            settings = executor_settings(
                cfg, workers=args.workers, partition=args.partition, gpus_per_job=args.gpus_per_job,
                cpus_per_job=args.cpus_per_job, mem_gb=args.mem_gb, time_min=args.time_min)
            jobs = ModelJobs(cfg, args.executor, settings, progress=not args.quiet)
        results = build_atlas(cfg, models=models, progress=not args.quiet, build_date=args.build_date, executor=jobs)
        code = _publish(args, root, results)
        failed = failed_models(results)
        for item in failed:
            print(f"failed: {item.what[len(FAILED_PREFIX):]}: {item.reason}", file=sys.stderr)
        if failed:
            print(f"{len(failed)} model(s) failed; the site has the others. Re-run the same command to compute "
                  f"only what is missing", file=sys.stderr)
        return 1 if failed else code
    except (ConfigError, BuildError, UnknownModelError, UnsafeCheckpointError, WeightsUnavailableError,
            NonFiniteFeatures, FeatureBudgetError, CacheTooSmall, SiteDirError, SiteBuildError, PublishError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        return _os_error(exc)
    except KeyboardInterrupt:
        print("interrupted: every model already stored is kept (files are written atomically); re-run to continue",
              file=sys.stderr)
        return 130


def _download_images(cfg, *, quiet: bool) -> int:
    """--download-only, images: every manifest of the config into ``[images] download_dir``.

    Refused images are logged one line each (the others are kept); an unreachable server is one
    ``error:`` line naming the URL. Returns 1 when anything was not downloaded, else 0."""
    from .inputs.manifest import DownloadReport, config_manifests, download_manifest

    manifests = config_manifests(cfg)  # every manifest validated before the first download
    if not manifests:
        return 0
    download_dir = cfg.resolve_path(cfg.images.download_dir)
    report = DownloadReport()
    try:
        for manifest in manifests:
            report.merge(download_manifest(manifest, download_dir, progress=not quiet))
    except KeyboardInterrupt:
        print(f"interrupted: images already downloaded are kept in {download_dir} (each file is written atomically); "
              "re-run --download-only to continue", file=sys.stderr)
        return 130
    for line in report.unreachable:
        print(f"error: {line}", file=sys.stderr)
    if report.ok:
        print(f"{report.summary()} (in {download_dir})")
        return 0
    print(report.summary() + (f"; the other images are kept in {download_dir}" if report.downloaded or report.present
                              else "") + ("; fix the refused rows (reasons above) or their URLs and re-run "
                                          "--download-only" if report.refused else ""))
    return 1


def _check_site_dir(args: argparse.Namespace, cfg, root: Path) -> None:
    """Refuse, before computing, a --site-dir whose cleaning by mkdocs would delete what the build
    reads or keeps (:func:`atlas.site.mkdocs.check_site_dir`)."""
    from .site.mkdocs import check_site_dir

    inside = {"docs dir": args.docs_dir, "output dir": cfg.resolve_path(cfg.atlas.output_dir),
              "feature cache": cfg.resolve_path(cfg.atlas.cache_dir),
              "image download folder": cfg.resolve_path(cfg.images.download_dir)}
    for item in cfg.images.sets:
        if getattr(item, "folder", None):
            inside[f"image folder {item.folder}"] = cfg.resolve_path(item.folder)
    ev = cfg.evaluation
    if ev.root:
        inside["evaluation dataset"] = cfg.resolve_path(ev.root)
    inside["theme folder"] = root / "templates"
    # may hold the site (the default site/ lies in the project folder), never be emptied by it
    around = {"config's folder": Path(cfg.source_path).parent, "project folder": cfg.project_root,
              "atlas's own folder": root, "current folder": Path.cwd(), "home folder": Path.home()}
    for item in cfg.images.sets:
        if getattr(item, "manifest", None):
            around[f"folder of manifest {item.manifest}"] = cfg.resolve_path(item.manifest).parent
    for what in ("class_names_file", "image_list"):
        if getattr(ev, what, ""):
            around[f"folder of [evaluation] {what}"] = cfg.resolve_path(getattr(ev, what)).parent
    for b in cfg.backbones:
        if b.checkpoint:
            around[f"folder of checkpoint {b.checkpoint}"] = Path(b.checkpoint).expanduser().resolve().parent
    if cfg.executor.log_dir:
        around["job log folder"] = cfg.resolve_path(cfg.executor.log_dir)
    # --force never replaces a folder inside the atlas's own (its code, templates, .git): only a new,
    # empty or earlier atlas site may be there
    force = args.force and root.resolve() not in Path(args.site_dir).resolve().parents
    check_site_dir(args.site_dir, inside | around, outside=inside, force=force)


def _check_publish(args: argparse.Namespace, cfg) -> None:
    """--publish's settings, refused in one line before anything is computed."""
    from .site.publish import PublishError, check_target

    if not args.publish_version:
        raise PublishError("--publish needs --version, e.g. --version 2026.12")
    if args.no_site:
        raise PublishError("--publish publishes the built site: drop --no-site")
    if not (args.site_url if args.site_url is not None else cfg.atlas.site_url):
        raise PublishError("--publish needs the site URL the folder will be served from (--site-url or [atlas] "
                           "site_url, e.g. https://example.org/atlas/): citations name its version URLs")
    check_target(args.publish, args.publish_version, args.alias, args.replace)


def _os_error(exc: OSError) -> int:
    """One line for a failed read or write (full disk, read-only folder, ...): nothing written is
    lost, since every file is replaced atomically."""
    where = f"{exc.filename}: " if exc.filename else ""
    why = exc.strerror or str(exc)
    hint = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
            errno.EROFS: "choose a writable folder", errno.EACCES: "choose a writable folder"}.get(exc.errno)
    print(f"error: {where}{why}" + (f"; {hint} and re-run: everything already computed is kept "
                                    f"(files are replaced atomically)" if hint else ""), file=sys.stderr)
    return 1


def _publish(args: argparse.Namespace, root: Path, results) -> int:
    """Pages into the docs dir, then (unless --no-site) the static site, then (with --serve) serve it."""
    from .site import build_site, render_site, serve_site
    from .site.pages import RENDER_STAMP, render_fingerprint

    if args.site_url is not None:
        results.site_url = args.site_url
    if args.doi is not None:
        results.doi = args.doi
    if args.publish is not None:  # cite the version's URL, which keeps serving it; the alias's beside it
        base = results.site_url
        results.site_url, results.published_version = f"{base}{args.publish_version}/", args.publish_version
        results.latest_url = f"{base}{args.alias}/" if args.alias else ""
    if not results.site_url:
        logging.getLogger("atlas").warning(
            "site URL not set: a local build (citations carry no URL, no canonical links, empty sitemap); "
            "set [atlas] site_url or --site-url for a publishable build")
    previous = None
    if args.publish is not None:  # the Changes page compares with the newest other published version
        from .site.changes import read_previous

        previous = read_previous(args.publish, args.publish_version)
    docs = Path(args.docs_dir)
    stamp = docs / RENDER_STAMP
    fingerprint = render_fingerprint(results, (root / "mkdocs.yml").read_text(encoding="utf-8"), str(docs.resolve()),
                                     "" if args.no_site else str(Path(args.site_dir).resolve()),
                                     f"previous {previous.version} {previous.digest}" if previous else "")
    # the stamp: the fingerprint, then the date the pages give; a date not asked for (today's) is no change
    rendered = stamp.read_text().split("\n") if stamp.is_file() else []
    current = rendered[:1] == [fingerprint] and (args.build_date is None or rendered[1:] == [results.build_date])
    site_there = args.no_site or (Path(args.site_dir) / "index.html").is_file()
    if site_there and (docs / "atlas.json").is_file() and current:
        # nothing the pages depend on changed since they were rendered: the site stands as it is
        logging.getLogger("atlas").info("nothing changed since the last render: pages and site kept "
                                        "(delete %s to render them again)", stamp)
        if not args.no_site:
            print(f"atlas unchanged: {Path(args.site_dir) / 'index.html'}")
            _publish_version(args, Path(args.site_dir), results)
        if args.serve:
            serve_site(root / "mkdocs.yml", docs_dir=args.docs_dir)
        return 0
    stamp.unlink(missing_ok=True)  # written again once pages and site are complete
    render_site(results, docs, previous)
    if args.no_site:
        stamp.write_text(f"{fingerprint}\n{results.build_date}")
        print(f"pages rendered into {args.docs_dir} (mkdocs build skipped)")
        return 0
    site = build_site(root / "mkdocs.yml", docs_dir=args.docs_dir, site_dir=args.site_dir, force=args.force)
    stamp.write_text(f"{fingerprint}\n{results.build_date}")
    print(f"atlas built: {site / 'index.html'}")
    _publish_version(args, site, results)
    if args.serve:
        serve_site(root / "mkdocs.yml", docs_dir=args.docs_dir)
    return 0



def _publish_version(args: argparse.Namespace, site: Path, results) -> None:
    """With --publish: the built site into DIR/VERSION/ (atlas.site.publish)."""
    if args.publish is None:
        return
    from .site.publish import publish_site

    where = publish_site(site, args.publish, args.publish_version, args.alias, args.replace)
    print(f"published version {args.publish_version}: {where} (cited as {results.site_url}"
          + (f"; {args.alias}: {results.latest_url}" if args.alias else "") + ")")


if __name__ == "__main__":
    sys.exit(main())
