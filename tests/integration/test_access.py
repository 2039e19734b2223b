"""Decisions (issue 6): AuthZEN Authorization API 1.0 (/access/v1/evaluation(s)), RBAC roles and
ABAC policy documents administered through /v1/admin/roles, /v1/admin/{users,clients}/{id}/roles
and /v1/admin/policies, and their propagation to every instance within a second.

One latchd (A) and a second instance (B) on the same database are shared by the module. The
world:

  ops     global admin root: the global role `auditor` (document:read) and the global policy
          `global-guard` (deny anything from an embargoed country, every tenant)
  alpha   tenant admin alice; roles viewer, editor (inherits viewer), cleared; the policy
          `documents` (owner, department, clearance, archived, business hours in Paris, an IP
          allow-list, one per-user deny and one per-user allow); Latch users ann (editor +
          cleared, department eng), mallory (viewer, eng: denied by name), sam (no role,
          department sales); decision clients `pdp` (decide) and `nodecide` (introspect only)
  beta    tenant admin bob; roles viewer (document:read!), editor (inherits viewer,
          document:edit), beta_only (document:*); its own policy `documents` (same id) that
          denies everything on archived documents
  todo    the AuthZEN interop "Todo" scenario (../shared/authzen-interop/todo)
  gamma   a tenant for the administration tests (roles, policies, placement rules)

Decisions come from each instance's in-memory snapshot, rebuilt on NOTIFY: a test that has just
changed something waits for the decision to change (wait_decision), never for a fixed time.
Requests pass `context.time` explicitly, so the business-hours cases are deterministic.
Every response goes through lt.ContractApi (never a 500; checked against proto/openapi.yaml
where it documents the path).
"""

import copy
import json
import time
import uuid

import pytest

import latchtest as lt
from latchtest import problem, strong_password as strong

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
                password_min_length=12)

INTEROP = lt.ROOT.parent / "shared" / "authzen-interop"

EVAL = "/access/v1/evaluation"
EVALS = "/access/v1/evaluations"
ROLES = "/v1/admin/roles"
ROLE = "/v1/admin/roles/{id}"
USER_ROLES = "/v1/admin/users/{id}/roles"
CLIENT_ROLES = "/v1/admin/clients/{id}/roles"
POLICIES = "/v1/admin/policies"
POLICY = "/v1/admin/policies/{id}"
VERSIONS = "/v1/admin/policies/{id}/versions"
ROLLBACK = "/v1/admin/policies/{id}/rollback"
VALIDATE = "/v1/admin/policies/validate"
TEST = "/v1/admin/policies/test"

# Instants (UTC) and what they are in Europe/Paris. 2024-05-15 is a Wednesday (CEST, UTC+2),
# 2024-05-18 a Saturday, 2024-01-15 a Monday (CET, UTC+1).
WED_NOON = "2024-05-15T10:00:00Z"       # 12:00 Paris: in hours
WED_0930 = "2024-05-15T07:30:00Z"       # 09:30 Paris: in hours (07:30 UTC would not be)
WED_1830 = "2024-05-15T16:30:00Z"       # 18:30 Paris: out of hours (16:30 UTC would be in)
WED_0859 = "2024-05-15T06:59:59Z"       # 08:59:59 Paris: out of hours
SAT_NOON = "2024-05-18T10:00:00Z"       # Saturday: out
MON_WINTER_0930 = "2024-01-15T08:30:00Z"  # 09:30 CET: in
MON_WINTER_1730 = "2024-01-15T16:30:00Z"  # 17:30 CET: out
ON_NET = "10.20.30.40"
OFF_NET = "192.168.1.10"


def uniq(prefix="x"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ctx(time=WED_NOON, ip=ON_NET, **more):
    c = {"time": time, "ip": ip}
    c.update(more)
    return c


def user(uid, **props):
    s = {"type": "user", "id": uid}
    if props:
        s["properties"] = props
    return s


def doc(did, **props):
    r = {"type": "document", "id": did}
    if props:
        r["properties"] = props
    return r


def act(name, **props):
    a = {"name": name}
    if props:
        a["properties"] = props
    return a


def evaluation(subject, action, resource, context=None, **more):
    body = {"subject": subject, "action": action, "resource": resource}
    if context is not None:
        body["context"] = context
    body.update(more)
    return body


# --- the policies -----------------------------------------------------------------------------

IN_HOURS = ('weekday(timestamp(context.time), "Europe/Paris") >= 1 && '
            'weekday(timestamp(context.time), "Europe/Paris") <= 5 && '
            'hour(timestamp(context.time), "Europe/Paris") >= 9 && '
            'hour(timestamp(context.time), "Europe/Paris") < 17')


def alpha_documents(mallory_id):
    return {
        "resource_type": "document",
        "description": "Alpha's documents: owners, departments, clearance, archive, hours, network.",
        "variables": {
            "on_network": 'ip_in(context.ip, ["10.0.0.0/8", "2001:db8::/32"])',
            "in_hours": IN_HOURS,
            "same_department": "has(subject.department) && subject.department == resource.department",
        },
        "derived_roles": [
            {"name": "owner", "when": "resource.owner == subject.id"},
            {"name": "colleague", "parent_roles": ["viewer"], "when": "variables.same_department"},
        ],
        "rules": [
            {"id": "archived-read-only", "effect": "deny", "actions": ["edit", "delete", "share"],
             "when": "resource.archived == true"},
            {"id": "secret-needs-clearance", "effect": "deny", "actions": ["*"],
             "when": 'resource.classification == "secret" && !("cleared" in subject.roles)'},
            {"id": "mallory-suspended", "effect": "deny", "actions": ["*"],
             "when": f'subject.type == "user" && subject.id == "{mallory_id}"'},
            {"id": "owner-full", "effect": "allow", "actions": ["read", "edit", "delete", "share"],
             "roles": ["owner"], "when": "variables.on_network"},
            {"id": "colleague-read", "effect": "allow", "actions": ["read"], "roles": ["colleague"],
             "when": "variables.on_network"},
            {"id": "editor-edit-in-hours", "effect": "allow", "actions": ["edit"], "roles": ["editor"],
             "when": "variables.same_department && variables.in_hours && variables.on_network"},
            {"id": "external-reviewer", "effect": "allow", "actions": ["read"],
             "when": 'subject.id == "ext-reviewer-7" && resource.classification == "public"'},
        ],
    }


BETA_DOCUMENTS = {
    "resource_type": "document",
    "rules": [
        {"id": "archived-frozen", "effect": "deny", "actions": ["*"], "when": "resource.archived == true"},
    ],
}

GLOBAL_GUARD = {
    "resource_type": "*",
    "description": "Every tenant: nothing from an embargoed country.",
    "rules": [
        {"id": "embargo", "effect": "deny", "actions": ["*"], "when": 'context.country in ["KP", "XX"]'},
    ],
}


# --- the world --------------------------------------------------------------------------------


class World(lt.AdminWorld):
    def decide(self, client, body, api=None, status=200):
        """POST /access/v1/evaluation as `client`; the answer's JSON (asserting `status`)."""
        r = (api or self.api).call("POST", EVAL, headers=lt.client_auth(client), json=body)
        assert r.status_code == status, r.text
        return r.json()

    def allowed(self, client, body, api=None):
        return self.decide(client, body, api)["decision"]

    def batch(self, client, body, api=None, status=200):
        r = (api or self.api).call("POST", EVALS, headers=lt.client_auth(client), json=body)
        assert r.status_code == status, r.text
        return r.json()

    def wait_decision(self, client, body, expected, api=None, timeout=3.0):
        """Polls until the decision is `expected` (a change is applied through NOTIFY);
        returns the seconds it took, or fails."""
        t0 = time.monotonic()
        got = lt.wait_for(lambda: self.allowed(client, body, api) == expected, timeout, 0.02)
        assert got, f"the decision did not become {expected} within {timeout} s: {json.dumps(body)}"
        return time.monotonic() - t0

    def make_user(self, token, email, **body):
        r = self.api.call("POST", "/v1/admin/users", token=token,
                          json={"email": email, "password": strong(), **body})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def set_roles(self, token, uid, roles, kind="users", status=200):
        tmpl = USER_ROLES if kind == "users" else CLIENT_ROLES
        r = self.api.call("PUT", tmpl, url=f"/v1/admin/{kind}/{uid}/roles", token=token, json={"roles": roles})
        assert r.status_code == status, r.text
        return r.json()

    def set_attributes(self, token, uid, attributes):
        r = self.api.call("PATCH", "/v1/admin/users/{id}", url=f"/v1/admin/users/{uid}", token=token,
                          json={"attributes": attributes})
        assert r.status_code == 200, r.text
        return r.json()

    def role(self, token, status=201, **body):
        r = self.api.call("POST", ROLES, token=token, json=body)
        assert r.status_code == status, r.text
        return r.json()

    def put_policy(self, token, pid, document, status="ok", **more):
        """PUT /v1/admin/policies/{pid}: asserts `status` ("ok": 200 or 201; None: anything)."""
        r = self.api.call("PUT", POLICY, url=f"/v1/admin/policies/{pid}", token=token,
                          json={"document": document, **more})
        if status == "ok":
            assert r.status_code in (200, 201), r.text
        elif status is not None:
            assert r.status_code == status, r.text
        return r

    def get_policy(self, token, pid, query=""):
        return self.api.call("GET", POLICY, url=f"/v1/admin/policies/{pid}{query}", token=token)


def todo_users():
    return json.loads((INTEROP / "todo" / "users.json").read_text())


def todo_policies():
    """The Todo rules as Latch policies, with the interop users imported into them.

    The interop PEP sends only the user's PID (`subject.id`), and the PDP must know each
    PID's email and roles itself. Latch enriches only its own users (by UUID), so the import
    puts the directory into the policy: one derived role per Todo role, granted when the
    subject's PID is one of that role's users, and a variable mapping each PID to its email
    (the owner id todos carry in `resource.properties.ownerID`). Requests are then sent exactly
    as the interop files give them."""
    users = todo_users()
    by_role = {}
    for pid, u in sorted(users.items()):
        for role in u["roles"]:
            by_role.setdefault(role, []).append(pid)
    email = "null"
    for pid, u in sorted(users.items(), reverse=True):
        email = f'subject.id == {json.dumps(pid)} ? {json.dumps(u["email"])} : ({email})'
    derived = [{"name": role, "when": f'subject.type == "user" && subject.id in {json.dumps(pids)}'}
               for role, pids in sorted(by_role.items())]
    todos = {
        "resource_type": "todo",
        "description": "AuthZEN interop Todo: https://authzen-interop.net",
        "variables": {"email": email},
        "derived_roles": derived,
        "rules": [
            {"id": "read-todos", "effect": "allow", "actions": ["can_read_todos"]},
            {"id": "create", "effect": "allow", "actions": ["can_create_todo"], "roles": ["admin", "editor"]},
            {"id": "update-any", "effect": "allow", "actions": ["can_update_todo"], "roles": ["evil_genius"]},
            {"id": "update-own", "effect": "allow", "actions": ["can_update_todo"], "roles": ["editor"],
             "when": "resource.ownerID == variables.email"},
            {"id": "delete-any", "effect": "allow", "actions": ["can_delete_todo"], "roles": ["admin"]},
            {"id": "delete-own", "effect": "allow", "actions": ["can_delete_todo"], "roles": ["editor"],
             "when": "resource.ownerID == variables.email"},
        ],
    }
    users_doc = {
        "resource_type": "user",
        "rules": [{"id": "read-user", "effect": "allow", "actions": ["can_read_user"]}],
    }
    return {"todo-todos": todos, "todo-users": users_doc}


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp, openapi):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    world = None
    try:
        world = _setup(factory, openapi)
        yield world
    finally:
        # also when the setup failed half-way: every latchd started is stopped
        lt.shut_down(factory, *([world.api.c, world.api_b.c] if world is not None else []))


def _setup(factory, openapi):
    A = factory(**SETTINGS)
    B = factory(database_url=A.config["database_url"], master_key=A.config["master_key"], **SETTINGS)
    api = lt.ContractApi(A, openapi, documented_only=True)
    world = World(A, api)
    world.A, world.B = A, B
    world.api_b = lt.ContractApi(B, openapi, documented_only=True)
    pw = {k: strong() for k in ("root", "alice", "bob", "tina", "gus")}
    ops = A.bootstrap("ops", "root@ops.test", pw["root"], global_admin=True)
    alpha = A.bootstrap("alpha", "alice@alpha.test", pw["alice"])
    beta = A.bootstrap("beta", "bob@beta.test", pw["bob"])
    todo = A.bootstrap("todo", "tina@todo.test", pw["tina"])
    gamma = A.bootstrap("gamma", "gus@gamma.test", pw["gus"])
    world.ops, world.alpha, world.beta = ops["tenant_id"], alpha["tenant_id"], beta["tenant_id"]
    world.todo_tenant, world.gamma = todo["tenant_id"], gamma["tenant_id"]
    world.root = world.login("ops", "root@ops.test", pw["root"])["access_token"]
    world.alice = world.login("alpha", "alice@alpha.test", pw["alice"])["access_token"]
    world.bob = world.login("beta", "bob@beta.test", pw["bob"])["access_token"]
    world.tina = world.login("todo", "tina@todo.test", pw["tina"])["access_token"]
    world.gus = world.login("gamma", "gus@gamma.test", pw["gus"])["access_token"]
    world.gus_id = gamma["user_id"]

    # decision clients
    world.pdp = lt.make_client(api.c, world.alice, prefix="pdp", permissions=["decide"])
    world.nodecide = lt.make_client(api.c, world.alice, prefix="nodecide", permissions=["introspect"])
    world.beta_pdp = lt.make_client(api.c, world.bob, prefix="pdp", permissions=["decide"])
    world.todo_pdp = lt.make_client(api.c, world.tina, prefix="pdp", permissions=["decide"])
    world.gamma_pdp = lt.make_client(api.c, world.gus, prefix="pdp", permissions=["decide"])

    # global objects
    world.role(world.root, name="auditor", description="reads every document", permissions=["document:read"],
               **{"global": True})
    world.put_policy(world.root, "global-guard", GLOBAL_GUARD, status=201, **{"global": True})

    # alpha: roles, users, attributes, policy
    world.role(world.alice, name="viewer", permissions=["wiki:read"])
    world.role(world.alice, name="editor", permissions=["wiki:edit"], parents=["viewer"])
    world.role(world.alice, name="cleared", description="may see secret documents")
    world.ann = world.make_user(world.alice, "ann@alpha.test")
    world.mallory = world.make_user(world.alice, "mallory@alpha.test")
    world.sam = world.make_user(world.alice, "sam@alpha.test")
    world.set_roles(world.alice, world.ann, ["editor", "cleared"])
    world.set_roles(world.alice, world.mallory, ["viewer"])
    world.set_attributes(world.alice, world.ann, {"department": "eng", "title": "Staff engineer"})
    world.set_attributes(world.alice, world.mallory, {"department": "eng"})
    world.set_attributes(world.alice, world.sam, {"department": "sales"})
    world.put_policy(world.alice, "documents", alpha_documents(world.mallory), status=201)

    # beta: same role names, other permissions; its own `documents`
    world.role(world.bob, name="viewer", permissions=["document:read"])
    world.role(world.bob, name="editor", permissions=["document:edit"], parents=["viewer"])
    world.role(world.bob, name="beta_only", permissions=["document:*"])
    world.put_policy(world.bob, "documents", BETA_DOCUMENTS, status=201)

    # todo
    for pid, document in todo_policies().items():
        world.put_policy(world.tina, pid, document, status=201)

    # Every write above is applied by one snapshot reload reading all of them: wait for the
    # last one (the todo policies) on both instances, and for the clients to authenticate.
    probe = evaluation(user("CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"),
                       act("can_create_todo"), {"type": "todo", "id": "t"})

    def ready(a):
        r = a.call("POST", EVAL, headers=lt.client_auth(world.todo_pdp), json=probe)
        return r.status_code == 200 and r.json()["decision"]

    assert lt.wait_for(lambda: ready(world.api), 5.0), "the todo policies never reached instance A"
    assert lt.wait_for(lambda: ready(world.api_b), 5.0), "the todo policies never reached instance B"
    for c in (world.pdp, world.beta_pdp, world.gamma_pdp):
        assert lt.wait_for(lambda: world.api.c.post(EVAL, headers=lt.client_auth(c), json=probe).status_code == 200,
                           5.0)
    return world


# --- 1. the document scenario ---------------------------------------------------------------


def scenario_cases(w):
    """(why, subject, action, resource, context, expected) through alpha's client."""
    ann, mallory, sam = w.ann, w.mallory, w.sam
    d1 = doc("d1", owner=ann, department="eng", classification="internal")
    d2 = doc("d2", owner="u-bob", department="eng", classification="internal")
    d4 = doc("d4", owner=ann, department="eng", classification="internal", archived=True)
    d5 = doc("d5", owner="u-carl", department="sales", classification="public")
    d6 = doc("d6", owner="u-bob", department="eng", classification="secret")
    bob = user("u-bob", roles=["viewer"], department="eng")
    carl = user("u-carl", roles=["viewer"], department="sales")
    aud = user("u-aud", roles=["auditor"])
    return [
        # owner (a derived role), on the network only
        ("owner reads", user(ann), act("read"), d1, ctx(), True),
        ("owner off the network", user(ann), act("read"), d1, ctx(ip=OFF_NET), False),
        ("owner without an ip", user(ann), act("read"), d1, {"time": WED_NOON}, False),
        ("owner deletes", user(ann), act("delete"), d1, ctx(), True),
        ("unknown owner reads", bob, act("read"), d2, ctx(), True),
        # department: a viewer (or an editor, who inherits viewer) of the same department reads
        ("colleague reads", user(ann), act("read"), d2, ctx(), True),
        ("other department", carl, act("read"), d2, ctx(), False),
        ("other department, its own", carl, act("read"), d5, ctx(), True),
        ("no department at all", user("u-nodept", roles=["viewer"]), act("read"), d2, ctx(), False),
        ("colleague may not delete", user(ann), act("delete"), d2, ctx(), False),
        # editors edit their department's documents in Paris business hours
        ("editor in hours", user(ann), act("edit"), d2, ctx(), True),
        ("editor 09:30 Paris", user(ann), act("edit"), d2, ctx(time=WED_0930), True),
        ("editor 08:59:59 Paris", user(ann), act("edit"), d2, ctx(time=WED_0859), False),
        ("editor 18:30 Paris", user(ann), act("edit"), d2, ctx(time=WED_1830), False),
        ("editor on Saturday", user(ann), act("edit"), d2, ctx(time=SAT_NOON), False),
        ("editor winter 09:30 CET", user(ann), act("edit"), d2, ctx(time=MON_WINTER_0930), True),
        ("editor winter 17:30 CET", user(ann), act("edit"), d2, ctx(time=MON_WINTER_1730), False),
        ("editor without a time", user(ann), act("edit"), d2, {"ip": ON_NET}, False),
        ("viewer may not edit", bob, act("edit"), doc("d7", department="eng"), ctx(), False),
        # the IP allow-list, IPv4 and IPv6
        ("ipv6 in range", user(ann), act("edit"), d2, ctx(ip="2001:db8:1::42"), True),
        ("ipv6 out of range", user(ann), act("edit"), d2, ctx(ip="2001:db9::1"), False),
        ("ipv4-mapped ipv6", user(ann), act("edit"), d2, ctx(ip="::ffff:10.1.2.3"), True),
        ("not an address", user(ann), act("edit"), d2, ctx(ip="10.0.0"), False),
        # archived documents are read-only (a deny rule beats the owner)
        ("archived: owner reads", user(ann), act("read"), d4, ctx(), True),
        ("archived: owner deletes", user(ann), act("delete"), d4, ctx(), False),
        ("archived false", user(ann), act("delete"), doc("d8", owner=ann, archived=False), ctx(), True),
        # classification: secret needs the cleared role, even for the owner
        ("secret, cleared colleague", user(ann), act("read"), d6, ctx(), True),
        ("secret, uncleared owner", bob, act("read"), d6, ctx(), False),
        ("secret, unknown cleared", user("u-dan", roles=["viewer", "cleared"], department="eng"), act("read"), d6,
         ctx(), True),
        # per-user overrides: mallory is denied by name; an external reviewer is allowed by name
        ("mallory (colleague) denied by name", user(mallory), act("read"), d2, ctx(), False),
        ("mallory's twin is allowed", user("u-twin", roles=["viewer"], department="eng"), act("read"), d2, ctx(),
         True),
        ("external reviewer, public", user("ext-reviewer-7"), act("read"), d5, ctx(), True),
        ("external reviewer, internal", user("ext-reviewer-7"), act("read"), d1, ctx(), False),
        ("another external", user("ext-reviewer-8"), act("read"), d5, ctx(), False),
        ("external reviewer may not edit", user("ext-reviewer-7"), act("edit"), d5, ctx(), False),
        # a global role (RBAC permission) works in the tenant; deny rules still win over it
        ("global auditor reads", aud, act("read"), d1, ctx(ip=OFF_NET), True),
        ("global auditor, secret", aud, act("read"), d6, ctx(), False),
        ("global auditor edits", aud, act("edit"), d1, ctx(), False),
        # a global policy applies to every tenant
        ("embargoed country", user(ann), act("read"), d1, ctx(country="KP"), False),
        ("other country", user(ann), act("read"), d1, ctx(country="FR"), True),
        # tenant roles grant only their own permissions (alpha's viewer: wiki:read)
        ("rbac wiki", bob, act("read"), {"type": "wiki", "id": "w1"}, None, True),
        ("rbac wiki edit needs editor", bob, act("edit"), {"type": "wiki", "id": "w1"}, None, False),
        ("rbac wiki edit by ann", user(ann), act("edit"), {"type": "wiki", "id": "w1"}, None, True),
        ("nothing for other types", user(ann), act("read"), {"type": "invoice", "id": "i1"}, None, False),
        # stored values win: sam has no role and is in sales, whatever the caller claims
        ("sam claims editor of eng", user(sam, roles=["editor"], department="eng"), act("read"), d2, ctx(), False),
        ("sam's claims, unknown id", user("u-sam", roles=["editor"], department="eng"), act("read"), d2, ctx(), True),
        ("ann claims nothing", user(ann, roles=[], department="sales"), act("edit"), d2, ctx(), True),
        ("mallory claims cleared+editor", user(mallory, roles=["editor", "cleared"]), act("read"), d2, ctx(), False),
        ("ann claims to be someone's owner", user(ann, id="u-bob"), act("delete"), d2, ctx(), False),
    ]


def test_document_scenario(w):
    failures = []
    for why, s, a, r, c, expected in scenario_cases(w):
        got = w.decide(w.pdp, evaluation(s, a, r, c))
        assert set(got) == {"decision"}, got
        if got["decision"] is not expected:
            failures.append(f"{why}: expected {expected}, got {got}")
    assert not failures, "\n".join(failures)


def test_document_scenario_as_one_batch(w):
    """The same cases in one execute_all batch: same answers, in order."""
    cases = scenario_cases(w)
    items = []
    for _, s, a, r, c, _ in cases:
        item = {"subject": s, "action": a, "resource": r}
        if c is not None:
            item["context"] = c
        items.append(item)
    got = w.batch(w.pdp, {"evaluations": items})["evaluations"]
    assert got == [{"decision": c[5]} for c in cases]


def test_scenario_on_the_second_instance(w):
    for why, s, a, r, c, expected in scenario_cases(w)[:12]:
        assert w.allowed(w.pdp, evaluation(s, a, r, c), api=w.api_b) is expected, why


def test_tenant_isolation(w):
    reader = user("u-bob", roles=["viewer"])
    d = doc("shared-1", department="eng")
    # the same question, two tenants: beta's viewer grants document:read, alpha's does not
    assert w.allowed(w.beta_pdp, evaluation(reader, act("read"), d, ctx())) is True
    assert w.allowed(w.pdp, evaluation(reader, act("read"), d, ctx())) is False
    # beta's own `documents` (same id) freezes archived documents; alpha's lets them be read
    archived = doc("a1", owner="u-bob", department="eng", archived=True)
    assert w.allowed(w.beta_pdp, evaluation(reader, act("read"), archived, ctx())) is False
    assert w.allowed(w.pdp, evaluation(reader, act("read"), archived, ctx())) is True
    # a role only beta has means nothing in alpha
    only = user("u-x", roles=["beta_only"])
    assert w.allowed(w.beta_pdp, evaluation(only, act("delete"), d)) is True
    assert w.allowed(w.pdp, evaluation(only, act("delete"), d)) is False
    # alpha's users are unknown in beta: no stored roles, no attributes, no alpha rules
    mine = doc("d1", owner=w.ann, department="eng")
    assert w.allowed(w.beta_pdp, evaluation(user(w.ann), act("read"), mine, ctx())) is False
    assert w.allowed(w.beta_pdp, evaluation(user(w.ann, roles=["editor"]), act("read"), mine, ctx())) is True
    e = w.decide(w.beta_pdp, evaluation(user(w.ann), act("read"), mine, ctx(), options={"explain": True}))
    assert e["context"]["explanation"]["roles"] == [], e
    assert e["context"]["explanation"]["derived_roles"] == [], e
    # mallory's deny-by-name is alpha's: in beta her id is just an unknown subject
    assert w.allowed(w.beta_pdp, evaluation(user(w.mallory, roles=["viewer"]), act("read"), d)) is True
    # the global role and the global policy are seen by both
    aud = user("u-aud", roles=["auditor"])
    for client in (w.pdp, w.beta_pdp):
        assert w.allowed(client, evaluation(aud, act("read"), doc("z"), ctx())) is True
        assert w.allowed(client, evaluation(aud, act("read"), doc("z"), ctx(country="KP"))) is False
    # a client of gamma (no roles, no policies of its own) sees none of it but the global ones
    assert w.allowed(w.gamma_pdp, evaluation(user(w.ann), act("read"), mine, ctx())) is False
    assert w.allowed(w.gamma_pdp, evaluation(aud, act("read"), mine, ctx())) is True


def test_tenant_admins_see_their_own_objects_only(w):
    # policies: bob's `documents` is beta's, alice's is alpha's; each sees the global one
    a = w.get_policy(w.alice, "documents")
    b = w.get_policy(w.bob, "documents")
    assert a.status_code == 200 and b.status_code == 200, (a.text, b.text)
    assert a.json()["tenant_id"] == w.alpha and b.json()["tenant_id"] == w.beta
    assert a.json()["document"]["rules"][0]["id"] == "archived-read-only"
    assert b.json()["document"]["rules"][0]["id"] == "archived-frozen"
    listed = w.api.call("GET", POLICIES, token=w.bob).json()["items"]
    assert {(p["id"], p["tenant_id"]) for p in listed} == {("documents", w.beta), ("global-guard", None)}
    # roles: bob lists beta's and the global ones, never alpha's
    roles = w.api.call("GET", ROLES, token=w.bob).json()["items"]
    assert all(r["tenant_id"] in (w.beta, None) for r in roles), roles
    assert {"viewer", "editor", "beta_only", "auditor"} <= {r["name"] for r in roles}
    alpha_viewer = [r for r in w.api.call("GET", ROLES, token=w.alice).json()["items"]
                    if r["name"] == "viewer"][0]
    assert alpha_viewer["tenant_id"] == w.alpha and alpha_viewer["permissions"] == ["wiki:read"]
    r = w.api.call("GET", ROLE, url=f"/v1/admin/roles/{alpha_viewer['id']}", token=w.bob)
    problem(r, 404, "not_found")
    r = w.api.call("PATCH", ROLE, url=f"/v1/admin/roles/{alpha_viewer['id']}", token=w.bob,
                   json={"permissions": ["*"]})
    problem(r, 404, "not_found")
    r = w.api.call("DELETE", ROLE, url=f"/v1/admin/roles/{alpha_viewer['id']}", token=w.bob)
    problem(r, 404, "not_found")
    # a tenant admin cannot change global objects either
    auditor = [r for r in roles if r["name"] == "auditor"][0]
    r = w.api.call("PATCH", ROLE, url=f"/v1/admin/roles/{auditor['id']}", token=w.bob, json={"permissions": ["*"]})
    problem(r, 404, "not_found")
    # alpha's users' roles: 404 for bob
    r = w.api.call("GET", USER_ROLES, url=f"/v1/admin/users/{w.ann}/roles", token=w.bob)
    problem(r, 404, "not_found")
    r = w.api.call("PUT", USER_ROLES, url=f"/v1/admin/users/{w.ann}/roles", token=w.bob, json={"roles": []})
    problem(r, 404, "not_found")


def test_stored_roles_and_attributes(w):
    r = w.api.call("GET", USER_ROLES, url=f"/v1/admin/users/{w.ann}/roles", token=w.alice)
    assert r.status_code == 200, r.text
    assert r.json() == {"roles": ["cleared", "editor"]}
    e = w.decide(w.pdp, evaluation(user(w.ann, roles=["auditor"], department="sales", email="x@evil.test"),
                                   act("read"), doc("d2", department="eng"), ctx(), options={"explain": True}))
    ex = e["context"]["explanation"]
    # stored roles, with inheritance (editor -> viewer); the caller's auditor is ignored
    assert sorted(ex["roles"]) == ["cleared", "editor", "viewer"], ex
    assert "colleague" in ex["derived_roles"], ex


def test_attribute_change_is_applied(w):
    uid = w.make_user(w.alice, f"{uniq('mover')}@alpha.test")
    w.set_roles(w.alice, uid, ["viewer"])
    w.set_attributes(w.alice, uid, {"department": "eng"})
    q = evaluation(user(uid), act("read"), doc("d2", department="eng"), ctx())
    w.wait_decision(w.pdp, q, True)
    w.set_attributes(w.alice, uid, {"department": "sales"})
    w.wait_decision(w.pdp, q, False)
    # a merge patch: removing the key
    sales = evaluation(user(uid), act("read"), doc("d5", department="sales"), ctx())
    assert w.allowed(w.pdp, sales) is True
    w.set_attributes(w.alice, uid, {"department": None})
    w.wait_decision(w.pdp, sales, False)
    # a disabled user is not enriched any more: the caller's properties count again
    w.set_attributes(w.alice, uid, {"department": "eng"})
    w.wait_decision(w.pdp, q, True)
    r = w.api.call("POST", "/v1/admin/users/{id}/disable", url=f"/v1/admin/users/{uid}/disable", token=w.alice)
    assert r.status_code == 200, r.text
    w.wait_decision(w.pdp, q, False)
    claimed = evaluation(user(uid, roles=["viewer"], department="eng"), act("read"), doc("d2", department="eng"),
                         ctx())
    assert w.allowed(w.pdp, claimed) is True


def test_client_subjects_and_their_roles(w):
    svc = lt.make_client(w.api.c, w.alice, prefix="svc")
    r = w.api.call("GET", CLIENT_ROLES, url=f"/v1/admin/clients/{svc['client_id']}/roles", token=w.alice)
    assert r.status_code == 200 and r.json() == {"roles": []}, r.text
    q = evaluation({"type": "client", "id": svc["client_id"]}, act("read"), {"type": "wiki", "id": "w"})
    assert w.allowed(w.pdp, q) is False
    assert w.set_roles(w.alice, svc["client_id"], ["viewer"], kind="clients") == {"roles": ["viewer"]}
    w.wait_decision(w.pdp, q, True)
    # a client's properties.roles do not count: its stored roles do
    q2 = evaluation({"type": "client", "id": svc["client_id"], "properties": {"roles": ["editor"]}}, act("edit"),
                    {"type": "wiki", "id": "w"})
    assert w.allowed(w.pdp, q2) is False
    # global_admin is never for clients; unknown roles are refused
    r = w.api.call("PUT", CLIENT_ROLES, url=f"/v1/admin/clients/{svc['client_id']}/roles", token=w.root,
                   json={"roles": ["global_admin"]})
    problem(r, 400, "invalid_request")
    r = w.api.call("PUT", CLIENT_ROLES, url=f"/v1/admin/clients/{svc['client_id']}/roles", token=w.alice,
                   json={"roles": ["no-such-role"]})
    problem(r, 400, "invalid_request")
    r = w.api.call("GET", CLIENT_ROLES, url="/v1/admin/clients/lc_nosuchclientnosuchclie/roles", token=w.alice)
    problem(r, 404, "not_found")
    r = w.api.call("GET", CLIENT_ROLES, url=f"/v1/admin/clients/{svc['client_id']}/roles", token=w.bob)
    problem(r, 404, "not_found")


# --- 2. batches -------------------------------------------------------------------------------

ALLOW_ITEM = {"resource": doc("d1x", owner="u-z", department="eng")}
DENY_ITEM = {"resource": doc("d2x", owner="u-q", department="sales")}


def batch_defaults():
    return {"subject": user("u-p", roles=["viewer"], department="eng"), "action": act("read"), "context": ctx()}


def test_batch_execute_all_order_and_length(w):
    items = [ALLOW_ITEM, DENY_ITEM, DENY_ITEM, ALLOW_ITEM, DENY_ITEM, ALLOW_ITEM]
    body = dict(batch_defaults(), evaluations=items)
    expected = [{"decision": d} for d in (True, False, False, True, False, True)]
    assert w.batch(w.pdp, body)["evaluations"] == expected
    body["options"] = {"evaluations_semantic": "execute_all"}
    assert w.batch(w.pdp, body)["evaluations"] == expected
    # 100 items, order kept
    many = [ALLOW_ITEM if i % 3 == 0 else DENY_ITEM for i in range(100)]
    got = w.batch(w.pdp, dict(batch_defaults(), evaluations=many))["evaluations"]
    assert got == [{"decision": i % 3 == 0} for i in range(100)]


def test_batch_deny_on_first_deny(w):
    body = dict(batch_defaults(), evaluations=[ALLOW_ITEM, ALLOW_ITEM, DENY_ITEM, ALLOW_ITEM, DENY_ITEM],
                options={"evaluations_semantic": "deny_on_first_deny"})
    assert w.batch(w.pdp, body)["evaluations"] == [{"decision": True}, {"decision": True}, {"decision": False}]
    body["evaluations"] = [ALLOW_ITEM, ALLOW_ITEM]
    assert w.batch(w.pdp, body)["evaluations"] == [{"decision": True}, {"decision": True}]
    body["evaluations"] = [DENY_ITEM, ALLOW_ITEM]
    assert w.batch(w.pdp, body)["evaluations"] == [{"decision": False}]


def test_batch_permit_on_first_permit(w):
    body = dict(batch_defaults(), evaluations=[DENY_ITEM, DENY_ITEM, ALLOW_ITEM, DENY_ITEM, ALLOW_ITEM],
                options={"evaluations_semantic": "permit_on_first_permit"})
    assert w.batch(w.pdp, body)["evaluations"] == [{"decision": False}, {"decision": False}, {"decision": True}]
    body["evaluations"] = [DENY_ITEM, DENY_ITEM]
    assert w.batch(w.pdp, body)["evaluations"] == [{"decision": False}, {"decision": False}]
    body["evaluations"] = [ALLOW_ITEM, DENY_ITEM]
    assert w.batch(w.pdp, body)["evaluations"] == [{"decision": True}]


def test_batch_defaults_are_replaced_whole(w):
    d = batch_defaults()
    # an item's subject replaces the default subject entirely: without the default's
    # properties (department eng) the colleague rule does not apply
    items = [
        {},                                                             # all defaults: allow
        {"subject": user("u-p")},                                       # no roles, no department: deny
        {"subject": user("u-p", roles=["viewer"])},                     # no department: deny
        {"subject": user("u-r", roles=["viewer"], department="eng")},   # allow
        {"resource": {"type": "document", "id": "d1x"}},                # no department on the resource: deny
        {"action": act("delete")},                                      # viewers do not delete: deny
        {"context": {"time": WED_NOON}},                                # no ip in the replaced context: deny
        {"context": ctx(ip="2001:db8::9")},                             # allow
    ]
    body = dict(d, resource=doc("d1x", department="eng"), evaluations=items)
    got = w.batch(w.pdp, body)["evaluations"]
    assert got == [{"decision": x} for x in (True, False, False, True, False, False, False, True)]
    # defaults may be absent when every item brings its own
    body = {"evaluations": [evaluation(user("u-p", roles=["viewer"], department="eng"), act("read"),
                                       doc("d", department="eng"), ctx())]}
    assert w.batch(w.pdp, body)["evaluations"] == [{"decision": True}]


def test_batch_invalid_items_in_place(w):
    items = [ALLOW_ITEM, {"resource": {"type": "document"}}, "not an object", {"subject": {"id": "x"}},
             {"action": {"name": 7}}, {"context": "x"}, ALLOW_ITEM]
    body = dict(batch_defaults(), resource=doc("dd", department="eng"), evaluations=items)
    got = w.batch(w.pdp, body)["evaluations"]
    assert len(got) == len(items)
    assert got[0] == {"decision": True} and got[-1] == {"decision": True}
    for i, item in enumerate(got[1:-1], 1):
        assert item["decision"] is False, item
        err = item["context"]["error"]
        assert err["status"] == "400" and isinstance(err["message"], str) and err["message"], item
    assert "resource" in got[1]["context"]["error"]["message"]
    assert "subject" in got[3]["context"]["error"]["message"]
    assert "action" in got[4]["context"]["error"]["message"]
    assert "context" in got[5]["context"]["error"]["message"]
    # under deny_on_first_deny an invalid item is a deny: the batch stops there
    body["options"] = {"evaluations_semantic": "deny_on_first_deny"}
    got = w.batch(w.pdp, body)["evaluations"]
    assert len(got) == 2 and got[0] == {"decision": True} and got[1]["decision"] is False


def test_batch_empty_or_missing_evaluations(w):
    full = dict(batch_defaults(), resource=doc("d1x", department="eng"))
    for extra in ({}, {"evaluations": []}):
        assert w.batch(w.pdp, dict(full, **extra)) == {"evaluations": [{"decision": True}]}
        denied = dict(full, resource=doc("d1x", department="sales"), **extra)
        assert w.batch(w.pdp, denied) == {"evaluations": [{"decision": False}]}
        # and then the defaults must make a valid request
        r = w.api.call("POST", EVALS, headers=lt.client_auth(w.pdp),
                       json=dict(batch_defaults(), **extra))
        problem(r, 400, "invalid_request", "resource")
    # options apply to a single evaluation too
    r = w.batch(w.pdp, dict(full, options={"evaluations_semantic": "deny_on_first_deny", "explain": True}))
    assert r["evaluations"][0]["decision"] is True
    assert r["evaluations"][0]["context"]["explanation"]["deciding"] == "documents#colleague-read"


def test_batch_bad_shapes(w):
    h = lt.client_auth(w.pdp)
    base = dict(batch_defaults(), resource=doc("d"))
    for body, field in [
        (dict(base, evaluations={"a": 1}), "evaluations"),
        (dict(base, evaluations="x"), "evaluations"),
        (dict(base, options="x"), "options"),
        (dict(base, options={"evaluations_semantic": "first_wins"}), "options.evaluations_semantic"),
        (dict(base, options={"evaluations_semantic": 3}), "options.evaluations_semantic"),
        (dict(base, evaluations=[{}] * 1001), "evaluations"),
    ]:
        r = w.api.call("POST", EVALS, headers=h, json=body)
        problem(r, 400, "invalid_request", field)
    # 1000 items is fine
    r = w.api.call("POST", EVALS, headers=h, json=dict(base, evaluations=[{}] * 1000))
    assert r.status_code == 200 and len(r.json()["evaluations"]) == 1000


# --- 3. explanations ----------------------------------------------------------------------------


def explain(w, client, body, api=None):
    body = dict(body, options={"explain": True})
    got = w.decide(client, body, api)
    assert set(got) == {"decision", "context"}, got
    ex = got["context"]["explanation"]
    assert ex["decision"] == ("allow" if got["decision"] else "deny"), got
    return got["decision"], ex


def test_explain_allow_by_rule(w):
    ok, ex = explain(w, w.pdp, evaluation(user(w.ann), act("edit"), doc("d2", owner="u-bob", department="eng"), ctx()))
    assert ok is True
    assert ex["deciding"] == "documents#editor-edit-in-hours", ex
    assert "documents#editor-edit-in-hours" in ex["matched"]
    assert "documents#colleague-read" not in ex["matched"]  # read rule, edit action
    assert ex["derived_roles"] == ["colleague"], ex
    assert sorted(ex["roles"]) == ["cleared", "editor", "viewer"]
    assert "denied_by" not in ex


def test_explain_deny_rule_beats_allows(w):
    ok, ex = explain(w, w.pdp, evaluation(user(w.ann), act("delete"),
                                          doc("d4", owner=w.ann, department="eng", archived=True), ctx()))
    assert ok is False
    assert ex["deciding"] == "documents#archived-read-only"
    assert ex["denied_by"] == ["documents#archived-read-only"]
    # the owner rule matched too, and is listed: the explanation is complete
    assert "documents#owner-full" in ex["matched"] and "documents#archived-read-only" in ex["matched"]
    assert "owner" in ex["derived_roles"]
    # two deny rules at once
    ok, ex = explain(w, w.pdp, evaluation(user(w.mallory), act("read"),
                                          doc("d6", department="eng", classification="secret"), ctx(country="KP")))
    assert ok is False
    assert set(ex["denied_by"]) == {"documents#secret-needs-clearance", "documents#mallory-suspended",
                                    "global-guard#embargo"}, ex
    assert ex["deciding"] in ex["denied_by"]


def test_explain_rbac_and_default(w):
    ok, ex = explain(w, w.pdp, evaluation(user("u-aud", roles=["auditor"]), act("read"), doc("z"), ctx()))
    assert ok is True and ex["deciding"] == "rbac:auditor:document:read", ex
    assert ex["roles"] == ["auditor"] and ex["derived_roles"] == []
    ok, ex = explain(w, w.pdp, evaluation(user("nobody"), act("read"), {"type": "invoice", "id": "1"}))
    assert ok is False and ex["deciding"] == "default" and ex["matched"] == [], ex
    assert "denied_by" not in ex
    # the same decision with and without explain
    for _, s, a, r, c, expected in scenario_cases(w):
        ok, ex = explain(w, w.pdp, evaluation(s, a, r, c))
        assert ok is expected, ex


def test_explain_in_batches(w):
    body = dict(batch_defaults(), evaluations=[ALLOW_ITEM, DENY_ITEM], options={"explain": True})
    got = w.batch(w.pdp, body)["evaluations"]
    assert got[0]["decision"] is True and got[0]["context"]["explanation"]["deciding"] == "documents#colleague-read"
    assert got[1]["decision"] is False and got[1]["context"]["explanation"]["deciding"] == "default"
    # explain false or absent: no context at all (the interop harness compares items as JSON)
    body["options"] = {"explain": False}
    assert w.batch(w.pdp, body)["evaluations"] == [{"decision": True}, {"decision": False}]


# --- 4. propagation -----------------------------------------------------------------------------


def test_policy_change_on_A_is_decided_on_B_within_a_second(w):
    pid = uniq("prop")
    rtype = uniq("gadget")
    q = evaluation(user("u-prop"), act("use"), {"type": rtype, "id": "g1"})
    assert w.allowed(w.pdp, q, api=w.api_b) is False
    document = {"resource_type": rtype, "rules": [{"id": "all-may-use", "effect": "allow", "actions": ["use"]}]}
    t0 = time.monotonic()
    w.put_policy(w.alice, pid, document, status=201)
    took = poll(w, q, True, t0)
    assert took <= 1.0, f"instance B decided the new policy only after {took:.3f} s"
    # an update, then a delete, likewise
    document["rules"][0]["effect"] = "deny"
    t0 = time.monotonic()
    w.put_policy(w.alice, pid, document, status=200)
    assert poll(w, q, False, t0) <= 1.0
    document["rules"][0]["effect"] = "allow"
    w.put_policy(w.alice, pid, document, status=200)
    assert poll(w, q, True, time.monotonic()) <= 1.0
    t0 = time.monotonic()
    r = w.api.call("DELETE", POLICY, url=f"/v1/admin/policies/{pid}", token=w.alice)
    assert r.status_code == 204, r.text
    assert poll(w, q, False, t0) <= 1.0


def test_role_changes_propagate_within_a_second(w):
    name = uniq("prop")
    rtype = uniq("gizmo")
    q = evaluation(user("u-prop", roles=[name]), act("read"), {"type": rtype, "id": "x"})
    t0 = time.monotonic()
    role = w.role(w.alice, name=name, permissions=[f"{rtype}:read"])
    assert poll(w, q, True, t0) <= 1.0
    t0 = time.monotonic()
    r = w.api.call("PATCH", ROLE, url=f"/v1/admin/roles/{role['id']}", token=w.alice,
                   json={"permissions": [f"{rtype}:write"]})
    assert r.status_code == 200, r.text
    assert poll(w, q, False, t0) <= 1.0
    # an assignment to a Latch user
    uid = w.make_user(w.alice, f"{uniq('p')}@alpha.test")
    qu = evaluation(user(uid), act("write"), {"type": rtype, "id": "x"})
    t0 = time.monotonic()
    w.set_roles(w.alice, uid, [name])
    assert poll(w, qu, True, t0) <= 1.0
    t0 = time.monotonic()
    r = w.api.call("DELETE", ROLE, url=f"/v1/admin/roles/{role['id']}", token=w.alice)
    assert r.status_code == 204, r.text
    assert poll(w, qu, False, t0) <= 1.0


def poll(w, q, expected, t0, limit=1.0):
    """Polls instance B until it decides `q` as `expected`, for up to `limit` s after t0 (plus
    the last request's own time); returns the seconds since t0 when it did, or fails."""
    while True:
        if w.allowed(w.pdp, q, api=w.api_b) is expected:
            return time.monotonic() - t0
        if time.monotonic() - t0 > limit:
            pytest.fail(f"instance B did not decide {expected} within {limit} s: {json.dumps(q)}")
        time.sleep(0.01)


# --- 5. administration: roles ---------------------------------------------------------------------


ROLE_KEYS = {"builtin", "id", "tenant_id", "name", "description", "permissions", "parents", "created_at", "updated_at"}


def test_role_crud(w):
    name = uniq("clerk")
    role = w.role(w.gus, name=name, description="files things", permissions=["folder:read", "*:list", "doc:*"])
    assert set(role) == ROLE_KEYS
    uuid.UUID(role["id"])
    assert role["tenant_id"] == w.gamma and role["name"] == name and role["parents"] == []
    assert role["permissions"] == ["folder:read", "*:list", "doc:*"] and role["description"] == "files things"
    r = w.api.call("GET", ROLE, url=f"/v1/admin/roles/{role['id']}", token=w.gus)
    assert r.status_code == 200 and r.json() == role
    assert role["id"] in [x["id"] for x in w.api.call("GET", ROLES, token=w.gus).json()["items"]]
    # defaults
    bare = w.role(w.gus, name=uniq("bare"))
    assert bare["permissions"] == [] and bare["parents"] == [] and bare["description"] == ""
    # patch: only what is given changes
    r = w.api.call("PATCH", ROLE, url=f"/v1/admin/roles/{role['id']}", token=w.gus,
                   json={"permissions": ["*"], "parents": [bare["name"]]})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["permissions"] == ["*"] and p["parents"] == [bare["name"]] and p["description"] == "files things"
    assert p["updated_at"] >= role["updated_at"] and p["created_at"] == role["created_at"]
    # the same name twice in a tenant: 409; in another tenant: fine
    problem(w.api.call("POST", ROLES, token=w.gus, json={"name": name}), 409, "conflict")
    other = w.role(w.bob, name=name)
    assert other["tenant_id"] == w.beta
    # delete: 409 while inherited, 204 after, then 404
    r = w.api.call("DELETE", ROLE, url=f"/v1/admin/roles/{bare['id']}", token=w.gus)
    problem(r, 409, "role_in_use")
    r = w.api.call("PATCH", ROLE, url=f"/v1/admin/roles/{role['id']}", token=w.gus, json={"parents": []})
    assert r.status_code == 200 and r.json()["parents"] == []
    for rid in (bare["id"], role["id"], other["id"]):
        tok = w.bob if rid == other["id"] else w.gus
        r = w.api.call("DELETE", ROLE, url=f"/v1/admin/roles/{rid}", token=tok)
        assert r.status_code == 204 and r.content == b"", r.text
        r = w.api.call("GET", ROLE, url=f"/v1/admin/roles/{rid}", token=tok)
        problem(r, 404, "not_found")
    problem(w.api.call("DELETE", ROLE, url=f"/v1/admin/roles/{role['id']}", token=w.gus), 404, "not_found")
    problem(w.api.call("GET", ROLE, url="/v1/admin/roles/not-a-uuid", token=w.gus), 404, "not_found")


def test_role_validation(w):
    for body, field in [
        ({}, "name"),
        ({"name": "Upper"}, "name"),
        ({"name": "9lives"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "ok", "permissions": "doc:read"}, "permissions"),
        ({"name": "ok", "permissions": ["doc"]}, "permissions"),
        ({"name": "ok", "permissions": ["doc:read", "doc:read"]}, "permissions"),
        ({"name": "ok", "permissions": ["a b:read"]}, "permissions"),
        ({"name": "ok", "parents": ["Not A Role"]}, "parents"),
        ({"name": "ok", "parents": [1]}, "parents"),
        ({"name": "ok", "description": 5}, "description"),
    ]:
        problem(w.api.call("POST", ROLES, token=w.gus, json=body), 400, "invalid_request", field)


def test_role_cycles_and_unknown_parents(w):
    a, b, c = uniq("ra"), uniq("rb"), uniq("rc")
    ra = w.role(w.gus, name=a)
    rb = w.role(w.gus, name=b, parents=[a])
    w.role(w.gus, name=c, parents=[b])
    # unknown parent
    body = problem(w.api.call("POST", ROLES, token=w.gus, json={"name": uniq("rd"), "parents": ["nope-x"]}),
                   400, "invalid_request")
    assert "nope-x" in body.get("detail", "") + json.dumps(body.get("errors", [])), body
    # a -> c closes a cycle (c -> b -> a)
    r = w.api.call("PATCH", ROLE, url=f"/v1/admin/roles/{ra['id']}", token=w.gus, json={"parents": [c]})
    body = problem(r, 400, "invalid_request")
    assert "cycle" in body.get("detail", ""), body
    # a role that is its own parent
    r = w.api.call("PATCH", ROLE, url=f"/v1/admin/roles/{rb['id']}", token=w.gus, json={"parents": [b]})
    problem(r, 400, "invalid_request")
    # nothing changed
    assert w.api.call("GET", ROLE, url=f"/v1/admin/roles/{ra['id']}", token=w.gus).json()["parents"] == []
    # a tenant role may inherit a global one; the global one is then in use
    rtype = uniq("inherited")
    g = w.role(w.root, name=uniq("glob"), permissions=[f"{rtype}:read"], **{"global": True})
    child = w.role(w.gus, name=uniq("child"), parents=[g["name"]])
    assert child["parents"] == [g["name"]]
    r = w.api.call("DELETE", ROLE, url=f"/v1/admin/roles/{g['id']}", token=w.root)
    problem(r, 409, "role_in_use")
    # inheritance reaches decisions: child -> global role's permission
    q = evaluation(user("u-c", roles=[child["name"]]), act("read"), {"type": rtype, "id": "1"})
    w.wait_decision(w.gamma_pdp, q, True)


def test_role_placement(w):
    # a tenant admin: its own tenant by default, or named; never global, never another tenant
    r = w.role(w.gus, name=uniq("own"), tenant_id=w.gamma)
    assert r["tenant_id"] == w.gamma
    problem(w.api.call("POST", ROLES, token=w.gus, json={"name": uniq("g"), "global": True}), 400,
            "invalid_request", "global")
    problem(w.api.call("POST", ROLES, token=w.gus, json={"name": uniq("t"), "tenant_id": w.alpha}), 400,
            "invalid_request", "tenant_id")
    problem(w.api.call("POST", ROLES, token=w.gus, json={"name": uniq("t"), "tenant_id": "not-a-uuid"}), 400,
            "invalid_request", "tenant_id")
    # a global admin: global, or any tenant, or its own by default
    g = w.role(w.root, name=uniq("glob"), **{"global": True})
    assert g["tenant_id"] is None
    t = w.role(w.root, name=uniq("forgamma"), tenant_id=w.gamma)
    assert t["tenant_id"] == w.gamma
    o = w.role(w.root, name=uniq("forops"))
    assert o["tenant_id"] == w.ops
    # gamma's admin sees the global one and the one made for gamma, not ops'
    ids = {x["id"] for x in w.api.call("GET", ROLES, token=w.gus).json()["items"]}
    assert g["id"] in ids and t["id"] in ids and o["id"] not in ids
    # a global role and a tenant role may share a name; the tenant's wins in that tenant
    name = uniq("shadow")
    w.role(w.root, name=name, permissions=["shadow:global"], **{"global": True})
    w.role(w.gus, name=name, permissions=["shadow:tenant"])
    q = evaluation(user("u-s", roles=[name]), act("tenant"), {"type": "shadow", "id": "1"})
    w.wait_decision(w.gamma_pdp, q, True)
    assert w.allowed(w.gamma_pdp, evaluation(user("u-s", roles=[name]), act("global"),
                                             {"type": "shadow", "id": "1"})) is False
    w.wait_decision(w.beta_pdp, evaluation(user("u-s", roles=[name]), act("global"), {"type": "shadow", "id": "1"}),
                    True)


def test_role_assignment_rules(w):
    uid = w.make_user(w.gus, f"{uniq('assignee')}@gamma.test")
    own = w.role(w.gus, name=uniq("mine"))
    glob = w.role(w.root, name=uniq("everyone"), **{"global": True})
    alpha_only = w.role(w.alice, name=uniq("alphaonly"))
    # own tenant's roles, global roles and the built-in admin: fine; PUT replaces
    got = w.set_roles(w.gus, uid, [own["name"], glob["name"], "admin"])
    assert sorted(got["roles"]) == sorted([own["name"], glob["name"], "admin"])
    got = w.set_roles(w.gus, uid, [own["name"]])
    assert got == {"roles": [own["name"]]}
    r = w.api.call("GET", USER_ROLES, url=f"/v1/admin/users/{uid}/roles", token=w.gus)
    assert r.json() == {"roles": [own["name"]]}
    # another tenant's role, an unknown role: 400 and nothing changed
    for bad in ([alpha_only["name"]], ["no-such-role"], [own["name"], "no-such-role"]):
        body = w.set_roles(w.gus, uid, bad, status=400)
        assert body["code"] == "invalid_request", body
    assert w.api.call("GET", USER_ROLES, url=f"/v1/admin/users/{uid}/roles", token=w.gus).json() == \
        {"roles": [own["name"]]}
    # global_admin only by a global admin
    body = w.set_roles(w.gus, uid, ["global_admin"], status=400)
    assert "global_admin" in body.get("detail", ""), body
    got = w.set_roles(w.root, uid, ["global_admin"])
    assert got == {"roles": ["global_admin"]}
    got = w.set_roles(w.root, uid, [])
    assert got == {"roles": []}
    # shapes
    for body, field in [({}, "roles"), ({"roles": "admin"}, "roles"), ({"roles": ["admin", "admin"]}, "roles"),
                        ({"roles": ["Bad Name"]}, "roles")]:
        r = w.api.call("PUT", USER_ROLES, url=f"/v1/admin/users/{uid}/roles", token=w.gus, json=body)
        problem(r, 400, "invalid_request", field)
    r = w.api.call("PUT", USER_ROLES, url=f"/v1/admin/users/{uuid.uuid4()}/roles", token=w.gus, json={"roles": []})
    problem(r, 404, "not_found")
    r = w.api.call("GET", USER_ROLES, url="/v1/admin/users/nope/roles", token=w.gus)
    problem(r, 404, "not_found")


def test_admin_surface_needs_an_admin(w):
    pw = strong()
    email = f"{uniq('plain')}@gamma.test"
    w.make_user(w.gus, email, password=pw)
    plain = w.login("gamma", email, pw)["access_token"]
    for method, tmpl, url, body in [
        ("GET", ROLES, ROLES, None),
        ("POST", ROLES, ROLES, {"name": "x"}),
        ("GET", POLICIES, POLICIES, None),
        ("PUT", POLICY, "/v1/admin/policies/p1", {"document": BETA_DOCUMENTS}),
        ("POST", VALIDATE, VALIDATE, {"document": BETA_DOCUMENTS}),
    ]:
        r = w.api.call(method, tmpl, url=url, token=plain, json=body)
        problem(r, 403, "forbidden")
        r = w.api.call(method, tmpl, url=url, json=body)
        assert r.status_code == 401, r.text


# --- 5. administration: policies ---------------------------------------------------------------


def simple_doc(rtype, effect="allow", action="read", when=None):
    rule = {"id": "r1", "effect": effect, "actions": [action]}
    if when is not None:
        rule["when"] = when
    return {"resource_type": rtype, "rules": [rule]}


POLICY_KEYS = {"id", "tenant_id", "resource_type", "version", "document", "created_at", "updated_at"}


def test_policy_put_versions_rollback_delete(w):
    pid = uniq("pol")
    rtype = uniq("widget")
    q = evaluation(user("u-1"), act("read"), {"type": rtype, "id": "1"})
    r = w.put_policy(w.gus, pid, simple_doc(rtype), status=201)
    p1 = r.json()
    assert set(p1) == POLICY_KEYS
    assert p1["id"] == pid and p1["version"] == 1 and p1["tenant_id"] == w.gamma and p1["resource_type"] == rtype
    assert p1["document"] == simple_doc(rtype)
    w.wait_decision(w.gamma_pdp, q, True)
    r = w.put_policy(w.gus, pid, simple_doc(rtype, effect="deny"), status=200)
    assert r.json()["version"] == 2 and r.json()["created_at"] == p1["created_at"]
    w.wait_decision(w.gamma_pdp, q, False)
    r = w.put_policy(w.gus, pid, simple_doc(rtype, action="write"), status=200)
    assert r.json()["version"] == 3
    got = w.get_policy(w.gus, pid)
    assert got.status_code == 200 and got.json()["version"] == 3
    assert got.json()["document"]["rules"][0]["actions"] == ["write"]
    # versions, newest first
    r = w.api.call("GET", VERSIONS, url=f"/v1/admin/policies/{pid}/versions", token=w.gus)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [v["version"] for v in items] == [3, 2, 1]
    assert [v["current"] for v in items] == [True, False, False]
    assert items[2]["document"] == simple_doc(rtype)
    assert all(v["actor"] == w.gus_id for v in items), items
    # roll back to version 1: a new version 4 with version 1's document
    r = w.api.call("POST", ROLLBACK, url=f"/v1/admin/policies/{pid}/rollback", token=w.gus, json={"version": 1})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 4 and r.json()["document"] == simple_doc(rtype)
    w.wait_decision(w.gamma_pdp, q, True)
    items = w.api.call("GET", VERSIONS, url=f"/v1/admin/policies/{pid}/versions", token=w.gus).json()["items"]
    assert [v["version"] for v in items] == [4, 3, 2, 1] and items[0]["current"]
    for bad in ({"version": 99}, ):
        r = w.api.call("POST", ROLLBACK, url=f"/v1/admin/policies/{pid}/rollback", token=w.gus, json=bad)
        problem(r, 404, "not_found")
    for bad in ({}, {"version": 0}, {"version": "1"}, {"version": 1.5}):
        r = w.api.call("POST", ROLLBACK, url=f"/v1/admin/policies/{pid}/rollback", token=w.gus, json=bad)
        problem(r, 400, "invalid_request", "version")
    # listed
    ids = [p["id"] for p in w.api.call("GET", POLICIES, token=w.gus).json()["items"]]
    assert pid in ids and "global-guard" in ids and "documents" not in ids
    # delete
    r = w.api.call("DELETE", POLICY, url=f"/v1/admin/policies/{pid}", token=w.gus)
    assert r.status_code == 204 and r.content == b""
    w.wait_decision(w.gamma_pdp, q, False)
    problem(w.get_policy(w.gus, pid), 404, "not_found")
    problem(w.api.call("DELETE", POLICY, url=f"/v1/admin/policies/{pid}", token=w.gus), 404, "not_found")
    problem(w.api.call("GET", VERSIONS, url=f"/v1/admin/policies/{pid}/versions", token=w.gus), 404, "not_found")
    r = w.api.call("POST", ROLLBACK, url=f"/v1/admin/policies/{pid}/rollback", token=w.gus, json={"version": 1})
    problem(r, 404, "not_found")
    # a new policy of the same id starts again at version 1
    assert w.put_policy(w.gus, pid, simple_doc(rtype), status=201).json()["version"] == 1


def test_policy_placement(w):
    pid = uniq("placed")
    rtype = uniq("placed")
    # the global admin: global, a named tenant, or its own tenant
    r = w.put_policy(w.root, pid, simple_doc(rtype), status=201, **{"global": True})
    assert r.json()["tenant_id"] is None
    r = w.put_policy(w.root, pid, simple_doc(rtype), status=201, tenant_id=w.gamma)
    assert r.json()["tenant_id"] == w.gamma
    # three policies of one id live side by side: each read names its place
    assert w.get_policy(w.root, pid, "?global=true").json()["tenant_id"] is None
    assert w.get_policy(w.root, pid, f"?tenant_id={w.gamma}").json()["tenant_id"] == w.gamma
    problem(w.get_policy(w.root, pid), 404, "not_found")  # ops has none
    assert w.get_policy(w.gus, pid).json()["tenant_id"] == w.gamma
    listed = w.api.call("GET", POLICIES, url=f"/v1/admin/policies?tenant_id={w.gamma}", token=w.root).json()["items"]
    assert {p["tenant_id"] for p in listed} == {w.gamma}
    problem(w.api.call("GET", POLICIES, url="/v1/admin/policies?tenant_id=nope", token=w.root), 400,
            "invalid_request", "tenant_id")
    # a tenant admin: never global, never another tenant
    problem(w.put_policy(w.gus, pid, simple_doc(rtype), status=None, **{"global": True}), 400,
            "invalid_request", "global")
    problem(w.put_policy(w.gus, pid, simple_doc(rtype), status=None, tenant_id=w.alpha), 400,
            "invalid_request", "tenant_id")
    problem(w.get_policy(w.gus, pid, f"?tenant_id={w.alpha}"), 400, "invalid_request", "tenant_id")
    problem(w.get_policy(w.gus, pid, "?global=true"), 400, "invalid_request", "global")
    # bob does not see gamma's
    problem(w.get_policy(w.bob, pid), 404, "not_found")
    problem(w.api.call("DELETE", POLICY, url=f"/v1/admin/policies/{pid}", token=w.bob), 404, "not_found")
    r = w.api.call("DELETE", POLICY, url=f"/v1/admin/policies/{pid}?global=true", token=w.root)
    assert r.status_code == 204
    assert w.get_policy(w.gus, pid).status_code == 200
    # ids
    for bad in ("-x", "a b", "x" * 129, "a%2Fb"):
        r = w.api.call("GET", POLICY, url=f"/v1/admin/policies/{bad}", token=w.gus)
        problem(r, 404, "not_found")


def test_invalid_documents_are_never_stored(w):
    pid = uniq("bad")
    bad = {"resource_type": "thing",
           "rules": [{"id": "r1", "effect": "allow", "actions": ["read"],
                      "when": 'resource.owner == subject.id &&\n  unknownfn(1)'}]}
    body = problem(w.put_policy(w.gus, pid, bad, status=None), 400, "invalid_policy", "/rules/0/when")
    err = [e for e in body["errors"] if e["field"] == "/rules/0/when"][0]
    assert (err["line"], err["column"]) == (2, 3), body
    assert "unknownfn" in err["message"], body
    # nothing stored: GET 404, no versions, not listed, no decision change
    problem(w.get_policy(w.gus, pid), 404, "not_found")
    problem(w.api.call("GET", VERSIONS, url=f"/v1/admin/policies/{pid}/versions", token=w.gus), 404, "not_found")
    assert pid not in [p["id"] for p in w.api.call("GET", POLICIES, token=w.gus).json()["items"]]
    assert w.sql(f"SELECT count(*) FROM policies WHERE id = '{pid}'") == "0"
    # a bad new version of a stored policy leaves the current one in place
    stored = simple_doc(uniq("kept"))
    w.put_policy(w.gus, pid, stored, status=201)
    problem(w.put_policy(w.gus, pid, bad, status=None), 400, "invalid_policy")
    got = w.get_policy(w.gus, pid).json()
    assert got["version"] == 1 and got["document"] == stored
    # many kinds of problems, each named
    for document, field in [
        ({"rules": [{"id": "r", "effect": "allow", "actions": ["a"]}]}, "/resource_type"),
        ({"resource_type": "thing"}, "/rules"),
        ({"resource_type": "thing", "rules": []}, "/rules"),
        ({"resource_type": "thing", "rules": [{"id": "r", "effect": "maybe", "actions": ["a"]}]}, "/rules/0/effect"),
        ({"resource_type": "thing", "rules": [{"id": "r", "effect": "allow"}]}, "/rules/0/actions"),
        ({"resource_type": "thing", "rules": [{"id": "r", "effect": "allow", "actions": ["a"], "when": 5}]},
         "/rules/0/when"),
        ({"resource_type": "thing", "rules": [{"id": "r", "effect": "allow", "actions": ["a"]},
                                              {"id": "r", "effect": "deny", "actions": ["a"]}]}, "/rules/1/id"),
        ({"resource_type": "thing", "rules": [{"id": "r", "effect": "allow", "actions": ["a"], "colour": "red"}]},
         "/rules/0/colour"),
        ({"resource_type": "thing", "variables": {"v": "1 +"}, "rules": [{"id": "r", "effect": "allow",
                                                                          "actions": ["a"]}]}, "/variables/v"),
        ({"resource_type": "thing", "derived_roles": [{"name": "d"}], "rules": [{"id": "r", "effect": "allow",
                                                                                 "actions": ["a"]}]},
         "/derived_roles/0/when"),
        ({"resource_type": "thing", "rules": [{"id": "r", "effect": "allow", "actions": ["a"],
                                               "when": 'hour(now, "Mars/Olympus")'}]}, "/rules/0/when"),
        ({"resource_type": "thing", "rules": [{"id": "r", "effect": "allow", "actions": ["a"],
                                               "when": 'ip_in(context.ip, "10.0.0.0/33")'}]}, "/rules/0/when"),
        ({"resource_type": "thing", "rules": [{"id": "r", "effect": "allow", "actions": ["a"],
                                               "when": '"a" < true'}]}, "/rules/0/when"),
        ({"resource_type": "thing", "rules": [{"id": "r", "effect": "allow", "actions": ["a"],
                                               "when": "1 + 2"}]}, "/rules/0/when"),
    ]:
        problem(w.put_policy(w.gus, uniq("bad"), document, status=None), 400, "invalid_policy", field)
    # the body itself
    for body, field in [({}, "document"), ({"document": "x"}, "document"), ({"document": []}, "document")]:
        r = w.api.call("PUT", POLICY, url=f"/v1/admin/policies/{uniq('b')}", token=w.gus, json=body)
        assert r.status_code == 400, r.text
        assert field in json.dumps(r.json().get("errors", [])), r.text


def test_deep_and_huge_expressions(w):
    deep = "(" * 40 + "true" + ")" * 40
    huge = " && ".join(["context.a == 1"] * 400)  # ~6 KB: past the 4096-byte limit of one source
    wide = "[" + ", ".join(str(i) for i in range(2000)) + "]"  # past the compiled node limit
    for when in (deep, huge, "!" * 100 + "true", "context.x in " + wide):
        document = simple_doc("thing", when=when)
        body = problem(w.put_policy(w.gus, uniq("big"), document, status=None), 400, "invalid_policy",
                       "/rules/0/when")
        r = w.api.call("POST", VALIDATE, token=w.gus, json={"document": document})
        assert r.status_code == 200 and r.json()["valid"] is False, r.text
        assert body["errors"]
    # variables expanded in place: depth across variables (3 levels each, 60 deep)
    chain = {f"v{i}": f"!!!variables.v{i + 1}" for i in range(60)}
    chain["v60"] = "context.ok == true"
    document = {"resource_type": "thing", "variables": chain,
                "rules": [{"id": "r", "effect": "allow", "actions": ["a"], "when": "variables.v0"}]}
    problem(w.put_policy(w.gus, uniq("chain"), document, status=None), 400, "invalid_policy")
    # and doubling at each level ("billion laughs"): refused fast, not expanded 2^40 times
    laughs = {f"v{i}": f"variables.v{i + 1} && variables.v{i + 1}" for i in range(40)}
    laughs["v40"] = "context.ok == true"
    document = {"resource_type": "thing", "variables": laughs,
                "rules": [{"id": "r", "effect": "allow", "actions": ["a"], "when": "variables.v0"}]}
    t0 = time.monotonic()
    problem(w.put_policy(w.gus, uniq("laughs"), document, status=None), 400, "invalid_policy")
    r = w.api.call("POST", VALIDATE, token=w.gus, json={"document": document})
    assert r.status_code == 200 and r.json()["valid"] is False, r.text
    assert time.monotonic() - t0 < 2.0


def test_validate(w):
    good = alpha_documents(w.mallory)
    r = w.api.call("POST", VALIDATE, token=w.gus, json={"document": good})
    assert r.status_code == 200 and r.json() == {"valid": True, "errors": []}, r.text
    bad = copy.deepcopy(good)
    bad["rules"][1]["when"] = 'resource.classification == "secret" &&\n    !("cleared" in subject.rolez'
    bad["rules"][3]["when"] = "variables.nope"
    bad["variables"]["in_hours"] = 'hour(timestamp(context.time), "Europe/Pariss") > 9'
    del bad["rules"][5]["actions"]
    r = w.api.call("POST", VALIDATE, token=w.gus, json={"document": bad})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["valid"] is False
    where = {e["where"]: e for e in out["errors"]}
    assert "/rules/1/when" in where and "/rules/3/when" in where and "/rules/5/actions" in where, out
    assert "/variables/in_hours" in where, out
    assert where["/rules/1/when"]["line"] == 2, out  # the missing ')' is on the second line
    assert where["/variables/in_hours"]["line"] == 1 and where["/variables/in_hours"]["column"] == 31, out
    for e in out["errors"]:
        assert set(e) <= {"where", "message", "line", "column"} and e["message"], e
    # validation stores nothing
    assert w.sql("SELECT count(*) FROM policies WHERE document::text LIKE '%rolez%'") == "0"
    for body in ({}, {"document": 1}):
        problem(w.api.call("POST", VALIDATE, token=w.gus, json=body), 400, "invalid_request", "document")


def test_policy_test_endpoint(w):
    cases = [
        {"name": "owner reads", "subject": user(w.ann), "action": act("read"),
         "resource": doc("d1", owner=w.ann, department="eng"), "context": ctx(), "expected": "allow"},
        {"name": "off the network", "subject": user(w.ann), "action": act("read"),
         "resource": doc("d1", owner=w.ann, department="eng"), "context": ctx(ip=OFF_NET), "expected": "deny"},
        {"name": "wrong expectation", "subject": user(w.mallory), "action": act("read"),
         "resource": doc("d2", department="eng"), "context": ctx(), "expected": "allow"},
        {"subject": user("u-aud", roles=["auditor"]), "action": act("read"), "resource": doc("z"),
         "expected": "allow"},
        {"name": "malformed", "subject": {"type": "user"}, "action": act("read"), "resource": doc("z"),
         "expected": "allow"},
    ]
    r = w.api.call("POST", TEST, token=w.alice, json={"cases": cases})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["passed"] == 3 and out["failed"] == 2, out
    res = out["results"]
    assert len(res) == 5
    assert res[0] == {"name": "owner reads", "expected": "allow", "actual": "allow",
                      "deciding": "documents#owner-full"}, res[0]
    assert res[1]["actual"] == "deny" and res[1]["deciding"] == "default"
    assert res[2]["actual"] == "deny" and res[2]["deciding"] == "documents#mallory-suspended"
    assert res[3]["index"] == 3 and res[3]["deciding"] == "rbac:auditor:document:read"
    assert res[4]["actual"] == "error"
    # against the caller's tenant: bob's tenant has none of alpha's rules
    r = w.api.call("POST", TEST, token=w.bob, json={"cases": cases[:1]})
    assert r.json()["failed"] == 1 and r.json()["results"][0]["actual"] == "deny"
    for body in ({}, {"cases": {}}, {"cases": [{}] * 1001}):
        problem(w.api.call("POST", TEST, token=w.alice, json=body), 400, "invalid_request", "cases")
    r = w.api.call("POST", TEST, token=w.alice, json={"cases": []})
    assert r.json() == {"passed": 0, "failed": 0, "results": []}


# --- 5. administration through the engine (Latch eats its own cooking) ------------------------


USERS = "/v1/admin/users"
CLIENTS = "/v1/admin/clients"


def operator(w, token, tenant, roles=(), attributes=None):
    """A new user of `tenant` (a tenant name; `token` administers it) with `roles`, signed in:
    (user id, access token)."""
    pw, email = strong(), f"{uniq('op')}@{tenant}.test"
    body = {"email": email, "password": pw}
    if attributes is not None:
        body["attributes"] = attributes
    r = w.api.call("POST", USERS, token=token, json=body)
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    if roles:
        w.set_roles(token, uid, list(roles))
    return uid, w.login(tenant, email, pw)["access_token"]


def status_of(w, method, tmpl, token, url=None, body=None):
    return w.api.call(method, tmpl, url=url, token=token, json=body).status_code


def becomes(w, method, tmpl, token, status, url=None, body=None, timeout=3.0):
    """Polls until the call answers `status` (role changes reach the snapshot through NOTIFY)."""
    got = lt.wait_for(lambda: status_of(w, method, tmpl, token, url, body) == status, timeout, 0.02)
    assert got, f"{method} {url or tmpl} did not become {status} within {timeout} s"


def test_builtin_roles_are_seeded_and_fixed(w):
    r = w.api.call("GET", ROLES, token=w.root)
    assert r.status_code == 200, r.text
    builtin = {x["name"]: x for x in r.json()["items"] if x["builtin"]}
    assert set(builtin) == {"admin", "global_admin"}
    admin, glob = builtin["admin"], builtin["global_admin"]
    assert admin["tenant_id"] is None and glob["tenant_id"] is None and glob["parents"] == ["admin"]
    assert "latch:users:*" in admin["permissions"] and "latch:policies:*" in admin["permissions"]
    assert {"latch:scope:global", "latch:keys:*", "latch:tenants:*"} <= set(glob["permissions"])
    assert not any(x["builtin"] for x in r.json()["items"] if x["name"] not in builtin)
    for role in (admin, glob):
        url = f"/v1/admin/roles/{role['id']}"
        problem(w.api.call("PATCH", ROLE, url=url, token=w.root, json={"permissions": []}), 403, "builtin_role")
        problem(w.api.call("DELETE", ROLE, url=url, token=w.root), 403, "builtin_role")
    # a tenant admin sees them too, and may not touch them either (they are not its tenant's)
    r = w.api.call("PATCH", ROLE, url=f"/v1/admin/roles/{admin['id']}", token=w.gus, json={"permissions": []})
    assert r.status_code in (403, 404), r.text


def test_admin_permissions_come_from_roles(w):
    reader = uniq("user-reader")
    role = w.role(w.gus, name=reader, permissions=["latch:users:read"])
    uid, tok = operator(w, w.gus, "gamma", roles=[reader])
    becomes(w, "GET", USERS, tok, 200)
    body = problem(w.api.call("POST", USERS, token=tok, json={"email": f"{uniq()}@gamma.test", "password": strong()}),
                   403, "forbidden")
    assert "latch:users:write" in body["detail"]
    problem(w.api.call("GET", CLIENTS, token=tok), 403, "forbidden")
    problem(w.api.call("GET", ROLES, token=tok), 403, "forbidden")
    # users:write alone creates users, but not admins: roles need latch:roles:assign
    writer = uniq("user-writer")
    w.role(w.gus, name=writer, permissions=["latch:users:*"])
    _, wtok = operator(w, w.gus, "gamma", roles=[writer])
    becomes(w, "POST", USERS, wtok, 201, body={"email": f"{uniq()}@gamma.test", "password": strong()})
    body = problem(w.api.call("POST", USERS, token=wtok, json={"email": f"{uniq()}@gamma.test", "password": strong(),
                                                                "roles": ["admin"]}), 403, "forbidden")
    assert "latch:roles:assign" in body["detail"]
    # the role grows: the same token may now read clients (stored roles, not token claims)
    r = w.api.call("PATCH", ROLE, url=f"/v1/admin/roles/{role['id']}", token=w.gus,
                   json={"permissions": ["latch:users:read", "latch:clients:read"]})
    assert r.status_code == 200, r.text
    becomes(w, "GET", CLIENTS, tok, 200)
    # and its scope stays its tenant: another tenant's user is not found
    other, _ = operator(w, w.bob, "beta")
    assert status_of(w, "GET", "/v1/admin/users/{id}", tok, url=f"/v1/admin/users/{other}") == 404
    # the assignment goes: so do the rights, before the token expires
    w.set_roles(w.gus, uid, [])
    becomes(w, "GET", USERS, tok, 403)


def test_stored_roles_win_over_the_token(w):
    uid, tok = operator(w, w.gus, "gamma", roles=["admin"])
    assert lt.jwt_claims(tok)["roles"] == ["admin"]
    becomes(w, "GET", ROLES, tok, 200)
    w.set_roles(w.gus, uid, [])
    becomes(w, "GET", ROLES, tok, 403)
    w.set_roles(w.gus, uid, ["admin"])
    becomes(w, "GET", ROLES, tok, 200)


def test_a_tenant_cannot_escalate(w):
    for body, why in [
        ({"permissions": ["latch:scope:global"]}, "latch:scope:global"),
        ({"permissions": ["latch:keys:read"]}, "latch:keys:read"),
        ({"permissions": ["latch:tenants:create"]}, "latch:tenants:create"),
        ({"permissions": ["latch:tenants:*"]}, "latch:tenants:*"),
        ({"parents": ["global_admin"]}, "global_admin"),
    ]:
        r = w.api.call("POST", ROLES, token=w.gus, json={"name": uniq("esc"), **body})
        assert why in problem(r, 400, "invalid_request")["detail"], r.text
    for name in ("admin", "global_admin", "latch-admin"):
        problem(w.api.call("POST", ROLES, token=w.gus, json={"name": name}), 400, "invalid_request")
    uid, tok = operator(w, w.gus, "gamma")
    assert "global_admin" in problem(w.api.call("PUT", USER_ROLES, url=f"/v1/admin/users/{uid}/roles", token=w.gus,
                                                json={"roles": ["global_admin"]}), 400, "invalid_request")["detail"]
    # a global admin may grant it
    w.set_roles(w.root, uid, ["global_admin"])
    w.set_roles(w.root, uid, [])
    # wildcards never reach the admin API's own types
    star = uniq("everything")
    w.role(w.gus, name=star, permissions=["*", "*:*", "*:write"])
    w.set_roles(w.gus, uid, [star])
    r = w.api.call("PUT", POLICY, url="/v1/admin/policies/" + uniq("p"), token=w.gus,
                   json={"document": {"resource_type": "latch:users",
                                      "rules": [{"id": "all", "effect": "allow", "actions": ["*"]}]}})
    problem(r, 400, "invalid_request", "document.resource_type")
    pid = uniq("catch-all")
    w.put_policy(w.gus, pid, {"resource_type": "*", "rules": [{"id": "all", "effect": "allow", "actions": ["*"]}]})
    try:
        time.sleep(0.3)  # both changes are in the snapshot well within this
        for tmpl in (USERS, CLIENTS, ROLES, POLICIES):
            problem(w.api.call("GET", tmpl, token=tok), 403, "forbidden")
    finally:
        assert w.api.call("DELETE", POLICY, url=f"/v1/admin/policies/{pid}", token=w.gus).status_code == 204


def test_global_policies_govern_the_admin_api(w):
    uid, tok = operator(w, w.gus, "gamma", roles=["admin"], attributes={"frozen": True})
    becomes(w, "POST", VALIDATE, tok, 200, body={"document": BETA_DOCUMENTS})
    pid = uniq("freeze")
    w.put_policy(w.root, pid, {"resource_type": "latch:users",
                               "rules": [{"id": "frozen-writes", "effect": "deny", "actions": ["write"],
                                          "when": "subject.frozen == true"}]}, **{"global": True})
    try:
        new_user = {"email": f"{uniq()}@gamma.test", "password": strong()}
        becomes(w, "POST", USERS, tok, 403, body=new_user)
        assert status_of(w, "GET", USERS, tok) == 200
        assert status_of(w, "POST", USERS, w.gus, body=new_user) == 201  # gus is not frozen
    finally:
        r = w.api.call("DELETE", POLICY, url=f"/v1/admin/policies/{pid}?global=true", token=w.root)
        assert r.status_code == 204, r.text


# --- 6. bad inputs --------------------------------------------------------------------------------

GOOD = evaluation(user("u-1", roles=["viewer"]), act("read"), {"type": "wiki", "id": "w"})


def test_bad_shapes_name_the_member(w):
    h = lt.client_auth(w.pdp)
    cases = [
        ({k: v for k, v in GOOD.items() if k != "subject"}, "subject"),
        ({k: v for k, v in GOOD.items() if k != "action"}, "action"),
        ({k: v for k, v in GOOD.items() if k != "resource"}, "resource"),
        (dict(GOOD, subject="u-1"), "subject"),
        (dict(GOOD, subject={"type": "user"}), "subject"),
        (dict(GOOD, subject={"id": "u-1"}), "subject"),
        (dict(GOOD, subject={"type": "user", "id": 7}), "subject"),
        (dict(GOOD, subject={"type": "user", "id": "u", "properties": []}), "subject.properties"),
        (dict(GOOD, action={}), "action"),
        (dict(GOOD, action={"name": ["read"]}), "action"),
        (dict(GOOD, action={"name": "read", "properties": "x"}), "action.properties"),
        (dict(GOOD, resource={"type": "wiki"}), "resource"),
        (dict(GOOD, resource={"type": 1, "id": "w"}), "resource"),
        (dict(GOOD, resource={"type": "wiki", "id": "w", "properties": 3}), "resource.properties"),
        (dict(GOOD, context=[]), "context"),
        (dict(GOOD, context="now"), "context"),
    ]
    for body, field in cases:
        for path in (EVAL, EVALS):
            r = w.api.call("POST", path, headers=h, json=body)
            problem(r, 400, "invalid_request", field)
    # the body itself
    for content in (b"", b"{", b"[]", b"null", b'"x"', b"{\"subject\": }"):
        r = w.api.call("POST", EVAL, headers=dict(h, **{"content-type": "application/json"}), content=content)
        assert r.status_code == 400, (content, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
        for path in (EVAL, EVALS):
            r = w.api.call("POST", path, headers=dict(h, **{"content-type": ctype}), content=json.dumps(GOOD))
            assert r.status_code == 415, (ctype, r.status_code, r.text)
    r = w.api.call("POST", EVAL, headers=h, content=json.dumps(GOOD))  # no content type at all
    problem(r, 415, "unsupported_media_type")
    # a context nested past max_json_depth (32), and a body past max_body_bytes
    deep = {}
    for _ in range(40):
        deep = {"k": deep}
    problem(w.api.call("POST", EVAL, headers=h, json=dict(GOOD, context=deep)), 400, "invalid_json")
    r = w.api.call("POST", EVALS, headers=h, json=dict(GOOD, evaluations=[GOOD] * 1000))
    problem(r, 413, "payload_too_large")
    # JSON with a charset parameter is fine
    r = w.api.call("POST", EVAL, headers=dict(h, **{"content-type": "application/json; charset=utf-8"}),
                   content=json.dumps(GOOD))
    assert r.status_code == 200 and r.json() == {"decision": True}, r.text


def test_unknown_members_are_ignored_and_ids_echoed(w):
    h = lt.client_auth(w.pdp)
    body = dict(GOOD, extra={"x": 1}, subject=dict(GOOD["subject"], nickname="x"),
                action=dict(GOOD["action"], verb=1), resource=dict(GOOD["resource"], colour="red"),
                options={"future_option": True})
    r = w.api.call("POST", EVAL, headers=dict(h, **{"x-request-id": "authzen-req-42"}), json=body)
    assert r.status_code == 200 and r.json() == {"decision": True}, r.text
    assert r.headers["x-request-id"] == "authzen-req-42"
    r = w.api.call("POST", EVALS, headers=dict(h, **{"x-request-id": "batch.7:a"}),
                   json={"evaluations": [body, body], "future": 1})
    assert r.json() == {"evaluations": [{"decision": True}, {"decision": True}]}
    assert r.headers["x-request-id"] == "batch.7:a"
    # idempotent
    answers = {json.dumps(w.decide(w.pdp, body)) for _ in range(5)}
    assert answers == {'{"decision": true}'}


def test_who_may_ask(w):
    # no credentials, wrong secret, unknown client: 401; a client without decide: 403
    r = w.api.call("POST", EVAL, json=GOOD)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"
    bad = dict(w.pdp, client_secret="lcs_" + "A" * 43)
    r = w.api.call("POST", EVAL, headers=lt.client_auth(bad), json=GOOD)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    assert r.headers.get("www-authenticate", "").lower().startswith("basic")
    r = w.api.call("POST", EVALS, headers={"authorization": lt.basic_auth("lc_nosuchclientnosuchclie", "x")},
                   json={"evaluations": [GOOD]})
    assert r.status_code == 401, r.text
    for path, body in ((EVAL, GOOD), (EVALS, {"evaluations": [GOOD]})):
        problem(w.api.call("POST", path, headers=lt.client_auth(w.nodecide), json=body), 403, "forbidden")
    # an admin's bearer token is not a decision client
    r = w.api.call("POST", EVAL, token=w.alice, json=GOOD)
    assert r.status_code == 401, r.text
    # the check comes before the body is read: a bad body still answers 401/403
    r = w.api.call("POST", EVAL, headers=dict(lt.client_auth(w.nodecide), **{"content-type": "text/plain"}),
                   content=b"x")
    assert r.status_code == 403, r.text


def test_configuration(w):
    r = w.api.call("GET", "/.well-known/authzen-configuration")
    assert r.status_code == 200, r.text
    cfg = r.json()
    pdp = cfg["policy_decision_point"]
    assert cfg["access_evaluation_endpoint"] == pdp + EVAL
    assert cfg["access_evaluations_endpoint"] == pdp + EVALS


def test_certification_fixture(w):
    """The certification scenario's eight fixture decisions (Basic and Batch, Core and
    Properties) as a policy of its own tenant (gamma), with and without a context."""
    policy = {
        "resource_type": "record",
        "rules": [
            {"id": "read", "effect": "allow", "actions": ["read"]},
            {"id": "alice-writes-live", "effect": "allow", "actions": ["write"],
             "when": 'subject.id == "alice" && (!has(resource.status) || resource.status != "archived")'},
            {"id": "admin-writes-archived", "effect": "allow", "actions": ["write"],
             "when": 'subject.role == "admin" && resource.status == "archived"'},
            {"id": "soft-delete", "effect": "allow", "actions": ["delete"], "when": "action.soft == true"},
        ],
    }
    w.put_policy(w.gus, "cert-records", policy)
    alice, bob = {"type": "user", "id": "alice"}, {"type": "user", "id": "bob"}
    admin = {"type": "user", "id": "bob", "properties": {"role": "admin"}}
    rec1 = {"type": "record", "id": "record-1"}
    archived = {"type": "record", "id": "record-2", "properties": {"status": "archived"}}
    w.wait_decision(w.gamma_pdp, evaluation(alice, act("read"), rec1), True)
    cases = [
        (alice, act("read"), rec1, True),
        (alice, act("write"), rec1, True),
        (bob, act("read"), rec1, True),
        (bob, act("write"), rec1, False),
        (alice, act("write"), archived, False),
        (admin, act("write"), archived, True),
        (alice, act("delete", soft=True), rec1, True),
        (alice, act("delete", soft=False), rec1, False),
    ]
    for s, a, r, expected in cases:
        assert w.allowed(w.gamma_pdp, evaluation(s, a, r)) is expected, (s, a, r)
        assert w.allowed(w.gamma_pdp, evaluation(s, a, r, {})) is expected, (s, a, r)
    # batch: defaults replaced whole, order and length kept
    body = {"subject": alice, "action": act("write"),
            "evaluations": [{"resource": rec1}, {"resource": archived}, {"subject": admin, "resource": archived},
                            {"subject": bob, "resource": rec1}, {"action": act("read"), "resource": archived}]}
    assert w.batch(w.gamma_pdp, body) == {"evaluations": [{"decision": x} for x in (True, False, True, False, True)]}


# --- 7. AuthZEN interop: Todo ------------------------------------------------------------------


def interop_cases(name):
    return json.loads((INTEROP / "todo" / f"decisions-authorization-api-1_0-{name}.json").read_text())


@pytest.mark.parametrize("name", ["01", "02"])
def test_authzen_todo_interop(w, name):
    """Every case of the interop file, posted exactly as the harness posts it and scored the way
    it scores: an evaluation passes when `(decision || false) == expected`, a batch only when
    the `evaluations` array equals the expected one as JSON (so no extra keys per item)."""
    data = interop_cases(name)
    failures = []
    n = 0
    for i, case in enumerate(data["evaluation"]):
        r = w.api.call("POST", EVAL, headers=lt.client_auth(w.todo_pdp), json=case["request"])
        n += 1
        if r.status_code != 200 or (r.json().get("decision") or False) != case["expected"]:
            failures.append(f"evaluation[{i}] {json.dumps(case['request'])}: expected {case['expected']}, "
                            f"got {r.status_code} {r.text}")
    for i, case in enumerate(data.get("evaluations", [])):
        r = w.api.call("POST", EVALS, headers=lt.client_auth(w.todo_pdp), json=case["request"])
        n += len(case["expected"])
        got = r.json().get("evaluations") if r.status_code == 200 else None
        if json.dumps(got, separators=(",", ":")) != json.dumps(case["expected"], separators=(",", ":")):
            failures.append(f"evaluations[{i}]: expected {case['expected']}, got {r.status_code} {r.text}")
    assert not failures, f"{len(failures)} of {n} decisions fail:\n" + "\n".join(failures)
    assert n == (40 if name == "01" else 46)


def test_authzen_todo_interop_on_the_second_instance(w):
    data = interop_cases("02")
    for case in data["evaluation"]:
        assert w.allowed(w.todo_pdp, case["request"], api=w.api_b) is case["expected"], case
