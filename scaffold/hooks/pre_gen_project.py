"""Refuse the answers that would break the generated project, with a message saying why."""

import keyword
import re
import sys

SLUG = "{{ cookiecutter.project_slug }}"
# As JSON: whatever the description holds, this line stays valid Python.
DESCRIPTION = {{ cookiecutter.project_description | tojson }}

problems = []
if not re.fullmatch(r"[a-z][a-z0-9_]*", SLUG) or keyword.iskeyword(SLUG):
    problems.append(
        f"project_slug {SLUG!r} is not a valid package name: lower-case letters, digits and '_', "
        "starting with a letter (for example my_project)"
    )
# The description goes into pyproject.toml, Python strings and a docstring as it is.
if not DESCRIPTION.strip() or re.search(r'["\\\x00-\x1f\x7f]', DESCRIPTION):
    problems.append(
        f"project_description {DESCRIPTION!r} must be one line of text without double quotes or backslashes"
        " (it is written into pyproject.toml and Python strings)"
    )
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
