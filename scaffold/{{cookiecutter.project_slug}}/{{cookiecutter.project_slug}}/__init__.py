"""{{ cookiecutter.project_description }}."""
