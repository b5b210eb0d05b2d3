"""CSV files an operator opens in a spreadsheet."""


def text_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: one that would start a formula gets a leading apostrophe (CSV
    injection: a camera named ``=HYPERLINK(...)`` stays a name)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
