"""docs/difusores.md for S3 difusores: the bucket policy the tests apply is the guide's, and
the guide's roster entry validates."""

from __future__ import annotations

import json

from prepush.settings import parse_roster
from prepush.sim.s3local import SITE_POLICY, moto_policy
from tests.support.guide import snippet
from tests.support.rosters import VALID
from tests.support.s3 import guide_bucket_policy


def test_the_guide_policy_is_what_simulate_applies() -> None:
    assert guide_bucket_policy() == SITE_POLICY
    # moto cannot evaluate the Deny's condition: the local endpoint denies unsigned reads of
    # .prepush/ itself, and gets the public-read statement alone.
    assert [s["Sid"] for s in moto_policy(SITE_POLICY)["Statement"]] == ["SitioPublico"]


def test_the_guide_iam_policy_grants_what_prepush_asks() -> None:
    policy = json.loads(snippet("iam-policy"))
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "s3:AbortMultipartUpload",
        "cloudfront:CreateInvalidation",
        "cloudfront:GetInvalidation",
        "cloudfront:GetDistributionConfig",
        "cloudfront:GetCachePolicy",
    } == actions


def test_the_guide_s3_roster_entry_validates() -> None:
    header = VALID.split("difusores:\n")[0]
    roster = parse_roster(header + snippet("roster-s3"), "difusores.yaml")
    (difusor,) = roster.difusores
    assert difusor.transport == "s3"
    assert difusor.s3 is not None
    assert difusor.s3.cloudfront_distribution_id == "E2QWRUHAPOMQZL"
