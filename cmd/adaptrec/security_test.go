package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// secureEnv is env for cfg's SASL_SSL listener; the password stays in the
// variable cfg names (KAFKA_TEST_SASL_PASSWORD, inherited).
func secureEnv(cfg configs.Config, clientID string) []string {
	return append(env(cfg, clientID),
		"ADAPTREC_KAFKA_TLS_ENABLE=true",
		"ADAPTREC_KAFKA_TLS_CA_FILE="+cfg.Kafka.TLS.CAFile,
		"ADAPTREC_KAFKA_SASL_MECHANISM="+cfg.Kafka.SASL.Mechanism,
		"ADAPTREC_KAFKA_SASL_USERNAME="+cfg.Kafka.SASL.Username,
		"ADAPTREC_KAFKA_SASL_PASSWORD_ENV="+cfg.Kafka.SASL.PasswordEnv,
	)
}

// failsSaying runs the binary, which must exit non-zero and say want.
func failsSaying(t *testing.T, environ []string, want string, args ...string) {
	t.Helper()
	p := start(t, environ, args...)
	if err := p.wait(t, 60*time.Second); err == nil {
		t.Fatalf("%v succeeded:\n%s", args, p.output())
	}
	if !strings.Contains(p.output(), want) {
		t.Fatalf("%v output does not say %q:\n%s", args, want, p.output())
	}
}

func TestSecurityCLI(t *testing.T) {
	cfg := kafkatest.SecureConfig(t)
	plain := cfg
	plain.Kafka.Brokers = kafkatest.Real(t).Brokers
	kafkatest.CreateTopics(t, plain)
	addr := cfg.Kafka.Brokers[0]

	lines, _ := kafkatest.Events(200, 0, 20, 9)
	file := eventsFile(t, lines)
	prod := start(t, secureEnv(cfg, "producer"), "produce", "--file", file)
	if err := prod.wait(t, 60*time.Second); err != nil || !strings.Contains(prod.output(), "produced 200 events") {
		t.Fatalf("produce over SASL_SSL: %v\n%s", err, prod.output())
	}
	if got := len(kafkatest.ReadAll(t, plain.Kafka.Brokers, cfg.Topics.Feedback)); got != 200 {
		t.Fatalf("feedback topic holds %d messages, want 200", got)
	}

	wrong := append(secureEnv(cfg, "worker"), "ADAPTREC_KAFKA_SASL_PASSWORD_ENV=ADAPTREC_TEST_WRONG_PASSWORD", "ADAPTREC_TEST_WRONG_PASSWORD=wrong")
	failsSaying(t, wrong, `SASL authentication failed for user "`+cfg.Kafka.SASL.Username+`" (mechanism SCRAM-SHA-512)`, "worker")

	untrusted := append(secureEnv(cfg, "snapshot"), "ADAPTREC_KAFKA_TLS_CA_FILE="+kafkatest.UntrustedCA(t))
	failsSaying(t, untrusted, "TLS handshake with "+addr+": certificate signed by unknown authority", "snapshot", "ls")

	failsSaying(t, env(cfg, "replay"), "kafka broker "+addr+" closed the connection", "replay", "--to-offset", "earliest")
	failsSaying(t, env(cfg, "replay"), "the listener may want TLS (kafka.tls.enable) or SASL (kafka.sasl.mechanism)", "replay", "--to-offset", "earliest")
}

// adaptrec config shows where the password comes from, never the password.
func TestConfigHidesPassword(t *testing.T) {
	t.Setenv("ADAPTREC_KAFKA_SASL_MECHANISM", "scram-sha-512")
	t.Setenv("ADAPTREC_KAFKA_SASL_USERNAME", "svc")
	t.Setenv("ADAPTREC_KAFKA_SASL_PASSWORD_ENV", "ADAPTREC_TEST_KAFKA_PASSWORD")
	t.Setenv("ADAPTREC_TEST_KAFKA_PASSWORD", "hunter2-secret")
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut)
	root.SetArgs([]string{"config"})
	if err := root.Execute(); err != nil {
		t.Fatalf("config: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "password_env: ADAPTREC_TEST_KAFKA_PASSWORD") || strings.Contains(out.String()+errOut.String(), "hunter2-secret") {
		t.Fatalf("config output:\n%s", out.String())
	}
}
