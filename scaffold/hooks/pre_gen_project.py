"""Refuse a slug that cannot be a Python package name (it names the package and the directory)."""

import keyword
import re
import sys

SLUG = "{{ cookiecutter.project_slug }}"

if not re.fullmatch(r"[a-z][a-z0-9_]*", SLUG) or keyword.iskeyword(SLUG):
    print(
        f"project_slug {SLUG!r} is not a valid package name: lower-case letters, digits and '_', "
        "starting with a letter (for example my_project)",
        file=sys.stderr,
    )
    sys.exit(1)
