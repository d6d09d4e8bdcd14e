"""After generation: write `.env` with this project's own secrets, then say how to get the toolkit's wheels."""

import os
import secrets
from pathlib import Path

# Where cookiecutter found the template (the toolkit's `scaffold` directory); empty on old versions.
TEMPLATE_DIR = {{ cookiecutter.get("_repo_dir", "") | tojson }}
PACKAGES = "c2c-headers c2c-config c2c-health c2c-broadcast c2c-auth c2c-all"


def write_env(path: Path) -> bool:
    """Write `.env` (ignored by git and docker, readable by its owner only) unless it exists."""
    lines = [
        "# This project's secrets, written by the scaffold (README, \"Run it\"); never commit them.",
        "# The /c2c admin pages' secret: log in with it (login form or X-API-Key header).",
        f"C2C__AUTH__SECRET={secrets.token_urlsafe(32)}",
        "# Signs the broadcasts between replicas through Redis: the same value on every replica.",
        f"C2C__BROADCAST__SECRET={secrets.token_urlsafe(32)}",
        "# The secret is never accepted in a URL (access logs and browser history keep URLs); also set in the image.",
        "C2C__AUTH__SECRET_IN_QUERY=false",
    ]
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w", encoding="utf-8") as env_file:
        env_file.write("\n".join(lines) + "\n")
    return True


def main() -> None:
    project = Path.cwd()
    if write_env(project / ".env"):
        print(f"{project / '.env'}: the /c2c secret and the broadcast secret of this project (kept out of git).")
    if not any((project / "wheels").glob("c2c_all-*.whl")):
        toolkit = Path(TEMPLATE_DIR).parent if TEMPLATE_DIR else None
        if toolkit is None or not (toolkit / "packages" / "c2c-all" / "pyproject.toml").is_file():
            toolkit = None
        source = f'"{toolkit}"' if toolkit else "<the toolkit's checkout>"
        print(
            "\nNext, before `uv sync` or `docker compose up --build`: c2c-all is not on PyPI yet, build the"
            " toolkit's wheels into wheels/ (wheels/README.md):\n\n"
            f"    cd {project}\n"
            f"    for package in {PACKAGES}; do\n"
            f'        uv build --directory {source} --package "$package" --wheel --out-dir "$PWD/wheels"\n'
            "    done\n"
        )


main()
