# The contract bent: the server runs as a user other than root.
FROM sagedock/echo:latest
USER 1000
