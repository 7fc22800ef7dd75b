# The contract broken: tini as ENTRYPOINT with the program in CMD. SageMaker runs
# `docker run IMAGE serve`, which replaces CMD: tini runs `serve`, which does not exist.
FROM sagedock/echo:latest
COPY tini /tini
ENTRYPOINT ["/tini", "--"]
CMD ["/echo", "serve"]
