"""The app's :class:`~twinviz.twins.query.TwinQuery`: the one twin query of `twinviz twins`, built
from an :class:`~twinviz.app.state.AppData` (its vectors, labels, OOD criteria, calibration and
index) for the latent ranking or the pixel finder's."""
from __future__ import annotations

__all__ = ["build_twin_query"]


def build_twin_query(data, pixel: bool):
    """The TwinQuery of ``data``: its latent ranking, or (``pixel``) its pixel finder's; sharing its index."""
    from twinviz.twins.query import TwinQuery

    if pixel:
        return data.pixel_finder.query_over(data.pixel_z, data.star_ids, data.teff, data.logg, group=data.group,
                                            _index=data.index_for("pixel"))
    distance = "z" if data.bundle is None else data.bundle.distance_name("metric" if data.z_twin is not None else "z")
    return TwinQuery(data.search_z, data.star_ids, data.teff, data.logg, group=data.group,
                     ranked_on=data.ranked_on or data.ranking_name(), distance=distance, ood=data.ood,
                     recon_mse=data.recon_mse, calibration=data.calibration, calibration_note=data.calibration_note,
                     z=data.z, _index=data.index, domain_note=data.domain_note)
