"""Path converters of the API, registered when this module is imported (by core's
AppConfig.ready, before any URLconf is loaded)."""

from django.urls import register_converter

# The largest id a path accepts: ids are 64-bit database integers, and a bigger number
# must be a plain 404, not an overflow in the database driver.
MAX_ID = 2**63 - 1


class IdConverter:
    """`<id:name>`: a positive integer that fits a 64-bit database column (else 404)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 0 < number <= MAX_ID:
            raise ValueError(value)  # Django answers 404: no route matches
        return number

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
