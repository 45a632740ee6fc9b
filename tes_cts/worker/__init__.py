"""Running one job: staging, containers, log capture, result.json. Never touches the task database."""
