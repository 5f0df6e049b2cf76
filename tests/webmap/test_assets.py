"""The vendor files: copied from the npm packages, made where no package ships them, idempotent, checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from webmap import assets

BOOTSTRAP3_SAMPLE = """
/*! Bootstrap v3.4.1 */
html { font-family: sans-serif; }
@font-face {
  font-family: "Glyphicons Halflings";
  src: url("../fonts/glyphicons-halflings-regular.eot");
}
.glyphicon { position: relative; font-family: "Glyphicons Halflings"; }
.glyphicon-asterisk:before { content: "\\002a"; }
@media print { .glyphicon { display: none; } }
.btn { display: inline-block; }
"""


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """Return the installed npm packages (``make assets`` installs them); fail, never skip, when absent."""
    try:
        assets.check_packages(assets.NODE_MODULES)
    except assets.AssetsError as exc:
        pytest.fail(str(exc), pytrace=False)
    return assets.NODE_MODULES


def test_glyphicons_are_cut_out_of_bootstrap3_without_the_rest():
    css = assets.glyphicons_css(BOOTSTRAP3_SAMPLE)
    assert '@font-face {\n  font-family: "Glyphicons Halflings"' in css
    assert ".glyphicon-asterisk:before" in css
    assert "font-family: sans-serif" not in css and ".btn" not in css and "@media" not in css


def test_a_stylesheet_without_glyphicons_is_refused():
    with pytest.raises(assets.AssetsError, match="glyphicons"):
        assets.glyphicons_css(".btn { color: red; }")


def test_rotation_rules_cover_every_whole_degree():
    css = assets.rotate_css()
    assert ".fa-rotate-0{transform:rotate(0deg)}" in css and ".fa-rotate-359{transform:rotate(359deg)}" in css


def test_css_references_leave_out_data_uris_and_fragments():
    css = ('a{background:url(data:image/png;base64,AAA)} b{src:url("../fonts/x.eot?#iefix")} c{x:url(#f)} '
           "d{y:url(img/a.png)}")
    assert assets.css_references(css) == ["../fonts/x.eot", "img/a.png"]


def test_missing_and_remote_css_references_are_reported():
    files = {"lib/css/a.css": b"x{src:url(../fonts/f.woff2)} y{src:url(https://cdn.example/f.woff)}",
             "lib/fonts/g.woff2": b""}
    missing = assets.missing_css_references(files)
    assert missing == ["lib/css/a.css -> ../fonts/f.woff2", "lib/css/a.css -> https://cdn.example/f.woff (not local)"]


def test_pinned_versions_resolve_aliases():
    pins = assets.pinned_versions()
    assert pins["bootstrap3"] == "3.4.1"
    assert all(version[0].isdigit() for version in pins.values()), "pin exact versions, not ranges"


def test_missing_packages_fail_with_the_command_to_run(tmp_path):
    with pytest.raises(assets.AssetsError, match=r"npm ci --prefix webmap"):
        assets.build(node_modules=tmp_path / "node_modules", vendor=tmp_path / "vendor")
    (tmp_path / "node_modules").mkdir()
    with pytest.raises(assets.AssetsError, match=r"leaflet is not installed.*npm ci --prefix webmap"):
        assets.build(node_modules=tmp_path / "node_modules", vendor=tmp_path / "vendor")
    assert not (tmp_path / "vendor").exists()


def test_a_package_at_another_version_is_named(tmp_path):
    package_json = tmp_path / "package.json"
    package_json.write_text(json.dumps({"dependencies": {"leaflet": "1.9.4"}}), encoding="utf-8")
    (tmp_path / "nm" / "leaflet").mkdir(parents=True)
    (tmp_path / "nm" / "leaflet" / "package.json").write_text('{"version": "1.7.1"}', encoding="utf-8")
    with pytest.raises(assets.AssetsError, match="leaflet is 1.7.1, package.json pins 1.9.4"):
        assets.check_packages(tmp_path / "nm", package_json)


def test_build_is_idempotent_and_removes_what_is_no_longer_listed(node_modules, tmp_path):
    vendor = tmp_path / "vendor"
    first = assets.build(node_modules, vendor)
    assert "leaflet/leaflet.js" in first.written and assets.MANIFEST in first.written
    assert (vendor / "leaflet.heat" / "leaflet_heat.min.js").read_bytes() == assets.folium_heat_js()
    again = assets.build(node_modules, vendor)
    assert again.written == () and again.removed == () and again.unchanged == len(first.written)

    (vendor / "stale" / "old.js").parent.mkdir()
    (vendor / "stale" / "old.js").write_text("old")
    (vendor / "leaflet" / "leaflet.js").write_text("tampered")
    with pytest.raises(assets.AssetsError, match="leaflet/leaflet.js differs"):
        assets.verify(vendor)
    repaired = assets.build(node_modules, vendor)
    assert repaired.written == ("leaflet/leaflet.js",) and repaired.removed == ("stale/old.js",)
    assert not (vendor / "stale").exists()
    assets.verify(vendor)


def test_every_stylesheet_reference_is_copied(built_assets):
    files = {p.relative_to(built_assets).as_posix(): p.read_bytes() for p in built_assets.rglob("*") if p.is_file()}
    assert assets.missing_css_references(files) == []
    for sheet in ("leaflet/leaflet.css", "fontawesome/css/all.min.css", "bootstrap3/css/bootstrap-glyphicons.css",
                  "leaflet.awesome-markers/leaflet.awesome-markers.css"):
        assert assets.css_references(files[sheet].decode()), f"{sheet} names no file: the test would prove nothing"


def test_command_line_check_and_build(node_modules, tmp_path):
    runner = CliRunner()
    vendor = tmp_path / "vendor"
    result = runner.invoke(assets.cli, ["check", "--vendor", str(vendor)])
    assert result.exit_code == 1 and "make assets" in result.output
    result = runner.invoke(assets.cli, ["build", "--node-modules", str(node_modules), "--vendor", str(vendor)])
    assert result.exit_code == 0 and "0 removed" in result.output
    result = runner.invoke(assets.cli, ["check", "--vendor", str(vendor)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(assets.cli, ["build", "--node-modules", str(tmp_path / "none"), "--vendor", str(vendor)])
    assert result.exit_code == 1 and "npm ci --prefix webmap" in result.output


def test_vendor_files_are_not_committed():
    ignore = (assets.HERE.parent / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "webmap/static/vendor/" in ignore
