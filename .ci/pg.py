"""Start or stop a PostgreSQL 16 with pgvector from the `pgserver` package (for CI).

python .ci/pg.py start DIR   -> prints a DATABASE_URL, exits non-zero on failure
python .ci/pg.py stop DIR
"""

import sys
from urllib.parse import quote

import pgserver


def main() -> None:
    action, folder = sys.argv[1], sys.argv[2]
    if action == "stop":
        pgserver.get_server(folder, cleanup_mode="stop").cleanup()
        return
    server = pgserver.get_server(folder, cleanup_mode=None)
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    version = server.psql("SELECT extversion FROM pg_extension WHERE extname = 'vector';")
    if "0." not in version:
        sys.exit("pgvector is not available in this PostgreSQL")
    # pgserver listens on a Unix socket in its data folder.
    print(f"postgres://postgres@/postgres?host={quote(str(server.pgdata))}")


if __name__ == "__main__":
    main()
