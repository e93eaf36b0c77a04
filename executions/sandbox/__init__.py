"""The sandbox runtime: a warm fork-server and the child it forks per run.

Nothing in this package imports Django. The host talks to it only through
`executions.sandbox.client.ForkServerClient.run`.
"""
