"""Login lockout and rate limits (issue 3, Login): the per-source hard lockout and its
expiry, reservation before verification under parallel guessing, a locked-out source not
blocking the same account from another address, account-wide slowing that never locks,
the per-IP limit, and the reset flow clearing a lockout.

A second client address is a second loopback address (127.0.0.2): the kernel routes all of
127.0.0.0/8 to lo, so binding the client socket to it is enough. Durations are seconds, so
the windows here are kept short.
"""

import time

import pytest

from test_auth import FAST, NEW_PASSWORD, PASSWORD, Api, World, problem

WRONG = "definitely not the password"


def start(latchd_factory, openapi, **cfg):
    d = latchd_factory(**dict(FAST, **cfg))
    w = World(d)
    w.tenant_id = w.tenant("acme")
    w.alice = w.user(w.tenant_id, "alice@acme.test")
    return d, w


def retry_after(r):
    v = int(r.headers["retry-after"])
    assert v >= 1
    return v


def test_source_lockout_and_its_expiry(latchd_factory, openapi):
    d, w = start(latchd_factory, openapi, lockout_threshold=3, lockout_window=60, lockout_duration=2)
    with Api(d, openapi) as api:
        before = api.verifications()
        for _ in range(3):
            problem(api.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        r = api.login("acme", "alice@acme.test", WRONG)
        problem(r, 429, "too_many_attempts")
        assert retry_after(r) <= 2
        # Locked: even the right password is refused, without a verification.
        r = api.login("acme", "alice@acme.test")
        problem(r, 429, "too_many_attempts")
        assert api.verifications() == before + 3
        assert w.audit_events("login.locked_out") == "1"  # once per lockout
        # The same holds for an unknown account: nothing tells them apart.
        for _ in range(3):
            problem(api.login("acme", "ghost@acme.test", WRONG), 401, "invalid_credentials")
        problem(api.login("acme", "ghost@acme.test", WRONG), 429, "too_many_attempts")

        time.sleep(retry_after(r) + 0.3)
        api.ok_login("acme", "alice@acme.test")  # the lockout expired
        # A served lockout starts the count afresh.
        for _ in range(3):
            problem(api.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        problem(api.login("acme", "alice@acme.test", WRONG), 429, "too_many_attempts")


def test_window_expiry_forgets_old_failures(latchd_factory, openapi):
    d, w = start(latchd_factory, openapi, lockout_threshold=2, lockout_window=2, lockout_duration=60)
    with Api(d, openapi) as api:
        problem(api.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        time.sleep(2.3)
        problem(api.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        problem(api.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        problem(api.login("acme", "alice@acme.test", WRONG), 429, "too_many_attempts")


def test_success_resets_the_source(latchd_factory, openapi):
    d, w = start(latchd_factory, openapi, lockout_threshold=3, lockout_window=60, lockout_duration=60)
    with Api(d, openapi) as api:
        for _ in range(2):
            problem(api.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        api.ok_login("acme", "alice@acme.test")
        for _ in range(3):
            problem(api.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        problem(api.login("acme", "alice@acme.test", WRONG), 429, "too_many_attempts")


def test_parallel_guesses_never_exceed_the_threshold(latchd_factory, openapi):
    """20 wrong guesses at once, multiplexed on one HTTP/2 connection: the slot is reserved
    before verification, so at most lockout_threshold argon2 verifications run."""
    d, w = start(latchd_factory, openapi, lockout_threshold=5, lockout_window=60, lockout_duration=60,
                 hasher_queue=64)
    with Api(d, openapi) as api:
        before = api.verifications()
        rs = api.burst("POST", "/v1/auth/login",
                       [{"tenant": "acme", "email": "alice@acme.test", "password": WRONG}] * 20)
        codes = sorted(r.status_code for r in rs)
        assert api.verifications() - before <= 5
        assert codes == [401] * 5 + [429] * 15, codes
        assert all(r.json()["code"] == "too_many_attempts" for r in rs if r.status_code == 429)


def test_locked_source_does_not_block_another_address(latchd_factory, openapi):
    d, w = start(latchd_factory, openapi, lockout_threshold=3, lockout_window=60, lockout_duration=60)
    with Api(d, openapi) as attacker, Api(d, openapi, local_address="127.0.0.2") as owner:
        for _ in range(3):
            problem(attacker.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        problem(attacker.login("acme", "alice@acme.test"), 429, "too_many_attempts")
        body = owner.ok_login("acme", "alice@acme.test")
        ips = w.sql(f"SELECT host(ip) FROM sessions WHERE id = '{body['session_id']}'")
        assert ips == "127.0.0.2"
        problem(attacker.login("acme", "alice@acme.test"), 429, "too_many_attempts")  # still locked there


def test_account_wide_slowing_never_locks(latchd_factory, openapi):
    d, w = start(latchd_factory, openapi, lockout_threshold=100, lockout_account_threshold=3,
                 lockout_account_window=3600, lockout_account_max_delay=2)
    with Api(d, openapi) as a, Api(d, openapi, local_address="127.0.0.2") as b:
        for api in (a, b, a):
            problem(api.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        # From now on the account is slowed, from every address: delay 2^0 = 1 s.
        r = b.login("acme", "alice@acme.test", WRONG)
        problem(r, 429, "too_many_attempts")
        assert retry_after(r) == 1
        before = a.verifications()
        problem(a.login("acme", "alice@acme.test"), 429, "too_many_attempts")  # no verification spent
        assert a.verifications() == before
        time.sleep(1.2)
        problem(a.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        r = b.login("acme", "alice@acme.test", WRONG)
        problem(r, 429, "too_many_attempts")
        assert retry_after(r) == 2  # 2^1, capped by lockout_account_max_delay
        time.sleep(2.2)
        problem(b.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        r = a.login("acme", "alice@acme.test")
        problem(r, 429, "too_many_attempts")
        assert retry_after(r) == 2  # the delay is capped: it never becomes a lock
        time.sleep(2.2)
        a.ok_login("acme", "alice@acme.test")  # the owner gets in after waiting


def test_per_ip_limit(latchd_factory, openapi):
    d, w = start(latchd_factory, openapi, login_ip_limit=3, login_ip_window=2)
    with Api(d, openapi) as a, Api(d, openapi, local_address="127.0.0.2") as b:
        for i in range(3):  # different accounts: only the address is common
            problem(a.login("acme", f"user{i}@acme.test", WRONG), 401, "invalid_credentials")
        r = a.login("acme", "alice@acme.test")
        problem(r, 429, "rate_limited")
        assert 1 <= retry_after(r) <= 2
        b.ok_login("acme", "alice@acme.test")  # another address is not limited
        time.sleep(retry_after(r) + 0.3)
        a.ok_login("acme", "alice@acme.test")


def test_password_reset_clears_a_source_lockout(latchd_factory, openapi):
    d, w = start(latchd_factory, openapi, lockout_threshold=2, lockout_window=60, lockout_duration=600)
    with Api(d, openapi) as api:
        for _ in range(2):
            problem(api.login("acme", "alice@acme.test", WRONG), 401, "invalid_credentials")
        problem(api.login("acme", "alice@acme.test"), 429, "too_many_attempts")
        r = api.call("POST", "/v1/auth/password-reset", json={"tenant": "acme", "email": "alice@acme.test"})
        assert r.status_code == 202
        token = w.sql("SELECT payload->>'token' FROM outbox WHERE topic = 'password_reset'")
        r = api.call("POST", "/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD})
        assert r.status_code == 204, r.text
        api.ok_login("acme", "alice@acme.test", NEW_PASSWORD)


def test_password_change_counts_against_the_lockout(latchd_factory, openapi):
    """A stolen access token is no way around the lockout: wrong current passwords count."""
    d, w = start(latchd_factory, openapi, lockout_threshold=3, lockout_window=60, lockout_duration=60)
    with Api(d, openapi) as api:
        token = api.ok_login("acme", "alice@acme.test")["access_token"]
        body = {"current_password": WRONG, "new_password": NEW_PASSWORD}
        for _ in range(3):
            problem(api.call("POST", "/v1/me/password", json=body, token=token), 403, "invalid_credentials")
        r = api.call("POST", "/v1/me/password", json=dict(body, current_password=PASSWORD), token=token)
        problem(r, 429, "too_many_attempts")
        assert retry_after(r) >= 1
        problem(api.login("acme", "alice@acme.test"), 429, "too_many_attempts")


@pytest.mark.parametrize("tenant", ["acme", "nosuch"])
def test_counters_exist_for_unknown_accounts(latchd_factory, openapi, tenant):
    d, w = start(latchd_factory, openapi, lockout_threshold=2, lockout_window=60, lockout_duration=60)
    with Api(d, openapi) as api:
        for _ in range(2):
            problem(api.login(tenant, "nobody@acme.test", WRONG), 401, "invalid_credentials")
        problem(api.login(tenant, "nobody@acme.test", WRONG), 429, "too_many_attempts")
    assert w.sql(f"SELECT count(*) FROM login_attempts WHERE tenant = '{tenant}' AND email_norm = 'nobody@acme.test'") \
        == "2"  # source and account
