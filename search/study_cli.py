"""CLI of the search side (search, export, dashboard). Filled in by the search issue."""

HANDLERS: dict = {}


def add_search_parser(sub, add_data_flags) -> None:
    pass


def add_other_parsers(sub) -> None:
    pass
