# The contract broken: ENTRYPOINT in shell form. Docker stores it as
# ["/bin/sh", "-c", "cd / && /echo serve; echo stopped"]: the shell is PID 1, `serve`
# from `docker run IMAGE serve` becomes its $0, and SIGTERM is not passed on.
FROM sagedock/debian:bookworm
COPY --from=sagedock/echo:latest /echo /echo
ENTRYPOINT cd / && /echo serve; echo stopped
