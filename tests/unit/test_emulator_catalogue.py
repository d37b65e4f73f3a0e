"""Emulator pieces without HTTP: catalogue generation, mutation, cached views, fault rules."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from inventory.emulation import FaultRule, Faults
from inventory.emulation.traits import (
    OS_RELEASES,
    draw_choices,
    draw_ints,
    draw_traits,
    iso_z,
    random_ids,
)
from inventory.providers.qingcloud.emulator import (
    DEFAULT_OWNER,
    STATUSES,
    QingCloudCatalogue,
    generate_images,
    tag_pool,
)

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
FIELDS = {
    "image_id",
    "image_name",
    "description",
    "size",
    "processor_type",
    "platform",
    "os_family",
    "visibility",
    "provider",
    "owner",
    "recommended_type",
    "status",
    "transition_status",
    "create_time",
    "status_time",
    "tags",
    "sub_code",
}


# -- generation ------------------------------------------------------------------------------


def test_generation_is_deterministic() -> None:
    assert generate_images(500, seed=3) == generate_images(500, seed=3)
    assert generate_images(500, seed=3) != generate_images(500, seed=4)
    # A smaller catalogue of the same seed is not required to be a prefix, but a catalogue
    # is the same whatever else was generated before it in the process.
    generate_images(50, seed=99)
    assert generate_images(500, seed=3) == generate_images(500, seed=3)


def test_generated_images_have_the_documented_shape() -> None:
    images = generate_images(2000, seed=1)
    assert len(images) == 2000
    assert len({i["image_id"] for i in images}) == 2000
    for image in images:
        assert set(image) == FIELDS
        assert re.fullmatch(r"img-[a-z0-9]{8}", image["image_id"])
        assert isinstance(image["image_name"], str) and image["image_name"]
        assert image["description"] is None or isinstance(image["description"], str)
        assert isinstance(image["size"], int) and image["size"] >= 20
        assert image["processor_type"] in ("64bit", "32bit")
        assert image["platform"] in ("linux", "windows")
        assert (image["platform"] == "windows") == (image["os_family"] == "windows")
        assert image["status"] in STATUSES
        assert ISO.match(image["create_time"]) and ISO.match(image["status_time"])
        assert image["status_time"] >= image["create_time"]
        assert image["transition_status"] == ("creating" if image["status"] == "pending" else "")
        assert image["sub_code"] == 0
        if image["provider"] == "system":
            assert (image["visibility"], image["owner"]) == ("public", "system")
            assert image["image_name"].endswith(f" {image['processor_type']}")
            assert image["tags"] == []
        else:
            assert (image["provider"], image["visibility"]) == ("self", "private")
            assert image["owner"] == DEFAULT_OWNER
        for tag in image["tags"]:
            assert set(tag) == {"tag_id", "tag_key", "tag_name", "tag_value", "color", "owner"}
            assert tag["owner"] == DEFAULT_OWNER


def test_generated_mix_is_realistic() -> None:
    images = generate_images(5000, seed=2)
    providers = Counter(i["provider"] for i in images)
    assert 0.10 < providers["system"] / 5000 < 0.20  # a minority of platform images
    statuses = Counter(i["status"] for i in images)
    assert statuses["available"] / 5000 > 0.75
    assert statuses["deprecated"] > statuses["pending"] > 0
    assert statuses["suspended"] > 0 and statuses["deleted"] > 0
    assert statuses["ceased"] == 0  # ceased images are what a mutation makes
    names = {i["image_name"] for i in images}
    assert "CentOS 7.9 64bit" in names
    assert "Ubuntu Server 22.04 LTS 64bit" in names
    assert "Windows Server 2019 Datacenter 64bit" in names
    own = [i["image_name"] for i in images if i["provider"] == "self"]
    assert any(re.fullmatch(r"[a-z]+-[a-z]+-20\d\d-\d\d", n) for n in own)  # web-frontend-2024-05
    assert 0.2 < sum(1 for i in images if i["tags"]) / len(own) < 0.4
    # The account's few tags are shared by many images, so a tag filter finds several.
    tag_uses = Counter(t["tag_id"] for i in images for t in i["tags"])
    assert len(tag_uses) == len(tag_pool(DEFAULT_OWNER))
    assert min(tag_uses.values()) > 10


def test_owner_and_system_share_are_honoured() -> None:
    images = generate_images(300, seed=1, owner="usr-abc", system_share=0.0)
    assert {i["owner"] for i in images} == {"usr-abc"}
    assert {i["provider"] for i in images} == {"self"}
    assert generate_images(0, seed=1) == []
    with pytest.raises(ValueError):
        generate_images(-1, seed=1)


def test_generation_of_100000_images() -> None:
    # Size, not speed, is checked (no timing assertions); the benchmark relies on this size.
    images = generate_images(100_000, seed=7)
    assert len({i["image_id"] for i in images}) == 100_000


# -- mutation --------------------------------------------------------------------------------


def snapshot(catalogue: QingCloudCatalogue) -> dict[str, dict[str, Any]]:
    out = {}
    for image_id in catalogue.ids():
        image = catalogue.get(image_id)
        assert image is not None
        out[image_id] = image
    return out


def mutated(seed: int = 5, **counts: int) -> tuple[dict[str, list[str]], QingCloudCatalogue]:
    catalogue = QingCloudCatalogue.generate(400, seed=11)
    return catalogue.mutate(seed, now=NOW, **counts), catalogue


def test_mutation_is_deterministic() -> None:
    counts = {"deprecate": 6, "cease": 4, "delete": 3, "remove": 5, "add": 7, "rename": 4}
    first, a = mutated(**counts)
    second, b = mutated(**counts)
    assert first == second
    assert snapshot(a) == snapshot(b)
    assert list(snapshot(a)) == list(snapshot(b))  # same order too
    other, _ = mutated(seed=6, **counts)
    assert other != first


def test_each_mutation_kind() -> None:
    catalogue = QingCloudCatalogue.generate(400, seed=11)
    before = snapshot(catalogue)
    changes = catalogue.mutate(
        5, deprecate=6, cease=4, delete=3, remove=5, add=7, rename=4, now=NOW
    )
    after = snapshot(catalogue)
    stamp = "2026-03-04T05:06:07Z"
    assert {k: len(v) for k, v in changes.items()} == {
        "deprecate": 6,
        "cease": 4,
        "delete": 3,
        "remove": 5,
        "add": 7,
        "rename": 4,
    }
    changed = [
        i for kind in ("deprecate", "cease", "delete", "remove", "rename") for i in changes[kind]
    ]
    assert len(changed) == len(set(changed)), "an image changes at most once"
    assert all(before[i]["owner"] == DEFAULT_OWNER for i in changed)
    for image_id in changes["deprecate"]:
        assert before[image_id]["status"] == "available"
        assert after[image_id] == {**before[image_id], "status": "deprecated", "status_time": stamp}
    for image_id in changes["cease"]:
        assert before[image_id]["status"] in ("deprecated", "deleted")
        assert (after[image_id]["status"], after[image_id]["status_time"]) == ("ceased", stamp)
    for image_id in changes["delete"]:
        assert before[image_id]["status"] != "ceased"
        assert (after[image_id]["status"], after[image_id]["status_time"]) == ("deleted", stamp)
    for image_id in changes["remove"]:
        assert image_id not in after
    for image_id in changes["rename"]:
        assert after[image_id]["image_name"] != before[image_id]["image_name"]
        assert after[image_id]["description"] == "rebuilt 2026-03-04"
        assert after[image_id]["status_time"] == before[image_id]["status_time"]
    for image_id in changes["add"]:
        assert image_id not in before
        image = after[image_id]
        assert (image["status"], image["create_time"], image["status_time"]) == (
            "available",
            stamp,
            stamp,
        )
        assert (image["owner"], image["provider"]) == (DEFAULT_OWNER, "self")
    untouched = set(before) - set(changed)
    assert all(after[i] == before[i] for i in untouched)
    assert list(after)[-7:] == changes["add"]  # new images come last, as on the real API


def test_mutation_changes_fewer_when_fewer_qualify() -> None:
    catalogue = QingCloudCatalogue.generate(50, seed=3)
    eligible = sum(
        1
        for i in snapshot(catalogue).values()
        if i["owner"] == DEFAULT_OWNER and i["status"] in ("deprecated", "deleted")
    )
    changes = catalogue.mutate(1, cease=1000, now=NOW)
    assert len(changes["cease"]) == eligible


def test_renaming_twice_keeps_one_version_suffix() -> None:
    catalogue = QingCloudCatalogue(
        [{**generate_images(1, seed=1, system_share=0.0)[0], "image_name": "web-node-v3"}]
    )
    (image_id,) = catalogue.ids()
    for seed in range(5):
        catalogue.mutate(seed, rename=1, now=NOW)
        name = snapshot(catalogue)[image_id]["image_name"]
        assert re.fullmatch(r"web-node-v[2-9]", name)


@pytest.mark.parametrize("counts", [{"add": -1}, {"remove": 1.5}, {"deprecate": True}])
def test_bad_mutation_counts_change_nothing(counts: dict[str, Any]) -> None:
    catalogue = QingCloudCatalogue.generate(100, seed=1)
    before = snapshot(catalogue)
    with pytest.raises(ValueError):
        catalogue.mutate(1, now=NOW, **{"deprecate": 3, **counts})
    assert snapshot(catalogue) == before


# -- listings ----------------------------------------------------------------------------------


def test_listing_is_cached_until_a_change() -> None:
    catalogue = QingCloudCatalogue.generate(200, seed=1)
    own = (("owner", DEFAULT_OWNER),)
    first = catalogue.listing(own)
    assert catalogue.listing(own) is first  # no rescan for the next page
    position = next(n for n, i in enumerate(first) if i["status"] == "available")
    catalogue.edit(first[position]["image_id"], status="suspended")
    second = catalogue.listing(own)
    assert second is not first
    assert second[position]["status"] == "suspended"
    # A listing handed out before the change still shows the image as it was (copy on
    # write), so a page being written while the catalogue changes is never half-changed.
    assert first[position]["status"] == "available"


def test_listing_taken_before_a_mutation_is_unchanged() -> None:
    catalogue = QingCloudCatalogue.generate(200, seed=1)
    own = (("owner", DEFAULT_OWNER),)
    view = catalogue.listing(own)
    frozen = [dict(i) for i in view]
    catalogue.mutate(2, deprecate=20, rename=20, now=NOW)
    assert [dict(i) for i in view] == frozen


def test_remove_and_restore() -> None:
    catalogue = QingCloudCatalogue.generate(30, seed=1)
    image_id = catalogue.ids()[0]
    catalogue.remove(image_id)
    assert catalogue.get(image_id) is None and len(catalogue) == 29
    catalogue.restore(image_id, status="deprecated")
    assert snapshot(catalogue)[image_id]["status"] == "deprecated"
    assert catalogue.ids()[-1] == image_id


# -- faults ----------------------------------------------------------------------------------


def test_fault_rules_match_pages_and_are_used_up() -> None:
    faults = Faults()
    faults.add(FaultRule(kind="http_503", page=2, times=2))
    faults.add(FaultRule(kind="throttle"))
    assert faults.take_all(2) == [FaultRule(kind="http_503", page=2, times=2)]
    assert faults.take_all(2) == [FaultRule(kind="http_503", page=2, times=2)]
    assert faults.take_all(2) == [FaultRule(kind="throttle")]  # the 503 is used up
    assert faults.take_all(1) == [FaultRule(kind="throttle")]
    assert faults.rules() == [FaultRule(kind="throttle")]
    faults.clear()
    assert faults.take_all(1) == []


def test_take_all_combines_latency_with_one_other_rule() -> None:
    faults = Faults(
        [
            FaultRule(kind="latency", page=1, times=1, latency_s=0.5),
            FaultRule(kind="latency", page=1, times=1, latency_s=9.0),
            FaultRule(kind="reset", page=1, times=1),
            FaultRule(kind="http_500", page=1, times=1),
        ]
    )
    assert [r.kind for r in faults.take_all(1)] == ["latency", "reset"]
    assert [(r.kind, r.latency_s) for r in faults.take_all(1)] == [
        ("latency", 9.0),
        ("http_500", 0.0),
    ]
    assert faults.take_all(1) == []


def test_zero_times_never_fires() -> None:
    faults = Faults([FaultRule(kind="reset", times=0)])
    assert faults.take_all(1) == []


def test_fault_rule_from_dict() -> None:
    assert FaultRule.from_dict({"kind": "latency", "page": 3, "latency_s": 1}) == FaultRule(
        kind="latency", page=3, times=None, latency_s=1.0
    )
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultRule.from_dict({"kind": "internal"})  # not a common kind
    assert FaultRule.from_dict({"kind": "internal"}, {"internal"}).kind == "internal"
    for bad in ({"kind": "reset", "times": -1}, {"kind": "reset", "pages": 1}):
        with pytest.raises(ValueError):
            FaultRule.from_dict(bad)


# -- shared generators -----------------------------------------------------------------------


def test_iso_z() -> None:
    assert iso_z(0) == "1970-01-01T00:00:00Z"
    moment = datetime(2024, 2, 29, 23, 59, 58, tzinfo=UTC)
    assert iso_z(int(moment.timestamp())) == "2024-02-29T23:59:58Z"


def test_random_ids_are_distinct_and_avoid_taken() -> None:
    first = random_ids(random.Random(1), "img-", 1000)
    assert len(set(first)) == 1000
    again = random_ids(random.Random(1), "img-", 1000, taken=set(first[:10]))
    assert not set(again) & set(first[:10])


def test_draws_follow_their_weights() -> None:
    rng = random.Random(3)
    drawn = Counter(draw_choices(rng, ("a", "b", "c"), 20_000, (80, 15, 5)))
    assert 0.77 < drawn["a"] / 20_000 < 0.83
    assert 0.03 < drawn["c"] / 20_000 < 0.07
    ints = draw_ints(rng, 10, 20, 5000)
    assert set(ints) == set(range(10, 20))


def test_traits_are_provider_neutral_and_deterministic() -> None:
    a = draw_traits(random.Random(4), 500)
    assert a == draw_traits(random.Random(4), 500)
    assert {t.os for t in a} <= set(OS_RELEASES)
    assert all(t.architecture == "x86_64" for t in a if t.os.platform == "windows")
    assert all(t.name == t.os.label for t in a if t.system)
    dated = draw_traits(random.Random(4), 3, created_at=1_700_000_000)
    assert {t.created for t in dated} == {1_700_000_000}
