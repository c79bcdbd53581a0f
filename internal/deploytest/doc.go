// Package deploytest holds the tests of the files that run tasker-sim outside Go: the
// docker-compose.yml, the Dockerfile and .dockerignore, .env.example, the README's
// configuration table, and scripts/ensure-deps.sh (which .ci/run and `make demo` share).
//
// No Docker engine is needed: the compose file is loaded with compose-spec/compose-go (the
// loader docker compose uses), the Dockerfile is parsed with BuildKit's parser, and
// .dockerignore is read with moby/patternmatcher, as the builders do.
package deploytest
