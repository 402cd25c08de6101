"""`torc report`: one self-contained HTML file about a workflow (summary, timeline, resources, failures, DAG).

`collect` reads what the report needs (torc_hpc/db/queries/report.sql); `render` is a pure function from that
data to the HTML text. The charts are plain SVG written here: no JavaScript, no CDN, nothing to download.
"""

from torc_hpc.report.data import ReportData, collect
from torc_hpc.report.render import render

__all__ = ["ReportData", "collect", "render"]
