"""Curated image manifests: a CSV file that names every photo of a set by URL, checksum, licence
and credit. ``build_atlas.py --download-only`` fetches it into the download cache once; a build
reads the cache and never touches the network.

Format (UTF-8, one row per line; blank lines and lines starting with ``#`` are ignored)::

    # columns: url, sha256, licence, credit, and optionally group and name
    url,sha256,licence,credit,group,name
    https://example.org/street-01.jpg,9f86d081884c7d65...,CC BY 4.0,Jane Doe (photographer),street,

* ``url``: an ``http``, ``https`` or ``file`` URL of the image file itself (not a web page).
* ``sha256``: 64 hex digits of the file, or empty. Empty: the first download records what it got
  in the lock file ``<download_dir>/<manifest stem>.lock.json`` (trust on first use) and every
  later download must match it.
* ``licence``, ``credit``: required; shown with the image on the site's Images page.
* ``group`` (optional): a sub-folder of the set, e.g. a scene, a source or a photographer.
* ``name`` (optional): the file name in the cache; default: the last part of the URL path.

An image is named ``<group>/<name>`` (or ``<name>``) and cached as
``<download_dir>/<manifest stem>/<group>/<name>``. A build checks every cached file against its
sha256 (the manifest's, else the lock's) and skips, with the reason, what is missing or differs.

Example
-------
>>> import tempfile, pathlib
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> Image.new("RGB", (40, 30), "red").save(d / "red.png")
>>> _ = (d / "set.csv").write_text("url,sha256,licence,credit\\n" + (d / "red.png").as_uri() + ",,CC0,me\\n")
>>> m = parse_manifest(d / "set.csv")
>>> [(e.key, e.licence, e.credit) for e in m.entries]
[('red.png', 'CC0', 'me')]
>>> report = download_manifest(m, d / "cache", progress=False)
>>> report.downloaded, report.recorded, report.ok
(['red.png'], ['red.png'], True)
>>> images, skipped = load_manifest_set(m, d / "cache")
>>> [(i.name, i.width, i.height) for i in images], skipped
([('red.png', 40, 30)], [])
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import http.client
import json
import logging
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from tqdm.auto import tqdm

from atlas import __version__
from atlas.config import ConfigError
from atlas.files import atomic_path, atomic_write, sha256_file
from atlas.inputs.images import (
    DEFAULT_MAX_PIXELS,
    AtlasImage,
    ImageReadError,
    SkippedImage,
    _add_image,
    read_rgb,
)

__all__ = [
    "COLUMNS",
    "DownloadReport",
    "Manifest",
    "ManifestEntry",
    "ManifestError",
    "Refusal",
    "config_manifests",
    "download_manifest",
    "load_manifest_set",
    "parse_manifest",
    "read_lock",
]

logger = logging.getLogger(__name__)

#: Every column a manifest may have, in the documented order.
COLUMNS = ("url", "sha256", "licence", "credit", "group", "name")
#: Columns every manifest must have (a row may leave sha256 empty, not licence or credit).
REQUIRED_COLUMNS = ("url", "sha256", "licence", "credit")
#: URL schemes a manifest may use.
SCHEMES = ("http", "https", "file")
#: Seconds a download may wait for the server (to connect, and between two reads).
DEFAULT_TIMEOUT_S = 30.0
#: Larger downloads are refused (an 89-megapixel 8-bit RGB TIFF is ~270 MB).
DEFAULT_MAX_BYTES = 512 * 2**20
USER_AGENT = f"ssl-vit-atlas/{__version__} (image manifest download; Python urllib)"
DOWNLOAD_HINT = "run `python scripts/build_atlas.py --config <this config> --download-only`"

_SHA256 = re.compile(r"[0-9a-f]{64}")
# one path segment that is safe as a file or folder name on every OS: no separators, no leading dot
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LOCK_ABOUT = ("sha256 of each file whose manifest row gives none, recorded when it was first downloaded "
               "(trust on first use); later downloads must match. Copy a value into the manifest's sha256 "
               "column to pin it there.")


class ManifestError(ConfigError):
    """A manifest or lock-file problem, phrased as one line naming the file (and line)."""


# --------------------------------------------------------------------------------------------
# The format
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    """One image row of a manifest.

    Examples
    --------
    >>> ManifestEntry(3, "https://x.org/a.jpg", "", "CC0", "me", "street", "a.jpg").key
    'street/a.jpg'
    """

    line: int  # 1-based line of the row in the manifest file
    url: str
    sha256: str  # lower-case hex, or "" (then the lock file's value is used)
    licence: str
    credit: str
    group: str  # "" = none
    name: str  # file name in the cache

    @property
    def key(self) -> str:
        """The image's name in the atlas and its path inside the manifest's cache folder."""
        return f"{self.group}/{self.name}" if self.group else self.name


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest file (see the module docstring for the format)."""

    path: Path
    display: str  # the path as the config gives it (for messages)
    entries: tuple[ManifestEntry, ...]

    @property
    def stem(self) -> str:
        return self.path.stem

    def folder(self, download_dir: str | os.PathLike) -> Path:
        """Where this manifest's images are cached."""
        return Path(download_dir) / self.stem

    def file_path(self, download_dir: str | os.PathLike, entry: ManifestEntry) -> Path:
        return self.folder(download_dir) / entry.key

    def lock_path(self, download_dir: str | os.PathLike) -> Path:
        """The lock file: sha256 recorded on first download for rows that give none."""
        return Path(download_dir) / f"{self.stem}.lock.json"


def _header(fields: list[str], where: str) -> tuple[str, ...]:
    names = tuple(f.lower() for f in fields)
    for name in names:
        if name not in COLUMNS:
            close = difflib.get_close_matches(name, COLUMNS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ManifestError(f"{where}: unknown column {name!r}{hint}; the columns are {', '.join(COLUMNS)}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ManifestError(f"{where}: column {dupes[0]!r} appears twice in the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ManifestError(f"{where}: the header lacks column {missing[0]!r}; it needs {', '.join(REQUIRED_COLUMNS)} "
                            f"(group and name are optional), e.g. url,sha256,licence,credit,group,name")
    return names


def _check_url(url: str, where: str) -> None:
    if not url:
        raise ManifestError(f"{where}: url is empty")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ManifestError(f"{where}: url {url!r} contains whitespace; percent-encode it (%20)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise ManifestError(f"{where}: url {url!r} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ManifestError(f"{where}: url {url!r}: the scheme must be http, https or file, "
                            f"e.g. https://example.org/photo.jpg")
    if parts.scheme.lower() in ("http", "https") and not parts.netloc:
        raise ManifestError(f"{where}: url {url!r} names no host, e.g. https://example.org/photo.jpg")
    if parts.scheme.lower() == "file" and (not parts.path or parts.netloc not in ("", "localhost")):
        raise ManifestError(f"{where}: url {url!r}: a file URL needs an absolute local path, e.g. file:///data/a.jpg")


def _entry(row: dict[str, str], line: int, where: str) -> ManifestEntry:
    url = row["url"]
    _check_url(url, where)
    sha = row["sha256"].lower()
    if sha and not _SHA256.fullmatch(sha):
        raise ManifestError(f"{where}: sha256 must be 64 hex digits or empty (got {row['sha256']!r}, "
                            f"{len(sha)} characters)")
    for col in ("licence", "credit"):
        if not row[col]:
            raise ManifestError(f"{where}: {col} is empty; write the {col} the image's source states "
                                + ("(e.g. CC BY 4.0)" if col == "licence" else "(e.g. the photographer and the site)"))
    group = row.get("group", "")
    if group and not _SEGMENT.fullmatch(group):
        raise ManifestError(f"{where}: group {group!r} must be letters, digits, '.', '_' or '-' "
                            "(not starting with '.'; it names a folder)")
    name = row.get("name", "")
    if name:
        if not _SEGMENT.fullmatch(name):
            raise ManifestError(f"{where}: name {name!r} must be a file name of letters, digits, '.', '_' or '-' "
                                "(not starting with '.')")
    else:
        name = unquote(PurePosixPath(urlsplit(url).path).name)
        if not _SEGMENT.fullmatch(name):
            raise ManifestError(f"{where}: cannot take a file name from the url (got {name!r}); "
                                "give one in the name column, e.g. photo-01.jpg")
    return ManifestEntry(line=line, url=url, sha256=sha, licence=row["licence"], credit=row["credit"],
                         group=group, name=name)


def parse_manifest(path: str | os.PathLike, *, display: str | None = None) -> Manifest:
    """Read and validate a manifest; raise :class:`ManifestError` (one line) on any problem.

    Parameters
    ----------
    path : path-like
        The CSV file.
    display : str, optional
        How messages name the file (default: ``path`` as given).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
    >>> _ = p.write_text("url,sha256,licence,credit\\nftp://x.org/a.jpg,,CC0,me\\n")
    >>> parse_manifest(p, display="x.csv")
    Traceback (most recent call last):
    ...
    atlas.inputs.manifest.ManifestError: x.csv:2: url 'ftp://x.org/a.jpg': the scheme must be http, https or file, e.g. https://example.org/photo.jpg
    """
    path = Path(path)
    where = display or str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"{where}: image manifest not found; fix [images] sets or create it "
                            f"(columns: {', '.join(COLUMNS)})") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{where}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ManifestError(f"{where}: cannot read the image manifest ({exc.strerror or exc})") from None
    header: tuple[str, ...] | None = None
    entries: list[ManifestEntry] = []
    keys: dict[str, int] = {}
    urls: dict[str, int] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        at = f"{where}:{lineno}"
        try:
            fields = [f.strip() for f in next(csv.reader([line], strict=True))]
        except csv.Error as exc:
            raise ManifestError(f"{at}: not a valid CSV row ({exc}); one row per line, quote fields with commas") from None
        if header is None:
            header = _header(fields, at)
            continue
        if len(fields) != len(header):
            raise ManifestError(f"{at}: {len(fields)} fields, the header has {len(header)} ({','.join(header)}); "
                                "quote fields that contain commas")
        entry = _entry(dict(zip(header, fields, strict=True)), lineno, at)
        if entry.key.lower() in keys:
            raise ManifestError(f"{at}: image {entry.key!r} is already named on line {keys[entry.key.lower()]}; "
                                "give a different name or group")
        if entry.url in urls:
            raise ManifestError(f"{at}: url already listed on line {urls[entry.url]}")
        keys[entry.key.lower()] = urls[entry.url] = lineno
        entries.append(entry)
    if not entries:
        raise ManifestError(f"{where}: no images listed; add a header ({','.join(COLUMNS)}) and one row per image")
    return Manifest(path=path, display=where, entries=tuple(entries))


def config_manifests(cfg) -> list[Manifest]:
    """The parsed manifests of an :class:`atlas.config.AtlasConfig`'s ``[images] sets``, in order
    (paths relative to the project root, like folders)."""
    return [parse_manifest(cfg.resolve_path(s.manifest), display=s.manifest)
            for s in cfg.images.sets if getattr(s, "manifest", None)]


# --------------------------------------------------------------------------------------------
# Checksums and the lock file
# --------------------------------------------------------------------------------------------


def read_lock(manifest: Manifest, download_dir: str | os.PathLike) -> dict[str, str]:
    """``{url: sha256}`` recorded on first download (empty when there is no lock file yet)."""
    path = manifest.lock_path(download_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError):
        raise ManifestError(f"{path}: lock file is not valid JSON; delete it to record the checksums again "
                            "on the next --download-only (trust on first use)") from None
    table = data.get("sha256") if isinstance(data, dict) else None
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) and _SHA256.fullmatch(v)
                                              for k, v in table.items()):
        raise ManifestError(f"{path}: lock file has no valid \"sha256\" table of url -> 64 hex digits; delete it "
                            "to record the checksums again on the next --download-only (trust on first use)")
    return dict(table)


def _write_lock(manifest: Manifest, download_dir: Path, table: dict[str, str]) -> Path:
    data = {"about": _LOCK_ABOUT, "manifest": manifest.display, "sha256": dict(sorted(table.items()))}
    return atomic_write(manifest.lock_path(download_dir), json.dumps(data, indent=1) + "\n")


# --------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A manifest image that --download-only did not accept, and why (one line)."""

    where: str  # "<manifest>:<line>"
    key: str
    url: str
    reason: str

    def line(self) -> str:
        return f"{self.where}: {self.key}: {self.reason}"


@dataclass
class DownloadReport:
    """What :func:`download_manifest` did, image by image (keys as in :attr:`ManifestEntry.key`)."""

    downloaded: list[str] = field(default_factory=list)  # fetched and verified now
    present: list[str] = field(default_factory=list)  # already cached and verified: not fetched again
    recorded: list[str] = field(default_factory=list)  # downloaded without a known sha256: now in the lock
    refused: list[Refusal] = field(default_factory=list)  # wrong sha256, HTTP error, incomplete, not an image
    unreachable: list[str] = field(default_factory=list)  # one line per server that could not be reached
    not_tried: list[str] = field(default_factory=list)  # images on those servers, not attempted
    locks: list[Path] = field(default_factory=list)  # lock files written

    @property
    def ok(self) -> bool:
        return not (self.refused or self.unreachable or self.not_tried)

    def merge(self, other: DownloadReport) -> DownloadReport:
        for name in ("downloaded", "present", "recorded", "refused", "unreachable", "not_tried", "locks"):
            getattr(self, name).extend(getattr(other, name))
        return self

    def summary(self) -> str:
        """One line, e.g. ``manifest images: 3 downloaded, 1 already cached, 1 refused``."""
        parts = [f"{len(self.downloaded)} downloaded", f"{len(self.present)} already cached"]
        if self.refused:
            parts.append(f"{len(self.refused)} refused")
        if self.unreachable or self.not_tried:
            parts.append(f"{len(self.unreachable) + len(self.not_tried)} not reached")
        text = "manifest images: " + ", ".join(parts)
        if self.recorded:
            text += (f"; sha256 of {len(self.recorded)} recorded on first use in "
                     f"{', '.join(str(p) for p in self.locks)}")
        return text


class _Refused(Exception):
    """This image is not accepted (the server or file answered, but not with the right bytes)."""


class _Unreachable(Exception):
    """The server could not be reached at all."""


def _why(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]  # "connection refused"
    text = " ".join(str(reason).split())
    return text or type(reason).__name__


def _open(url: str, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (schemes checked on parse)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise _Refused(f"the server answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if urlsplit(url).scheme.lower() == "file":
            raise _Refused(f"cannot read the file ({_why(exc.reason)})") from None
        raise _Unreachable(_why(exc.reason)) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Unreachable(_why(exc)) from None


def _fetch(url: str, dest: Path, *, timeout: float, max_bytes: int) -> str:
    """Stream ``url`` into ``dest``; return the sha256 of what arrived, or raise _Refused / _Unreachable."""
    with _open(url, timeout) as response:
        length = response.headers.get("Content-Length", "")
        expected = int(length) if length.strip().isdigit() else None
        if expected is not None and expected > max_bytes:
            raise _Refused(f"{expected:,} bytes is more than the {max_bytes:,} a download may have")
        digest, got = hashlib.sha256(), 0
        with open(dest, "wb") as out:
            while True:
                try:
                    chunk = response.read(1 << 20)
                except http.client.IncompleteRead as exc:
                    got += len(exc.partial)
                    raise _Refused(f"download incomplete: the connection closed after {got:,} bytes"
                                   + (f" of {expected:,}" if expected is not None else "")) from None
                except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                    raise _Refused(f"download interrupted after {got:,} bytes ({_why(exc)})") from None
                if not chunk:
                    break
                got += len(chunk)
                if got > max_bytes:
                    raise _Refused(f"more than the {max_bytes:,} bytes a download may have")
                digest.update(chunk)
                out.write(chunk)
    if expected is not None and got != expected:
        raise _Refused(f"download incomplete: got {got:,} of the {expected:,} bytes the server announced")
    if got == 0:
        raise _Refused("the server sent an empty file")
    return digest.hexdigest()


def _remove_empty_folders(folder: Path, top: Path) -> None:
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): stop
            return
        folder = folder.parent


def download_manifest(
    manifest: Manifest,
    download_dir: str | os.PathLike,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
) -> DownloadReport:
    """Fetch every image of ``manifest`` into ``download_dir`` (``<download_dir>/<stem>/<key>``).

    A cached file that matches its sha256 (the manifest's, else the lock file's) is not fetched
    again. Each download streams into a temporary file that replaces the target only once it is
    complete, matches its sha256 and decodes as an image; anything else is refused with the reason
    and leaves no file. A row without a sha256 whose URL the lock file does not know yet is
    accepted as it comes and its sha256 recorded in the lock (trust on first use). When a server
    cannot be reached, its remaining images are not attempted and the report carries one line for
    it. Refusals are logged; an unreachable server is only reported (the caller prints it).

    Parameters
    ----------
    manifest : Manifest
    download_dir : path-like
        The download cache (``[images] download_dir``).
    timeout : float
        Seconds to wait for a server, to connect and between two reads.
    max_bytes : int
        Larger files are refused.
    max_pixels : int
        See :func:`atlas.inputs.images.read_rgb`.
    progress : bool
        Show a progress bar.

    Returns
    -------
    DownloadReport
    """
    download_dir = Path(download_dir)
    lock = read_lock(manifest, download_dir)
    new: dict[str, str] = {}
    report = DownloadReport()
    down: dict[str, str] = {}  # server -> first failing URL
    for entry in tqdm(manifest.entries, desc=f"images {manifest.stem}", unit="image", disable=not progress):
        dest = manifest.file_path(download_dir, entry)
        expected = entry.sha256 or lock.get(entry.url)
        origin = "manifest" if entry.sha256 else "lock file"
        # A cached file with no sha256 to check is fetched again: it may come from an earlier URL.
        if expected and dest.is_file():
            if sha256_file(dest) == expected:
                report.present.append(entry.key)
                continue
            logger.info("%s: the cached file differs from the sha256 in the %s; downloading it again", entry.key, origin)
        server = urlsplit(entry.url).netloc.lower()
        if server and server in down:
            report.not_tried.append(entry.key)
            continue
        try:
            with atomic_path(dest) as tmp:
                got = _fetch(entry.url, tmp, timeout=timeout, max_bytes=max_bytes)
                if expected and got != expected:
                    raise _Refused(f"sha256 mismatch: expected {expected} (from the {origin}), got {got}; "
                                   "the file at the URL changed or the checksum is wrong (other images are kept)")
                try:
                    read_rgb(tmp, max_pixels=max_pixels)
                except ImageReadError as exc:
                    raise _Refused(f"the downloaded file is not a usable image ({exc})") from None
        except _Refused as exc:
            _remove_empty_folders(dest.parent, download_dir)  # made for the temp file
            refusal = Refusal(f"{manifest.display}:{entry.line}", entry.key, entry.url, str(exc))
            logger.warning("refused image %s", refusal.line())
            report.refused.append(refusal)
            continue
        except _Unreachable as exc:
            _remove_empty_folders(dest.parent, download_dir)
            down[server] = entry.url
            report.unreachable.append(
                f"cannot reach {entry.url} ({exc}); check the URL and the network (or copy {download_dir} from a "
                "machine that has the files), then re-run --download-only: files already downloaded are kept")
            continue
        report.downloaded.append(entry.key)
        if not expected:
            new[entry.url] = got
            report.recorded.append(entry.key)
    if new:
        path = _write_lock(manifest, download_dir, lock | new)
        report.locks.append(path)
        logger.warning("%s: %d image(s) have no sha256 in the manifest: the sha256 of what was downloaded is "
                       "recorded in %s (trust on first use); later downloads must match it. Copy the values into "
                       "the manifest's sha256 column to pin them.", manifest.display, len(new), path)
    return report


# --------------------------------------------------------------------------------------------
# Reading the cache in a build
# --------------------------------------------------------------------------------------------


def load_manifest_set(
    manifest: Manifest,
    download_dir: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    hint: str = DOWNLOAD_HINT,
) -> tuple[list[AtlasImage], list[SkippedImage]]:
    """The images of ``manifest`` from the download cache, in manifest order; never downloads.

    A file that is not cached, has no sha256 to be checked against (none in the manifest, none in
    the lock file) or differs from it is skipped with a one-line reason that says to ``hint``
    (run ``--download-only``). Images carry the row's licence and credit; their source is the URL.

    Returns
    -------
    images : list of AtlasImage
    skipped : list of SkippedImage
    """
    download_dir = Path(download_dir)
    lock = read_lock(manifest, download_dir)
    images: list[AtlasImage] = []
    skipped: list[SkippedImage] = []
    seen: dict[str, str] = {}
    missing = 0
    for entry in manifest.entries:
        path = manifest.file_path(download_dir, entry)
        if not path.is_file():
            missing += 1
            reason = f"not downloaded yet (manifest {manifest.display}); {hint}"
            logger.info("skipped image %s: %s", entry.key, reason)
            skipped.append(SkippedImage(path=entry.key, reason=reason))
            continue
        expected = entry.sha256 or lock.get(entry.url)
        if not expected:
            reason = (f"no sha256 to check the cached file against (none in {manifest.display}, none recorded in "
                      f"{manifest.lock_path(download_dir).name}); {hint} to record it")
        elif (got := sha256_file(path)) != expected:
            reason = (f"the cached file's sha256 is {got}, {'the manifest' if entry.sha256 else 'the lock file'} "
                      f"says {expected}; {hint} to fetch it again")
        else:
            _add_image(images, skipped, seen, name=entry.key, path=path, source=entry.url, licence=entry.licence,
                       credit=entry.credit, max_pixels=max_pixels)
            continue
        logger.warning("skipped image %s: %s", entry.key, reason)
        skipped.append(SkippedImage(path=entry.key, reason=reason))
    if missing:
        logger.warning("%s: %d of %d image(s) are not downloaded yet and are skipped; %s",
                       manifest.display, missing, len(manifest.entries), hint)
    return images, skipped
