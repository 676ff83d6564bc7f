package kafkaconn

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/sasl/plain"

	"github.com/adaptrec/adaptrec/configs"
)

func saslConfig(s configs.KafkaSASL) configs.Kafka {
	return configs.Kafka{Brokers: []string{"127.0.0.1:9094"}, ClientID: "t", RequestTimeout: time.Second, SASL: s}
}

func TestPasswordSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "password")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ADAPTREC_TEST_KAFKA_PW", "from-env")
	t.Setenv("ADAPTREC_TEST_KAFKA_EMPTY", "")
	for _, tt := range []struct {
		name    string
		sasl    configs.KafkaSASL
		want    string // the password the mechanism carries
		wantErr string
	}{
		{"file", configs.KafkaSASL{Mechanism: "plain", Username: "u", PasswordFile: file}, "from-file", ""},
		{"env", configs.KafkaSASL{Mechanism: "plain", Username: "u", PasswordEnv: "ADAPTREC_TEST_KAFKA_PW"}, "from-env", ""},
		{"env unset", configs.KafkaSASL{Mechanism: "plain", Username: "u", PasswordEnv: "ADAPTREC_TEST_KAFKA_UNSET"}, "",
			"kafka.sasl.password_env: environment variable ADAPTREC_TEST_KAFKA_UNSET is not set"},
		{"env empty", configs.KafkaSASL{Mechanism: "plain", Username: "u", PasswordEnv: "ADAPTREC_TEST_KAFKA_EMPTY"}, "",
			"kafka.sasl.password_env: environment variable ADAPTREC_TEST_KAFKA_EMPTY is empty"},
		{"file empty", configs.KafkaSASL{Mechanism: "plain", Username: "u", PasswordFile: empty}, "",
			"kafka.sasl.password_file: " + empty + " is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromConfig(saslConfig(tt.sasl))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m, ok := c.mech.(plain.Mechanism); !ok || m.Password != tt.want || m.Username != "u" {
				t.Fatalf("mechanism %T does not carry user u and password %q", c.mech, tt.want)
			}
		})
	}
	for _, mech := range []string{"scram-sha-256", "scram-sha-512"} {
		c, err := FromConfig(saslConfig(configs.KafkaSASL{Mechanism: mech, Username: "u", PasswordFile: file}))
		if err != nil || c.mech == nil || c.mech.Name() != strings.ToUpper(mech) {
			t.Fatalf("%s: got %v, %v", mech, c, err)
		}
	}
}

// The password reaches neither String nor a log line.
func TestConnHidesPassword(t *testing.T) {
	t.Setenv("ADAPTREC_TEST_KAFKA_PW", "hunter2")
	c, err := FromConfig(saslConfig(configs.KafkaSASL{Mechanism: "scram-sha-512", Username: "svc", PasswordEnv: "ADAPTREC_TEST_KAFKA_PW"}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.String(), `127.0.0.1:9094 sasl=SCRAM-SHA-512 user="svc"`; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("x", "conn", c)
		if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), "SCRAM-SHA-512") {
			t.Fatalf("log line: %s", buf.String())
		}
	}
}

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	k := configs.Kafka{Brokers: []string{"b:1"}, TLS: configs.KafkaTLS{Enable: true, CAFile: notPEM}}
	if _, err := FromConfig(k); err == nil || err.Error() != "kafka.tls.ca_file: "+notPEM+" holds no PEM certificate" {
		t.Fatalf("CA file without PEM: got %v", err)
	}
	k.TLS = configs.KafkaTLS{Enable: true, CertFile: notPEM, KeyFile: notPEM}
	if _, err := FromConfig(k); err == nil || !strings.HasPrefix(err.Error(), "kafka.tls.cert_file: loading the client certificate") {
		t.Fatalf("bad client certificate: got %v", err)
	}
	k.TLS = configs.KafkaTLS{Enable: true, ServerName: "broker.example.com"}
	c, err := FromConfig(k)
	if err != nil || c.tls == nil || c.tlsFor("10.0.0.1:9094").ServerName != "broker.example.com" {
		t.Fatalf("server name: %v", err)
	}
	k.TLS.ServerName = ""
	if c, _ := FromConfig(k); c.tlsFor("10.0.0.1:9094").ServerName != "10.0.0.1" {
		t.Fatalf("server name does not default to the host dialled")
	}
	if c, _ := FromConfig(configs.Kafka{Brokers: []string{"b:1"}}); c.tls != nil || c.mech != nil {
		t.Fatalf("TLS or SASL on by default")
	}
}
