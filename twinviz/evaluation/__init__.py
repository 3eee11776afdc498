"""Evaluation: Table-1 numbers (:mod:`.compute`) as plain data (:mod:`.results`), the baselines
(:mod:`.baselines`) and the report files (:mod:`.report`)."""
from twinviz.evaluation.compute import evaluate, evaluate_representation, model_errors
from twinviz.evaluation.report import write_report
from twinviz.evaluation.results import PAPER_REFERENCE, EvaluationReport, MethodResult, ReferenceRow

__all__ = ["PAPER_REFERENCE", "EvaluationReport", "MethodResult", "ReferenceRow", "evaluate",
           "evaluate_representation", "model_errors", "write_report"]
