"""``%fl_cross_site``, ``%fl_stats``, ``%fl_clients``, ``%fl_labels`` and ``%fl_history``: what a
federation knows, as tables and plots in the cell."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ...controller.controller import RunActive
from ...controller.run import RunError
from ...data import DATASETS
from ...protocol.records import RoundRecord
from ...results import curves, export
from ...workflows import CrossSiteEval, FederatedStatistics
from ..dashboard import (
    clients_html,
    failures_html,
    history_html,
    statistics_html,
)
from ..text import Html, Png
from .session import TopicMagics


@magics_class
class ReportMagics(TopicMagics):
    """Evaluate across sites, pool statistics, and show clients, labels and history."""

    def _once(self, workflow: Any) -> RoundRecord:
        """One round of a reporting workflow (cross-site, statistics), with its own settings; failures shown."""
        try:
            record = self.session.require_controller().run(
                1, workflow, join_timeout=0, timeout=self.session.round_timeout
            )[0]
        except (RunActive, RunError) as exc:
            raise UsageError(str(exc)) from None
        display(Html(failures_html([record])))
        return record

    @magic_arguments()
    @argument("--metric", default="accuracy", help="the metric each site's validate task reports")
    @line_magic
    def fl_cross_site(self, line: str = "") -> None:
        """Every client's own model and the global model, evaluated on every client's data: a heatmap
        (its numbers are ``nbfl_cross_site``: models, sites, values)."""
        args = parse_argstring(self.fl_cross_site, line)
        workflow = CrossSiteEval(metric=args.metric)
        record = self._once(workflow)
        if workflow.matrix is None:
            raise UsageError(f"cross-site evaluation {record.status}: {record.reason}")
        m = workflow.matrix
        self.shell.user_ns["nbfl_cross_site"] = m  # models, sites, values, metric: for the notebook's own analysis
        from ..plots import cross_site_png  # matplotlib: only for the plots

        display(Png(data=cross_site_png(m.models, m.sites, m.values, m.metric), format="png"))

    @magic_arguments()
    @argument("--bins", type=int, default=10, help="histogram bins per feature")
    @argument("--min-count", type=int, default=10, help="sites with fewer samples withhold their statistics")
    @line_magic
    def fl_stats(self, line: str = "") -> None:
        """Count, mean, std, min, max and histograms per feature over all clients' data; no sample leaves."""
        args = parse_argstring(self.fl_stats, line)
        workflow = FederatedStatistics(bins=args.bins, min_count=args.min_count)
        record = self._once(workflow)
        if not workflow.result:
            raise UsageError(f"federated statistics {record.status}: {record.reason}")
        self.shell.user_ns["nbfl_statistics"] = workflow.result
        display(Html(statistics_html(workflow.result)))

    @line_magic
    def fl_clients(self, line: str = "") -> None:
        """%fl_clients [TEXT]: the client table (name, host, device, samples, state, last round's
        time and metrics), of the clients whose name contains TEXT if given (a simulation's
        table shows 100 of its thousand clients, the latest to train first)."""
        ctl = self.session.require_controller()
        display(Html(clients_html(ctl.clients, ctl.security, search=line.strip())))

    @magic_arguments()
    @argument(
        "--partition",
        help="preview a partition of the data instead, e.g. dirichlet:0.1, iid, shards:2, classes:2, quantity:0.5",
    )
    @argument("--clients", type=int, default=8, help="with --partition: how many shares (over 40: a heatmap)")
    @argument("--data", default="digits", choices=DATASETS, help="with --partition: the data to share out")
    @argument("--seed", type=int, default=0)
    @line_magic
    def fl_labels(self, line: str = "") -> None:
        """Samples of each class per client, as stacked bars (a heatmap for over 40 clients):
        the joined clients' own counts (those training on built-in data report them), or a
        partition of the data previewed."""
        args = parse_argstring(self.fl_labels, line)
        if args.partition is not None:
            from ...data import load_split, partition

            y = load_split(args.data, args.clients, args.seed)[1]
            try:
                parts = partition(args.partition, y, args.clients, args.seed)
            except ValueError as exc:
                raise UsageError(f"--partition {args.partition}: {exc}") from None
            counts = {f"share {i + 1}": np.bincount(y[p], minlength=10).tolist() for i, p in enumerate(parts)}
            title = f"{args.data}, {args.partition}"
        else:
            counts = {c.name: c.labels for c in self.session.require_controller().clients if c.labels}
            if not counts:
                raise UsageError(
                    "no client reported its labels (clients on built-in data do); --partition SPEC previews one"
                )
            title = "labels per client"
        from ..plots import labels_png

        display(Png(data=labels_png(counts, title), format="png"))

    @line_magic
    def fl_history(self, line: str = "") -> None:
        """One row per round: status, global metrics, clients that answered and that failed."""
        display(Html(history_html(self.session.require_controller().history)))

    @magic_arguments()
    @argument("path", help="a .csv or .json file")
    @argument("--clients", action="store_true", help="one row per client per round, instead of one per round")
    @line_magic
    def fl_export(self, line: str = "") -> None:
        """Write this controller's history to a CSV or JSON file (nbfl.results): one row per
        round, with the global metrics, or with --clients one per client per round."""
        args = parse_argstring(self.fl_export, line)
        try:
            path = export(self.session.require_controller().history, args.path, per_client=args.clients)
        except (OSError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        display(Html(f"wrote {html.escape(str(path))}"))

    @magic_arguments()
    @argument("--metric", default="accuracy", help="the global metric to compare (default: accuracy)")
    @line_magic
    def fl_compare(self, line: str = "") -> None:
        """Every run this notebook started, its metric per round overlaid in one plot, each
        labelled by its algorithm and the settings that set it apart (the curves are
        ``nbfl_compare``: label -> [(round, value), ...])."""
        args = parse_argstring(self.fl_compare, line)
        found = curves(self.session.runs, args.metric)
        if not any(found.values()):
            raise UsageError(f"no run of this notebook reported {args.metric!r}: %fl_round N first")
        self.shell.user_ns["nbfl_compare"] = found
        from ..plots import runs_png

        display(Png(data=runs_png(found, args.metric), format="png"))
