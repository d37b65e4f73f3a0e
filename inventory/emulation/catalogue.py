"""The emulated catalogue: images by id in listing order, copy-on-write, cached views, and
the control API's mutations, interpreted in each provider's vocabulary by its subclass.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from inventory.emulation import traits

#: The kinds of change every catalogue's :meth:`Catalogue.mutate` accepts (a kind the
#: provider cannot express changes nothing and comes back as an empty list).
MUTATIONS = ("deprecate", "cease", "delete", "remove", "add", "rename")
#: Cached listing views kept per catalogue; a view of 100,000 images is ~1 MB.
MAX_VIEWS = 64

Image = dict[str, Any]
#: (which images qualify, the fields to set on one; None takes it out of the listing)
Transition = tuple[Callable[[Image], bool], Callable[[Image, datetime], Image | None]]


class Catalogue:
    """One account's images, thread-safe (one re-entrant lock), mutable between listings.

    Images are never changed in place: an edit stores a new dict, so a listing being
    serialised in another thread shows each image wholly before or wholly after a change.
    A provider's subclass sets :attr:`id_key` and :attr:`transitions` and implements
    :meth:`owned`, :meth:`renamed` and :meth:`new_images`.
    """

    #: The field holding an image's id in this provider's records.
    id_key: ClassVar[str]
    #: ``deprecate`` / ``cease`` / ``delete`` in the provider's vocabulary; a kind it has
    #: no way to express is left out.
    transitions: ClassVar[Mapping[str, Transition]] = {}
    #: The fields a rename changes: the name, and the description if the provider has one.
    name_field: ClassVar[str]
    description_field: ClassVar[str | None] = None
    #: The account whose own images mutations change, unless one is given.
    default_owner: ClassVar[str] = ""
    #: The provider's image generator: ``draw(count, seed, owner, **shares)``.
    draw: ClassVar[Callable[..., list[Image]]]

    def __init__(self, images: Iterable[Image], owner: str | None = None) -> None:
        self.owner = owner or self.default_owner
        self._lock = threading.RLock()
        self._images: dict[str, Image] = {i[self.id_key]: dict(i) for i in images}
        self._removed: dict[str, Image] = {}
        self._views: dict[Hashable, Sequence[Image]] = {}

    # -- what a provider says ------------------------------------------------------------

    @classmethod
    def generate(cls, count: int, seed: int, owner: str | None = None, **shares: Any) -> Self:
        """A catalogue of ``count`` images drawn from ``seed`` for ``owner`` (default
        :attr:`default_owner`); the same arguments give the same images in the same order.
        ``shares`` are the provider's mix (public or system images, ...)."""
        owner = owner or cls.default_owner
        return cls(cls.draw(count, seed, owner, **shares), owner)

    def owned(self, image: Image) -> bool:
        """Whether mutations may change this image (the account's own ones)."""
        return True

    def renamed(self, image: Image, rng: random.Random, now: datetime) -> Image:
        """The fields a rename sets: a new ``-vN`` name, and a "rebuilt" description where
        the provider has one."""
        fields = {self.name_field: traits.renamed(image[self.name_field] or "image", rng)}
        if self.description_field is not None:
            fields[self.description_field] = f"rebuilt {now:%Y-%m-%d}"
        return fields

    def new_images(
        self, rng: random.Random, count: int, now: datetime, taken: Iterable[str]
    ) -> list[Image]:
        """``count`` new usable images of the account, created ``now``, ids not in ``taken``."""
        raise NotImplementedError

    def listing(self, *selection: Any, **options: Any) -> Sequence[Image]:
        """The images a request's selection (filters, order) lists, in the API's order; a
        provider builds it with :meth:`view`, so it is cached."""
        raise NotImplementedError

    def drop(self, image_id: str) -> None:
        """An image goes from the listing mid-way (a fault): by default it is removed. Two
        requests answered from one view may both drop it: the second changes nothing."""
        with self._lock:
            if image_id in self._images:
                self.remove(image_id)

    # -- storage -------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._images)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._images)

    def get(self, image_id: str) -> Image | None:
        with self._lock:
            image = self._images.get(image_id)
            return dict(image) if image else None

    def _changed(self) -> None:
        self._views.clear()

    def edit(self, image_id: str, /, **fields: Any) -> None:
        """Set raw fields of one image (None stores null), as a provider-side change."""
        with self._lock:
            self._images[image_id] = {**self._images[image_id], **fields}
            self._changed()

    def remove(self, image_id: str) -> None:
        """Take an image out of every listing (kept aside for :meth:`restore`)."""
        with self._lock:
            self._removed[image_id] = self._images.pop(image_id)
            self._changed()

    def restore(self, image_id: str, **fields: Any) -> None:
        """Put a removed image back into the listing (at the end), optionally changed."""
        with self._lock:
            self._images[image_id] = {**self._removed.pop(image_id), **fields}
            self._changed()

    def insert_new(self, rng: random.Random) -> str:
        """A new image at the front of the catalogue order (and newest by date)."""
        with self._lock:
            taken = self._images.keys() | self._removed.keys()
            image = self.new_images(rng, 1, datetime.now(UTC), taken)[0]
            self._images = {image[self.id_key]: image, **self._images}
            self._changed()
            return str(image[self.id_key])

    def view(
        self, key: Hashable, build: Callable[[Iterable[Image]], Sequence[Image]]
    ) -> Sequence[Image]:
        """The listing view for ``key``, built from the images by ``build`` once and cached
        until the catalogue changes, so paging costs one scan, not one a page. Read only."""
        with self._lock:
            view = self._views.get(key)
            if view is None:
                view = build(self._images.values())
                if len(self._views) >= MAX_VIEWS:
                    del self._views[next(iter(self._views))]  # the oldest
                self._views[key] = view
            return view

    # -- the control API's mutation ------------------------------------------------------

    def mutate(
        self, seed: int, *, now: datetime | None = None, **counts: int
    ) -> dict[str, list[str]]:
        """Change the account's own images as the provider would between two syncs: so many
        of each kind of :data:`MUTATIONS`. Returns the ids affected per kind.

        Each image changes at most once; fewer change when fewer qualify. ``remove`` takes
        images out of the listing, ``rename`` renames, ``add`` creates usable images; the
        other kinds follow :attr:`transitions`. Deterministic for a seed, the state and
        ``now`` (the time written into changed and new images; default the clock).
        """
        unknown = counts.keys() - set(MUTATIONS)
        if unknown:
            raise ValueError(f"unknown mutation {sorted(unknown)[0]!r} (known: {list(MUTATIONS)})")
        counts = {kind: counts.get(kind, 0) for kind in MUTATIONS}
        for kind, n in counts.items():
            # Checked before anything changes, so a bad request leaves the catalogue alone.
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"mutation count {kind} must be 0 or more, not {n!r}")
        rng = random.Random(seed)
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        out: dict[str, list[str]] = {kind: [] for kind in MUTATIONS}
        with self._lock:
            images = self._images
            owned = [iid for iid, image in images.items() if self.owned(image)]
            touched: set[str] = set()

            def pick(n: int, wanted: Callable[[Image], bool]) -> list[str]:
                if n == 0:
                    return []
                pool = [iid for iid in owned if iid not in touched and wanted(images[iid])]
                chosen = rng.sample(pool, min(n, len(pool)))
                touched.update(chosen)
                return chosen

            steps: list[tuple[str, Transition]] = [
                (kind, self.transitions[kind])
                for kind in ("deprecate", "cease", "delete")
                if kind in self.transitions
            ]
            steps.append(("remove", (lambda _: True, lambda _i, _t: None)))
            steps.append(("rename", (lambda _: True, lambda i, t: self.renamed(i, rng, t))))
            for kind, (wanted, change) in steps:
                for iid in pick(counts[kind], wanted):
                    fields = change(images[iid], moment)
                    if fields is None:
                        self._removed[iid] = images.pop(iid)
                    else:
                        images[iid] = {**images[iid], **fields}
                    out[kind].append(iid)
            if counts["add"]:
                taken = images.keys() | self._removed.keys()
                for image in self.new_images(rng, counts["add"], moment, taken):
                    images[image[self.id_key]] = image
                    out["add"].append(image[self.id_key])
            self._changed()
        return out


def control_mutate(
    catalogue: Catalogue, counts: dict[str, Any], seeds: Iterator[int]
) -> dict[str, list[str]]:
    """``POST /_emulator/mutate``: counts per kind of :data:`MUTATIONS` plus an optional
    integer ``seed`` (else the next of ``seeds``); raises ValueError for anything else."""
    counts = dict(counts)
    seed = counts.pop("seed", None)
    if seed is None:
        seed = next(seeds)
    elif not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"mutation seed must be an integer, not {seed!r}")
    unknown = counts.keys() - set(MUTATIONS)  # "now", say, is for callers in Python only
    if unknown:
        raise ValueError(f"unknown mutation {sorted(unknown)[0]!r} (known: {list(MUTATIONS)})")
    return catalogue.mutate(seed, **counts)
