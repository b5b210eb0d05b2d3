"""Object ids as they arrive in query strings and forms."""

LARGEST_ID = 2**63 - 1  # the largest primary key either database keeps
NO_SUCH_ID = 0  # no row has it: a filter on it finds nothing


def query_id(value) -> int | None:
    """The id a query parameter or form value names: None when it is not a number at all; a number
    past what a database keeps (SQLite refuses it outright) names nothing, so a filter on it finds
    nothing, as for any id that does not exist."""
    value = str(value or "")
    if not value.isdigit() or not value.isascii():
        return None
    number = int(value)
    return number if number <= LARGEST_ID else NO_SUCH_ID
