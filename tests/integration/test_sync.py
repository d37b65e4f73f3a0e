"""End-to-end syncs: the QingCloud emulator over real HTTP into a real PostgreSQL."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, text

from inventory import staging, store
from inventory.config import Settings, SyncSettings
from inventory.errors import AlreadyRunning
from inventory.http import RetryPolicy
from inventory.providers import PROVIDERS, Assembled
from inventory.sync import RunResult, sync_source

from .helpers import AT_ONCE, Emulator, fetch_all, history_of, row_versions

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)


def sync(
    engine: Engine, emu: Emulator, *, settings: Settings | None = None, **kw: Any
) -> RunResult:
    settings = settings or AT_ONCE
    return sync_source(engine, settings, emu.source(), policy=FAST, **kw)


def test_full_multi_page_sync(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=250, page_size=100)
    result = sync(engine, emu)

    assert result.status == "succeeded", result.error
    assert result.pages == 3  # 100 + 100 + a short last page of 50
    assert result.listing_complete
    assert (result.images_seen, result.inserted, result.unchanged) == (250, 250, 0)

    ids = {r.provider_image_id for r in fetch_all(engine, "SELECT provider_image_id FROM images")}
    assert ids == emu.visible_ids()
    counts = fetch_all(
        engine,
        """SELECT (SELECT count(*) FROM image_status_history WHERE valid_to IS NULL) AS open,
                  (SELECT count(*) FROM image_events WHERE kind = 'appeared') AS appeared""",
    )[0]
    assert (counts.open, counts.appeared) == (250, 250)
    run = fetch_all(engine, "SELECT * FROM sync_runs")[0]
    assert (run.status, run.pages, run.images_seen, run.inserted) == ("succeeded", 3, 250, 250)
    assert run.listing_complete and run.finished_at >= run.started_at


def test_every_diff_outcome_over_three_runs(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=120, page_size=25)
    first = sync(engine, emu)
    assert first.inserted == 120

    changes = emu.mutate(seed=1, deprecate=4, cease=3, delete=2, remove=5, add=6, rename=3)
    second = sync(engine, emu)
    assert second.status == "succeeded", second.error
    status_changed = set(changes["deprecate"]) | set(changes["cease"]) | set(changes["delete"])
    renamed = set(changes["rename"]) - status_changed
    assert second.inserted == 6
    assert second.disappeared == 5
    assert second.changed == len(status_changed | renamed)
    assert second.unchanged == 120 - 5 - second.changed

    events = {
        (r.provider_image_id, r.kind): r
        for r in fetch_all(
            engine,
            """SELECT i.provider_image_id, e.kind, e.old_status, e.new_status, e.changed_fields
                 FROM image_events e JOIN images i ON i.id = e.image_id
                WHERE e.run_id = :run""",
            run=second.run_id,
        )
    }
    for image_id in changes["deprecate"]:
        event = events[(image_id, "status_changed")]
        assert (event.old_status, event.new_status) == ("available", "deprecated")
        assert history_of(engine, image_id)[-2:] == [("available", True), ("deprecated", False)]
    for image_id in changes["cease"]:
        assert events[(image_id, "status_changed")].new_status == "ceased"
    for image_id in changes["remove"]:
        event = events[(image_id, "disappeared")]
        assert event.new_status == "gone"
        assert history_of(engine, image_id)[-1] == ("gone", False)
    for image_id in changes["add"]:
        assert events[(image_id, "appeared")].new_status is not None
    for image_id in renamed:
        assert "name" in events[(image_id, "changed")].changed_fields
    gone = fetch_all(engine, "SELECT provider_image_id FROM images WHERE gone_at IS NOT NULL")
    assert {r.provider_image_id for r in gone} == set(changes["remove"])

    # Third run: two removed images come back, one of them with a new status.
    back = changes["remove"][:2]
    emu.restore(back[0])
    emu.restore(back[1], status="deprecated")
    third = sync(engine, emu)
    assert (third.reappeared, third.disappeared, third.inserted) == (2, 0, 0)
    assert third.changed == 0
    for image_id in back:
        assert history_of(engine, image_id)[-2][0] == "gone"
        assert history_of(engine, image_id)[-1][1] is False  # open again
    assert history_of(engine, back[1])[-1][0] == "deprecated"
    reappeared = fetch_all(
        engine,
        "SELECT count(*) AS n FROM image_events WHERE kind = 'reappeared' AND run_id = :r",
        r=third.run_id,
    )
    assert reappeared[0].n == 2
    gone_now = fetch_all(engine, "SELECT count(*) AS n FROM images WHERE gone_at IS NOT NULL")
    assert gone_now[0].n == 3

    open_per_image = fetch_all(
        engine,
        """SELECT max(n) AS most FROM (SELECT count(*) AS n FROM image_status_history
            WHERE valid_to IS NULL GROUP BY image_id) t""",
    )
    assert open_per_image[0].most == 1


def test_resync_without_upstream_change_writes_nothing(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=300, page_size=100)
    assert sync(engine, emu).inserted == 300
    before = row_versions(engine)

    again = sync(engine, emu)

    assert again.status == "succeeded"
    assert (again.unchanged, again.changed, again.inserted, again.disappeared) == (300, 0, 0, 0)
    # Same physical row versions (ctid) written by the same transactions (xmin): not one
    # UPDATE, INSERT or DELETE reached images or image_status_history.
    assert row_versions(engine) == before
    events = fetch_all(
        engine, "SELECT count(*) AS n FROM image_events WHERE run_id = :r", r=again.run_id
    )
    assert events[0].n == 0


def test_failure_at_page_k_keeps_everything(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=200, page_size=50)
    assert sync(engine, emu).status == "succeeded"
    before = row_versions(engine)
    emu.mutate(seed=2, remove=30, deprecate=10)  # would flag 40 images if the run completed
    emu.fail(page=3, kind="http_503")  # every attempt at page 3 of 4 fails

    result = sync(engine, emu)

    assert result.status == "failed"
    assert result.error is not None
    assert "source 'qy-test'" in result.error and "page 3" in result.error
    assert "HTTP 503" in result.error
    assert row_versions(engine) == before  # nothing stored was touched, nothing marked gone
    run = fetch_all(engine, "SELECT * FROM sync_runs WHERE id = :r", r=result.run_id)[0]
    assert run.status == "failed" and not run.listing_complete and "page 3" in run.error
    assert run.disappeared == 0


def test_transient_errors_are_retried(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=150, page_size=50)
    emu.fail(page=2, kind="throttle", times=1)  # ret_code 2500
    emu.fail(page=3, kind="http_500", times=1)
    result = sync(engine, emu)
    assert result.status == "succeeded", result.error
    assert result.retries == 2
    assert result.inserted == 150
    run = fetch_all(engine, "SELECT retries, pages FROM sync_runs WHERE id = :r", r=result.run_id)
    assert (run[0].retries, run[0].pages) == (2, 3)


@pytest.mark.parametrize("kind", ["malformed", "reset"])
def test_bad_responses_fail_the_run_cleanly(engine: Engine, emulator: Emulator, kind: str) -> None:
    emu = emulator.reset(images=100, page_size=50)
    assert sync(engine, emu).status == "succeeded"
    before = row_versions(engine)
    emu.mutate(seed=3, remove=10)
    emu.fail(page=2, kind=kind)
    result = sync(engine, emu)
    assert result.status == "failed"
    assert "page 2" in (result.error or "")
    assert row_versions(engine) == before


def test_record_without_required_field(engine: Engine, emulator: Emulator) -> None:
    """The image is left out with a reason naming it; the others are stored."""
    emu = emulator.reset(images=60, page_size=50)
    victim = sorted(emu.visible_ids())[0]
    emu.edit(victim, status=None)
    result = sync(engine, emu)
    assert result.status == "succeeded", result.error
    assert not result.listing_complete
    assert "required field 'status'" in (result.incomplete_reason or "")
    assert victim in (result.incomplete_reason or "")
    count = fetch_all(engine, "SELECT count(*) AS n FROM images")[0].n
    assert count == len(emu.visible_ids()) - 1


def test_wrong_credentials_fail_with_a_clear_message(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=10, page_size=10)
    result = sync_source(
        engine, Settings(path=None), emu.source(secret="wrong-secret"), policy=FAST
    )
    assert result.status == "failed"
    assert "ret_code 1200" in (result.error or "")
    assert "credentials.secret_access_key" in (result.error or "")
    assert result.retries == 0  # authentication failures are not retried


def test_unknown_status_is_stored_with_one_warning(
    engine: Engine, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = emulator.reset(images=40, page_size=20)
    odd = sorted(emu.visible_ids())[:3]
    for image_id in odd:
        emu.edit(image_id, status="quarantined")
    with caplog.at_level(logging.WARNING, logger="inventory.sync"):
        result = sync(engine, emu)
    assert result.status == "succeeded"
    assert result.unknown_statuses == {"quarantined": 3}
    rows = fetch_all(
        engine, "SELECT status, raw_status FROM images WHERE provider_image_id = ANY(:ids)", ids=odd
    )
    assert {(r.status, r.raw_status) for r in rows} == {("unknown", "quarantined")}
    warnings = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(warnings) == 1
    run = fetch_all(engine, "SELECT unknown_statuses, warning FROM sync_runs")[0]
    assert run.unknown_statuses == 3 and "quarantined" in run.warning


def test_deletion_guard_refuses_mass_disappearance(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=100, page_size=100)
    settings = Settings(
        path=None, sync=SyncSettings(max_disappearance_share=0.5, confirm_gone_runs=1)
    )
    assert sync(engine, emu, settings=settings).inserted == 100
    removed = emu.mutate(seed=4, remove=60)["remove"]

    guarded = sync(engine, emu, settings=settings)
    assert guarded.status == "succeeded"
    assert guarded.disappearance_blocked and guarded.disappeared == 0
    assert guarded.disappearance_candidates == 60
    assert "--allow-mass-disappearance" in (guarded.warning or "")
    assert fetch_all(engine, "SELECT count(*) AS n FROM images WHERE gone_at IS NOT NULL")[0].n == 0

    allowed = sync(engine, emu, settings=settings, allow_mass_disappearance=True)
    assert allowed.disappeared == 60 and not allowed.disappearance_blocked
    gone = fetch_all(engine, "SELECT provider_image_id FROM images WHERE gone_at IS NOT NULL")
    assert {r.provider_image_id for r in gone} == set(removed)


def test_guard_ignores_small_sources_and_small_shares(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=10, page_size=10)
    sync(engine, emu)
    emu.mutate(seed=5, remove=8)  # 80% of a source below guard_min_images (20)
    assert sync(engine, emu).disappeared == 8


def test_incomplete_listing_marks_nothing_gone(engine: Engine, emulator: Emulator) -> None:
    """An image removed while paging shifts offsets: the run keeps what it saw, flags nothing."""
    emu = emulator.reset(images=100, page_size=25)
    sync(engine, emu)
    emu.mutate(seed=6, remove=5)
    emu.remove_after_page(page=2, count=1)  # the catalogue shrinks between pages 2 and 3
    result = sync(engine, emu)
    assert result.status == "succeeded"
    assert not result.listing_complete
    assert "total changed" in (result.incomplete_reason or "")
    assert result.disappeared == 0


def test_two_syncs_of_one_source_never_run_together(engine: Engine, emulator: Emulator) -> None:
    import threading

    emu = emulator.reset(images=60, page_size=20)
    emu.fail(page=1, kind="latency", latency_s=1.5, times=1)
    outcome: dict[str, Any] = {}

    def first() -> None:
        outcome["first"] = sync(engine, emu)

    thread = threading.Thread(target=first)
    thread.start()
    emu.wait_for_requests(1)  # the first sync holds the lock and is waiting on page 1
    with pytest.raises(AlreadyRunning, match="already being synced"):
        sync(engine, emu)
    thread.join()
    assert outcome["first"].status == "succeeded"
    runs = fetch_all(engine, "SELECT status FROM sync_runs")
    assert [r.status for r in runs] == ["succeeded"]


def test_orphaned_running_run_is_marked_aborted(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=5, page_size=5)
    sync(engine, emu)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sync_runs (source_id, trigger, started_at, status, pid, hostname) "
                "SELECT id, 'cli', now() - interval '1 hour', 'running', 4242, 'gone-host' "
                "FROM sources"
            )
        )
    sync(engine, emu)
    rows = fetch_all(engine, "SELECT status, error FROM sync_runs WHERE pid = 4242")
    assert rows[0].status == "aborted"
    assert "pid 4242 on gone-host" in rows[0].error


# -- gone is confirmed over complete listings -------------------------------------------------

CONFIRM_TWICE = Settings(path=None)  # the default: confirm_gone_runs = 2


def test_an_image_is_gone_only_once_missing_from_two_complete_listings(
    engine: Engine, emulator: Emulator
) -> None:
    """One odd listing from an eventually consistent API never makes an image gone."""
    emu = emulator.reset(images=80, page_size=40)
    assert sync(engine, emu, settings=CONFIRM_TWICE).inserted == 80
    removed = emu.mutate(seed=5, remove=3)["remove"]
    first = sync(engine, emu, settings=CONFIRM_TWICE)
    assert first.status == "succeeded" and first.listing_complete
    assert (first.disappeared, first.missing) == (0, 3)
    rows = fetch_all(
        engine,
        "SELECT gone_at, missing_runs, missing_since FROM images"
        " WHERE provider_image_id = ANY(:ids)",
        ids=removed,
    )
    assert all(r.gone_at is None and r.missing_runs == 1 and r.missing_since for r in rows)
    kinds = fetch_all(engine, "SELECT kind FROM image_events WHERE kind = 'disappeared'")
    assert kinds == []  # nothing to alert on yet
    flagged = fetch_all(
        engine,
        "SELECT provider_image_id, status, missing_since FROM report_flagged_images"
        " WHERE missing_since IS NOT NULL",
    )
    assert {r.provider_image_id for r in flagged} == set(removed)
    # 'missing' unless the image was already flagged for its own status (deprecated, ...)
    assert "missing" in {r.status for r in flagged}

    second = sync(engine, emu, settings=CONFIRM_TWICE)
    assert (second.disappeared, second.missing) == (3, 0)
    for image_id in removed:
        assert history_of(engine, image_id)[-1] == ("gone", False)
    cleared = fetch_all(engine, "SELECT count(*) AS n FROM images WHERE missing_runs > 0")
    assert cleared[0].n == 0


def test_listed_again_is_no_longer_missing_and_partial_runs_count_nothing(
    engine: Engine, emulator: Emulator
) -> None:
    emu = emulator.reset(images=80, page_size=40)
    sync(engine, emu, settings=CONFIRM_TWICE)
    back, away = emu.mutate(seed=6, remove=2)["remove"]
    assert sync(engine, emu, settings=CONFIRM_TWICE).missing == 2
    emu.restore(back)
    emu.fail(page=2, kind="http_503")  # this listing fails: it proves nothing about 'away'
    assert sync(engine, emu, settings=CONFIRM_TWICE).status == "failed"
    assert emu.app is not None
    emu.app.faults.clear()
    again = sync(
        engine, emu, settings=CONFIRM_TWICE
    )  # 'back' is listed again; 'away' is missing a second time
    assert (again.disappeared, again.missing) == (1, 0)
    states = {
        r.provider_image_id: (r.gone_at is not None, r.missing_runs)
        for r in fetch_all(
            engine,
            "SELECT provider_image_id, gone_at, missing_runs FROM images"
            " WHERE provider_image_id = ANY(:ids)",
            ids=[back, away],
        )
    }
    assert states == {back: (False, 0), away: (True, 0)}


def test_confirm_gone_runs_1_marks_gone_at_once(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=40, page_size=40)
    at_once = Settings(path=None, sync=SyncSettings(confirm_gone_runs=1))
    sync(engine, emu, settings=at_once)
    emu.mutate(seed=7, remove=2)
    result = sync(engine, emu, settings=at_once)
    assert (result.disappeared, result.missing) == (2, 0)


def test_a_database_connection_lost_mid_run_is_said_and_recorded(
    engine: Engine, emulator: Emulator
) -> None:
    """A restart or failover kills the run's connection: the run says so (not a config
    hint), is recorded as failed by the same process, and applies nothing."""
    emu = emulator.reset(images=120, page_size=40)
    assert sync(engine, emu).ok
    before = row_versions(engine)
    assert emu.server is not None
    served = emu.server.request_count
    emu.fail(page=2, kind="latency", latency_s=1.0, times=1)
    results: list[RunResult] = []
    worker = threading.Thread(target=lambda: results.append(sync(engine, emu)))
    worker.start()
    emu.wait_for_requests(served + 2)  # page 2 asked for: page 1 is staged, nothing merged
    with engine.begin() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                " WHERE locktype = 'advisory' AND pid <> pg_backend_pid() AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).scalar_one()
    worker.join(timeout=30)
    assert killed == 1 and results, "the run did not end"
    [result] = results
    assert result.status == "failed"
    # The staging COPY streams: the loss shows at the next page it sends, or at its end.
    assert re.search(
        r"database connection was lost during the run \(after page [1-3]\)", result.error or ""
    )
    assert "INVENTORY_DATABASE_URL" not in (result.error or "")
    run = fetch_all(engine, "SELECT status, error FROM sync_runs WHERE id = :r", r=result.run_id)
    assert run[0].status == "failed" and "connection was lost" in run[0].error
    assert row_versions(engine) == before
    assert sync(engine, emu).ok  # and the next run is fine


def test_a_statement_the_database_refuses_names_the_source_and_place(
    engine: Engine, emulator: Emulator
) -> None:
    """A full disk (here raised by a trigger, as PostgreSQL raises it) fails the run with
    one line naming the source, where the run was and PostgreSQL's own words, not an
    internal error with a traceback; nothing is applied and the next run is fine."""
    emu = emulator.reset(images=120, page_size=40)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION inventory_test_full() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'"
                " USING ERRCODE = '53100'; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER inventory_test_full BEFORE INSERT ON images"
                " FOR EACH ROW EXECUTE FUNCTION inventory_test_full()"
            )
        )
    try:
        result = sync(engine, emu)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER inventory_test_full ON images"))
            conn.execute(text("DROP FUNCTION inventory_test_full()"))
    assert result.status == "failed"
    assert result.error == (
        "source 'qy-test', the merge (after page 3): the database refused the run's "
        "statement: could not extend file: No space left on device (SQLSTATE 53100); "
        "nothing of this run was applied, and the next run starts over"
    )
    assert fetch_all(engine, "SELECT count(*) FROM images")[0][0] == 0
    run = fetch_all(engine, "SELECT status, error FROM sync_runs WHERE id = :r", r=result.run_id)
    assert (run[0].status, run[0].error) == ("failed", result.error)
    assert sync(engine, emu).inserted == 120


class _Spy:
    """Counts the rows each run staged by id alone (already stored exactly as listed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.known: list[int] = []
        real = store.Stager
        spy = self

        class Stager(real):  # type: ignore[misc, valid-type]
            def __exit__(self, *exc: Any) -> None:
                super().__exit__(*exc)
                spy.known.append(self.known)

        monkeypatch.setattr(store, "Stager", Stager)


def test_rows_stored_as_listed_are_staged_by_id_alone(
    engine: Engine, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys the database keeps for its rows are those of the raw records listed; a
    no-change re-sync stages every row by id alone, normalizes none and writes nothing; a
    churn re-sync stages only the changed, new and returning rows in full."""
    emu = emulator.reset(images=250, page_size=50)
    spy = _Spy(monkeypatch)
    assert sync(engine, emu).inserted == 250
    version = staging.normalized_by("qingcloud")
    with engine.connect() as conn:
        sid = conn.execute(text("SELECT id FROM sources")).scalar_one()
        keys = store.known_keys(conn, sid, version)
        digests = conn.execute(text("SELECT raw_digest FROM images")).scalars().all()
        assert store.known_keys(conn, sid, "other code") is None
    assert keys is not None and list(keys) == sorted(store.digest_key(d) for d in digests)

    normalized = _count_normalized(monkeypatch)
    before = row_versions(engine)
    again = sync(engine, emu)
    assert (again.unchanged, again.changed, spy.known[-1]) == (250, 0, 250)
    assert row_versions(engine) == before and normalized == []

    emu.mutate(seed=5, deprecate=6, rename=3, add=4, remove=2)
    churn = sync(engine, emu)
    assert (churn.changed, churn.inserted) == (9, 4), churn.error
    assert spy.known[-1] == 250 - 2 - 9  # the others went in full
    assert len(normalized) == 9 + 4


def _count_normalized(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the images the QingCloud normalizer is called on from now."""
    called: list[str] = []
    provider = PROVIDERS["qingcloud"]
    assert isinstance(provider, Assembled)

    def counted(raw: dict[str, Any]) -> Any:
        called.append(raw["image_id"])
        return provider.normalizer(raw)

    monkeypatch.setitem(PROVIDERS._loaded, "qingcloud", replace(provider, normalizer=counted))
    return called


def test_a_row_wrongly_taken_as_stored_stages_the_listing_again(
    engine: Engine, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """A key collision (every row taken as stored, here by force) is caught by the merge,
    which compares the exact fingerprints: the listing is collected again in full and the
    run applies every change, with a warning."""
    emu = emulator.reset(images=120, page_size=40)
    assert sync(engine, emu).inserted == 120
    changed = emu.mutate(seed=6, deprecate=5, add=3)
    monkeypatch.setattr(store, "holds", lambda _keys, _key: True)
    with caplog.at_level(logging.WARNING, logger="inventory.sync"):
        result = sync(engine, emu)
    assert result.status == "succeeded", result.error
    assert (result.changed, result.inserted, result.pages) == (5, 3, 4)  # 123 images
    assert "staging again" in caplog.text
    for image_id in changed["deprecate"]:
        assert history_of(engine, image_id)[-1] == ("deprecated", False)
