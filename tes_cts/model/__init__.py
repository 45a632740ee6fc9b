"""The task model every layer shares: phases, TES states and their transition table, the stored
record, and the query a task database answers. It imports nothing of the project but the
clock."""
