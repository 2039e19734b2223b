#!/usr/bin/env python3
"""Cerbos-shaped decision requests -> Latch AuthZEN bodies (the document scenario).

  translate.py IN.json OUT.json      one body: Cerbos REST CheckResources
                                     ({principal, resources: [{resource, actions}]}) or
                                     Cerbos AuthZEN (evaluation or evaluations)
  translate.py --bench CERBOS_BENCH_DIR OUT_DIR
                                     every body the decisions benchmark uses, plus a
                                     10-evaluation batch (and its Cerbos REST twin) and
                                     expected.json with the allow counts

The mapping (policies/*.yaml read it this way):
  principal.id                -> subject {type: "user", id}
  principal.roles, cerbos.roles -> subject.properties.roles (an unknown subject's roles), with
                                 the IdP role admin as doc_admin: Latch reserves `admin` for
                                 its built-in administrator role (roles.json)
  principal.attr.tenant       -> subject.properties.org     (subject.tenant is Latch's own)
  principal.attr.department   -> subject.properties.department
  request_ip, request_time, tz -> context (AuthZEN's place for the request's circumstances)
  resource.kind/id/attr       -> resource {type, id, properties}
  resource.scope, cerbos.scope -> resource.properties.scope
A Latch batch puts the subject and context in the defaults and one {resource, action} per
item, as Cerbos's AuthZEN batch does. Stdlib only.
"""
import copy
import json
import os
import sys

CONTEXT_KEYS = ("request_ip", "request_time", "tz")
ROLE_NAMES = {"admin": "doc_admin"}


def subject_and_context(principal_id, roles, attrs):
    """Latch subject and context from a Cerbos principal's id, roles and attributes."""
    props, context = {"roles": [ROLE_NAMES.get(r, r) for r in roles]}, {}
    for k, v in attrs.items():
        if k in CONTEXT_KEYS:
            context[k] = v
        elif k == "tenant":
            props["org"] = v
        elif k not in ("roles", "cerbos.roles"):
            props[k] = v
    return {"type": "user", "id": principal_id, "properties": props}, context


def resource_of(kind, rid, attrs, scope=None):
    props = {k: v for k, v in attrs.items() if k != "cerbos.scope"}
    scope = attrs.get("cerbos.scope", scope)
    if scope:
        props["scope"] = scope
    return {"type": kind, "id": rid, "properties": props}


def evaluation(principal, resource, action):
    """One Latch evaluation body for a Cerbos-style case (cases.jsonl / check_cases.py shape)."""
    subject, context = subject_and_context(principal["id"], principal.get("roles", []), principal.get("attr", {}))
    return {"subject": subject, "action": {"name": action},
            "resource": resource_of(resource["kind"], resource["id"], resource.get("attr", {}),
                                    resource.get("scope")),
            "context": context}


def from_rest(body):
    """Cerbos POST /api/check/resources -> Latch evaluation (one decision) or evaluations."""
    p = body["principal"]
    subject, context = subject_and_context(p["id"], p.get("roles", []), p.get("attr", {}))
    items = []
    for entry in body["resources"]:
        r = entry["resource"]
        res = resource_of(r["kind"], r["id"], r.get("attr", {}), r.get("scope"))
        items.extend({"resource": res, "action": {"name": a}} for a in entry["actions"])
    if len(items) == 1:
        return {"subject": subject, "action": items[0]["action"], "resource": items[0]["resource"],
                "context": context}
    return {"subject": subject, "context": context, "evaluations": items}


def _authzen_subject(s, context):
    props = dict(s.get("properties", {}))
    roles = props.pop("cerbos.roles", None) or props.pop("roles", None) or [s["type"]]
    subject, ctx = subject_and_context(s["id"], roles, props)
    merged = dict(context or {})
    merged.update(ctx)
    return subject, merged


def _authzen_resource(r):
    return resource_of(r["type"], r["id"], r.get("properties", {}))


def from_authzen(body):
    """Cerbos AuthZEN evaluation(s) -> Latch AuthZEN evaluation(s)."""
    subject, context = _authzen_subject(body["subject"], body.get("context"))
    if "evaluations" not in body:
        return {"subject": subject, "action": copy.deepcopy(body["action"]),
                "resource": _authzen_resource(body["resource"]), "context": context}
    items = []
    for it in body["evaluations"]:
        out = {}
        if "subject" in it:
            out["subject"], _ = _authzen_subject(it["subject"], None)
        if "resource" in it:
            out["resource"] = _authzen_resource(it["resource"])
        if "action" in it:
            out["action"] = copy.deepcopy(it["action"])
        items.append(out)
    top = {"subject": subject, "context": context, "evaluations": items}
    for k in ("action", "resource"):
        if k in body:
            top[k] = _authzen_resource(body[k]) if k == "resource" else copy.deepcopy(body[k])
    if "options" in body:
        top["options"] = copy.deepcopy(body["options"])
    return top


def translate(body):
    return from_rest(body) if "principal" in body else from_authzen(body)


def batch10_rest(batch10x3):
    """A 10-decision Cerbos REST body from batch10x3: its 10 documents, one action each
    (read, write, share in turn), so a batch of 10 mixes allows and denies like the 30."""
    body = copy.deepcopy(batch10x3)
    cycle = ["read", "write", "share"]
    for i, entry in enumerate(body["resources"]):
        entry["actions"] = [cycle[i % 3]]
    body["requestId"] = "bench10"
    return body


def rest_to_authzen(rest):
    """Cerbos REST body -> the same decisions as a Cerbos AuthZEN evaluations body."""
    p = rest["principal"]
    props = dict(p.get("attr", {}))
    props["cerbos.roles"] = p.get("roles", [])
    items = []
    for entry in rest["resources"]:
        r = entry["resource"]
        rp = dict(r.get("attr", {}))
        if r.get("scope"):
            rp["cerbos.scope"] = r["scope"]
        items.extend({"resource": {"type": r["kind"], "id": r["id"], "properties": rp}, "action": {"name": a}}
                     for a in entry["actions"])
    return {"subject": {"type": "user", "id": p["id"], "properties": props}, "context": {}, "evaluations": items}


def allow_count(rest, decide):
    """(decisions, allows) of a Cerbos REST body under `decide(principal, resource, action)`."""
    n = allows = 0
    for entry in rest["resources"]:
        for a in entry["actions"]:
            n += 1
            allows += decide(rest["principal"], entry["resource"], a) == "allow"
    return n, allows


def write_json(path, doc):
    with open(path, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))


def bench(cerbos_dir, out_dir):
    """Writes every body of the decisions benchmark into out_dir (see the module doc)."""
    sys.path.insert(0, os.path.join(cerbos_dir, "tools"))
    from check_cases import reference_decide  # the oracle, read from the peer's folder

    bdir = os.path.join(cerbos_dir, "bench")
    load = lambda name: json.load(open(os.path.join(bdir, name)))
    expected = load("expected.json")
    os.makedirs(out_dir, exist_ok=True)
    b10 = batch10_rest(load("batch10x3.json"))
    write_json(os.path.join(out_dir, "cerbos_rest_batch10.json"), b10)
    write_json(os.path.join(out_dir, "cerbos_authzen_batch10.json"), rest_to_authzen(b10))
    n, allows = allow_count(b10, reference_decide)
    expected["batch10"] = {"decisions": n, "allow": allows}
    for payload in ("single", "batch10x3"):
        n, allows = allow_count(load(f"{payload}.json"), reference_decide)
        if {"decisions": n, "allow": allows} != expected[payload]:
            raise SystemExit(f"reference_decide disagrees with bench/expected.json on {payload}: {n}/{allows}")
    write_json(os.path.join(out_dir, "latch_single.json"), from_rest(load("single.json")))
    write_json(os.path.join(out_dir, "latch_batch10x3.json"), from_rest(load("batch10x3.json")))
    write_json(os.path.join(out_dir, "latch_batch10.json"), from_rest(b10))
    # The AuthZEN bodies translate to the same Latch bodies (checked, not written twice).
    for a, b in (("authzen_single.json", "latch_single.json"), ("authzen_batch10x3.json", "latch_batch10x3.json")):
        if translate(load(a)) != json.load(open(os.path.join(out_dir, b))):
            raise SystemExit(f"{a} and the REST body translate differently")
    write_json(os.path.join(out_dir, "expected.json"), expected)


def main(argv):
    if len(argv) == 4 and argv[1] == "--bench":
        bench(argv[2], argv[3])
        return 0
    if len(argv) == 3:
        write_json(argv[2], translate(json.load(open(argv[1]))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
