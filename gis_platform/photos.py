"""Uploaded photos, cleaned before they are stored: upright, without metadata, their GPS position kept apart.

A phone's photo carries who took it with what (camera make and model, serial numbers, software), when,
and where, in EXIF, XMP and IPTC blocks, JPEG comments and PNG text chunks. The platform serves photos to
other staff and may show them to the public, so it stores and serves only the pixels: the image is
decoded and written again by Pillow, which writes no metadata unless told to. Two things are kept:

- the orientation, applied to the pixels (``ImageOps.exif_transpose``) since the tag that said it is gone;
- the GPS position, read before the metadata is dropped and returned for the attachment record, where
  the command centre can compare it with the case's location. Exif GPS coordinates are WGS-84 (the
  standard's default datum, and what phones' GNSS receivers give), the platform's own datum.

The colour profile (ICC) is kept too: it says how to show the colours, nothing about the person.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from typing import Any

import shapely
from geoalchemy2.shape import to_shape
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin

from gis_platform.errors import FieldError, ValidationError
from gis_platform.geometry import to_ewkt

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
WEBP_QUALITY = 90
JPEG_QUALITY = 90  # for a JPEG whose own tables cannot be read
# Image.info entries that describe the pixels rather than the photo: kept when the image is written again.
KEEP_INFO = ("icc_profile", "transparency", "gamma")
COORD_DIGITS = 7  # about 1 cm: more than any phone's GPS can tell


@dataclass(frozen=True)
class CleanPhoto:
    """A photo as stored: its new bytes and type, its size in pixels, and where it was taken if it said so."""

    data: bytes
    mime_type: str
    width: int
    height: int
    location: tuple[float, float] | None  # (longitude, latitude), WGS-84

    def location_ewkt(self) -> str | None:
        """Return the location for the attachment's ``location`` column, or None."""
        return to_ewkt(shapely.Point(self.location)) if self.location else None


def location_geojson(value: Any) -> dict[str, Any] | None:
    """Return an attachment's stored location (as loaded, or as just set) as a GeoJSON Point, or None."""
    if value is None:
        return None
    point = shapely.from_wkt(value.split(";", 1)[-1]) if isinstance(value, str) else to_shape(value)
    return {"type": "Point", "coordinates": [round(point.x, COORD_DIGITS), round(point.y, COORD_DIGITS)]}


def clean_photo(data: bytes, mime_type: str) -> CleanPhoto:
    """Return a JPEG, PNG or WebP photo written again without metadata, upright, with its GPS position.

    The caller has checked the type from the bytes and the pixel count; a file Pillow cannot decode is a
    400 naming the ``file`` field.
    """
    if mime_type not in FORMATS:
        raise ValueError(f"not a photo type: {mime_type}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            location = gps_location(img.getexif())
            lossless = mime_type == "image/webp" and webp_is_lossless(data)
            # A JPEG is written again with its own quantisation tables and chroma subsampling, so it keeps
            # its quality (and size); read them before the pixels are turned.
            tables = getattr(img, "quantization", None)
            jpeg_options: dict[str, Any] = ({"qtables": tables, "subsampling": JpegImagePlugin.get_sampling(img)}
                                            if tables else {"quality": JPEG_QUALITY})
            ImageOps.exif_transpose(img, in_place=True)
            img.info = {key: img.info[key] for key in KEEP_INFO if key in img.info}
            out = io.BytesIO()
            if mime_type == "image/jpeg":
                icc = img.info.get("icc_profile")
                # comment=b"": Pillow would otherwise copy the JPEG comment (COM) of the original.
                img.save(out, "JPEG", comment=b"", **({"icc_profile": icc} if icc else {}), **jpeg_options)
            elif mime_type == "image/png":
                img.save(out, "PNG")
            else:
                img.save(out, "WEBP", lossless=lossless, quality=100 if lossless else WEBP_QUALITY,
                         icc_profile=img.info.get("icc_profile") or "")
            width, height = img.size
    except Exception as exc:  # Pillow raises many types for corrupt input; all mean "not a readable image"
        raise ValidationError(FieldError("file", f"not a readable {mime_type} image ({type(exc).__name__})")) from None
    return CleanPhoto(data=out.getvalue(), mime_type=mime_type, width=width, height=height, location=location)


def gps_location(exif: Image.Exif) -> tuple[float, float] | None:
    """Return (longitude, latitude) from EXIF GPS tags, or None when absent, void, malformed or (0, 0)."""
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # a damaged GPS block is read as "no position", never as a failed upload
        return None
    if not gps:
        return None
    if _text(gps.get(ExifTags.GPS.GPSStatus)) == "V":  # "measurement void": the receiver had no fix
        return None
    lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), _text(gps.get(ExifTags.GPS.GPSLatitudeRef)), "N", "S", 90)
    lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), _text(gps.get(ExifTags.GPS.GPSLongitudeRef)), "E", "W", 180)
    if lat is None or lon is None or (lat == 0 and lon == 0):  # (0, 0) is what cameras write without a fix
        return None
    return round(lon, COORD_DIGITS), round(lat, COORD_DIGITS)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value.strip("\x00 ").upper() if isinstance(value, str) else None


def _degrees(value: Any, ref: str | None, positive: str, negative: str, limit: float) -> float | None:
    """Return signed decimal degrees from EXIF (degrees, minutes, seconds) rationals and a hemisphere letter."""
    if ref not in (positive, negative):
        return None  # without the hemisphere the sign is a guess
    parts = value if isinstance(value, tuple) else (value,)
    if not 1 <= len(parts) <= 3:
        return None
    try:
        numbers = [float(part) for part in parts]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not all(math.isfinite(n) and n >= 0 for n in numbers) or any(n >= 60 for n in numbers[1:]):
        return None
    degrees = sum(n / 60**i for i, n in enumerate(numbers))
    if degrees > limit:
        return None
    return -degrees if ref == negative else degrees


def webp_is_lossless(data: bytes) -> bool:
    """Return whether a WebP file's image is lossless (a ``VP8L`` chunk), by walking its RIFF chunks."""
    offset = 12
    while offset + 8 <= len(data):
        kind, size = data[offset:offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        if kind == b"VP8L":
            return True
        if kind == b"VP8 ":
            return False
        offset += 8 + size + (size & 1)
    return False
