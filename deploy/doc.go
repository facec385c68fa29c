// Package deploy holds the deployment files: the docker compose demo
// (docker-compose.yml), the image (Dockerfile), Prometheus' configuration
// and the demo spider. It has no code; its tests load the compose file with
// the compose-spec loader and check it against every file it names and
// against the binaries' flags, since the test environment has no Docker
// engine to run it.
package deploy
