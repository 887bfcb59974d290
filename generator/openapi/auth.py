"""Auth collections in the OpenAPI document: PocketBase's sign-in, token and account endpoints
(``/api/collections/{name}/auth-with-password`` and friends) and their bodies.

Every auth collection gets every endpoint, as PocketBase serves them all; the description says
whether the method is enabled for the collection (PocketBase answers 403 when it is not).
"""

from __future__ import annotations

from typing import Any

from ..ir.model import CollectionIR
from ..schema.model import AuthOptions
from .paths import (
    NO_CONTENT,
    REQUIRED_AUTH,
    UPSTREAM,
    error_responses,
    expand_param,
    json_response,
    operation,
    param,
)
from .schemas import JsonSchema, auth_response_name, obj, ref

_STR: JsonSchema = {"type": "string"}
_SECRET: JsonSchema = {"type": "string", "writeOnly": True}


def auth_schemas() -> dict[str, JsonSchema]:
    return {
        "AuthMethods": obj(
            "The sign-in methods an auth collection allows.",
            {
                "password": obj(
                    "",
                    {
                        "enabled": {"type": "boolean"},
                        "identityFields": {"type": "array", "items": _STR},
                    },
                ),
                "oauth2": obj(
                    "",
                    {
                        "enabled": {"type": "boolean"},
                        "providers": {
                            "type": "array",
                            "items": obj(
                                "An OAuth2 provider, ready for a PKCE flow.",
                                {
                                    "name": _STR,
                                    "displayName": _STR,
                                    "state": _STR,
                                    "authURL": _STR,
                                    "codeVerifier": _STR,
                                    "codeChallenge": _STR,
                                    "codeChallengeMethod": _STR,
                                },
                            ),
                        },
                    },
                ),
                "mfa": obj("", {"enabled": {"type": "boolean"}, "duration": {"type": "integer"}}),
                "otp": obj("", {"enabled": {"type": "boolean"}, "duration": {"type": "integer"}}),
            },
        ),
        "MfaRequired": obj(
            "First factor accepted, a second one is needed: pass `mfaId` to the next auth call.",
            {"mfaId": _STR},
            ("mfaId",),
        ),
        "AuthWithPasswordBody": obj(
            "",
            {
                "identity": {
                    **_STR,
                    "description": "The value of one of the identity fields (email by default).",
                },
                "password": _SECRET,
                "identityField": {
                    **_STR,
                    "description": "Which identity field `identity` is (optional).",
                },
            },
            ("identity", "password"),
        ),
        "RequestOtpBody": obj("", {"email": _STR}, ("email",)),
        "OtpResponse": obj(
            "Returned for unknown emails too (no account enumeration).", {"otpId": _STR}, ("otpId",)
        ),
        "AuthWithOtpBody": obj(
            "",
            {
                "otpId": _STR,
                "password": {**_SECRET, "description": "The one-time password from the email."},
                "mfaId": _STR,
            },
            ("otpId", "password"),
        ),
        "AuthWithOAuth2Body": obj(
            "",
            {
                "provider": _STR,
                "code": _STR,
                "codeVerifier": _STR,
                "redirectURL": _STR,
                "createData": {
                    "type": "object",
                    "description": "Fields for the record created on first sign-in.",
                },
                "mfaId": _STR,
            },
            ("provider", "code", "codeVerifier", "redirectURL"),
        ),
        "EmailBody": obj("", {"email": _STR}, ("email",)),
        "ConfirmPasswordResetBody": obj(
            "",
            {"token": _STR, "password": _SECRET, "passwordConfirm": _SECRET},
            ("token", "password", "passwordConfirm"),
        ),
        "ConfirmVerificationBody": obj("", {"token": _STR}, ("token",)),
        "RequestEmailChangeBody": obj("", {"newEmail": _STR}, ("newEmail",)),
        "ConfirmEmailChangeBody": obj(
            "", {"token": _STR, "password": _SECRET}, ("token", "password")
        ),
    }


def auth_paths(c: CollectionIR) -> dict[str, Any]:
    p, name = c.class_prefix, c.name
    opts = c.auth or AuthOptions()
    base = f"/api/collections/{name}"
    signed_in = json_response(ref(auth_response_name(c)), "The auth token and record.")
    mfa = {
        "description": "A second factor is needed (`mfaId`), or the attempt failed.",
        "content": {"application/json": {"schema": {"anyOf": [ref("Error"), ref("MfaRequired")]}}},
    }
    read = [expand_param(c), param("fields")]
    who = f"Rule (`authRule`): {_auth_rule(c.rules.auth)}."
    mfa_note = (
        " MFA is on: the first factor answers 401 with an `mfaId`." if opts.mfa_enabled else ""
    )

    def enabled(what: str, on: bool) -> str:
        return (
            f"{what} is enabled for `{name}`."
            if on
            else f"{what} is disabled for `{name}` (PocketBase answers 403)."
        )

    def post(
        verb: str,
        summary: str,
        description: str,
        body: str | None,
        ok: dict[str, Any],
        errors: dict[str, Any],
        **kw: Any,
    ) -> dict[str, Any]:
        request = (
            None
            if body is None
            else {"required": True, "content": {"application/json": {"schema": ref(body)}}}
        )
        return {
            "post": operation(
                f"{verb}{p}", name, summary, description, {**ok, **errors}, body=request, **kw
            )
        }

    identity = ", ".join(f"`{i}`" for i in opts.identity_fields)
    providers = ", ".join(f"`{x}`" for x in opts.oauth2_providers) or "none configured"
    return {
        f"{base}/auth-methods": {
            "get": operation(
                f"authMethods{p}",
                name,
                f"Sign-in methods of {name}",
                "Public.",
                {
                    "200": json_response(ref("AuthMethods"), "The enabled methods."),
                    **error_responses(*UPSTREAM),
                },
            )
        },
        f"{base}/auth-with-password": post(
            "authWithPassword",
            f"Sign in to {name} with a password",
            f"{enabled('Password auth', opts.password_enabled)} Identity fields: {identity}. {who}{mfa_note}",
            "AuthWithPasswordBody",
            {"200": signed_in},
            {
                **error_responses("400", "403", *UPSTREAM, e400="Failed to authenticate."),
                "401": mfa,
            },
            parameters=read,
            rule=("authRule", c.rules.auth),
        ),
        f"{base}/auth-refresh": post(
            "authRefresh",
            f"Refresh an auth token of {name}",
            "Needs the current token; answers a new one (impersonation tokens come back unchanged).",
            None,
            {"200": signed_in},
            error_responses(
                "401", "403", "404", *UPSTREAM, e400="A malformed `fields` or an unknown `expand`."
            ),
            security=REQUIRED_AUTH,
            parameters=read,
        ),
        f"{base}/request-otp": post(
            "requestOtp",
            f"Email a one-time password ({name})",
            enabled("OTP", opts.otp_enabled) + " Answers an `otpId` for unknown emails too.",
            "RequestOtpBody",
            {"200": json_response(ref("OtpResponse"), "The OTP id.")},
            error_responses("400", "403", *UPSTREAM),
        ),
        f"{base}/auth-with-otp": post(
            "authWithOtp",
            f"Sign in to {name} with a one-time password",
            f"{enabled('OTP', opts.otp_enabled)} {who}{mfa_note}",
            "AuthWithOtpBody",
            {"200": signed_in},
            {**error_responses("400", "403", *UPSTREAM), "401": mfa},
            parameters=read,
            rule=("authRule", c.rules.auth),
        ),
        f"{base}/auth-with-oauth2": post(
            "authWithOAuth2",
            f"Sign in to {name} with OAuth2",
            f"{enabled('OAuth2', opts.oauth2_enabled)} Providers: {providers}. "
            f"Creates the record on first sign-in (`createData`). {who}{mfa_note}",
            "AuthWithOAuth2Body",
            {"200": signed_in},
            {**error_responses("400", "403", *UPSTREAM), "401": mfa},
            parameters=read,
            rule=("authRule", c.rules.auth),
        ),
        f"{base}/request-password-reset": post(
            "requestPasswordReset",
            f"Email a password reset link ({name})",
            "Public; answers 204 for unknown emails too.",
            "EmailBody",
            {"204": NO_CONTENT},
            error_responses("400", *UPSTREAM),
        ),
        f"{base}/confirm-password-reset": post(
            "confirmPasswordReset",
            f"Set a new password with a reset token ({name})",
            "Public; the token comes from the reset email.",
            "ConfirmPasswordResetBody",
            {"204": NO_CONTENT},
            error_responses("400", *UPSTREAM),
        ),
        f"{base}/request-verification": post(
            "requestVerification",
            f"Email a verification link ({name})",
            "Public; answers 204 for unknown or verified emails too.",
            "EmailBody",
            {"204": NO_CONTENT},
            error_responses("400", *UPSTREAM),
        ),
        f"{base}/confirm-verification": post(
            "confirmVerification",
            f"Verify an email with a token ({name})",
            "Public; the token comes from the verification email.",
            "ConfirmVerificationBody",
            {"204": NO_CONTENT},
            error_responses("400", *UPSTREAM),
        ),
        f"{base}/request-email-change": post(
            "requestEmailChange",
            f"Email a change-of-address link ({name})",
            "Signed-in record only (its own email).",
            "RequestEmailChangeBody",
            {"204": NO_CONTENT},
            error_responses("400", "401", "403", *UPSTREAM),
            security=REQUIRED_AUTH,
        ),
        f"{base}/confirm-email-change": post(
            "confirmEmailChange",
            f"Confirm an email change with a token ({name})",
            "Public; needs the token from the email and the account's password.",
            "ConfirmEmailChangeBody",
            {"204": NO_CONTENT},
            error_responses("400", *UPSTREAM),
        ),
    }


def _auth_rule(rule: str | None) -> str:
    if rule is None:
        return "nobody may authenticate"
    return (
        "anyone with valid credentials"
        if rule == ""
        else f"`{rule}` (checked after the credentials)"
    )
