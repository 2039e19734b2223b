"""The wire contract (proto/openapi.yaml) and the handlers stay in step: every registered
route is documented and every documented operation exists, and live responses match what
the contract declares for them."""

import re

import pytest

import latchtest as lt

ROUTE_ADD = re.compile(r'lt_router_add\(\s*router\s*,\s*"([A-Z]+)"\s*,\s*"([^"]+)"')


def registered_routes():
    routes = set()
    for src in (lt.ROOT / "lib" / "api").glob("*.c"):
        routes |= set(ROUTE_ADD.findall(src.read_text()))
    return routes


def test_every_route_is_documented_and_every_operation_exists(openapi):
    routes = registered_routes()
    assert routes, "no lt_router_add calls found in lib/api"
    documented = openapi.operations()
    assert routes - documented == set(), "routes missing from proto/openapi.yaml"
    assert documented - routes == set(), "operations in proto/openapi.yaml that no handler registers"


def test_every_operation_has_an_operation_id_and_responses(openapi):
    ids = []
    for path, item in openapi.doc["paths"].items():
        for method, op in item.items():
            assert op.get("operationId"), f"{method.upper()} {path} has no operationId"
            assert op.get("responses"), f"{method.upper()} {path} declares no responses"
            ids.append(op["operationId"])
    assert len(ids) == len(set(ids)), "duplicate operationId"


CASES = [
    ("GET", "/healthz", "/healthz", None),
    ("GET", "/readyz", "/readyz", None),
    ("GET", "/metrics", "/metrics", None),
    ("GET", "/debug/sleep", "/debug/sleep?ms=1", None),
    ("GET", "/debug/sleep", "/debug/sleep?ms=x", None),
    ("POST", "/debug/echo", "/debug/echo", {"json": {"a": [1, {"b": None}]}}),
    ("POST", "/debug/echo", "/debug/echo", {"content": b"{", "headers": {"content-type": "application/json"}}),
    ("POST", "/debug/echo", "/debug/echo", {"content": b"{}", "headers": {"content-type": "text/plain"}}),
    ("POST", "/debug/echo", "/debug/echo", {"content": b"{\"p\":\"" + b"x" * 70000 + b"\"}",
                                            "headers": {"content-type": "application/json"}}),
]


@pytest.mark.parametrize("method,template,url,kw", CASES, ids=[f"{c[0]} {c[2][:30]}" for c in CASES])
def test_live_responses_match_the_contract(latchd, openapi, method, template, url, kw):
    with latchd.h2c() as c:
        r = c.request(method, url, **(kw or {}))
    openapi.check_response(method, template, r)
