"""Twins: the exact L1 search (:mod:`.index`, with its float32 passes in :mod:`.backends`),
who is whose twin (:mod:`.groups`) and twin-rank summaries (:mod:`.ranks`)."""
from twinviz.twins.groups import group_twin_pairs, has_twins, swap_partners
from twinviz.twins.index import TwinIndex, TwinIndexError
from twinviz.twins.ranks import RankFractions, cumulative_rank_curve, rank_fractions

__all__ = ["RankFractions", "TwinIndex", "TwinIndexError", "cumulative_rank_curve", "group_twin_pairs",
           "has_twins", "rank_fractions", "swap_partners"]
