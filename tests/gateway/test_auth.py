"""Auth passes through: the caller's token reaches PocketBase unchanged and its rules decide; the
gateway's superuser credentials never serve a user; forged or expired tokens are guests."""

from __future__ import annotations

import base64
import json
import time

import httpx
from gateway_support import PASSWORDS, USER_IDS, auth, same

USERS = "/api/collections/users"


def _login(client: httpx.Client, name: str) -> httpx.Response:
    return client.post(f"{USERS}/auth-with-password",
                       json={"identity": f"{name}@postly.test", "password": PASSWORDS[name]})


def test_password_login_and_refresh(gw: httpx.Client, pb: httpx.Client) -> None:
    via_gw, direct = _login(gw, "bob"), _login(pb, "bob")
    assert via_gw.status_code == direct.status_code == 200, via_gw.text
    assert via_gw.json()["record"] == direct.json()["record"]
    token = via_gw.json()["token"]
    # the token works on PocketBase itself, and PocketBase's rules see bob through the gateway
    me = f"{USERS}/records/{USER_IDS['bob']}"
    same(pb.get(me, headers=auth(token)), gw.get(me, headers=auth(token)))
    assert "email" in gw.get(me, headers=auth(token)).json()  # owner sees the hidden email

    refreshed = gw.post(f"{USERS}/auth-refresh", headers=auth(token))
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["record"]["id"] == USER_IDS["bob"]
    params = {"expand": "posts_via_author"}
    expanded = gw.post(f"{USERS}/auth-refresh", params=params, headers=auth(token))
    direct_expanded = pb.post(f"{USERS}/auth-refresh", params=params, headers=auth(token))
    assert expanded.status_code == direct_expanded.status_code == 200
    assert expanded.json()["record"] == direct_expanded.json()["record"]
    same(pb.post(f"{USERS}/auth-refresh"), gw.post(f"{USERS}/auth-refresh"))  # no token: 401


def test_wrong_password(gw: httpx.Client, pb: httpx.Client) -> None:
    body = {"identity": "bob@postly.test", "password": "wrong-password"}
    same(pb.post(f"{USERS}/auth-with-password", json=body), gw.post(f"{USERS}/auth-with-password", json=body))


def test_auth_methods_and_otp(gw: httpx.Client, pb: httpx.Client) -> None:
    same(pb.get(f"{USERS}/auth-methods"), gw.get(f"{USERS}/auth-methods"))
    body = {"email": "bob@postly.test"}
    # OTP is off for users in the example: PocketBase's own refusal comes back
    same(pb.post(f"{USERS}/request-otp", json=body), gw.post(f"{USERS}/request-otp", json=body))
    same(pb.post(f"{USERS}/auth-with-otp", json={"otpId": "x", "password": "y"}),
         gw.post(f"{USERS}/auth-with-otp", json={"otpId": "x", "password": "y"}))


def test_password_reset_verification_and_oauth2_requests(gw: httpx.Client, pb: httpx.Client) -> None:
    for action, body in (
        ("request-password-reset", {"email": "nobody@postly.test"}),
        ("request-verification", {"email": "nobody@postly.test"}),
        ("confirm-password-reset", {"token": "bad", "password": "new-pass-123", "passwordConfirm": "new-pass-123"}),
        ("confirm-verification", {"token": "bad"}),
        ("auth-with-oauth2", {"provider": "google", "code": "c", "codeVerifier": "v", "redirectURL": "http://x"}),
        ("auth-with-oauth2", {}),
    ):
        same(pb.post(f"{USERS}/{action}", json=body), gw.post(f"{USERS}/{action}", json=body))


def test_auth_endpoints_of_a_base_collection(gw: httpx.Client, pb: httpx.Client) -> None:
    same(pb.get("/api/collections/posts/auth-methods"), gw.get("/api/collections/posts/auth-methods"))


def _jwt(payload: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.{'A' * 43}"


def test_forged_and_expired_tokens_are_guests(gw: httpx.Client, pb: httpx.Client) -> None:
    forged = _jwt({"id": USER_IDS["bob"], "type": "auth", "collectionId": "_pb_users_auth_",
                   "refreshable": True, "exp": int(time.time()) + 3600})
    expired = _jwt({"id": USER_IDS["bob"], "type": "auth", "collectionId": "_pb_users_auth_",
                    "refreshable": True, "exp": int(time.time()) - 3600})
    paths = ("/api/collections/attachments/records", f"{USERS}/records/{USER_IDS['bob']}",
             "/api/collections/posts/records?expand=author")
    for token in (forged, expired, "garbage"):
        for path in paths:
            as_guest = pb.get(path)
            same(as_guest, gw.get(path, headers=auth(token)))
            same(pb.get(path, headers=auth(token)), gw.get(path, headers=auth(token)))


def test_superuser_credentials_never_serve_users(gw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]) -> None:
    """The gateway runs with PB_SUPERUSER_* set; users still get what PocketBase gives them."""
    for path in ("/api/collections/audit_log/records", "/api/collections/audit_log/records/aud000000000001"):
        guest = gw.get(path)
        assert guest.status_code == 403, guest.text
        same(pb.get(path), guest)
        same(pb.get(path, headers=auth(tokens["bob"])), gw.get(path, headers=auth(tokens["bob"])))
    # hidden fields are for superusers only: a guest never sees moderationNote
    post = gw.get("/api/collections/posts/records/pst000000000001").json()
    assert "moderationNote" not in post
    # and a superuser's own token does get them (the caller's Authorization is what counts)
    assert "moderationNote" in gw.get("/api/collections/posts/records/pst000000000001",
                                      headers=auth(tokens["superuser"])).json()
    # a guest's request to create in a superuser-only collection is refused by PocketBase
    same(pb.post("/api/collections/audit_log/records", json={"action": "login"}),
         gw.post("/api/collections/audit_log/records", json={"action": "login"}))


def test_otp_request_when_enabled(gw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]) -> None:
    su = auth(tokens["superuser"])
    assert pb.patch("/api/collections/users", json={"otp": {"enabled": True}}, headers=su).status_code == 200
    try:
        for email in ("bob@postly.test", "nobody@postly.test"):  # no enumeration: both get an id
            resp = gw.post(f"{USERS}/request-otp", json={"email": email})
            assert resp.status_code == 200, resp.text
            otp_id = resp.json()["otpId"]
            assert isinstance(otp_id, str) and len(otp_id) == 15
        wrong = {"otpId": otp_id, "password": "00000000"}
        same(pb.post(f"{USERS}/auth-with-otp", json=wrong), gw.post(f"{USERS}/auth-with-otp", json=wrong))
        same(pb.get(f"{USERS}/auth-methods"), gw.get(f"{USERS}/auth-methods"))
    finally:
        pb.patch("/api/collections/users", json={"otp": {"enabled": False}}, headers=su)
