"""What PocketBase fills in on import, so a converted export is exactly what it would store.

Captured from PocketBase 0.40.6 (``GET /api/collections/meta/scaffolds`` and the field format in
/work/shared/reference/pocketbase.md, section 2.3). Data only.
"""

from __future__ import annotations

from typing import Any

#: The keys every field has, with PocketBase's values when a create request omits them.
COMMON_FIELD_DEFAULTS: dict[str, Any] = {
    "hidden": False,
    "presentable": False,
    "system": False,
    "required": False,
    "help": "",
}
#: Type-specific keys and their defaults (``autodate`` has neither ``required`` nor ``help``).
FIELD_DEFAULTS: dict[str, dict[str, Any]] = {
    "text": {"min": 0, "max": 0, "pattern": "", "autogeneratePattern": "", "primaryKey": False},
    "editor": {"maxSize": 0, "convertURLs": False},
    "number": {"min": None, "max": None, "onlyInt": False},
    "bool": {},
    "email": {"exceptDomains": [], "onlyDomains": []},
    "url": {"exceptDomains": [], "onlyDomains": []},
    "date": {"min": "", "max": ""},
    "autodate": {"onCreate": False, "onUpdate": False},
    "select": {"values": [], "maxSelect": 0},
    "file": {"maxSelect": 0, "maxSize": 0, "mimeTypes": [], "thumbs": [], "protected": False},
    "relation": {"collectionId": "", "cascadeDelete": False, "minSelect": 0, "maxSelect": 0},
    "json": {"maxSize": 0},
    "geoPoint": {},
    "password": {"min": 0, "max": 0, "pattern": "", "cost": 0},
}
#: The settings of a new auth collection (token secrets are write-only and left out).
AUTH_DEFAULTS: dict[str, Any] = {
    "authAlert": {
        "emailTemplate": {
            "body": "<p>Hello,</p>\n"
            "<p>We noticed a login to your {APP_NAME} "
            "account from a new location:</p>\n"
            "<p><em>{ALERT_INFO}</em></p>\n"
            "<p><strong>If this wasn't you, you should "
            "immediately change your {APP_NAME} account "
            "password to revoke access from all other "
            "locations.</strong></p>\n"
            "<p>If this was you, you may disregard this "
            "email.</p>\n"
            "<p>\n"
            "  Thanks,<br/>\n"
            "  {APP_NAME} team\n"
            "</p>",
            "subject": "Login from a new location",
        },
        "enabled": True,
    },
    "authToken": {"duration": 432000},
    "confirmEmailChangeTemplate": {
        "body": "<p>Hello,</p>\n"
        "<p>Click on the button below to confirm your new "
        "email address.</p>\n"
        "<p>\n"
        '  <a class="btn" '
        'href="{APP_URL}/_/#/auth/confirm-email-change/{TOKEN}" '
        'target="_blank" rel="noopener">Confirm new '
        "email</a>\n"
        "</p>\n"
        "<p><i>If you didn't ask to change your email "
        "address, please ignore this email.</i></p>\n"
        "<p>\n"
        "  Thanks,<br/>\n"
        "  {APP_NAME} team\n"
        "</p>",
        "subject": "Confirm your {APP_NAME} new email address",
    },
    "emailChangeToken": {"duration": 1800},
    "fileToken": {"duration": 180},
    "mfa": {"duration": 600, "enabled": False, "rule": ""},
    "oauth2": {
        "enabled": False,
        "mappedFields": {"avatarURL": "", "id": "", "name": "", "username": ""},
        "providers": [],
    },
    "otp": {
        "duration": 180,
        "emailTemplate": {
            "body": "<p>Hello,</p>\n"
            "<p>Your one-time password is: "
            "<strong>{OTP}</strong></p>\n"
            "<p><i>If you didn't ask for the one-time password, "
            "you can ignore this email.</i></p>\n"
            "<p>\n"
            "  Thanks,<br/>\n"
            "  {APP_NAME} team\n"
            "</p>",
            "subject": "OTP for {APP_NAME}",
        },
        "enabled": False,
        "length": 8,
    },
    "passwordAuth": {"enabled": True, "identityFields": ["email"]},
    "passwordResetToken": {"duration": 1800},
    "resetPasswordTemplate": {
        "body": "<p>Hello,</p>\n"
        "<p>Click on the button below to reset your "
        "password.</p>\n"
        "<p>\n"
        '  <a class="btn" '
        'href="{APP_URL}/_/#/auth/confirm-password-reset/{TOKEN}" '
        'target="_blank" rel="noopener">Reset password</a>\n'
        "</p>\n"
        "<p><i>If you didn't ask to reset your password, please "
        "ignore this email.</i></p>\n"
        "<p>\n"
        "  Thanks,<br/>\n"
        "  {APP_NAME} team\n"
        "</p>",
        "subject": "Reset your {APP_NAME} password",
    },
    "verificationTemplate": {
        "body": "<p>Hello,</p>\n"
        "<p>Thank you for joining us at {APP_NAME}.</p>\n"
        "<p>Click on the button below to verify your email "
        "address.</p>\n"
        "<p>\n"
        '  <a class="btn" '
        'href="{APP_URL}/_/#/auth/confirm-verification/{TOKEN}" '
        'target="_blank" rel="noopener">Verify</a>\n'
        "</p>\n"
        "<p><i>If you didn't recently register, please ignore this "
        "email.</i></p>\n"
        "<p>\n"
        "  Thanks,<br/>\n"
        "  {APP_NAME} team\n"
        "</p>",
        "subject": "Verify your {APP_NAME} email",
    },
    "verificationToken": {"duration": 86400},
}


#: PocketBase's own collections, in every PocketBase (the ``users`` collection is not one).
SYSTEM_COLLECTIONS = frozenset(["_authOrigins", "_externalAuths", "_mfas", "_otps", "_superusers"])
#: The fields of the ``users`` collection of a fresh PocketBase, in order.
FRESH_USERS_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "autogeneratePattern": "[a-z0-9]{15}",
        "help": "",
        "hidden": False,
        "id": "text3208210256",
        "max": 15,
        "min": 15,
        "name": "id",
        "pattern": "^[a-z0-9]+$",
        "presentable": False,
        "primaryKey": True,
        "required": True,
        "system": True,
        "type": "text",
    },
    {
        "cost": 0,
        "help": "",
        "hidden": True,
        "id": "password901924565",
        "max": 0,
        "min": 8,
        "name": "password",
        "pattern": "",
        "presentable": False,
        "required": True,
        "system": True,
        "type": "password",
    },
    {
        "autogeneratePattern": "[a-zA-Z0-9]{50}",
        "help": "",
        "hidden": True,
        "id": "text2504183744",
        "max": 60,
        "min": 30,
        "name": "tokenKey",
        "pattern": "",
        "presentable": False,
        "primaryKey": False,
        "required": True,
        "system": True,
        "type": "text",
    },
    {
        "exceptDomains": [],
        "help": "",
        "hidden": False,
        "id": "email3885137012",
        "name": "email",
        "onlyDomains": [],
        "presentable": False,
        "required": True,
        "system": True,
        "type": "email",
    },
    {
        "help": "",
        "hidden": False,
        "id": "bool1547992806",
        "name": "emailVisibility",
        "presentable": False,
        "required": False,
        "system": True,
        "type": "bool",
    },
    {
        "help": "",
        "hidden": False,
        "id": "bool256245529",
        "name": "verified",
        "presentable": False,
        "required": False,
        "system": True,
        "type": "bool",
    },
    {
        "autogeneratePattern": "",
        "help": "",
        "hidden": False,
        "id": "text1579384326",
        "max": 255,
        "min": 0,
        "name": "name",
        "pattern": "",
        "presentable": False,
        "primaryKey": False,
        "required": False,
        "system": False,
        "type": "text",
    },
    {
        "help": "",
        "hidden": False,
        "id": "file376926767",
        "maxSelect": 1,
        "maxSize": 0,
        "mimeTypes": ["image/jpeg", "image/png", "image/svg+xml", "image/gif", "image/webp"],
        "name": "avatar",
        "presentable": False,
        "protected": False,
        "required": False,
        "system": False,
        "thumbs": [],
        "type": "file",
    },
    {
        "hidden": False,
        "id": "autodate2990389176",
        "name": "created",
        "onCreate": True,
        "onUpdate": False,
        "presentable": False,
        "system": False,
        "type": "autodate",
    },
    {
        "hidden": False,
        "id": "autodate3332085495",
        "name": "updated",
        "onCreate": True,
        "onUpdate": True,
        "presentable": False,
        "system": False,
        "type": "autodate",
    },
)
