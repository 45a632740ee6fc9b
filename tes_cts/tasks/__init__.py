"""The TES task model and its rules: validation, views, states, paging. No HTTP, no database driver."""
