"""Recovered clusters in the app: colour the latent map by them, list and select a cluster's members."""
import numpy as np

from twinviz.app.cluster_members import ClusterMembers, member_table
from twinviz.app.state import RECOVERED_CLUSTER
from twinviz.evaluation.clusters import find_clusters


def test_recovered_cluster_is_a_colour_choice_with_noise_left_blank(app_data):
    assert RECOVERED_CLUSTER in app_data.label_names()
    values = app_data.label_values(RECOVERED_CLUSTER)
    expected = find_clusters(app_data.z, min_cluster_size=5)
    np.testing.assert_array_equal(np.isnan(values), expected < 0)
    np.testing.assert_array_equal(values[expected >= 0], expected[expected >= 0])
    assert app_data.recovered_clusters() is app_data.recovered_clusters()  # computed once


def test_members_are_listed_once_the_map_is_coloured_by_cluster_and_a_click_selects_one(state):
    view = ClusterMembers(state)
    assert view.table.value.empty and "recovered cluster" in view.summary.object
    found = state.data.recovered_clusters()
    star = int(np.flatnonzero(found >= 0)[0])
    state.star = star
    state.colour_by = RECOVERED_CLUSTER
    members = np.flatnonzero(found == found[star])
    assert list(view.table.value["star"]) == [str(v) for v in state.data.star_ids[members]]
    assert f"{members.size} members" in view.summary.object
    assert view.table.selection == [int(np.flatnonzero(members == star)[0])]
    other = 1 if members[0] == star else 0
    view.table.selection = [other]
    assert state.star == members[other]
    assert list(view.table.value["star"]) == [str(v) for v in state.data.star_ids[members]]  # same cluster


def test_a_noise_star_is_said_to_be_in_no_cluster(app_data):
    found = app_data.recovered_clusters()
    noise = np.flatnonzero(found < 0)
    assert noise.size  # the toy sample's latents leave some stars out
    table, summary = member_table(app_data, int(noise[0]))
    assert table.empty and "no recovered cluster" in summary
