"""What the cloud does, called alike by the HTTP API (cloud/api), the console (cloud/console) and
the CLI: each function takes a database session and plain values, raises cloud.errors, and knows
nothing of HTTP. The read models returned here are the ones the API serves and the console shows."""
