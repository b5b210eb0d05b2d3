"""Classes the REST framework's settings name (pagination, parsers). Nothing of ours imports this
module: DRF loads it when it reads its settings, so it can never be half-imported then."""

from rest_framework.exceptions import ParseError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser


class Pagination(LimitOffsetPagination):
    """Lists in pages of 100 by default and 1000 at most: a limit past that asks for 1000."""

    max_limit = 1000


class BoundedJSONParser(JSONParser):
    """JSON nested deeper than Python's recursion allows is a clear 400, not a server error."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
