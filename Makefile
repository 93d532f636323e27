# Karma — the two set-up commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
GO    ?= go
BIN   := .cache/bin

.PHONY: demo test bench build vet fmt-check clean peers peers-stop lambda web

## demo: the main job on the embedded default (one SQLite file under .karma-demo/)
demo: build
	@scripts/demo.sh

## build: the karma binary at .cache/bin/karma
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/karma ./cmd/karma

## test: every test, formatting and vet included; starts the local AWS stand-ins (scripts/peers.sh)
test: fmt-check vet
	@scripts/test.sh

## peers: start Gremlin Server, DynamoDB Local and moto and print their endpoints (stop: make peers-stop)
peers:
	@scripts/peers.sh start

peers-stop:
	@scripts/peers.sh stop

## lambda: the one Lambda binary (bootstrap, provided.al2023) zipped for arm64 and amd64 in dist/
lambda:
	@for a in arm64 amd64; do \
	  mkdir -p dist/$$a && GOOS=linux GOARCH=$$a CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -tags lambda.norpc -o dist/$$a/bootstrap ./cmd/lambda && \
	  (cd dist/$$a && rm -f ../karma-lambda-$$a.zip && zip -q -j ../karma-lambda-$$a.zip bootstrap) && echo "dist/karma-lambda-$$a.zip"; \
	done

## bench: benchmarks whose figures go into docs/performance.md
bench:
	@scripts/bench.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf .cache/bin .karma .karma-demo

## web: rebuild the web page's bundle (shared/web/dist, embedded in the binary) from web/ with the lockfile's libraries
web:
	cd web && npm ci --no-audit --no-fund && npm run build
