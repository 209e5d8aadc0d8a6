"""DuckDB audit read models over the event store: projection, named queries, exports, HTML report.

* :mod:`projections.schema`    the tables (``events``, ``orders``, ``order_events``, ``transitions``,
                               ``fills``, ``anomalies``, ``governor_decisions``, ``sessions``,
                               ``failure_reports``, ``connection_events``) and where the DuckDB file lives;
* :mod:`projections.projector` keeps the file up to date from the store, exactly once (rows and tracking
                               position in one DuckDB transaction), from the one order fold;
* :mod:`projections.queries`   the named risk questions, read-only ad-hoc SQL, Parquet / CSV / JSON export;
* :mod:`projections.report`    the self-contained HTML report (timeline per order, anomaly list).

Projections are disposable (README "Design: Principles" 7): ``ibledger audit --rebuild`` recreates the file from
the store with identical contents, and a file built from another store, another schema version or
another version of the fold is rebuilt automatically.
"""
