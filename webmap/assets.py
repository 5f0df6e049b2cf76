"""Copy the front-end files the map pages use into ``webmap/static/vendor/``, so the platform serves them itself.

Every script, style sheet, font and image comes from the npm registry (``webmap/package.json``, installed
with ``npm ci --prefix webmap``) or from a Python package (folium's heat-map plugin), and is served from
``/static/webmap/vendor/``: the pages work on an intranet with no route to a CDN. Two files are made here:
the Bootstrap 3 glyphicons stylesheet (cut out of Bootstrap 3.4.1, whose full stylesheet would fight
Bootstrap 5) and folium's tiny awesome-markers rotation stylesheet.

``python -m webmap.assets build`` copies what changed (a second run copies nothing), removes files no
longer listed, writes ``vendor/manifest.json`` and checks that every ``url(...)`` in the copied style
sheets names a copied file. ``python -m webmap.assets check`` verifies an existing build.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
PACKAGE_JSON = HERE / "package.json"
VENDOR = HERE / "static" / "vendor"
MANIFEST = "manifest.json"


class AssetsError(Exception):
    """The vendor files cannot be built or are not built; the message says what to run."""


@dataclass(frozen=True)
class Copy:
    """Files of one npm package copied under a vendor folder: a file, or every file of a folder."""

    package: str  # the dependency's name in package.json (an alias such as bootstrap3 included)
    source: str  # path inside the package; a trailing "/" copies the folder's files
    dest: str  # path under vendor/ (a folder when source is one)


COPIES: tuple[Copy, ...] = (
    Copy("leaflet", "dist/leaflet.js", "leaflet/leaflet.js"),
    Copy("leaflet", "dist/leaflet.css", "leaflet/leaflet.css"),
    Copy("leaflet", "dist/images/", "leaflet/images"),
    Copy("jquery", "dist/jquery.min.js", "jquery/jquery.min.js"),
    Copy("bootstrap", "dist/js/bootstrap.bundle.min.js", "bootstrap/js/bootstrap.bundle.min.js"),
    Copy("bootstrap", "dist/css/bootstrap.min.css", "bootstrap/css/bootstrap.min.css"),
    Copy("bootstrap3", "dist/fonts/", "bootstrap3/fonts"),
    Copy("@fortawesome/fontawesome-free", "css/all.min.css", "fontawesome/css/all.min.css"),
    Copy("@fortawesome/fontawesome-free", "webfonts/", "fontawesome/webfonts"),
    Copy("leaflet.awesome-markers", "dist/leaflet.awesome-markers.js",
         "leaflet.awesome-markers/leaflet.awesome-markers.js"),
    Copy("leaflet.awesome-markers", "dist/leaflet.awesome-markers.css",
         "leaflet.awesome-markers/leaflet.awesome-markers.css"),
    Copy("leaflet.awesome-markers", "dist/images/", "leaflet.awesome-markers/images"),
    Copy("leaflet.markercluster", "dist/leaflet.markercluster.js", "leaflet.markercluster/leaflet.markercluster.js"),
    Copy("leaflet.markercluster", "dist/MarkerCluster.css", "leaflet.markercluster/MarkerCluster.css"),
    Copy("leaflet.markercluster", "dist/MarkerCluster.Default.css",
         "leaflet.markercluster/MarkerCluster.Default.css"),
    Copy("leaflet.locatecontrol", "dist/L.Control.Locate.min.js", "leaflet.locatecontrol/L.Control.Locate.min.js"),
    Copy("leaflet.locatecontrol", "dist/L.Control.Locate.min.css", "leaflet.locatecontrol/L.Control.Locate.min.css"),
    Copy("leaflet.vectorgrid", "dist/Leaflet.VectorGrid.bundled.min.js",
         "leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js"),
    # The API docs page (api.docs): Swagger UI 5, the first to read OpenAPI 3.1 documents.
    Copy("swagger-ui-dist", "swagger-ui-bundle.js", "swagger-ui/swagger-ui-bundle.js"),
    Copy("swagger-ui-dist", "swagger-ui-standalone-preset.js", "swagger-ui/swagger-ui-standalone-preset.js"),
    Copy("swagger-ui-dist", "swagger-ui.css", "swagger-ui/swagger-ui.css"),
    Copy("swagger-ui-dist", "favicon-32x32.png", "swagger-ui/favicon-32x32.png"),
    Copy("chart.js", "dist/chart.umd.min.js", "chart.js/chart.umd.min.js"),
    Copy("html-to-image", "dist/html-to-image.js", "html-to-image/html-to-image.js"),
    Copy("idb-keyval", "dist/umd.js", "idb-keyval/idb-keyval.umd.js"),
)
GLYPHICONS_SOURCE = Copy("bootstrap3", "dist/css/bootstrap.css", "bootstrap3/css/bootstrap-glyphicons.css")
HEAT_DEST = "leaflet.heat/leaflet_heat.min.js"  # from the folium wheel: folium/templates/leaflet_heat.min.js
ROTATE_DEST = "leaflet.awesome-markers/leaflet.awesome.rotate.css"


# -- made files ---------------------------------------------------------------------------------------------------
def _top_level_blocks(css: str) -> Iterator[str]:
    """Yield the top-level rules of a style sheet (selector and braces), comments removed."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    depth, start = 0, 0
    for i, char in enumerate(css):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                yield css[start:i + 1].strip()
                start = i + 1


def glyphicons_css(bootstrap3_css: str) -> str:
    """Return only the glyphicons rules of Bootstrap 3's stylesheet: its font face and the icon classes."""
    keep = []
    for block in _top_level_blocks(bootstrap3_css):
        selector = block.split("{", 1)[0]
        if ("@font-face" in selector and "Glyphicons Halflings" in block) or (
                not selector.lstrip().startswith("@") and ".glyphicon" in selector):
            keep.append(block)
    if not keep:
        raise AssetsError("no glyphicons rules found in Bootstrap 3's bootstrap.css")
    return ("/* Glyphicons Halflings, from Bootstrap 3.4.1 (MIT), cut out of dist/css/bootstrap.css by "
            "webmap/assets.py */\n" + "\n".join(keep) + "\n")


def rotate_css() -> str:
    """Return the rotation rules folium's awesome markers use (``fa-rotate-<angle>``, whole degrees)."""
    rules = "".join(f".fa-rotate-{a}{{transform:rotate({a}deg)}}" for a in range(360))
    return "/* awesome-markers rotation for folium icons, made by webmap/assets.py */\n" + rules + "\n"


def folium_heat_js() -> bytes:
    """Return folium's Leaflet.heat build, shipped inside the folium wheel."""
    import folium

    path = Path(folium.__file__).resolve().parent / "templates" / "leaflet_heat.min.js"
    if not path.is_file():
        raise AssetsError(f"{path} is missing: reinstall folium (pip install --force-reinstall folium)")
    return path.read_bytes()


# -- npm packages ----------------------------------------------------------------------------------------------
def pinned_versions(package_json: Path = PACKAGE_JSON) -> dict[str, str]:
    """Return each dependency of package.json with its pinned version (``npm:name@x`` aliases resolved)."""
    deps = json.loads(package_json.read_text(encoding="utf-8"))["dependencies"]
    return {name: spec.rpartition("@")[2] if spec.startswith("npm:") else spec for name, spec in deps.items()}


def check_packages(node_modules: Path, package_json: Path = PACKAGE_JSON) -> None:
    """Raise AssetsError unless every pinned package is installed at its pinned version."""
    problems = []
    for name, version in pinned_versions(package_json).items():
        meta = node_modules / name / "package.json"
        if not meta.is_file():
            problems.append(f"{name} is not installed")
            continue
        installed = json.loads(meta.read_text(encoding="utf-8")).get("version")
        if installed != version:
            problems.append(f"{name} is {installed}, package.json pins {version}")
    if problems:
        raise AssetsError(f"npm packages in {node_modules}: " + "; ".join(problems)
                          + ". Run `npm ci --prefix webmap` (or `make assets`).")


# -- the build ------------------------------------------------------------------------------------------------
def planned_files(node_modules: Path) -> dict[str, bytes]:
    """Return every vendor file to write, by its path under vendor/, with its content."""
    files: dict[str, bytes] = {}
    for copy in COPIES:
        source = node_modules / copy.package / copy.source
        if copy.source.endswith("/"):
            found = sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else []
            if not found:
                raise AssetsError(f"{source} holds no files; run `npm ci --prefix webmap`")
            for path in found:
                files[f"{copy.dest}/{path.name}"] = path.read_bytes()
        elif source.is_file():
            files[copy.dest] = source.read_bytes()
        else:
            raise AssetsError(f"{source} is missing; run `npm ci --prefix webmap`")
    glyph_source = node_modules / GLYPHICONS_SOURCE.package / GLYPHICONS_SOURCE.source
    if not glyph_source.is_file():
        raise AssetsError(f"{glyph_source} is missing; run `npm ci --prefix webmap`")
    files[GLYPHICONS_SOURCE.dest] = glyphicons_css(glyph_source.read_text(encoding="utf-8")).encode()
    files[ROTATE_DEST] = rotate_css().encode()
    files[HEAT_DEST] = folium_heat_js()
    return files


def css_references(css: str) -> list[str]:
    """Return the local files a style sheet's ``url(...)`` values name (data: URIs and fragments left out)."""
    refs = []
    for raw in re.findall(r"url\(\s*([^)]+?)\s*\)", css):
        url = raw.strip("'\"")
        if url.startswith(("data:", "#")):
            continue
        refs.append(re.split(r"[?#]", url, maxsplit=1)[0])
    return refs


def missing_css_references(files: dict[str, bytes]) -> list[str]:
    """Return ``sheet -> reference`` for every url() in the planned style sheets that names no planned file."""
    missing = []
    for name, data in files.items():
        if not name.endswith(".css"):
            continue
        for ref in css_references(data.decode("utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", ref) or ref.startswith("//"):
                missing.append(f"{name} -> {ref} (not local)")
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), ref))
            if target not in files:
                missing.append(f"{name} -> {ref}")
    return missing


@dataclass(frozen=True)
class BuildReport:
    """What a build did."""

    written: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(node_modules: Path = NODE_MODULES, vendor: Path = VENDOR, package_json: Path = PACKAGE_JSON) -> BuildReport:
    """Copy the vendor files, writing only what changed and removing what is no longer listed."""
    if not node_modules.is_dir():
        raise AssetsError(f"{node_modules} does not exist; run `npm ci --prefix webmap` (or `make assets`)")
    check_packages(node_modules, package_json)
    files = planned_files(node_modules)
    missing = missing_css_references(files)
    if missing:
        raise AssetsError("style sheets name files that are not copied: " + "; ".join(missing))
    manifest = {"packages": pinned_versions(package_json),
                "files": {name: _sha256(data) for name, data in sorted(files.items())}}
    files[MANIFEST] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    written, unchanged = [], 0
    for name, data in sorted(files.items()):
        target = vendor / name
        if target.is_file() and target.read_bytes() == data:
            unchanged += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)  # never a half-written file in what the server reads
        written.append(name)
    removed = []
    for path in sorted(_files_under(vendor)):
        name = path.relative_to(vendor).as_posix()
        if name not in files:
            path.unlink()
            removed.append(name)
    for folder in sorted((p for p in vendor.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return BuildReport(tuple(written), tuple(removed), unchanged)


def _files_under(folder: Path) -> Iterable[Path]:
    return (p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else ()


def verify(vendor: Path = VENDOR) -> None:
    """Raise AssetsError unless the vendor folder holds exactly the files of its manifest, unchanged."""
    manifest_path = vendor / MANIFEST
    if not manifest_path.is_file():
        raise AssetsError(f"{vendor} is not built; run `make assets` (npm ci --prefix webmap, then "
                          "python -m webmap.assets build)")
    listed = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
    problems = [f"{name} is missing" for name in listed if not (vendor / name).is_file()]
    problems += [f"{name} differs from the build" for name, digest in listed.items()
                 if (vendor / name).is_file() and _sha256((vendor / name).read_bytes()) != digest]
    if problems:
        raise AssetsError(f"{vendor}: " + "; ".join(problems) + ". Run `make assets`.")


def is_built(vendor: Path = VENDOR) -> bool:
    """Return whether a build's manifest is present (a cheap check for each page view)."""
    return (vendor / MANIFEST).is_file()


# -- command line ---------------------------------------------------------------------------------------------
@click.group()
def cli() -> None:
    """Front-end files for the map pages."""


@cli.command("build")
@click.option("--node-modules", type=click.Path(path_type=Path), default=NODE_MODULES, show_default=True)
@click.option("--vendor", type=click.Path(path_type=Path), default=VENDOR, show_default=True)
def build_command(node_modules: Path, vendor: Path) -> None:
    """Copy the npm packages' files (and folium's heat-map plugin) into the vendor folder."""
    try:
        report = build(node_modules, vendor)
    except AssetsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"webmap assets: {len(report.written)} written, {len(report.removed)} removed, "
               f"{report.unchanged} unchanged in {vendor}")


@cli.command("check")
@click.option("--vendor", type=click.Path(path_type=Path), default=VENDOR, show_default=True)
def check_command(vendor: Path) -> None:
    """Exit 1 unless the vendor folder matches its build manifest."""
    try:
        verify(vendor)
    except AssetsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"webmap assets: {vendor} is complete")


if __name__ == "__main__":
    sys.exit(cli())
