"""TwinIndex: exact top-k and twin ranks, identical across backends; ties count against the star."""
import numpy as np
import pytest

from twinviz.twins.groups import group_twin_pairs
from twinviz.twins.index import TwinIndex, TwinIndexError
from twinviz.twins.ranks import cumulative_rank_curve, rank_fractions

BACKENDS = ["faiss", "torch"]


def brute_distances(z, metric):
    z = np.asarray(z, dtype=np.float32).astype(np.float64)
    diff = z[:, None, :] - z[None, :, :]
    return np.abs(diff).sum(-1) if metric == "l1" else np.sqrt((diff ** 2).sum(-1))


def brute_ranks(z, groups, metric="l1"):
    """Reference: rank = 1 + #other stars, the twin excluded, at distance ≤ the twin's, where the
    twin is the closest group-mate (lowest position among equals)."""
    d = brute_distances(z, metric)
    n = len(z)
    ranks = np.full(n, -1)
    for i in range(n):
        mates = [j for j in range(n) if j != i and groups[j] == groups[i] and groups[i] >= 0]
        if not mates:
            continue
        twin = min(mates, key=lambda j: (d[i, j], j))
        others = np.ones(n, bool)
        others[[i, twin]] = False
        ranks[i] = 1 + np.count_nonzero(d[i, others] <= d[i, twin])
    return ranks


def brute_topk(z, i, k, metric):
    d = brute_distances(z, metric)[i]
    cand = np.array([j for j in range(len(z)) if j != i])
    order = np.lexsort((cand, d[cand]))[:k]
    return cand[order], d[cand][order]


def pairs(n_pairs):
    return np.repeat(np.arange(n_pairs), 2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_twin_ranks_match_brute_force_on_random_latents(backend, metric):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((300, 6))
    groups = pairs(150)
    ranks = TwinIndex(z, metric=metric, backend=backend).twin_ranks(groups)
    np.testing.assert_array_equal(ranks, brute_ranks(z, groups, metric))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_twin_ranks_match_brute_force_with_ties(backend, metric):
    # Integer latents in a tiny range: many exactly equal distances and duplicate points.
    rng = np.random.default_rng(2)
    z = rng.integers(-2, 3, size=(400, 4)).astype(np.float32)
    groups = pairs(200)
    groups[-10:] = -1  # some stars with unknown chemistry
    ranks = TwinIndex(z, metric=metric, backend=backend).twin_ranks(groups)
    np.testing.assert_array_equal(ranks, brute_ranks(z, groups, metric))
    assert np.all(ranks[-10:] == -1)


def test_backends_agree_exactly_on_near_ties():
    # Values built so that float32 sums in different orders could round differently.
    rng = np.random.default_rng(3)
    base = rng.standard_normal((200, 16)).astype(np.float32)
    z = np.concatenate([base, base[:, ::-1] * np.float32(1.0000001)])
    groups = np.r_[np.arange(200), np.arange(200)]
    r_faiss = TwinIndex(z, backend="faiss").twin_ranks(groups)
    r_torch = TwinIndex(z, backend="torch").twin_ranks(groups)
    np.testing.assert_array_equal(r_faiss, r_torch)
    np.testing.assert_array_equal(r_faiss, brute_ranks(z, groups))
    for i in (0, 7, 250):
        a = TwinIndex(z, backend="faiss").search(i, 15)
        b = TwinIndex(z, backend="torch").search(i, 15)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_device_side_counting_matches(metric):
    # The GPU path counts on the torch device; run that code on CPU to check it.
    rng = np.random.default_rng(8)
    z = rng.integers(-2, 3, size=(300, 4)).astype(np.float32)
    groups = pairs(150)
    index = TwinIndex(z, metric=metric, backend="torch", block_bytes=4 * 300 * 16)
    index._backend.count_on_device = True
    np.testing.assert_array_equal(index.twin_ranks(groups), brute_ranks(z, groups, metric))


def test_small_blocks_give_the_same_ranks():
    rng = np.random.default_rng(4)
    z = rng.integers(0, 4, size=(257, 3))
    groups = np.r_[pairs(128), 5]
    full = TwinIndex(z).twin_ranks(groups)
    tiny = TwinIndex(z, block_bytes=4 * 257 * 3).twin_ranks(groups)  # 3 query rows per block
    column_blocks = TwinIndex(z, backend="torch", block_bytes=400).twin_ranks(groups)
    np.testing.assert_array_equal(full, tiny)
    np.testing.assert_array_equal(full, column_blocks)


@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_twin_known_to_be_kth_gets_rank_k(k):
    # Star 0 at the origin, k−1 decoys at distances 1…k−1, its twin at distance k, rest far.
    dim = 3
    z = [np.zeros(dim)]
    for dist in range(1, k):
        z.append(np.r_[dist, np.zeros(dim - 1)])
    z.append(np.r_[0, k, 0])  # the twin, at L1 distance k
    z += [np.full(dim, 100.0 + i) for i in range(5)]
    z = np.array(z)
    groups = np.arange(len(z)) + 10
    groups[k] = groups[0]
    ranks = TwinIndex(z).twin_ranks(groups)
    assert ranks[0] == k


def test_every_star_at_the_twins_distance_counts_against_the_star():
    z = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    groups = np.array([0, 0, 1, 2])
    assert TwinIndex(z).twin_ranks(groups)[0] == 3  # two strangers tie with the twin at distance 1


def test_larger_groups_use_the_closest_group_mate():
    z = np.array([[0.0], [10.0], [1.0], [2.0], [50.0]])
    groups = np.array([7, 7, 7, 3, 3])  # star 0's group-mates at 10 and 1
    ranks = TwinIndex(z).twin_ranks(groups)
    assert ranks[0] == 1
    pos, dist = TwinIndex(z).twin_distances(groups)
    assert pos[0] == 2 and dist[0] == 1.0


def test_twin_ranks_for_a_subset_of_queries():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((120, 4))
    groups = pairs(60)
    index = TwinIndex(z)
    queries = np.array([3, 50, 119, 0])
    np.testing.assert_array_equal(index.twin_ranks(groups, queries=queries),
                                  index.twin_ranks(groups)[queries])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_search_by_star_matches_brute_force_and_excludes_itself(backend, metric):
    rng = np.random.default_rng(6)
    z = rng.integers(-1, 2, size=(150, 3)).astype(np.float32)  # heavy ties
    index = TwinIndex(z, metric=metric, backend=backend)
    for i in (0, 17, 149):
        ids, dist = index.search(i, 12)
        ref_ids, ref_dist = brute_topk(z, i, 12, metric)
        assert i not in ids
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_allclose(dist, ref_dist, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_by_vector_single_and_batch(backend):
    rng = np.random.default_rng(7)
    z = rng.standard_normal((500, 8)).astype(np.float32)
    index = TwinIndex(z, backend=backend)
    ids, dist = index.search(z[10], 5)
    assert ids[0] == 10 and dist[0] == 0.0  # by vector, the star itself is a neighbour
    q = rng.standard_normal((4, 8))
    ids, dist = index.search(q, 7)
    assert ids.shape == dist.shape == (4, 7)
    ref = np.abs(q[:, None, :].astype(np.float32).astype(np.float64) - z[None].astype(np.float64)).sum(-1)
    for row in range(4):
        np.testing.assert_array_equal(ids[row], np.lexsort((np.arange(500), ref[row]))[:7])
    assert np.all(np.diff(dist, axis=1) >= 0)


def test_k_larger_than_the_index_is_capped():
    z = np.arange(5.0)[:, None]
    ids, dist = TwinIndex(z).search(2, 100)
    assert sorted(ids.tolist()) == [0, 1, 3, 4] and len(dist) == 4


def test_position_of_and_unknown_ids():
    index = TwinIndex(np.eye(3), ids=np.array([100, 200, 300]))
    assert index.position_of(200) == 1
    with pytest.raises(TwinIndexError, match="no star with id 7"):
        index.position_of(7)


def test_bad_inputs_raise_helpful_errors():
    with pytest.raises(TwinIndexError, match="NaN"):
        TwinIndex(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(TwinIndexError, match="metric"):
        TwinIndex(np.eye(2), metric="cosine")
    with pytest.raises(TwinIndexError, match="groups"):
        TwinIndex(np.eye(3)).twin_ranks([0, 0])
    with pytest.raises(TwinIndexError, match="length 3"):
        TwinIndex(np.eye(3)).search(np.zeros(4), 1)


def test_fractions_use_the_paper_thresholds():
    n = 25_000  # thresholds 25 (0.1 %) and 250 (1 %)
    ranks = np.array([1, 1, 2, 25, 26, 250, 251, 5000, -1, -1])
    f = rank_fractions(ranks, n)
    assert f.n_ranked == 8
    assert f.threshold_0p1 == 25 and f.threshold_1 == 250
    assert f.rank1 == 2 / 8
    assert f.within_0p1 == 4 / 8
    assert f.within_1 == 6 / 8


def test_fractions_on_small_sets_follow_the_definition_exactly():
    # N = 1500: 0.001·N = 1.5 → only rank 1 counts; 0.01·N = 15.
    f = rank_fractions([1, 2, 15, 16], 1500)
    assert (f.within_0p1, f.within_1) == (0.25, 0.75)


def test_cumulative_rank_curve():
    r, frac = cumulative_rank_curve([1, 1, 3, 10], 10)
    np.testing.assert_array_equal(r, np.arange(1, 11))
    np.testing.assert_allclose(frac[[0, 1, 2, 8, 9]], [0.5, 0.5, 0.75, 0.75, 1.0])
    r, frac = cumulative_rank_curve([1, 1, 3, 10], 10_000, n_points=50)
    assert r[0] == 1 and r[-1] == 10_000 and frac[-1] == 1.0


def test_group_twin_pairs_enumerates_ordered_pairs_within_groups():
    i, j = group_twin_pairs([3, -1, 3, 5, 3, -1])
    got = sorted(zip(i.tolist(), j.tolist()))
    assert got == sorted([(0, 2), (2, 0), (0, 4), (4, 0), (2, 4), (4, 2)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_search_with_ties_matches_brute_force(backend):
    # Only four distinct points: every early candidate list is full of ties, forcing the
    # search to fetch more candidates until the answer is certified.
    rng = np.random.default_rng(9)
    z = rng.integers(0, 2, size=(200, 2)).astype(np.float32)
    q = rng.integers(0, 2, size=(30, 2)).astype(np.float32)
    ids, dist = TwinIndex(z, backend=backend).search(q, 60)
    ref = np.abs(q[:, None, :] - z[None]).sum(-1)
    for row in range(len(q)):
        order = np.lexsort((np.arange(200), ref[row]))[:60]
        np.testing.assert_array_equal(ids[row], order)
        np.testing.assert_array_equal(dist[row], ref[row][order])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_collapsed_latent_ranks_every_star_last_not_first(backend):
    # All z equal: the twin is no closer than anyone, so every other star ties with it.
    z = np.zeros((40, 5), dtype=np.float32)
    ranks = TwinIndex(z, backend=backend).twin_ranks(pairs(20))
    np.testing.assert_array_equal(ranks, np.full(40, 39))
    assert rank_fractions(ranks, 40).rank1 == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_star_as_close_as_the_twin_counts_against_the_star(backend):
    # Star 0's twin (1) and a stranger (2) are both at L1 distance 1; star 3 is far away.
    z = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [9.0, 9.0]], dtype=np.float32)
    ranks = TwinIndex(z, backend=backend).twin_ranks(np.array([0, 0, 1, 1]))
    assert ranks[0] == 2  # the tie with star 2 counts against it
    assert ranks[1] == 1  # star 1: twin (0) at 1, nearest stranger (2) at 2
