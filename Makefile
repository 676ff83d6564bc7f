# adaptrec: `make run` shows the worker on an in-process broker; `make test`
# runs every test, the integration tests on a real Apache Kafka broker.
GO ?= go
# The test broker listens on its own ports so it never meets a broker you run.
KAFKA_TEST_PORT ?= 19092
KAFKA_TEST_CONTROLLER_PORT ?= 19093
TEST_TIMEOUT ?= 12m
# Tests that skip themselves under -race and run in a second pass without
# it: too slow under the race detector (DQN workers over ml-latest-small),
# or, TestBrokerWipedUnderWorker, where kafka-go races with itself (a
# consumer group generation ended before its Reader starts it; see the test).
NORACE_TESTS := TestReplicasConverge|TestRestartKeepsQuality|TestReplicasFollowTheDecider|TestBrokerWipedUnderWorker
# Its log lives in memory where the machine has /dev/shm: the broker is the
# real one, but tests should not wait on this machine's disk.
KAFKA_TEST_DATA ?= $(if $(wildcard /dev/shm),/dev/shm/adaptrec-kafka-test,$${TMPDIR:-/tmp}/adaptrec-kafka-test)
KAFKA := bash deploy/kafka/kafka.sh
# Beside its plaintext listener the test broker has a SASL_SSL one: TLS with a
# CA and broker certificate written for the run (deploy/kafka/certs) and a
# SCRAM-SHA-512 user created when its storage is formatted.
KAFKA_TEST_SASL_SSL_PORT ?= 19094
KAFKA_TEST_TLS_DIR ?= $(KAFKA_TEST_DATA)-tls
KAFKA_TEST_SASL_USERNAME ?= adaptrec-test
KAFKA_TEST_SASL_PASSWORD ?= adaptrec-test-password
TEST_CERTS := $(GO) run ./deploy/kafka/certs -dir $(KAFKA_TEST_TLS_DIR)
TEST_KAFKA_ENV := KAFKA_PORT=$(KAFKA_TEST_PORT) KAFKA_CONTROLLER_PORT=$(KAFKA_TEST_CONTROLLER_PORT) KAFKA_DATA_DIR=$(KAFKA_TEST_DATA) \
	KAFKA_SASL_SSL_PORT=$(KAFKA_TEST_SASL_SSL_PORT) KAFKA_SSL_KEYSTORE_PEM=$(KAFKA_TEST_TLS_DIR)/broker.pem \
	KAFKA_SCRAM_USERS='SCRAM-SHA-512=[name=$(KAFKA_TEST_SASL_USERNAME),password=$(KAFKA_TEST_SASL_PASSWORD)]'
# The failover tests' 3-node cluster (kafka.sh with KAFKA_NODES=3): node i
# listens on KAFKA_FAILOVER_PORT+i-1, its controller on
# KAFKA_FAILOVER_CONTROLLER_PORT+i-1; replication 3, min ISR 2.
KAFKA_FAILOVER_PORT ?= 19201
KAFKA_FAILOVER_CONTROLLER_PORT ?= 19204
KAFKA_FAILOVER_DATA ?= $(if $(wildcard /dev/shm),/dev/shm/adaptrec-kafka-failover,$${TMPDIR:-/tmp}/adaptrec-kafka-failover)
FAILOVER_KAFKA_ENV := KAFKA_NODES=3 KAFKA_PORT=$(KAFKA_FAILOVER_PORT) KAFKA_CONTROLLER_PORT=$(KAFKA_FAILOVER_CONTROLLER_PORT) KAFKA_DATA_DIR=$(KAFKA_FAILOVER_DATA)
FAILOVER_TEST_ENV := KAFKA_TEST_CLUSTER_BROKERS=127.0.0.1:$(KAFKA_FAILOVER_PORT),127.0.0.1:$(shell expr $(KAFKA_FAILOVER_PORT) + 1),127.0.0.1:$(shell expr $(KAFKA_FAILOVER_PORT) + 2) \
	KAFKA_TEST_CLUSTER_CONTROLLER_PORT=$(KAFKA_FAILOVER_CONTROLLER_PORT) KAFKA_TEST_CLUSTER_DATA=$(KAFKA_FAILOVER_DATA)
# The test Jaeger (built from deploy/jaeger, in-memory storage) on its own ports.
JAEGER := bash deploy/jaeger/jaeger.sh
JAEGER_TEST_OTLP_GRPC_PORT ?= 14317
JAEGER_TEST_OTLP_HTTP_PORT ?= 14318
JAEGER_TEST_QUERY_PORT ?= 16687
TEST_JAEGER_ENV := JAEGER_OTLP_GRPC_PORT=$(JAEGER_TEST_OTLP_GRPC_PORT) JAEGER_OTLP_HTTP_PORT=$(JAEGER_TEST_OTLP_HTTP_PORT) JAEGER_QUERY_PORT=$(JAEGER_TEST_QUERY_PORT)
TEST_SERVICES_ENV := KAFKA_TEST_BROKERS=127.0.0.1:$(KAFKA_TEST_PORT) \
	KAFKA_TEST_SASL_SSL_BROKERS=127.0.0.1:$(KAFKA_TEST_SASL_SSL_PORT) KAFKA_TEST_CA_FILE=$(KAFKA_TEST_TLS_DIR)/ca.pem \
	KAFKA_TEST_SASL_USERNAME=$(KAFKA_TEST_SASL_USERNAME) KAFKA_TEST_SASL_PASSWORD=$(KAFKA_TEST_SASL_PASSWORD) \
	JAEGER_TEST_OTLP_ENDPOINT=http://127.0.0.1:$(JAEGER_TEST_OTLP_GRPC_PORT) JAEGER_TEST_OTLP_HTTP_ENDPOINT=http://127.0.0.1:$(JAEGER_TEST_OTLP_HTTP_PORT) \
	JAEGER_TEST_QUERY_URL=http://127.0.0.1:$(JAEGER_TEST_QUERY_PORT)

.PHONY: all build image manifests run test test-failover test-short bench lint kafka-up kafka-down jaeger-up jaeger-down clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/adaptrec ./cmd/adaptrec

## image: bin/adaptrec-image.tar, an OCI image of the static binary built without Docker (deploy/image; `docker load -i`, `podman load -i`, `crane push`)
# The build machine's CA bundle goes in, so kafka.tls.enable trusts public CAs
# without kafka.tls.ca_file.
CA_CERTS ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
image:
	$(GO) run ./deploy/image -out bin/adaptrec-image.tar -ca-certs '$(CA_CERTS)'

## run: the worker on an embedded broker with a synthetic event source (Ctrl-C stops it); it prints the link of its live status page first (metrics.addr, default http://127.0.0.1:9464/)
run: build
	./bin/adaptrec worker --embedded

## manifests: copy configs/adaptrec.yaml into the Kubernetes base (kustomize reads no file outside it; TestManifests fails when they differ)
manifests:
	cp configs/adaptrec.yaml deploy/kubernetes/base/adaptrec.yaml

## test: unit, in-process, real-Kafka (plaintext and SASL_SSL) and real-Jaeger integration tests, with the race detector
test:
	@$(TEST_JAEGER_ENV) $(JAEGER) up
	@status=0; \
	$(TEST_CERTS) || status=$$?; \
	if [ $$status -eq 0 ]; then $(TEST_KAFKA_ENV) $(KAFKA) up || status=$$?; fi; \
	if [ $$status -eq 0 ]; then $(TEST_SERVICES_ENV) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./... || status=$$?; fi; \
	if [ $$status -eq 0 ]; then $(TEST_SERVICES_ENV) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run '$(NORACE_TESTS)' ./pipeline/ || status=$$?; fi; \
	$(TEST_KAFKA_ENV) $(KAFKA) down; rm -rf $(KAFKA_TEST_TLS_DIR); \
	$(TEST_JAEGER_ENV) $(JAEGER) down; \
	exit $$status

## test-failover: a broker failure on a 3-node cluster (partition leader, then group coordinator, killed mid-stream; restart while the snapshot topic is unreadable), with the race detector
test-failover:
	@status=0; \
	$(FAILOVER_KAFKA_ENV) $(KAFKA) up || status=$$?; \
	if [ $$status -eq 0 ]; then $(FAILOVER_TEST_ENV) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -run 'TestFailover' ./pipeline/ || status=$$?; fi; \
	$(FAILOVER_KAFKA_ENV) $(KAFKA) down; \
	exit $$status

## test-short: no external services (the in-process broker only)
test-short:
	$(GO) test -short -race -count=1 ./...

## bench: throughput and latency on the real broker, raw kafka-go side by side
bench:
	@$(TEST_JAEGER_ENV) $(JAEGER) up
	@status=0; \
	$(TEST_CERTS) || status=$$?; \
	if [ $$status -eq 0 ]; then $(TEST_KAFKA_ENV) $(KAFKA) up || status=$$?; fi; \
	if [ $$status -eq 0 ]; then \
	$(GO) test -run '^$$' -bench . -skip 'Throughput|Latency|WorkerModels|WorkerRSS|Tracing|RollingRestartPause' -count=1 ./... || status=$$?; \
	$(TEST_SERVICES_ENV) $(GO) test -run '^$$' -bench 'Throughput|Latency|WorkerModels|WorkerRSS|Tracing|RollingRestartPause' -benchtime 1x -count=1 -timeout 40m ./pipeline/ ./cmd/adaptrec/ || status=$$?; \
	fi; \
	$(TEST_KAFKA_ENV) $(KAFKA) down; rm -rf $(KAFKA_TEST_TLS_DIR); \
	$(TEST_JAEGER_ENV) $(JAEGER) down; \
	exit $$status

## lint: gofmt, go vet and go mod tidy must leave nothing to change
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags purego ./model/
	@keep=$$(mktemp -d); cp go.mod go.sum $$keep/; $(GO) mod tidy; \
	if ! cmp -s go.mod $$keep/go.mod || ! cmp -s go.sum $$keep/go.sum; then \
	  echo "go mod tidy changes go.mod/go.sum:"; diff $$keep/go.mod go.mod | head -20; \
	  cp $$keep/go.mod $$keep/go.sum .; rm -rf $$keep; exit 1; fi; rm -rf $$keep

kafka-up:
	$(KAFKA) up

kafka-down:
	$(KAFKA) down

## jaeger-up: Jaeger on 127.0.0.1 (OTLP 4317/4318, UI and API on 16686), in-memory
jaeger-up:
	$(JAEGER) up

jaeger-down:
	$(JAEGER) down

clean:
	rm -rf bin
