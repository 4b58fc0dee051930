"""The outbound-request guard: the one way the server reaches a URL a user typed.

(The full guard arrives with the providers issue; this module is its home.)
"""

import ipaddress
import re

from apps.core.exceptions import ValidationFailed

_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?)+$")


def validate_allowlist_entry(entry: str) -> None:
    """An allow-list entry is a host name, an IP address, or an IP network in CIDR form."""
    try:
        ipaddress.ip_network(entry, strict=False)
        return
    except ValueError:
        pass
    if not _HOSTNAME_RE.match(entry):
        raise ValidationFailed(
            f"{entry!r} is not a host name, IP address or CIDR network.",
            field="outbound_allowed_hosts",
        )
