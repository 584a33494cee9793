"""An S3 difusor for the tests: a bucket on the local endpoint (moto's server mode over real
HTTP, prepush.sim.s3local), seen as something Workdir.write_roster can put in a roster."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from prepush.sim.s3local import KEY_ID, SECRET, LocalS3
from tests.support.guide import snippet

KEY_ENV = "PREP_S3_LLAVE"
SECRET_ENV = "PREP_S3_SECRETO"
CREDENTIALS = {KEY_ENV: KEY_ID, SECRET_ENV: SECRET}
NO_CACHE = "no-cache, no-store, must-revalidate"
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclasses.dataclass
class S3Endpoint:
    name: str
    bucket: str
    endpoint_url: str
    url: str
    local: LocalS3
    prefix: str = ""
    distribution_id: str | None = None

    def roster_entry(self) -> dict[str, object]:
        s3: dict[str, object] = {
            "bucket": self.bucket,
            "region": "us-east-1",
            "endpoint_url": self.endpoint_url,
            "access_key_id_env": KEY_ENV,
            "secret_access_key_env": SECRET_ENV,
        }
        if self.prefix:
            s3["prefix"] = self.prefix
        if self.distribution_id:
            s3["cloudfront_distribution_id"] = self.distribution_id
        return {"name": self.name, "transport": "s3", "url": self.url, "s3": s3}

    def through(self, port: int) -> S3Endpoint:
        """The same bucket, reached by prepush through a proxy on ``port`` (the public
        still reads it straight from the endpoint)."""
        return dataclasses.replace(self, endpoint_url=f"http://127.0.0.1:{port}")

    @property
    def port(self) -> int:
        return self.local.port

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def objects(self) -> dict[str, dict[str, Any]]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        return self.local.objects(self.bucket, prefix)

    def tree(self, *, with_meta: bool = False) -> dict[str, bytes]:
        return {
            path: found["body"]
            for path, found in self.objects().items()
            if with_meta or not path.startswith(".prepush/")
        }

    def main_json_corte(self) -> str:
        return str(json.loads(self.tree()["json/main.json"])["corte"])


def guide_bucket_policy() -> dict[str, Any]:
    """docs/difusores.md's bucket policy, with ``BUCKET`` where the guide names its bucket."""
    policy: dict[str, Any] = json.loads(snippet("bucket-policy", {"prep-medio-2027": "BUCKET"}))
    return policy
