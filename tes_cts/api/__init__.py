"""The HTTP edge: the Connexion app, one handler per operationId, and error responses."""
