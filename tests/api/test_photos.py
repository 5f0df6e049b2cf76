"""Uploaded photos are stored and served without metadata; where they were taken is kept in the record."""

from __future__ import annotations

import hashlib
import io
import uuid

import pytest
from PIL import ExifTags, Image, PngImagePlugin
from PIL.TiffImagePlugin import IFDRational
from sqlalchemy import text

from gis_platform.photos import clean_photo, gps_location, webp_is_lossless

# 36°1'12.34"N 115°43'21.5"E: in the mini county's west town.
LAT = (IFDRational(36), IFDRational(1), IFDRational(1234, 100))
LON = (IFDRational(115), IFDRational(43), IFDRational(215, 10))
EXPECTED = (115 + 43 / 60 + 21.5 / 3600, 36 + 1 / 60 + 12.34 / 3600)
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description xmp:CreatorTool="SecretCam Pro"/></x:xmpmeta>'
PRIVATE = (b"HUAWEI", b"ELS-AN00", b"SN-8842-XYZ", b"Zhang San", b"SecretCam", b"taken at home")


def exif(*, orientation: int = 1, gps: dict | None = None) -> Image.Exif:
    """Return EXIF as a phone writes it: make, model, serial number, owner, orientation and GPS."""
    tags = Image.Exif()
    tags[ExifTags.Base.Make] = "HUAWEI"
    tags[ExifTags.Base.Model] = "ELS-AN00"
    tags[ExifTags.Base.BodySerialNumber] = "SN-8842-XYZ"
    tags[ExifTags.Base.Artist] = "Zhang San"
    tags[ExifTags.Base.Orientation] = orientation
    gps_ifd = tags.get_ifd(ExifTags.IFD.GPSInfo)
    defaults = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: LAT,
                ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: LON}
    gps_ifd.update(defaults if gps is None else gps)
    return tags


def photo(fmt: str, **kwargs) -> bytes:
    """Return a 60×30 photo (left half red, right half blue) in a format, with the given metadata."""
    img = Image.new("RGB", (60, 30), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 30, 30))
    out = io.BytesIO()
    img.save(out, fmt, **kwargs)
    return out.getvalue()


@pytest.fixture(scope="module")
def pw(api_world) -> dict[str, str]:
    """Return a patroller's bearer header, issued once for the module."""
    return api_world.token("pw")


def new_case(world, auth: dict[str, str]) -> dict:
    response = world.client().post("/api/v1/cases", headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
                                   json={"category": "TD02", "description": "照片",
                                         "geometry": {"type": "Point", "coordinates": [115.72, 36.02]}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def upload(world, auth: dict[str, str], data: bytes, name: str) -> tuple[dict, bytes]:
    """Upload a photo to a new case; return the attachment JSON and the bytes then served."""
    case = new_case(world, auth)
    response = world.client().post(f"/api/v1/cases/{case['id']}/attachments", headers=auth,
                                   data={"file": (io.BytesIO(data), name), "stage": "before"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    served = world.client().get(body["url"], headers=auth)
    try:
        assert served.status_code == 200
        return body, served.get_data()
    finally:
        served.close()


def stored_location(world, attachment_id: int) -> tuple[float, float] | None:
    with world.database.sessions() as session:
        row = session.execute(text("SELECT ST_X(location), ST_Y(location) FROM attachment WHERE id = :i"),
                              {"i": attachment_id}).one()
    return None if row[0] is None else (row[0], row[1])


def assert_no_metadata(data: bytes) -> Image.Image:
    for secret in PRIVATE:
        assert secret not in data, secret
    img = Image.open(io.BytesIO(data))
    assert dict(img.getexif()) == {}
    assert not {"exif", "xmp", "XML:com.adobe.xmp", "comment", "Author", "Comment", "Raw profile type exif"} & set(
        img.info), img.info
    return img


def test_a_jpeg_is_served_without_exif_upright_and_its_position_is_kept(api_world, pw):
    data = photo("JPEG", exif=exif(orientation=6), comment=b"taken at home", xmp=XMP, quality=85)
    assert all(secret in data for secret in PRIVATE)  # the upload does carry them
    body, served = upload(api_world, pw, data, "IMG_0001.jpg")
    img = assert_no_metadata(served)
    assert b"Exif\x00\x00" not in served and b"\xff\xfe" not in served[:2000]  # no APP1 Exif, no COM segment
    # Orientation 6 (turn 90° clockwise to view): the pixels are turned and the tag is gone.
    assert img.size == (30, 60)
    assert img.getpixel((15, 5))[0] > 200 and img.getpixel((15, 55))[2] > 200  # red on top, blue below
    assert body["sha256"] == hashlib.sha256(served).hexdigest() and body["size_bytes"] == len(served)
    assert body["location"]["type"] == "Point"
    assert body["location"]["coordinates"] == pytest.approx(EXPECTED, abs=1e-7)
    assert stored_location(api_world, body["id"]) == pytest.approx(EXPECTED, abs=1e-7)
    # Its own quantisation tables are kept: written again, not degraded to another quality.
    assert img.quantization == Image.open(io.BytesIO(data)).quantization


def test_png_text_chunks_and_exif_are_stripped(api_world, pw):
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Zhang San")
    info.add_itxt("Comment", "taken at home", lang="zh")
    info.add_text("XML:com.adobe.xmp", XMP.decode(), zip=True)
    body, served = upload(api_world, pw, photo("PNG", pnginfo=info, exif=exif()), "site.png")
    assert_no_metadata(served)
    for chunk in (b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
        assert chunk not in served, chunk
    assert body["mime_type"] == "image/png"
    assert body["location"]["coordinates"] == pytest.approx(EXPECTED, abs=1e-7)


def test_webp_exif_and_xmp_are_stripped(api_world, pw):
    body, served = upload(api_world, pw, photo("WEBP", exif=exif(), xmp=XMP, quality=80), "site.webp")
    assert_no_metadata(served)
    assert b"EXIF" not in served and b"XMP " not in served
    assert body["mime_type"] == "image/webp"
    assert stored_location(api_world, body["id"]) == pytest.approx(EXPECTED, abs=1e-7)


def test_a_photo_without_gps_has_no_location(api_world, pw):
    body, served = upload(api_world, pw, photo("JPEG", exif=exif(gps={})), "no-gps.jpg")
    assert_no_metadata(served)
    assert body["location"] is None and stored_location(api_world, body["id"]) is None


@pytest.mark.parametrize(("gps", "expected"), [
    ({1: "S", 2: LAT, 3: "W", 4: LON}, (-EXPECTED[0], -EXPECTED[1])),
    ({1: "N", 2: LAT, 4: LON}, None),  # no hemisphere for the longitude: its sign would be a guess
    ({1: "N", 2: (IFDRational(0), IFDRational(0), IFDRational(0)), 3: "E",
      4: (IFDRational(0), IFDRational(0), IFDRational(0))}, None),  # (0, 0): a camera without a fix
    ({1: "N", 2: (IFDRational(95), IFDRational(0), IFDRational(0)), 3: "E", 4: LON}, None),  # beyond the pole
    ({1: "N", 2: (IFDRational(36), IFDRational(75), IFDRational(0)), 3: "E", 4: LON}, None),  # 75 minutes
    ({1: "N", 2: (IFDRational(36), IFDRational(1, 0), IFDRational(0)), 3: "E", 4: LON}, None),  # x/0
    ({9: "V", 1: "N", 2: LAT, 3: "E", 4: LON}, None),  # GPSStatus V: measurement void
    ({1: "N", 2: LAT, 3: "E", 4: LON, 9: "A"}, EXPECTED),
])
def test_gps_tags_are_read_strictly(gps, expected):
    location = gps_location(Image.open(io.BytesIO(photo("JPEG", exif=exif(gps=gps)))).getexif())
    assert location == (pytest.approx(expected, abs=1e-7) if expected else None)


def test_lossless_webp_stays_lossless_and_a_broken_image_names_the_field():
    lossless = photo("WEBP", lossless=True, exif=exif())
    assert webp_is_lossless(lossless) and not webp_is_lossless(photo("WEBP", quality=50))
    cleaned = clean_photo(lossless, "image/webp")
    assert webp_is_lossless(cleaned.data) and cleaned.location == pytest.approx(EXPECTED, abs=1e-7)
    from gis_platform.errors import ValidationError

    with pytest.raises(ValidationError) as raised:
        clean_photo(photo("PNG")[:60], "image/png")
    assert raised.value.errors[0].field == "file"
