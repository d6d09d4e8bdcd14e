"""The settings of the service itself (environment variables `TILESERVICE__...`)."""

from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from c2casgiutils.config import GitHubAccessType, parse_comma_separated_list


class Settings(BaseSettings):
    """Settings of the tile service."""

    model_config = SettingsConfigDict(env_prefix="TILESERVICE__", env_nested_delimiter="__", extra="ignore")

    # Comma-separated in the environment: TILESERVICE__LAYERS=osm,ortho
    layers: Annotated[list[str], NoDecode, BeforeValidator(parse_comma_separated_list)] = ["osm", "ortho"]
    # Origins allowed to embed the tiles (comma-separated, may be empty).
    tile_origins: Annotated[list[str], NoDecode, BeforeValidator(parse_comma_separated_list)] = []
    # The GitHub repository whose permissions gate the administration.
    admin_repository: str = "camptocamp/tileservice"
    admin_access_type: GitHubAccessType = GitHubAccessType.PUSH
    read_access_type: GitHubAccessType = GitHubAccessType.PULL
    # SQLite files: the layer catalogue and the tile cache index.
    main_database: str = "tileservice.sqlite3"
    cache_database: str = "tileservice-cache.sqlite3"
    # Redis list of the seeding jobs, consumed by tileservice.worker.
    jobs_key: str = "tileservice_jobs"
    hits_prefix: str = "tileservice_hits_"


settings = Settings()
