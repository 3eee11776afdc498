"""Latents: encode spectra into z (:mod:`.encode`), keep them on disk (:mod:`.store`) and map
them to two dimensions (:mod:`.projection`)."""
from twinviz.latents.encode import LABEL_VARIABLES, encode_dataset, iter_star_chunks
from twinviz.latents.store import default_latents_path, load_latents, save_latents

__all__ = ["LABEL_VARIABLES", "default_latents_path", "encode_dataset", "iter_star_chunks", "load_latents",
           "save_latents"]
