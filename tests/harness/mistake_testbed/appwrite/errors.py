"""Appwrite-shaped errors: the SDK turns `{"message","code","type","version"}` bodies into AppwriteException."""

from __future__ import annotations

from typing import Any

# The server version reported in error bodies; the SDK only echoes it back in `.response`.
APPWRITE_VERSION = "1.8.0"


class AppwriteError(Exception):
    """An error the server answers with; `type` is Appwrite's machine-readable error type."""

    def __init__(self, code: int, type_: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.type = type_
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code, "type": self.type, "version": APPWRITE_VERSION}


def resource_words(rows: bool) -> tuple[str, str]:
    """('document'|'row', 'collection'|'table'): the TablesDB routes report the same errors with other nouns."""
    return ("row", "table") if rows else ("document", "collection")


def not_found(rows: bool) -> AppwriteError:
    noun = "row" if rows else "document"
    return AppwriteError(404, f"{noun}_not_found", f"{noun.capitalize()} with the requested ID could not be found.")


def already_exists(rows: bool) -> AppwriteError:
    noun = "row" if rows else "document"
    return AppwriteError(
        409,
        f"{noun}_already_exists",
        f"{noun.capitalize()} with the requested ID already exists. "
        "Try again with a different ID or use ID.unique() to generate a unique ID.",
    )


def invalid_structure(rows: bool, detail: str) -> AppwriteError:
    noun = "row" if rows else "document"
    return AppwriteError(400, f"{noun}_invalid_structure", f"Invalid {noun} structure: {detail}")


def container_not_found(rows: bool) -> AppwriteError:
    noun = "table" if rows else "collection"
    return AppwriteError(404, f"{noun}_not_found", f"{noun.capitalize()} with the requested ID could not be found.")


def column_not_found(rows: bool) -> AppwriteError:
    noun = "column" if rows else "attribute"
    return AppwriteError(404, f"{noun}_not_found", f"{noun.capitalize()} with the requested ID could not be found.")


def column_not_numeric(rows: bool, key: str) -> AppwriteError:
    # Appwrite reports this with the attribute type on both routes.
    noun = "Column" if rows else "Attribute"
    return AppwriteError(400, "attribute_type_invalid", f'{noun} "{key}" is not a number')


def column_bound_reached(rows: bool, key: str, bound: float, upper: bool) -> AppwriteError:
    noun = "column" if rows else "attribute"
    which = "maximum" if upper else "minimum"
    return AppwriteError(
        400, f"{noun}_limit_exceeded", f'{noun.capitalize()} "{key}" has reached the {which} value of {bound:g}'
    )


def database_not_found() -> AppwriteError:
    return AppwriteError(404, "database_not_found", "Database not found")


def argument_invalid(message: str) -> AppwriteError:
    return AppwriteError(400, "general_argument_invalid", message)


def query_invalid(message: str) -> AppwriteError:
    return AppwriteError(400, "general_query_invalid", f"Invalid query: {message}")


def route_not_found() -> AppwriteError:
    return AppwriteError(404, "general_route_not_found", "The requested route was not found.")
