"""Open311 GeoReport v2 under hypothesis: it is not in the OpenAPI document, so it is fuzzed here.

The request form (POST ``requests``) gets random fields and values, valid ones among them; every GET
gets random path segments and query parameters. Whatever arrives, the answer is one the
specification allows (200, 400, 403, 404, 405), never a 5xx, in the format the URL asked for, and
a well-formed document: XML that parses, JSON that parses, errors as a list of ``{code, description}``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from tests.security.conftest import OPEN311_KEY
from tests.security.fuzzing import hypothesis_settings

ALLOWED = {200, 400, 403, 404, 405}
FIELDS = ("api_key", "jurisdiction_id", "service_code", "lat", "long", "address_string", "address_id", "email",
          "device_id", "account_id", "first_name", "last_name", "phone", "description", "media_url",
          "attribute[WHISPAWN]")
# Text that tends to break things: controls, markup, quotes, SQL, surrogates of other planes, long runs.
nasty = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "\x07", "\r\n", "<b>x</b>", "' OR '1'='1", "🙂" * 10, "\u202e", "x" * 5000,
                     "NaN", "-inf", "1e999", "36.02", "115.72", "TD02", "MS03", "379901", "371521"]),
)
lat_text = st.one_of(st.floats(35.99, 36.06).map(repr), nasty)
long_text = st.one_of(st.floats(115.69, 115.81).map(repr), nasty)
form = st.fixed_dictionaries(
    {"api_key": st.one_of(st.just(OPEN311_KEY), nasty), "service_code": st.one_of(st.sampled_from(["TD02", "MS03"]),
                                                                                   nasty),
     "lat": lat_text, "long": long_text},
    optional={name: nasty for name in FIELDS if name not in ("api_key", "service_code", "lat", "long")},
)


def check_document(response, fmt: str) -> None:
    """Assert the answer is well-formed in the asked format, and an error list when it is an error."""
    assert response.status_code in ALLOWED, (response.status_code, response.data[:300])
    body = response.get_data()
    if fmt == "xml":
        assert response.mimetype == "text/xml"
        root = ET.fromstring(body)
        if response.status_code >= 400:
            assert root.tag == "errors" and root.findall("error/code")
    else:
        assert response.mimetype == "application/json"
        document = json.loads(body)
        if response.status_code >= 400:
            assert isinstance(document, list) and document
            assert all(set(e) == {"code", "description"} and e["code"] == response.status_code for e in document)


@hypothesis_settings(60)
@given(fields=form, fmt=st.sampled_from(["json", "xml"]), key=st.one_of(st.none(), nasty),
       multipart=st.booleans())
def test_the_request_form_answers_in_the_specification_format(sec_world, fields, fmt, key, multipart) -> None:
    headers = {} if key is None or any(c in key for c in "\r\n\x00") else {"Idempotency-Key": key}
    response = sec_world.client().post(f"/open311/v2/requests.{fmt}", data=fields, headers=headers,
                                       content_type="multipart/form-data" if multipart else None)
    check_document(response, fmt)


segment = st.one_of(nasty.filter(lambda s: s and "/" not in s), st.sampled_from(["TD02", "AJ20210000001"]))
query = st.dictionaries(st.sampled_from(["service_request_id", "service_code", "status", "start_date", "end_date",
                                         "jurisdiction_id", "api_key", "page"]),
                        st.one_of(nasty, st.sampled_from(["open", "closed", "open,closed", "2021-05-01T00:00:00Z",
                                                          "2021-05-01T00:00:00+08:00", "2021-05-01"])), max_size=4)


@hypothesis_settings(80)
@given(kind=st.sampled_from(["services", "service", "requests", "request", "token", "discovery", "other"]),
       value=segment, fmt=st.sampled_from(["json", "xml"]), params=query)
def test_every_get_answers_in_the_specification_format(sec_world, kind, value, fmt, params) -> None:
    quoted = quote(value, safe="")
    path = {"services": f"/open311/v2/services.{fmt}", "service": f"/open311/v2/services/{quoted}.{fmt}",
            "requests": f"/open311/v2/requests.{fmt}", "request": f"/open311/v2/requests/{quoted}.{fmt}",
            "token": f"/open311/v2/tokens/{quoted}.{fmt}", "discovery": f"/open311/discovery.{fmt}",
            "other": f"/open311/v2/{quoted}.{fmt}"}[kind]
    response = sec_world.client().get(path, query_string=params)
    check_document(response, fmt)


@hypothesis_settings(20)
@given(method=st.sampled_from(["PUT", "PATCH", "DELETE"]), fmt=st.sampled_from(["json", "xml"]))
def test_other_methods_are_refused_in_the_specification_format(sec_world, method, fmt) -> None:
    response = sec_world.client().open(f"/open311/v2/requests.{fmt}", method=method)
    check_document(response, fmt)
    assert response.status_code == 405
