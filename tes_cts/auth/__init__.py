"""Who is calling: providers that turn credentials into an `Identity` (an owner and roles).

One module per provider (`basic`, `bearer`, `oidc`, `kbase`; `none` for the embedded default).
Nothing here knows HTTP: providers return an Identity, None when the credential is not theirs,
or raise `CredentialsRejected` (401) or `AuthUnavailable` (503); `tes_cts.api.security` maps these
onto Connexion's security schemes.
"""
