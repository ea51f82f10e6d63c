"""Reports: the document (``document``: sections of text, tables and images), the run report (``run_report``), the
SVG charts (``charts``) and `engine compare` (``compare``)."""

from engine.report.document import Report, Section

__all__ = ["Report", "Section"]
