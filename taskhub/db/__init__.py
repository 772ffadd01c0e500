"""The database: tables, engines, migrations, and all of taskhub's SQL.

One SQL layer (procrastinate's rule): every statement lives in a ``*_queries`` module of
this package, one per aggregate (``task_queries``, ``execution_queries``,
``hold_queries``, ``withdrawal_queries``, ``key_queries``, ``metric_queries``,
``heartbeat_queries``); nothing outside ``taskhub.db`` writes SQL.

Every query function takes an open ``Connection`` inside a transaction chosen by its
caller, so that the caller decides what is atomic. On PostgreSQL claims use ``FOR NO
KEY UPDATE SKIP LOCKED`` on task rows and ``FOR UPDATE SKIP LOCKED`` on next
occurrences and executions (two claimers never wait on, or share, a row); on SQLite the
engine begins every transaction with ``BEGIN IMMEDIATE``, which serialises writers and
gives the same guarantee. "Now" is always bound from Python in UTC.

What differs between the two dialects only in how a statement is written is in
``dialects``; the hot writes send their rows to PostgreSQL as one JSON parameter
(``json_rows``).
"""
