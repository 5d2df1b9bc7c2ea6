"""The OpenAPI 3.1 description of ``/api/v1`` (served at ``/api/v1/openapi.json``).

Written out by hand, as data: the API is small, and a test checks that every route the
blueprint registers is described here and the other way round.
"""

from __future__ import annotations

from typing import Any

_STATES = ["quarantined", "approved", "rejected", "revoked"]
_SEVERITIES = ["critical", "high", "medium", "low", "info"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
}

_FILE = {
    "type": "object",
    "required": ["id", "project", "version", "filename", "kind", "state", "sha256", "size"],
    "properties": {
        "id": {"type": "integer"},
        "project": {"type": "string", "description": "normalized project name"},
        "version": {"type": "string"},
        "filename": {"type": "string"},
        "kind": {"type": "string", "enum": ["wheel", "sdist"]},
        "state": {"type": "string", "enum": _STATES},
        "sha256": {"type": "string"},
        "size": {"type": "integer"},
        "upstream_url": {"type": "string"},
        "upload_time": {"type": ["string", "null"], "format": "date-time"},
        "first_seen": {"type": "string", "format": "date-time"},
        "held_reasons": {"type": "array", "items": {"type": "string"}},
        "cooldown_until": {"type": ["string", "null"], "format": "date-time"},
    },
}

_FILE_PARAM = {
    "name": "file_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer"},
}


def _decision(verb: str, summary: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"{verb}File",
            "summary": summary,
            "parameters": [_FILE_PARAM],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("DecisionRequest")}},
            },
            "responses": {
                "200": _json(_ref("File"), "The file after the decision."),
                "400": {"$ref": "#/components/responses/BadRequest"},
                **_ERRORS,
                "404": {"$ref": "#/components/responses/NotFound"},
                "409": _json(
                    _ref("Conflict"),
                    "The file is not in a state this decision applies to, or not in"
                    " `seen_state`; nothing changed.",
                ),
            },
        }
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "quarantine-mirror review API",
            "version": "1",
            "description": (
                "Held files, their findings, and decisions. Authenticate with "
                "`Authorization: Bearer <token>` (`qmirror token create NAME --role reviewer`)."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/files": {
                "get": {
                    "operationId": "listFiles",
                    "summary": "Files by state (held ones by default), oldest first.",
                    "parameters": [
                        {
                            "name": "state",
                            "in": "query",
                            "schema": {
                                "type": "string",
                                "enum": [*_STATES, "all"],
                                "default": "quarantined",
                            },
                        },
                        {"name": "project", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "q",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "substring of the project or filename",
                        },
                        {"name": "check", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "severity",
                            "in": "query",
                            "schema": {"type": "string", "enum": _SEVERITIES},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": 500,
                                "default": 100,
                            },
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0, "default": 0},
                        },
                    ],
                    "responses": {
                        "200": _json(_ref("FileList"), "The files."),
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        **_ERRORS,
                    },
                }
            },
            "/files/{file_id}": {
                "get": {
                    "operationId": "getFile",
                    "summary": "A file with its findings and decision history.",
                    "parameters": [_FILE_PARAM],
                    "responses": {
                        "200": _json(_ref("FileDetail"), "The file."),
                        **_ERRORS,
                        "404": {"$ref": "#/components/responses/NotFound"},
                    },
                }
            },
            "/files/{file_id}/approve": _decision(
                "approve",
                "Publish a held file (a rejected or revoked one needs `overturn: true`).",
            ),
            "/files/{file_id}/reject": _decision("reject", "Refuse a held file."),
            "/files/{file_id}/revoke": _decision(
                "revoke", "Take an approved file off the index at once."
            ),
            "/releases/{project}/{version}/approve": {
                "post": {
                    "operationId": "approveRelease",
                    "summary": "Publish every held file of a release (never overturns a decision).",
                    "parameters": [
                        {
                            "name": "project",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "version",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("DecisionRequest")}},
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "approved": {"type": "array", "items": _ref("File")}
                                },
                            },
                            "The files approved.",
                        ),
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        **_ERRORS,
                        "404": {"$ref": "#/components/responses/NotFound"},
                        "409": {"$ref": "#/components/responses/ConflictError"},
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "File": _FILE,
                "FileList": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {
                                "allOf": [
                                    _ref("File"),
                                    {
                                        "type": "object",
                                        "properties": {
                                            "findings": {"type": "integer"},
                                            "worst_severity": {"type": ["string", "null"]},
                                        },
                                    },
                                ]
                            },
                        },
                        "limit": {"type": "integer"},
                        "offset": {"type": "integer"},
                    },
                },
                "Finding": {
                    "type": "object",
                    "properties": {
                        "check": {"type": "string"},
                        "severity": {"type": "string", "enum": _SEVERITIES},
                        "message": {"type": "string"},
                        "evidence": {"type": "string"},
                        "path": {"type": ["string", "null"]},
                    },
                },
                "Decision": {
                    "type": "object",
                    "properties": {
                        "at": {"type": "string", "format": "date-time"},
                        "actor": {"type": "string"},
                        "from": {"type": ["string", "null"]},
                        "to": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                },
                "FileDetail": {
                    "allOf": [
                        _ref("File"),
                        {
                            "type": "object",
                            "properties": {
                                "findings": {"type": "array", "items": _ref("Finding")},
                                "decisions": {"type": "array", "items": _ref("Decision")},
                            },
                        },
                    ]
                },
                "DecisionRequest": {
                    "type": "object",
                    "required": ["reason"],
                    "properties": {
                        "reason": {"type": "string", "minLength": 1, "maxLength": 2000},
                        "overturn": {
                            "type": "boolean",
                            "default": False,
                            "description": (
                                "approve only: also approve a rejected or revoked file"
                                " (without it, approve publishes a held file only)"
                            ),
                        },
                        "seen_state": {
                            "type": "string",
                            "enum": _STATES,
                            "description": (
                                "the state the caller last read; the decision is refused"
                                " (409) if the file is no longer in it"
                            ),
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                },
                "Conflict": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "detail": {"type": "string"},
                        "state": {"type": "string", "enum": _STATES},
                    },
                },
            },
            "responses": {
                "BadRequest": _json(_ref("Error"), "The request was malformed; nothing changed."),
                "Unauthorized": _json(_ref("Error"), "No, an unknown or a revoked token."),
                "Forbidden": _json(_ref("Error"), "The token's role does not allow this."),
                "NotFound": _json(_ref("Error"), "No such file or release."),
                "ConflictError": _json(_ref("Error"), "Someone decided first."),
            },
        },
    }
