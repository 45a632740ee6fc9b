"""The SELECT that answers a `TaskQuery` on the SQLite schema, chosen so that a page reads about as
many index entries as it returns rows, however many tasks are stored.

A query is driven from one index, its driver, and every other filter is a condition on the rows
the driver yields. A tag (`task_tags_by_pair`, or `task_tags_by_key` for a key alone, joined to
the tasks by id), the state (`tasks_by_state`) and the owner (`tasks_by_owner`) each have an index
that yields its matches in page order (creation time, then id), so LIMIT stops the walk early and
nothing is sorted. A name prefix has the range of `tasks_by_name`, whose matches come in name
order: they are sorted (keys only, then the page's rows are read), which is cheap only when they
are few.

With a single filter of the first kind, it drives. Otherwise the candidates' matches are counted
in turn, each count stopped at RARE_BELOW or at the fewest found so far, and the one with the
fewest drives; the name range only when it is rare, since a prefix that matches many tasks is
better checked along a walk in page order (`tasks_by_age` when nothing else drives), which soon
meets enough of them. A tag's or a name's count reads its index, up to RARE_BELOW entries; an
owner's and a state's are read from `task_counts`, which triggers keep exact. A bounded count
rather than ANALYZE statistics: it is exact at the time of the query and needs no upkeep while
the table grows. The owner comes last: it matches every task of its user (of everyone, without
authentication).
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass, replace

from ..model.query import TaskQuery
from ..model.views import View

# A filter matching fewer tasks than this is rare. Counting that many index entries takes about a
# millisecond; sorting that many name-range keys costs about what the walk in page order costs
# when 1 task in 40 of a million matches the prefix (the two meet near 30,000 at a million tasks,
# and lower for fewer tasks).
RARE_BELOW = 20_000

RECORD_COLUMNS = "tasks.doc"
SUMMARY_COLUMNS = "tasks.id, tasks.created_us, tasks.state"

# A task's view is read as id, created_us and `view`: the state MINIMAL is written from (by
# views.minimal_json: SQLite's JSON escapes some characters otherwise than Python's), or BASIC's
# stored text.
_VIEW_COLUMNS = {
    View.MINIMAL: "tasks.id AS id, tasks.created_us AS created_us, tasks.state AS view",
    View.BASIC: "tasks.id AS id, tasks.created_us AS created_us, tasks.basic_view AS view",
}
# A page read as one row: the ids, creation times and `view` of its tasks (the state for
# MINIMAL; for BASIC the stored text's length) as a JSON array of triples, and for BASIC the
# texts joined.
_PAGE_VIEWS = {
    View.MINIMAL: "NULL, json_group_array(json_array(id, created_us, view))",
    View.BASIC: "group_concat(view, ','), json_group_array(json_array(id, created_us, length(view)))",
}


def view_columns(view: View) -> str:
    """The columns one task's view is read from: id, created_us, view (see _VIEW_COLUMNS)."""
    return _VIEW_COLUMNS[view]


def page_sql(query: TaskQuery, view: View, driver: Driver) -> tuple[str, list]:
    """The tasks of a page of `query.limit` views and the one after it (whether more follow),
    read as one row (see _PAGE_VIEWS), and its parameters.

    One row, because reading it is then one sqlite3 step: Python's sqlite3 lets go of the GIL at
    every step, and with concurrent requests taking it back row after row (each time up to
    sys.getswitchinterval()) costs many times what the query costs."""
    rows, params = select_sql(replace(query, limit=query.limit + 1), _VIEW_COLUMNS[view], driver)
    return f"SELECT {_PAGE_VIEWS[view]} FROM ({rows})", params


@dataclass(frozen=True)
class Driver:
    """The index a query's rows are read from: its table (with INDEXED BY) and the conditions it
    answers, the join to `tasks` if it is not on `tasks`, the columns its rows come out ordered
    by, whether that is page order, and the filter it answers in place of its usual condition."""

    source: str
    conditions: tuple[str, ...] = ()
    params: tuple = ()
    join: str = ""
    created_us: str = "tasks.created_us"
    task_id: str = "tasks.id"
    in_page_order: bool = True
    answers: str | None = None
    counted: tuple[str, str] | None = None  # its (kind, value) in task_counts, which knows its matches


# No filter, or only a name prefix that is not rare: SQLite walks tasks_by_age.
ANY_INDEX = Driver("tasks")


def choose_driver(conn: sqlite3.Connection, query: TaskQuery) -> Driver:
    """The index to read `query` from (the module docstring says how it is chosen)."""
    candidates = candidate_drivers(query)
    if len(candidates) == 1 and candidates[0].in_page_order:
        return candidates[0]
    chosen, fewest = None, RARE_BELOW
    for driver in candidates:  # on a tie, the earlier one
        if fewest == 0:
            break
        found = _count(conn, driver, fewest)
        if found < fewest:
            chosen, fewest = driver, found
    if chosen is not None:
        return chosen
    # Nothing is rare: the first that yields page order.
    return next((driver for driver in candidates if driver.in_page_order), ANY_INDEX)


def select_sql(query: TaskQuery, columns: str, driver: Driver) -> tuple[str, list]:
    """The SELECT of `columns` (expressions on `tasks`) answering `query` from `driver`, and its
    parameters."""
    conditions, params = list(driver.conditions), list(driver.params)
    _add_filters(query, driver, conditions, params)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    direction = "ASC" if query.oldest_first else "DESC"
    order = f"ORDER BY {driver.created_us} {direction}, {driver.task_id} {direction}"
    if driver.in_page_order:
        return f"SELECT {columns} FROM {driver.source}{driver.join} {where} {order} LIMIT ?", [*params, query.limit]
    # Sort the keys alone (the index holds them), then read the columns of the page's rows only.
    keys = f"SELECT tasks.id FROM {driver.source} {where} {order} LIMIT ?"
    page_order = f"ORDER BY tasks.created_us {direction}, tasks.id {direction}"
    return f"SELECT {columns} FROM tasks WHERE tasks.id IN ({keys}) {page_order}", [*params, query.limit]


def candidate_drivers(query: TaskQuery) -> list[Driver]:
    """Every index that could drive `query`, in the order they are counted: one per tag, then
    the state, the name, the owner."""
    candidates = [_tag_driver(key, value) for key, value in query.tags.items()]
    if query.state is not None:
        candidates.append(_column_driver("state", query.state.value))
    if query.name_prefix:
        name_range, params = _name_range(query.name_prefix)
        candidates.append(Driver("tasks INDEXED BY tasks_by_name", (name_range,), tuple(params), in_page_order=False))
    if query.owner is not None:
        candidates.append(_column_driver("owner", query.owner))
    return candidates


def _tag_driver(key: str, value: str) -> Driver:
    if value:
        source, conditions, params = "task_tags_by_pair", ("tagged.key = ?", "tagged.value = ?"), (key, value)
    else:  # an empty value asks only that the key exists
        source, conditions, params = "task_tags_by_key", ("tagged.key = ?",), (key,)
    # CROSS JOIN: SQLite keeps the tags as the outer loop.
    return Driver(f"task_tags AS tagged INDEXED BY {source}", conditions, params,
                  join=" CROSS JOIN tasks ON tasks.id = tagged.task_id",
                  created_us="tagged.created_us", task_id="tagged.task_id", answers=f"tag {key}")


def _column_driver(column: str, value: str) -> Driver:
    return Driver(f"tasks INDEXED BY tasks_by_{column}", (f"tasks.{column} = ?",), (value,), answers=column,
                  counted=(column, value))


def _count(conn: sqlite3.Connection, driver: Driver, limit: int) -> int:
    """How many rows `driver` yields, counted up to `limit` (an owner's or a state's: read)."""
    if driver.counted is not None:
        row = conn.execute("SELECT tasks FROM task_counts WHERE kind = ? AND value = ?", driver.counted).fetchone()
        return min(row[0] if row else 0, limit)
    where = " AND ".join(driver.conditions)
    (found,) = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {driver.source} WHERE {where} LIMIT ?)",
                            [*driver.params, limit]).fetchone()
    return found


def _add_filters(query: TaskQuery, driver: Driver, conditions: list[str], params: list) -> None:
    if query.owner is not None and driver.answers != "owner":
        conditions.append("tasks.owner = ?")
        params.append(query.owner)
    if query.state is not None and driver.answers != "state":
        conditions.append("tasks.state = ?")
        params.append(query.state.value)
    if query.name_prefix:
        # Compared as a plain substring, so no character of the prefix is a wildcard (LIKE
        # would treat % and _ as such). A task without a name never matches a non-empty prefix.
        conditions.append("substr(tasks.name, 1, ?) = ?")
        params += [len(query.name_prefix), query.name_prefix]
    for key, value in query.tags.items():
        if driver.answers == f"tag {key}":
            continue
        if value:
            conditions.append("EXISTS (SELECT 1 FROM task_tags WHERE task_id = tasks.id AND key = ? AND value = ?)")
            params += [key, value]
        else:
            conditions.append("EXISTS (SELECT 1 FROM task_tags WHERE task_id = tasks.id AND key = ?)")
            params.append(key)
    if query.after is not None:
        # Row-value comparison (the same as created_us < ? OR (created_us = ? AND id < ?)), written
        # this way because SQLite turns it into an index range seek, so deep pages stay cheap.
        conditions.append(f"({driver.created_us}, {driver.task_id}) {'>' if query.oldest_first else '<'} (?, ?)")
        params += [query.after.created_us, query.after.task_id]


def _name_range(prefix: str) -> tuple[str, list]:
    """The names that start with `prefix` as a range of the name index."""
    upper = _after_every_extension(prefix)
    if upper is None:
        return "tasks.name >= ?", [prefix]
    return "tasks.name >= ? AND tasks.name < ?", [prefix, upper]


def _after_every_extension(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix`, in SQLite's text order
    (UTF-8 bytes, which is code point order), or None if there is none (all U+10FFFF)."""
    stem = prefix.rstrip(chr(sys.maxunicode))
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates: no UTF-8 text holds them
        following = 0xE000
    return stem[:-1] + chr(following)
